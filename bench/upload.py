"""Resumable uploads (SPEC §16): tus against one multipart request, and the recorder's memory.

Run: .venv/bin/python bench/upload.py [--size-mib 500] [--repeat 2] [--store local|s3|both|none]
                                      [--record-minutes 5]

Self-contained: a fresh PostgreSQL database (CR_TEST_PG or postgresql://postgres@127.0.0.1/test),
Redis with its own queue prefix, moto's S3 server for --store s3, and `consent-replay web`
(gunicorn, 2 processes) per store.

1. The same file (a WebM head and random bytes) uploaded as a draft, interleaved, best of
   --repeat: one multipart ``POST /api/v1/recordings``, against tus — creation, one PATCH
   streamed from disk by the same HTTP client, then ``POST /api/v1/recordings`` with its
   upload id. The ratio is tus throughput over multipart throughput (target >= 0.9). For
   information, the tuspy client too (the whole file in one PATCH, and 16 MiB PATCHes as the
   upload form sends them).
2. The recorder: Chromium (Playwright, Debian's /usr/bin/chromium, fake screen and microphone)
   records on /record for --record-minutes while its JS heap (performance.memory) and the
   browser's memory (RSS of all its processes) are sampled; the recording goes to the server
   as it is made. Flat means the heap at the end is within 16 MiB of the heap after the first
   minute while the recording grows.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import os
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import redis as redis_lib  # noqa: E402
import requests  # noqa: E402
from tusclient import client as tus_client  # noqa: E402

from tests.conftest import (  # noqa: E402  (the test suite's harness)
    PG_ADMIN,
    REDIS_BASE,
    REDIS_DB,
    LiveServer,
    MotoServer,
    create_person,
    free_port,
    fresh_database,
    stack_environment,
)

MIB = 1 << 20
BOUNDARY = "crbench" + uuid.uuid4().hex


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def make_file(folder: Path, size: int) -> Path:
    from tests.samples import make_samples

    head = make_samples(folder / "samples", seconds=2).screen_webm.read_bytes()[:4096]
    path = folder / "upload.webm"
    with open(path, "wb") as handle:
        handle.write(head)
        left = size - len(head)
        while left > 0:
            block = os.urandom(min(left, 8 * MIB))
            handle.write(block)
            left -= len(block)
    return path


class Web:
    def __init__(self, stack: contextlib.ExitStack, folder: Path, store: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        moto = None
        if store == "s3":
            moto = MotoServer(free_port(), folder / "moto.log")
            moto.start()
            stack.callback(moto.stop)
        database_url = stack.enter_context(fresh_database(PG_ADMIN, prefix="cr_bench"))
        prefix = f"bench{uuid.uuid4().hex[:10]}-"
        broker = f"{REDIS_BASE}/{REDIS_DB}"
        redis_lib.Redis.from_url(broker).ping()
        stack.callback(_drop_queues, broker, prefix)
        env = stack_environment(
            folder / "instance",
            database_url=database_url,
            broker_url=broker,
            s3=moto,
            bucket="consent-replay-bench",
            CR_QUEUE_PREFIX=prefix,
            CR_LOG_LEVEL="WARNING",
        )
        from app import create_app
        from app import migrate as migrations
        from app.config import load_settings

        settings = load_settings(env)
        migrations.upgrade(settings.database_url)
        app = create_app(settings)
        self.rt = app.extensions["consent_replay"]
        stack.callback(self.rt.db.dispose)
        self.server = LiveServer(env, folder / "web.log", workers=2, threads=8)
        self.server.start()
        stack.callback(self.server.stop)
        self.url = self.server.url


def _drop_queues(broker: str, prefix: str) -> None:
    connection = redis_lib.Redis.from_url(broker)
    for key in connection.scan_iter(f"*{prefix}*"):
        connection.delete(key)


def multipart(url: str, person, path: Path) -> float:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="screen"; '
        f'filename="{path.name}"\r\nContent-Type: video/webm\r\n\r\n'
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()

    body = _Multipart([head, path, tail])
    started = time.perf_counter()
    response = requests.post(
        f"{url}/api/v1/recordings",
        data=body,
        headers={**person.headers, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        timeout=3600,
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == 201, response.text
    return elapsed


class _Multipart(io.RawIOBase):
    """The multipart body read from the file as it is sent (its length known up front)."""

    def __init__(self, parts: list) -> None:
        self._parts = [io.BytesIO(p) if isinstance(p, bytes) else open(p, "rb") for p in parts]  # noqa: SIM115
        self._length = sum(
            len(p.getvalue()) if isinstance(p, io.BytesIO) else os.fstat(p.fileno()).st_size
            for p in self._parts
        )

    def __len__(self) -> int:
        return self._length

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = MIB if size is None or size < 0 else max(size, 1)
        while self._parts:
            block = self._parts[0].read(size)
            if block:
                return block
            self._parts.pop(0).close()
        return b""


def tus_streamed(url: str, person, path: Path) -> float:
    """tus with the file streamed from disk in one PATCH, by the same HTTP client as the
    multipart request (requests): the server's side of the two, compared like for like."""
    size = path.stat().st_size
    tus_headers = {**person.headers, "Tus-Resumable": "1.0.0"}
    started = time.perf_counter()
    created = requests.post(
        f"{url}/api/v1/uploads", headers={**tus_headers, "Upload-Length": str(size)}, timeout=60
    )
    location = f"{url}{created.headers['Location']}"
    sent = requests.patch(
        location,
        data=_Multipart([path]),
        headers={
            **tus_headers,
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
        },
        timeout=3600,
    )
    assert sent.status_code == 204 and sent.headers["Upload-Offset"] == str(size), sent.text
    response = requests.post(
        f"{url}/api/v1/recordings",
        json={"upload_ids": {"screen": location.rsplit("/", 1)[1]}},
        headers=person.headers,
        timeout=3600,
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == 201, response.text
    assert response.json()["media_sha256"]["screen"] == sha256(path)
    return elapsed


def tus(url: str, person, path: Path, chunk_size: int | None) -> float:
    client = tus_client.TusClient(f"{url}/api/v1/uploads", headers=person.headers)
    started = time.perf_counter()
    kwargs = {"chunk_size": chunk_size} if chunk_size else {}
    uploader = client.uploader(file_path=str(path), metadata={"filename": path.name}, **kwargs)
    uploader.upload()
    response = requests.post(
        f"{url}/api/v1/recordings",
        json={"upload_ids": {"screen": uploader.url.rsplit("/", 1)[1]}},
        headers=person.headers,
        timeout=3600,
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == 201, response.text
    assert response.json()["media_sha256"]["screen"] == sha256(path)
    return elapsed


_hashes: dict[Path, str] = {}


def sha256(path: Path) -> str:
    if path not in _hashes:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while block := handle.read(8 * MIB):
                digest.update(block)
        _hashes[path] = digest.hexdigest()
    return _hashes[path]


def compare(store: str, folder: Path, path: Path, repeat: int) -> dict:
    with contextlib.ExitStack() as stack:
        web = Web(stack, folder / store, store)
        person = create_person(web.rt, "employee")
        times: dict[str, list[float]] = {
            "multipart": [],
            "tus": [],
            "tuspy": [],
            "tuspy 16 MiB": [],
        }
        for run in range(repeat):
            times["multipart"].append(multipart(web.url, person, path))
            times["tus"].append(tus_streamed(web.url, person, path))
            times["tuspy"].append(tus(web.url, person, path, None))
            times["tuspy 16 MiB"].append(tus(web.url, person, path, 16 * MIB))
            log(
                f"{store} run {run + 1}: "
                + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items())
            )
        return {name: min(values) for name, values in times.items()}


# --- the recorder's memory -------------------------------------------------------------------


def recorder_memory(folder: Path, minutes: float) -> list[tuple[float, float, float, float, float]]:
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS

    samples = []
    with contextlib.ExitStack() as stack:
        web = Web(stack, folder / "recorder", "local")
        password = uuid.uuid4().hex  # a throwaway account of this run
        person = create_person(web.rt, "employee", password=password)
        playwright = stack.enter_context(sync_playwright())
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[*CHROMIUM_ARGS, "--enable-precise-memory-info"],
            headless=True,
        )
        stack.callback(browser.close)
        page = browser.new_context(base_url=web.url).new_page()
        page.goto("/login")
        page.fill("input[name=login]", person.login)
        page.fill("input[name=password]", password)
        page.click("main button[type=submit]")
        page.wait_for_url(lambda u: "/login" not in u)
        page.goto("/record")
        page.get_by_role("button", name="Start recording").click()
        root = _browser_root()
        started = time.monotonic()
        while time.monotonic() - started < minutes * 60:
            time.sleep(min(15.0, minutes * 60 / 20))
            heap = page.evaluate("performance.memory.usedJSHeapSize") / MIB
            sent_text = page.inner_text("#sent")
            sent, recorded = _sent(sent_text)
            rss = sum(_rss(p) for p in [root, *root.children(recursive=True)]) / MIB
            samples.append((time.monotonic() - started, recorded, sent, heap, rss))
            log(
                f"{samples[-1][0]:6.0f} s  recorded {recorded:7.1f} MB  sent {sent:7.1f} MB  "
                f"JS heap {heap:6.1f} MiB  browser RSS {rss:7.1f} MiB"
            )
        page.locator("#stop").click()  # its name is "Stop", the ■ is aria-hidden
        page.wait_for_selector("#save-card:not(.hidden)", timeout=60_000)
    return samples


