// The enrolment/reset link page: the link's secret travels in the URL fragment (never sent
// to a server, so it is in no log and no Referer); put it in the form and out of the address bar.
import { $ } from "./kit.js";

const secret = decodeURIComponent(window.location.hash.slice(1));
if (secret) {
  $("link-token").value = secret;
  window.history.replaceState(null, "", window.location.pathname);
} else if (!$("link-token").value) {
  $("link-missing").hidden = false;
  $("link-missing").classList.remove("hidden");
}
