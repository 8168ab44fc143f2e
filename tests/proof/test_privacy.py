"""The privacy invariants, checked by looking underneath after a full flow whose media and
words carry a canary.

The canary: a marker string (random per run) in the recording's title, the share's note, a
coach's comment, and as bytes inside both uploaded files (container tags); a 1337 Hz tone on
the agent's channel (the customer's channel carries 2500 Hz and must be dropped); and a
blocky frame pattern known to the test as the screen. The test first proves the canary
reached the plaintext derivatives (tone in the rendition, pattern in the poster), so that
not finding it underneath means something.

Then it scans every object in the S3 store, a ``pg_dump`` of the database, every key and
value of the broker (a private Redis, so all of it is this run's), every log the web app,
the worker and the S3 server wrote, and the instance folder: no marker, no media signature
at an object's start, no window of any plaintext (uploads, rendition, poster, thumbnails,
waveform, raw frame), no data key and no key-encryption key — each in raw, hex and base64
forms. It scans once while the share is live and once after the revoke.

Finally, admins and representatives, signed in with a cookie and with a token, walk every
route of the URL map: every content route refuses them, and no answer carries the canary.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import requests

import crypto
from app.models import DataKey, Recording, Share
from app.services import keys
from tests.proof.conftest import ffmpeg, proof_stack
from tests.proof.record import record

pytestmark = pytest.mark.proof

AT_REST = "§2.3 §11 nothing in the clear underneath"
NOT_WATCHING = "§2.5 running it is not watching it"
TONE_HZ, CUSTOMER_HZ = 1337, 2500
W, H, SECONDS, FPS = 320, 180, 6, 15
SIGNATURES = {
    "MP4 ftyp": lambda d: d[4:8] == b"ftyp",
    "EBML (WebM/Matroska)": lambda d: d.startswith(b"\x1a\x45\xdf\xa3"),
    "RIFF WAVE": lambda d: d.startswith(b"RIFF") and d[8:12] == b"WAVE",
    "OggS": lambda d: d.startswith(b"OggS"),
    "JPEG": lambda d: d.startswith(b"\xff\xd8\xff"),
    "ID3 (MP3)": lambda d: d.startswith(b"ID3"),
}
# the same signatures at the start of a bytea value in pg_dump's COPY text (hex)
DUMP_SIGNATURES = re.compile(
    rb"\\\\x(1a45dfa3|52494646[0-9a-f]{8}57415645|4f676753|ffd8ff|[0-9a-f]{8}66747970|494433)"
)


# --- the canary -------------------------------------------------------------------------------


def _pattern() -> np.ndarray:
    """8×8-pixel blocks of random colours: survives lossy coding, known to the test."""
    blocks = np.random.default_rng(1337).integers(0, 256, (H // 8 + 1, W // 8, 3), dtype=np.uint8)
    return np.kron(blocks, np.ones((8, 8, 1), dtype=np.uint8))[:H, :W]


def make_canary_media(folder: Path, marker: str) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    frames = folder / "pattern.rgb"
    frames.write_bytes(_pattern().tobytes() * (SECONDS * FPS))
    screen = folder / "canary.webm"
    ffmpeg(
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}", "-r", str(FPS),
        "-i", str(frames), "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8",
        "-b:v", "1M", "-metadata", f"title={marker}", "-metadata", f"comment={marker}",
        str(screen),
    )  # fmt: skip
    call = folder / "canary.wav"
    ffmpeg(
        "-f", "lavfi", "-i", f"sine=f={TONE_HZ}:d={SECONDS}:sample_rate=16000",
        "-f", "lavfi", "-i", f"sine=f={CUSTOMER_HZ}:d={SECONDS}:sample_rate=16000",
        "-filter_complex", "[0][1]amerge=inputs=2", "-ac", "2",
        "-metadata", f"title={marker}", "-metadata", f"comment={marker}", str(call),
    )  # fmt: skip
    for path in (screen, call):
        assert marker.encode() in path.read_bytes(), f"the marker is not inside {path.name}"
    return {"screen": screen, "audio": call, "frames": frames}


def _decode(data: bytes, *args: str) -> bytes:
    return subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", "pipe:0", *args, "pipe:1"],
        input=data,
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout


def _tone_peaks(rendition: bytes) -> tuple[float, float]:
    """The strongest frequency of the rendition's audio, and the customer tone's share."""
    pcm = np.frombuffer(_decode(rendition, "-f", "s16le", "-ac", "1", "-ar", "48000"), "<i2")
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    freqs = np.fft.rfftfreq(len(pcm), 1 / 48000)
    peak = float(freqs[int(np.argmax(spectrum))])
    near = lambda hz: spectrum[(freqs > hz - 20) & (freqs < hz + 20)].max()  # noqa: E731
    return peak, float(near(CUSTOMER_HZ) / near(TONE_HZ))


def _pattern_match(poster: bytes) -> float:
    """Correlation of the poster (scaled back to 320×180) with the pattern."""
    raw = _decode(poster, "-vf", f"scale={W}:{H}", "-f", "rawvideo", "-pix_fmt", "rgb24")
    seen = np.frombuffer(raw[: W * H * 3], np.uint8).astype(np.float64).ravel()
    return float(np.corrcoef(seen, _pattern().astype(np.float64).ravel())[0, 1])


# --- needles and scanning ---------------------------------------------------------------------


def forms(data: bytes) -> list[bytes]:
    """The raw bytes, their hex, and their base64 at each of the three alignments."""
    found = {data, data.hex().encode(), data.hex().upper().encode()}
    for shift in range(3):
        part = data[shift:]
        part = part[: len(part) - len(part) % 3]
        if len(part) >= 12:
            found.add(base64.b64encode(part))
            found.add(base64.urlsafe_b64encode(part))
    return sorted(found)


def windows(data: bytes, count: int = 8, size: int = 48) -> list[bytes]:
    """``count`` windows of ``size`` bytes spread over ``data``, each varied enough (≥ 12
    distinct bytes) not to occur by chance in ciphertext, JSON or logs."""
    picked = []
    for n in range(count):
        offset = (n + 1) * len(data) // (count + 2)
        while offset + size <= len(data):
            window = data[offset : offset + size]
            if len(set(window)) >= 12:
                picked.append(window)
                break
            offset += 97
    return picked


@dataclass
class Needles:
    groups: dict[str, list[tuple[str, bytes]]] = field(default_factory=dict)

    def add(self, group: str, name: str, data: bytes, *, text: bool = False) -> None:
        found = forms(data)
        if text:
            found.append(data.decode().encode("utf-16-le"))
        self.groups.setdefault(group, []).extend((name, f) for f in found)

    def find(self, blob: bytes) -> dict[str, set[str]]:
        hits: dict[str, set[str]] = {}
        for group, needles in self.groups.items():
            for name, needle in needles:
                if needle in blob:
                    hits.setdefault(group, set()).add(name)
        return hits


@dataclass
class Scan:
    sources: dict[str, int] = field(default_factory=dict)  # source → bytes scanned
    hits: list[str] = field(default_factory=list)
    signatures: list[str] = field(default_factory=list)
    objects: int = 0
    sealed: int = 0
    messages: int = 0
    message_args_not_ids: list[str] = field(default_factory=list)

    def look(self, needles: Needles, source: str, blob: bytes) -> None:
        self.sources[source.split(":", 1)[0]] = self.sources.get(source.split(":", 1)[0], 0) + len(
            blob
        )
        for group, names in needles.find(blob).items():
            self.hits.append(f"{source}: {group} ({', '.join(sorted(names))})")


def _redis_values(client) -> list[tuple[str, bytes]]:
    out = []
    for key in client.scan_iter("*"):
        name = key.decode(errors="replace")
        kind = client.type(key).decode()
        out.append((f"key {name}", key))
        if kind == "string":
            out.append((name, client.get(key) or b""))
        elif kind == "list":
            out += [(name, v) for v in client.lrange(key, 0, -1)]
        elif kind == "hash":
            out += [(name, k + b"=" + v) for k, v in client.hgetall(key).items()]
        elif kind == "set":
            out += [(name, v) for v in client.smembers(key)]
        elif kind == "zset":
            out += [(name, v) for v in client.zrange(key, 0, -1)]
    return out


def _message_args(value: bytes) -> list | None:
    """The task arguments of a kombu message (JSON with a base64 body), if it is one."""
    try:
        text = value.decode()
        message = json.loads(text[text.index("{") :])
        body = json.loads(base64.b64decode(message["body"]))
    except (ValueError, KeyError, TypeError):
        return None
    return body[0] if isinstance(body, list) and body else None


def scan_everything(stack, needles: Needles) -> Scan:
    scan = Scan()
    # 1. every object in the store
    for info in stack.rt.store.scan(""):
        data = b"".join(stack.rt.store.iter_object(info.name))
        scan.objects += 1
        for signature, test in SIGNATURES.items():
            if test(data):
                scan.signatures.append(f"object {info.name}: {signature}")
        try:
            header = crypto.parse_header(data)
            if header.object_id == info.name.rsplit("/", 1)[1]:
                scan.sealed += 1
        except crypto.DecryptionError:
            pass
        scan.look(needles, f"store:{info.name}", data)
    # 2. the database, as a dump
    url = stack.database_url.replace("postgresql+psycopg://", "postgresql://")
    dump = subprocess.run(
        ["pg_dump", "--no-owner", url], capture_output=True, check=True, timeout=120
    ).stdout
    for match in DUMP_SIGNATURES.finditer(dump):
        scan.signatures.append(f"pg_dump: bytea starting {match.group(0)[:20]!r}")
    scan.look(needles, "pg_dump", dump)
    # 3. every key and value of the broker, and the task arguments inside the messages
    for name, value in _redis_values(stack.redis.client()):
        scan.look(needles, f"redis:{name}", value)
        args = _message_args(value)
        if args is not None:
            scan.messages += 1
            for arg in args:
                try:
                    uuid.UUID(str(arg))
                except ValueError:
                    scan.message_args_not_ids.append(f"{name}: {arg!r}"[:200])
            try:
                decoded = base64.b64decode(json.loads(value.decode()[value.find(b"{") :])["body"])
                scan.look(needles, f"redis:{name} (decoded body)", decoded)
            except (ValueError, KeyError):
                pass
    # 4. every log, and 5. the instance folder (beat schedule, secrets), the keyring aside
    for path in sorted(stack.folder.rglob("*.log")):
        scan.look(needles, f"logs:{path.name}", path.read_bytes())
    keyring = stack.settings.keyring_path.resolve()
    for path in sorted(stack.settings.instance_dir.rglob("*")):
        if path.is_file() and path.resolve() != keyring:
            scan.look(needles, f"instance:{path.name}", path.read_bytes())
    return scan


def key_material(stack, key_ids: list[uuid.UUID]) -> dict[str, bytes]:
    """The data keys (unwrapped in-process with the keyring), the KEKs and signing seeds."""
    found = {}
    with stack.rt.db.session() as session:
        for key_id in key_ids:
            found[f"DEK {key_id}"] = keys.load_data_key(
                session, stack.rt.kek, crypto.DataKeyCache(ttl_seconds=1), key_id
            )
    ring = json.loads(stack.settings.keyring_path.read_text())
    for version in ring["kek"]["versions"]:
        if version.get("key"):
            found[f"KEK v{version['version']}"] = base64.b64decode(version["key"])
    for signing in ring["signing"]["keys"]:
        found[f"signing seed {signing['kid'][:8]}"] = base64.b64decode(signing["seed"])
    return found


# --- the flow ---------------------------------------------------------------------------------


@dataclass
class Flow:
    stack: object
    marker: str
    employee: object
    coach: object
    recording_id: str
    share_id: str
    needles: Needles
    plaintexts: dict[str, bytes]
    keys: dict[str, bytes]
    key_ids: list[uuid.UUID]
    media: dict[str, Path]
    web: object
    queued_scan: Scan | None = None


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    marker = f"CANARY-{uuid.uuid4().hex}"
    with proof_stack(tmp_path_factory, "privacy", broker="private-redis") as stack:
        media = make_canary_media(stack.folder / "canary", marker)
        worker = stack.start_worker()
        web = stack.start_web()
        employee, coach = stack.person("employee"), stack.person("coach")
        recording = stack.upload(
            employee,
            {"screen": media["screen"], "audio": media["audio"]},
            title=f"{marker} title",
            agent_channel="left",
            customer_informed=False,
        )
        stack.wait_probed(employee, recording["id"])
        # The job's message waits in Redis while no worker runs: the scan sees it there.
        worker.stop()
        share = stack.opt_in(employee, recording["id"], [coach], note=f"{marker} note")
        with stack.rt.db.session() as session:
            key_ids = [
                session.get(Recording, uuid.UUID(recording["id"])).key_id,
                session.get(Share, uuid.UUID(share["id"])).key_id,
            ]
        flow = Flow(
            stack=stack,
            marker=marker,
            employee=employee,
            coach=coach,
            recording_id=recording["id"],
            share_id=share["id"],
            needles=Needles(),
            plaintexts={},
            keys=key_material(stack, key_ids),
            key_ids=key_ids,
            media=media,
            web=web,
        )
        flow.queued_scan = scan_everything(stack, _needles(flow))
        stack.start_worker("worker-after-queue")
        assert stack.wait(share["id"])["status"] == "ready"
        for kind in ("video", "poster.jpg", "thumbnails.jpg", "waveform.json"):
            response = requests.get(
                f"{web.url}/media/shares/{share['id']}/{kind}", headers=coach.headers, timeout=60
            )
            assert response.status_code == 200, (kind, response.status_code)
            flow.plaintexts[kind] = response.content
        comment = requests.post(
            f"{web.url}/api/v1/shares/{share['id']}/comments",
            json={"at_s": 1.5, "body": f"{marker} comment"},
            headers=coach.headers,
            timeout=30,
        )
        assert comment.status_code in (200, 201), comment.text
        give_feedback(stack, web, share["id"], employee, coach, marker)
        flow.needles = _needles(flow)
        yield flow


def give_feedback(stack, web, share_id: str, employee, coach, marker: str) -> None:
    """Coaching feedback (SPEC §13) carrying the canary in every field, and a reply with it:
    sealed under the employee's key, it must not be found underneath either."""
    from app.services import forms

    admin, representative = stack.person("admin"), stack.person("representative")
    with stack.rt.db.session() as session:
        form = forms.propose(
            session,
            name="Canary form",
            language="en",
            criteria=[{"id": "clear", "title": "Speaks clearly", "scale": "yes_no"}],
            actor_id=admin.id,
        )
        forms.approve(session, form.id, actor_id=representative.id)
        form_id = str(form.id)
    rating = {"criterion_id": "clear", "value": True, "comment": f"{marker} rating"}
    created = requests.post(
        f"{web.url}/api/v1/shares/{share_id}/feedback",
        json={
            "form_id": form_id,
            "ratings": [rating],
            "strengths": f"{marker} strengths",
            "next_step": f"{marker} next step",
            "summary": f"{marker} summary",
        },
        headers=coach.headers,
        timeout=30,
    )
    assert created.status_code == 201, created.text
    url = f"{web.url}/api/v1/feedback/{created.json()['id']}"
    assert requests.post(f"{url}/send", headers=coach.headers, timeout=30).status_code == 200
    reply = {"reply": f"{marker} reply", "agree": True}
    answer = requests.post(f"{url}/acknowledge", json=reply, headers=employee.headers, timeout=30)
    assert answer.status_code == 200, answer.text