def _browser_root() -> psutil.Process:
    me = psutil.Process()
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "chrom" in child.name() and not any(
                "chrom" in p.name() for p in child.parents() if p.pid != me.pid
            ):
                return child
    raise SystemExit("Chromium's process was not found")


def _rss(process: psutil.Process) -> int:
    try:
        return process.memory_info().rss
    except psutil.Error:
        return 0


def _sent(text: str) -> tuple[float, float]:
    values = []
    for number, unit in re.findall(r"([\d.]+) (KB|MB)", text)[:2]:
        values.append(float(number) / (1024 if unit == "KB" else 1))
    padded = [*values, 0.0, 0.0]
    return padded[0], padded[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--store", choices=["local", "s3", "both", "none"], default="both")
    parser.add_argument("--record-minutes", type=float, default=5.0)
    args = parser.parse_args()
    cpus, load = os.cpu_count(), os.getloadavg()
    log(f"{cpus} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="cr-bench-upload-") as tmp:
        folder = Path(tmp)
        stores = {"both": ["local", "s3"], "none": []}.get(args.store, [args.store])
        if stores:
            path = make_file(folder, args.size_mib * MIB)
            for store in stores:
                results[store] = compare(store, folder, path, args.repeat)
            path.unlink()
        samples = recorder_memory(folder, args.record_minutes) if args.record_minutes else []
    load_after = os.getloadavg()
    print()
    if results:
        print_uploads(args, results, cpus, load[0], load_after[0])
    else:
        print(f"{cpus} CPUs; load average {load[0]:.2f} before, {load_after[0]:.2f} after")
    if samples:
        print_recorder(args.record_minutes, samples)


def print_uploads(args, results: dict, cpus: int | None, before: float, after: float) -> None:
    print(
        f"Uploads of {args.size_mib} MiB, best of {args.repeat}; {cpus} CPUs; load average "
        f"{before:.2f} before, {after:.2f} after"
    )
    names = ["multipart", "tus", "tuspy", "tuspy 16 MiB"]
    print(f"{'store':6} " + " ".join(f"{n:>14}" for n in names) + f" {'tus ÷ multipart':>16}")
    for store, best in results.items():
        rate = {k: args.size_mib / v for k, v in best.items()}
        ratio = rate["tus"] / rate["multipart"]
        print(
            f"{store:6} "
            + " ".join(f"{rate[n]:8.1f} MiB/s" for n in names)
            + f" {ratio:10.2f} {'PASS' if ratio >= 0.9 else 'MISS'} (target >= 0.9)"
        )
    print(
        "tus: one PATCH streamed from disk by requests, as the multipart request is; tuspy: the "
        "tuspy client (it reads each chunk into memory first), whole file, and 16 MiB chunks. "
        "Each includes making the draft (POST /api/v1/recordings)."
    )


def print_recorder(minutes: float, samples: list) -> None:
    first = next((s for s in samples if s[0] >= 60), samples[0])
    last = samples[-1]
    growth = last[3] - first[3]
    print(
        f"Recorder, {minutes:g} min: recorded {last[1]:.1f} MB, sent {last[2]:.1f} MB; "
        f"JS heap {first[3]:.1f} → {last[3]:.1f} MiB ({growth:+.1f}), browser RSS "
        f"{first[4]:.0f} → {last[4]:.0f} MiB; {'PASS' if growth <= 16 else 'MISS'} "
        "(heap within 16 MiB of the first minute's)"
    )


if __name__ == "__main__":
    main()
