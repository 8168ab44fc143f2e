"""Load, bounded and on loopback: 10 concurrent uploads, 50 concurrent playback streams with
seeks, and a burst of revokes among them, against gunicorn with 2 processes.

The shares the streams play are made by the app's own functions (the opt-in API, the share's
own data key, ``crypto.seal``, the store, status ready: ``ProofStack.materialize``) from
4 s of 360p noise (4.3 MiB) and the derivatives of one share the real worker made: the
serving path is the same, and a transcode per share would only cost time. Every 206 body is
compared with the plaintext it must be.

The players run in two processes of their own (so the test's own threads do not slow the
requests it times): 46 players each fetch 256 KiB at a random offset, then pause 1–3 s (a
player seeking about a 1 Mbit/s video, the bitrate of a 720p screen rendition), and 4 slow
players read a whole 26 MiB rendition at about 256 KiB/s. 20 shares are revoked in a burst,
two at a time, while they are being played.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from tests.proof.conftest import percentile, proof_stack
from tests.proof.record import RESULTS, record

pytestmark = pytest.mark.proof

KIB, MIB = 1024, 1024 * 1024
PLAY_SHARES, REVOKE_SHARES = 10, 20
RANGE_STREAMS, SLOW_STREAMS, UPLOADS, BURST = 46, 4, 10, 2
RANGE, PAUSE_S = 256 * KIB, 2.0
LONG_COPIES = 6  # the slow readers read 6 × 4.3 MiB: far more than socket buffers hold
LOAD_S = 14.0  # how long the players play; the uploads and the burst come in the middle
BATCH = 2 * MIB  # app/services/playback.py BATCH_CHUNKS × 16 KiB: plaintext sent per state check


def _socket_buffers() -> int:
    """The most a loopback connection can hold in flight: the kernel's largest receive and
    send buffers (bytes the server handed over before the revoke may still be on their way)."""
    total = 0
    for name in ("tcp_rmem", "tcp_wmem"):
        with contextlib.suppress(OSError, ValueError):
            total += int(Path(f"/proc/sys/net/ipv4/{name}").read_text().split()[2])
    return total or 16 * MIB


SERVE = "§2.4 no byte after the revoke"
AVAILABLE = "§5 correct and available under load"


@dataclass
class World:
    base: str
    owner: object
    coach: object
    uploader: object
    play: list[str]
    revoke: list[str]
    plaintext_path: Path
    plaintext: bytes
    files: dict[str, bytes]
    stack: object


@pytest.fixture(scope="module")
def world(tmp_path_factory, samples, proof_media):
    with proof_stack(tmp_path_factory, "load") as stack:
        worker = stack.start_worker()
        owner, coach, uploader = (
            stack.person("employee"),
            stack.person("coach"),
            stack.person("employee"),
        )
        recording = stack.upload(owner, {"screen": samples.screen_webm})
        template = stack.opt_in(owner, recording["id"], [coach])["id"]
        assert stack.wait(template)["status"] == "ready"
        derivatives = {}
        for kind, path, content_type in (
            ("poster", "poster.jpg", "image/jpeg"),
            ("thumbnails", "thumbnails.jpg", "image/jpeg"),
            ("waveform", "waveform.json", "application/json"),
        ):
            response = stack.client.get(f"/media/shares/{template}/{path}", headers=coach.headers)
            assert response.status_code == 200
            derivatives[kind] = (response.data, content_type)
        # The shares below are made without the worker: stop it, so it does not transcode
        # them too (their jobs stay in this stack's own queue and are dropped with it).
        worker.stop()
        plaintext = proof_media["noise"].read_bytes()
        long = plaintext * LONG_COPIES
        made = []
        for n in range(PLAY_SHARES + REVOKE_SHARES):
            share_id = stack.opt_in(owner, recording["id"], [coach])["id"]
            # the first shares to be revoked are the ones the slow readers read: long ones
            rendition = long if PLAY_SHARES <= n < PLAY_SHARES + SLOW_STREAMS else plaintext
            stack.materialize(share_id, {"rendition": (rendition, "video/mp4"), **derivatives})
            made.append(share_id)
        web = stack.start_web(workers=2)  # the shipped default: 8 threads each
        yield World(
            base=web.url,
            owner=owner,
            coach=coach,
            uploader=uploader,
            play=made[:PLAY_SHARES],
            revoke=made[PLAY_SHARES:],
            plaintext_path=proof_media["noise"],
            plaintext=plaintext,
            files={
                "screen": samples.screen_webm.read_bytes(),
                "audio": samples.call_wav.read_bytes(),
            },
            stack=stack,
        )


# --- the players (in processes of their own) ---------------------------------------------------


def _player_session() -> requests.Session:
    """A session that, like a browser, resends a GET once when a kept-alive connection turns
    out closed before any answer (gunicorn drops idle keep-alive connections after 2 s); a
    response broken off after it began is never retried."""
    session = requests.Session()
    retry = Retry(total=1, connect=1, read=1, status=0, redirect=0, allowed_methods={"GET"})
    session.mount("http://", HTTPAdapter(max_retries=retry))
    return session


def _range_player(job: dict, plaintext: bytes, out: list, seed: int) -> None:
    rng = random.Random(seed)
    session = _player_session()
    size = len(plaintext)
    url = f"{job['base']}/media/shares/{job['share']}/video"
    time.sleep(rng.random())  # players start over a second, as people do
    while time.monotonic() < job["until"]:
        start = rng.randrange(0, size)
        stop = min(start + RANGE, size)
        entry = {"share": job["share"], "sent": time.monotonic(), "status": 0, "media": 0}
        try:
            response = session.get(
                url, headers={**job["headers"], "Range": f"bytes={start}-{stop - 1}"}, timeout=30
            )
        except requests.RequestException as exc:
            entry.update(done=time.monotonic(), error=repr(exc)[:200])
            out.append(entry)
            continue
        entry.update(done=time.monotonic(), status=response.status_code)
        if response.status_code == 206:
            entry["media"] = len(response.content)
            entry["wrong"] = response.content != plaintext[start:stop]
            entry["short"] = len(response.content) != stop - start
        out.append(entry)
        if response.status_code == 410:
            return  # the player shows "withdrawn" and stops
        time.sleep(rng.uniform(0.5, 1.5) * PAUSE_S)


def _slow_player(job: dict, plaintext: bytes, out: list) -> None:
    """Reads a whole (long) rendition at about 256 KiB/s; notes when each block arrived."""
    entry = {"share": job["share"], "sent": time.monotonic(), "slow": True, "arrivals": []}
    received = 0
    try:
        with requests.get(
            f"{job['base']}/media/shares/{job['share']}/video",
            headers=job["headers"],
            stream=True,
            timeout=30,
        ) as response:
            entry["status"] = response.status_code
            for block in response.iter_content(64 * KIB):
                entry["arrivals"].append((time.monotonic(), len(block)))
                received += len(block)
                time.sleep(1 / 4)
    except requests.RequestException as exc:
        entry["error"] = repr(exc)[:200]  # a response the revoke cut short ends like this
    entry.update(done=time.monotonic(), media=received, size=len(plaintext) * LONG_COPIES)
    out.append(entry)


def play(jobs: list[dict], plaintext_path: str) -> list[dict]:
    """One player process: a thread per job; returns what each request got."""
    plaintext = Path(plaintext_path).read_bytes()
    out: list[dict] = []
    threads = [
        threading.Thread(
            target=_slow_player if job.get("slow") else _range_player,
            args=(job, plaintext, out) if job.get("slow") else (job, plaintext, out, job["seed"]),
        )
        for job in jobs
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return out


# --- the test process: uploads and revokes ------------------------------------------------------


def _upload(world: World, index: int) -> tuple[float | None, str | None]:
    started = time.monotonic()
    try:
        response = requests.post(
            f"{world.base}/api/v1/recordings",
            headers=world.uploader.headers,
            files={
                "screen": ("screen.webm", world.files["screen"], "video/webm"),
                "audio": ("call.wav", world.files["audio"], "audio/wav"),
            },
            data={"title": f"Load upload {index}"},
            timeout=60,
        )
    except requests.RequestException as exc:
        return None, f"upload {index}: {exc!r}"
    if response.status_code != 201:
        return None, f"upload {index}: {response.status_code} {response.text[:200]}"
    return time.monotonic() - started, None


def _revoke(world: World, share_id: str) -> dict:
    started = time.monotonic()
    try:
        response = requests.post(
            f"{world.base}/api/v1/shares/{share_id}/revoke", headers=world.owner.headers, timeout=30
        )
    except requests.RequestException as exc:
        return {"share": share_id, "started": started, "error": repr(exc)}
    answered = time.monotonic()
    body = response.json() if response.status_code == 200 else {}
    ok = bool(body.get("certificate")) and body.get("key_destroyed") is True
    return {
        "share": share_id,
        "started": started,
        "answered": answered,
        "ok": ok,
        "error": None if ok else f"{response.status_code} {response.text[:200]}",
    }


def test_uploads_streams_and_a_revoke_burst(world):
    # warm both web processes (imports, pools, key cache) before measuring
    for share_id in world.play + world.revoke[:2]:
        requests.get(
            f"{world.base}/media/shares/{share_id}/video",
            headers={**world.coach.headers, "Range": "bytes=0-1023"},
            timeout=30,
        )
    began = time.monotonic()
    until = began + LOAD_S
    headers = dict(world.coach.headers)
    jobs = []
    for n in range(RANGE_STREAMS):
        # 30 players on the shares that stay, 16 on shares that will be revoked
        share = world.play[n % PLAY_SHARES] if n < 30 else world.revoke[n % REVOKE_SHARES]
        jobs.append({"share": share, "seed": n})
    for n in range(SLOW_STREAMS):
        jobs.append({"share": world.revoke[n], "slow": True})
    for job in jobs:
        job.update(base=world.base, headers=headers, until=until)
    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as players:
        futures = [
            players.submit(play, jobs[half::2], str(world.plaintext_path)) for half in (0, 1)
        ]
        time.sleep(3)
        with ThreadPoolExecutor(UPLOADS) as pool:
            uploads = list(pool.map(lambda i: _upload(world, i), range(UPLOADS)))
        time.sleep(0.5)
        load_average = os.getloadavg()[0]
        with ThreadPoolExecutor(BURST) as pool:
            revokes = list(pool.map(lambda s: _revoke(world, s), world.revoke))
        outcomes = [entry for future in futures for entry in future.result(timeout=180)]
    ended = time.monotonic()

    revoked = {r["share"]: r for r in revokes if r.get("ok")}
    latencies = [r["answered"] - r["started"] for r in revoked.values()]
    burst_s = max(r["answered"] for r in revoked.values()) - min(
        r["started"] for r in revoked.values()
    )

    def cut_by_revoke(entry: dict) -> bool:
        """In flight while its share's revoke ran: may be cut short, by design."""
        revoke = revoked.get(entry["share"])
        return (
            revoke is not None
            and entry["sent"] < revoke["answered"]
            and entry["done"] >= revoke["started"]
        )

    after = [
        e for e in outcomes if e["share"] in revoked and e["sent"] > revoked[e["share"]]["answered"]
    ]
    bytes_after = sum(e["media"] for e in after)
    errors = [f"revoke {r['share']}: {r['error']}" for r in revokes if not r.get("ok")]
    errors += [message for _, message in uploads if message]
    raced: list[dict] = []
    for entry in outcomes:
        if entry.get("slow"):
            if entry.get("status") != 200 or (
                entry["share"] not in revoked and entry["media"] != entry["size"]
            ):
                errors.append(f"slow reader: {entry}")
            continue
        if "error" in entry or entry.get("short"):
            if not cut_by_revoke(entry):
                errors.append(f"stream {entry['share']}: {entry.get('error', 'short body')}")
        elif entry["status"] == 206 and entry.get("wrong"):
            errors.append(f"stream {entry['share']}: wrong bytes")
        elif entry["status"] == 410 and entry["share"] not in revoked:
            errors.append(f"stream {entry['share']}: 410 on a share nobody revoked")
        elif entry["status"] == 503 and cut_by_revoke(entry):
            raced.append(entry)  # authorised just before the revoke, object gone after it
        elif entry["status"] not in (206, 410):
            errors.append(f"stream {entry['share']}: status {entry['status']}")
    ranged = [e for e in outcomes if not e.get("slow") and e["status"] == 206]
    served = sum(e["media"] for e in outcomes)
    throughput = served / MIB / (ended - began)
    slow = [e for e in outcomes if e.get("slow")]
    cut_short = [e for e in slow if e["media"] < e["size"]]
    late = [
        sum(n for t, n in e["arrivals"] if t > revoked[e["share"]]["answered"])
        for e in slow
        if e["share"] in revoked
    ]
    upload_times = [t for t, _ in uploads if t is not None]
    p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000

    test = "load::uploads_streams_revokes"
    record(
        test,
        "load",
        f"{UPLOADS} uploads, {RANGE_STREAMS + SLOW_STREAMS} streams, {len(world.revoke)} "
        f"revokes ({BURST} at a time) over {ended - began:.0f} s; machine load average "
        f"{load_average:.1f}",
        passed=True,
        guarantee=AVAILABLE,
    )
    record(
        test,
        "errors (failed or 5xx requests, wrong bytes, unexpected statuses)",
        len(errors),
        target="0",
        passed=not errors,
        guarantee=AVAILABLE,
    )
    record(
        test,
        "Range requests answered 206, each body equal to its slice of the plaintext",
        len(ranged),
        passed=bool(ranged),
        guarantee=AVAILABLE,
    )
    record(
        test,
        "stream throughput (decrypted media served)",
        round(throughput, 1),
        unit="MiB/s",
        passed=True,
        guarantee=AVAILABLE,
    )
    record(
        test,
        "uploads answered 201 Created (slowest)",
        f"{len(upload_times)} of {UPLOADS} ({max(upload_times, default=0):.1f} s)",
        target=f"{UPLOADS} of {UPLOADS}",
        passed=len(upload_times) == UPLOADS,
        guarantee=AVAILABLE,
    )
    record(test, "revoke latency p50", round(p50, 1), unit="ms", passed=True, guarantee=SERVE)
    record(
        test,
        f"revoke latency p99 ({len(latencies)} revokes in a {burst_s:.1f} s burst)",
        round(p99, 1),
        unit="ms",
        target="≤ 100 ms",
        passed=p99 <= 100,
        guarantee=SERVE,
    )
    record(
        test,
        f"media bytes served after a revoke to requests started after it ({len(after)} requests)",
        bytes_after,
        unit="B",
        target="0 (each answered 410)",
        passed=bytes_after == 0 and bool(after) and all(e["status"] == 410 for e in after),
        guarantee=SERVE,
    )
    record(
        test,
        "requests in flight during their share's revoke answered 503 (object already deleted; "
        "nothing sent)",
        len(raced),
        passed=all(e["media"] == 0 for e in raced),
        guarantee=SERVE,
    )
    record(
        test,
        "slow whole-file readers of revoked shares cut short mid-stream",
        f"{len(cut_short)} of {len(slow)}",
        target=f"{SLOW_STREAMS} of {SLOW_STREAMS}",
        passed=len(cut_short) == SLOW_STREAMS,
        guarantee=SERVE,
    )
    bound = BATCH + _socket_buffers()
    record(
        test,
        "most bytes an in-flight response received after the revoke response",
        max(late, default=0),
        unit="B",
        target=f"≤ one 2 MiB batch + kernel socket buffers ({bound // MIB} MiB)",
        passed=max(late, default=0) <= bound,
        guarantee=SERVE,
    )
    if errors:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        (RESULTS.parent / "load-errors.json").write_text(json.dumps(errors, indent=1))
    assert not errors, errors[:5]
    assert len(upload_times) == UPLOADS
    assert after, "no request started after a revoke: the figure would say nothing"
    assert bytes_after == 0 and all(e["status"] == 410 for e in after)
    assert len(cut_short) == SLOW_STREAMS, [(e.get("status"), e["media"]) for e in slow]
    assert max(late, default=0) <= bound
    for share_id in world.revoke:
        assert not world.stack.store_names(f"shares/{share_id}/"), share_id
    # A latency target on a shared 2-core machine is a benchmark figure, not a pass/fail
    # assertion: the table above records it (and MISS when it misses), as bench/serve.py does.