def _needles(flow: Flow, key_bytes: dict[str, bytes] | None = None) -> Needles:
    media = flow.media
    needles = Needles()
    needles.add("canary marker", "marker", flow.marker.encode(), text=True)
    sources = {
        "upload canary.webm": media["screen"].read_bytes(),
        "upload canary.wav": media["audio"].read_bytes(),
        "raw frame": _pattern().tobytes(),
        **{f"derivative {k}": v for k, v in flow.plaintexts.items()},
    }
    for name, data in sources.items():
        for n, window in enumerate(windows(data)):
            needles.add("plaintext window", f"{name} #{n}", window)
    for name, data in (flow.keys if key_bytes is None else key_bytes).items():
        needles.add("key material", name, data)
    return needles


def _record_scan(test: str, scan: Scan, when: str) -> None:
    sizes = ", ".join(
        f"{k} {v / 1024:,.0f} KiB" if v >= 1024 else f"{k} {v} B"
        for k, v in sorted(scan.sources.items())
    )
    record(test, f"{when}: scanned", sizes, passed=bool(scan.sources), guarantee=AT_REST)
    record(
        test,
        f"{when}: objects that are sealed objects named by their own id",
        f"{scan.sealed} of {scan.objects}",
        target="all",
        passed=scan.sealed == scan.objects > 0,
        guarantee=AT_REST,
    )
    for group in ("canary marker", "plaintext window", "key material"):
        found = [h for h in scan.hits if f": {group} (" in h]
        record(
            test,
            f"{when}: {group} found (raw, hex, base64)",
            len(found),
            target="0",
            passed=not found,
            guarantee=AT_REST,
        )
    record(
        test,
        f"{when}: media signatures (object starts, bytea values)",
        len(scan.signatures),
        target="0",
        passed=not scan.signatures,
        guarantee=AT_REST,
    )


