// Consent receipts and deletion certificates (signed JWTs) as files: the token itself, or a
// readable JSON copy of its claims. Used by the employee pages.
import { el } from "./kit.js";

function download(filename, text, type) {
  const blob = new Blob([text], { type: type || "application/octet-stream" });
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: filename, class: "hidden" });
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 30000);
}

function base64urlJson(part) {
  const base64 = part.replace(/-/g, "+").replace(/_/g, "/");
  const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
  const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

export function decodeJwt(token) {
  const parts = String(token || "").split(".");
  if (parts.length !== 3) throw new Error("not a JWT");
  return { header: base64urlJson(parts[0]), claims: base64urlJson(parts[1]) };
}

const TIME_CLAIMS = ["iat", "exp", "destroyed_at"];

function readable(token, kind) {
  const { header, claims } = decodeJwt(token);
  const times = {};
  for (const name of TIME_CLAIMS) {
    if (typeof claims[name] === "number") times[name] = new Date(claims[name] * 1000).toISOString();
  }
  return JSON.stringify(
    {
      what: kind === "certificate"
        ? "consent-replay deletion certificate (readable copy; the .jwt file is the signed original)"
        : "consent-replay consent receipt (readable copy; the .jwt file is the signed original)",
      verify_with: `${location.origin}/.well-known/jwks.json`,
      header,
      claims,
      times_utc: times,
    },
    null,
    2,
  );
}

const fileName = (kind) => (kind === "certificate" ? "certificate" : "receipt");

export function downloadToken(kind, id, token) {
  download(`${fileName(kind)}-${id}.jwt`, token, "application/jwt");
}

export function downloadReadable(kind, id, token) {
  download(`${fileName(kind)}-${id}.json`, readable(token, kind), "application/json");
}