# --- the tests --------------------------------------------------------------------------------


def test_the_canary_reached_the_derivatives(flow):
    peak, customer = _tone_peaks(flow.plaintexts["video"])
    match = _pattern_match(flow.plaintexts["poster.jpg"])
    test = "privacy::canary"
    record(
        test,
        "strongest frequency in the rendition (agent's tone 1337 Hz)",
        round(peak, 1),
        unit="Hz",
        target="1337 ± 5 Hz",
        passed=abs(peak - TONE_HZ) <= 5,
        guarantee=AT_REST,
    )
    record(
        test,
        "customer's 2500 Hz tone left in the rendition, relative to the agent's",
        round(customer, 4),
        target="< 0.01 (dropped, SPEC §7)",
        passed=customer < 0.01,
        guarantee="§7 customer channel dropped",
    )
    record(
        test,
        "poster's correlation with the frame pattern",
        round(match, 3),
        target="≥ 0.8",
        passed=match >= 0.8,
        guarantee=AT_REST,
    )
    assert abs(peak - TONE_HZ) <= 5 and customer < 0.01 and match >= 0.8


def test_the_broker_holds_only_ids_while_a_job_waits(flow):
    scan = flow.queued_scan
    assert scan is not None
    test = "privacy::broker_message"
    record(
        test,
        "job messages found in Redis while no worker ran",
        scan.messages,
        target="≥ 1",
        passed=scan.messages >= 1,
        guarantee=AT_REST,
    )
    record(
        test,
        "task arguments that are not ids",
        len(scan.message_args_not_ids),
        target="0",
        passed=not scan.message_args_not_ids,
        guarantee=AT_REST,
    )
    found = [h for h in scan.hits if h.startswith("redis")]
    record(
        test,
        "canary, plaintext or key material in Redis then",
        len(found),
        target="0",
        passed=not found,
        guarantee=AT_REST,
    )
    assert scan.messages >= 1
    assert not scan.message_args_not_ids and not found, found or scan.message_args_not_ids


def test_nothing_in_the_clear_while_the_share_is_live(flow):
    # positive control: planted in a blob, every kind of needle is found
    planted = (
        flow.plaintexts["video"]
        + flow.marker.encode().hex().encode()
        + base64.b64encode(b"." + next(iter(flow.keys.values())))
    )
    control = flow.needles.find(planted)
    record(
        "privacy::scan_live",
        "scanner's positive control: kinds of needle found when planted",
        ", ".join(sorted(control)),
        target="canary marker, key material, plaintext window",
        passed=len(control) == 3,
        guarantee=AT_REST,
    )
    assert len(control) == 3, control
    scan = scan_everything(flow.stack, flow.needles)
    _record_scan("privacy::scan_live", scan, "live share")
    assert scan.objects and scan.sealed == scan.objects
    assert not scan.hits, scan.hits[:10]
    assert not scan.signatures, scan.signatures[:10]


def _login(base: str, person) -> tuple[requests.Session, str]:
    session = requests.Session()
    page = session.get(f"{base}/login", timeout=30).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = session.post(
        f"{base}/login",
        data={"login": person.login, "password": PASSWORD, "csrf_token": token},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code in (302, 303), response.status_code
    home = session.get(f"{base}/", timeout=30).text
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', home).group(1)
    return session, csrf


PASSWORD = "proof-password-" + uuid.uuid4().hex[:12]
CONTENT_PREFIXES = (
    "media.",
    "recordings.",
    "shares.",
    "export.",
    "coach_pages.",
    "employee_pages.",
)
ALLOWED_FOR_ALL = {"shares.get_policy"}
SKIPPED = {"pages.logout", "pages.login", "admin.rotate_keys", "admin.retire_keys", "static"}


def test_admins_and_representatives_reach_no_content(flow):
    stack, base = flow.stack, flow.web.url
    view = requests.post(
        f"{base}/api/v1/shares/{flow.share_id}/views", headers=flow.coach.headers, timeout=30
    ).json()["id"]
    values = {
        "share_id": flow.share_id,
        "recording_id": flow.recording_id,
        "view_id": view,
        # the admin routes that change a user get a throwaway one, not the employee
        "user_id": str(stack.person("employee").id),
    }
    choices = {"kind": ["video", "poster.jpg", "thumbnails.jpg", "waveform.json"]}
    choices["part"] = ["screen", "audio"]
    windows_raw = [
        needle
        for name, needle in flow.needles.groups["plaintext window"]
        if not name.startswith("derivative waveform")
    ]
    words = [flow.marker.encode(), flow.employee.name.encode()]
    refused, reached, leaks, calls = [], [], [], 0
    for role in ("admin", "representative"):
        person = stack.person(role, password=PASSWORD)
        cookie, csrf = _login(base, person)
        modes = {
            "token": (requests.Session(), {**person.headers}),
            "cookie": (cookie, {"X-CSRFToken": csrf}),
        }
        for rule in stack.app.url_map.iter_rules():
            if rule.endpoint in SKIPPED:
                continue
            urls = [{}]
            for argument in sorted(rule.arguments):
                options = choices.get(argument, [values.get(argument, "x")])
                urls = [{**u, argument: o} for u in urls for o in options]
            for args in urls:
                path = rule.rule
                for name, value in args.items():
                    path = re.sub(rf"<(?:[a-z]+:)?{name}>", value, path)
                for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                    for mode, (session, headers) in modes.items():
                        calls += 1
                        response = session.request(
                            method,
                            f"{base}{path}",
                            headers={**headers, "Accept": "application/json"},
                            json={} if method != "GET" else None,
                            allow_redirects=False,
                            timeout=60,
                        )
                        where = f"{role}/{mode} {method} {path}"
                        body = response.content
                        content = rule.endpoint.startswith(CONTENT_PREFIXES)
                        if content and rule.endpoint not in ALLOWED_FOR_ALL:
                            if response.status_code in (401, 403, 404):
                                refused.append(where)
                            else:
                                reached.append(f"{where}: {response.status_code}")
                        for signature, test in SIGNATURES.items():
                            if test(body):
                                leaks.append(f"{where}: {signature}")
                        for needle in [*words[: 1 if role == "admin" else 2], *windows_raw]:
                            if needle in body:
                                leaks.append(f"{where}: {needle[:24]!r}")
    test = "privacy::admin_and_representative"
    record(
        test,
        "requests made (every route × method × role × cookie and token)",
        calls,
        passed=calls > 0,
        guarantee=NOT_WATCHING,
    )
    record(
        test,
        "content routes that answered them (not 401/403/404)",
        len(reached),
        target="0",
        passed=not reached,
        guarantee=NOT_WATCHING,
    )
    record(
        test,
        "content routes refused (requests)",
        len(refused),
        passed=bool(refused),
        guarantee=NOT_WATCHING,
    )
    record(
        test,
        "answers carrying the canary, plaintext, a media signature, or (to a representative) "
        "the employee's name",
        len(leaks),
        target="0",
        passed=not leaks,
        guarantee=NOT_WATCHING,
    )
    assert refused and not reached and not leaks, (reached + leaks)[:10]


def test_nothing_left_after_the_revoke(flow):
    stack = flow.stack
    response = requests.post(
        f"{flow.web.url}/api/v1/shares/{flow.share_id}/revoke",
        headers=flow.employee.headers,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    # the recording's key is still live (the draft stays); its KEK versions may have changed
    needles = _needles(flow, {**flow.keys, **key_material(stack, flow.key_ids[:1])})
    scan = scan_everything(stack, needles)
    _record_scan("privacy::scan_after_revoke", scan, "after the revoke")
    objects = stack.store_names(f"shares/{flow.share_id}/")
    with stack.rt.db.session() as session:
        key_row = session.get(DataKey, flow.key_ids[1])
    record(
        "privacy::scan_after_revoke",
        "share's objects and wrapped key left",
        len(objects) + (key_row is not None),
        target="0",
        passed=not objects and key_row is None,
        guarantee="§2.4 withdrawal immediate and final",
    )
    assert not objects and key_row is None
    assert not scan.hits, scan.hits[:10]
    assert not scan.signatures, scan.signatures[:10]
