"""Resumable uploads (SPEC §16): tus against one multipart request, and the recorder's memory.

Run: .venv/bin/python bench/upload.py [--size-mib 500] [--repeat 2] [--store local|s3|both|none]
                                      [--record-minutes 5] [--control-minutes M]

Self-contained: a fresh PostgreSQL database (CR_TEST_PG or postgresql://postgres@127.0.0.1/test),
Redis with its own queue prefix, moto's S3 server for --store s3, and `consent-replay web`
(gunicorn, 2 processes) per store.

1. The same file (a WebM head and random bytes) uploaded as a draft, interleaved, best of
   --repeat: one multipart ``POST /api/v1/recordings``, against tus — creation, one PATCH
   streamed from disk by the same HTTP client, then ``POST /api/v1/recordings`` with its
   upload id. The ratio is tus throughput over multipart throughput (target >= 0.9). For
   information, the tuspy client too (the whole file in one PATCH, and 16 MiB PATCHes as the
   upload form sends them).
2. The recorder: Chromium (Debian's /usr/bin/chromium with the test suite's flags: fake screen
   and microphone; driven over --remote-debugging-pipe, not Playwright, see below) records on
   /record for --record-minutes while the recording goes to the server as it is made; before
   it, the control (--control-minutes, default as long): the same page, devices and
   MediaRecorder settings, every piece dropped, nothing uploaded. Sampled: the page's JS heap
   (performance.memory), each Chromium process's PSS of anonymous and shared memory, summed by
   process type (browser, renderer, gpu-process, the utilities), and the Blobs the browser
   process holds (chrome://blob-internals); at the first minute and at the end also after a
   forced collection (DevTools' HeapProfiler.collectGarbage), which sets what is still
   referenced apart from garbage waiting for V8's next collection. Kept means: the recorder's
   growth (first minute → end, both after a collection) at most 32 MiB beyond the control's,
   and at most 2 MiB of Blobs left after the last collection (the pieces the server has not
   acknowledged yet). Flat means kept, and also the most seen between collections at most
   32 MiB beyond the control's (both above their first minute's). The JS heap: at the end
   within 16 MiB of the first minute's.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
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
    wait_for,
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
#
# Chromium is driven over --remote-debugging-pipe with three DevTools calls only (open a tab,
# evaluate in it, collect garbage), not through Playwright: Playwright turns on the Network
# domain in every page, and DevTools then keeps every request's body for
# Network.getRequestPostData — here every PATCH's Blob, so the browser process kept the whole
# recording (and the page's renderer its wrappers) however often V8 collected. That, and RSS
# summed over processes that share pages, was the growth first reported.

GROWTH_BOUND = 32.0  # MiB: the recorder's growth beyond the control's
HELD_BOUND = 2.0  # MiB: the blob storage after a forced collection (a few seconds' pieces)

# The control: the same page, devices and MediaRecorder settings as capture.js, every piece
# dropped as it comes (nothing uploaded).
CONTROL = """(async () => {
  const devices = navigator.mediaDevices;
  const video = await devices.getDisplayMedia({ video: { frameRate: 15 }, audio: false });
  const mic = await devices.getUserMedia({
    audio: { echoCancellation: true, noiseSuppression: true },
  });
  const live = document.getElementById("live");
  live.srcObject = video;
  live.classList.remove("hidden");
  live.play().catch(() => {});
  const type = ["video/webm;codecs=vp9,opus", "video/webm;codecs=vp8,opus", "video/webm"]
    .find((t) => MediaRecorder.isTypeSupported(t));
  const tracks = new MediaStream([...video.getTracks(), ...mic.getTracks()]);
  const recorder = new MediaRecorder(tracks, { mimeType: type });
  window.crRecorded = 0;
  recorder.addEventListener("dataavailable", (event) => {
    window.crRecorded += event.data.size;
  });
  recorder.start(1000);
  return type;
})()"""
RECORDED = {
    "control": "[window.crRecorded, 0]",
    "recorder": "document.getElementById('sent').innerText",
}


class Chromium:
    """Debian's Chromium with the test suite's flags, over --remote-debugging-pipe (messages are
    JSON ended by NUL: commands on its fd 3, answers and events on its fd 4)."""

    def __init__(self, folder: Path) -> None:
        from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS

        commands, self._commands = os.pipe()
        self._answers, answers = os.pipe()

        def pipes() -> None:  # in the child, before exec (fds 3 and 4 may be taken there)
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (commands, answers)]
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.process = subprocess.Popen(
            [
                CHROMIUM,
                *CHROMIUM_ARGS,
                "--enable-precise-memory-info",
                "--remote-debugging-pipe",
                f"--user-data-dir={folder}",
                "about:blank",
            ],
            close_fds=False,  # (ours are not inheritable: only 3 and 4 are passed)
            preexec_fn=pipes,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(commands)
        os.close(answers)
        self._next = 0
        self._waiting: dict[int, tuple[threading.Event, list]] = {}
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        pending = b""
        with open(self._answers, "rb", buffering=0) as stream:
            while block := stream.read(1 << 16):
                pending += block
                *messages, pending = pending.split(b"\0")
                for message in messages:
                    answer = json.loads(message)
                    waiter = self._waiting.pop(answer.get("id", -1), None)
                    if waiter:  # (events are not asked for, and left alone)
                        waiter[1].append(answer)
                        waiter[0].set()

    def send(self, method: str, params: dict | None = None, session: str | None = None):
        self._next += 1
        done: tuple[threading.Event, list] = (threading.Event(), [])
        self._waiting[self._next] = done
        message = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        if not done[0].wait(120):
            raise TimeoutError(f"Chromium did not answer {method}")
        answer = done[1][0]
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def open(self, url: str) -> str:
        """A new tab at url; its session for evaluate()."""
        target = self.send("Target.createTarget", {"url": url})["targetId"]
        return self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]

    def evaluate(self, session: str, expression: str, gesture: bool = False):
        result = self.send(
            "Runtime.evaluate",
            {
                "expression": expression,
                "returnByValue": True,
                "awaitPromise": True,
                "userGesture": gesture,  # getDisplayMedia wants a click
            },
            session,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def wait(self, session: str, expression: str, seconds: float = 60) -> None:
        wait_for(lambda: self.evaluate(session, expression), seconds, expression)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.send("Browser.close")
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._commands)


def recorder_memory(folder: Path, minutes: float, control_minutes: float) -> dict:
    """The control first (if any), then the recorder, each in a fresh Chromium."""
    runs = {}
    with contextlib.ExitStack() as stack:
        web = Web(stack, folder / "recorder", "local")
        password = uuid.uuid4().hex  # a throwaway account of this run
        person = create_person(web.rt, "employee", password=password)
        for name, length in (("control", control_minutes), ("recorder", minutes)):
            if length:
                runs[name] = _record(folder / name, web.url, person.login, password, name, length)
    return runs


def _record(folder: Path, url: str, login: str, password: str, name: str, minutes: float) -> dict:
    chromium = Chromium(folder / "profile")
    try:
        page = _sign_in(chromium, url, login, password)
        chromium.evaluate(page, "location.assign('/record')")
        chromium.wait(page, "location.pathname === '/record' && document.readyState === 'complete'")
        root = psutil.Process(chromium.process.pid)
        before = {p.pid for p in root.children(recursive=True)}
        blobs = chromium.open("chrome://blob-internals")
        time.sleep(2)  # its renderer, left out of the figures
        skip = {p.pid for p in root.children(recursive=True)} - before
        if name == "control":
            chromium.evaluate(page, CONTROL, gesture=True)
        else:
            chromium.evaluate(page, "document.getElementById('start').click()", gesture=True)
        run = _sample(chromium, page, blobs, root, skip, name, minutes)
        if name == "recorder":  # the upload ends with everything on the server
            chromium.evaluate(page, "document.getElementById('stop').click()")
            chromium.wait(
                page, "!document.getElementById('save-card').classList.contains('hidden')"
            )
        return run
    finally:
        chromium.close()


def _sign_in(chromium: Chromium, url: str, login: str, password: str) -> str:
    page = chromium.open(f"{url}/login")
    chromium.wait(page, "document.readyState === 'complete' && !!document.forms.length")
    chromium.evaluate(
        page,
        f"document.querySelector('input[name=login]').value = {json.dumps(login)};"
        f"document.querySelector('input[name=password]').value = {json.dumps(password)};"
        "document.querySelector('main button[type=submit]').click()",
    )
    chromium.wait(page, "!location.pathname.startsWith('/login')")
    return page


def _sample(chromium, page, blobs, root, skip: set, name: str, minutes: float) -> dict:
    """Every `step` seconds as the browser runs; at the first minute and at the end also after
    a forced collection (HeapProfiler.collectGarbage: what is still referenced)."""
    step = min(30.0, minutes * 60 / 20)
    first_at = min(60.0, minutes * 30)
    run: dict = {"samples": [], "first": None, "end": None}
    started = time.monotonic()
    count = 0
    while True:
        count += 1
        time.sleep(max(0.0, started + count * step - time.monotonic()))
        elapsed = time.monotonic() - started
        last = elapsed >= minutes * 60 - step / 2
        run["samples"].append(_measure(chromium, page, blobs, root, skip, name, elapsed, False))
        if last or (run["first"] is None and elapsed >= first_at):
            collected = _measure(chromium, page, blobs, root, skip, name, elapsed, True)
            run["first"] = run["first"] or collected
            if last:
                run["end"] = collected
                return run


def _measure(chromium, page, blobs, root, skip, name, elapsed, collect) -> dict:
    if collect:
        chromium.send("HeapProfiler.collectGarbage", session=page)
        time.sleep(2)  # the Blobs' ends in the browser process go after the wrappers
    recorded = chromium.evaluate(page, RECORDED[name])
    if isinstance(recorded, str):
        sent, made = _sent(recorded)
    else:
        made, sent = recorded[0] / MIB, 0.0
    sample = {
        "t": elapsed,
        "recorded": made,
        "sent": sent,
        "heap": chromium.evaluate(page, "performance.memory.usedJSHeapSize") / MIB,
        "memory": _memory(root, skip),
        "blobs": _blob_storage(chromium, blobs),
    }
    log(
        f"{name:8} {elapsed:5.0f} s{' after GC' if collect else '         '}  recorded "
        f"{made:6.1f} MB  sent {sent:6.1f} MB  JS heap {sample['heap']:5.1f} MiB  browser "
        f"{sum(sample['memory'].values()):6.1f} MiB  blob storage {sample['blobs'][0]:4d} blobs "
        f"≤ {sample['blobs'][1]:5.1f} MiB"
    )
    return sample


def _kind(process: psutil.Process) -> str:
    arguments = process.cmdline()
    value = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in arguments if "=" in a}
    kind = value.get("--type", "browser")
    if kind == "utility":
        return value.get("--utility-sub-type", "utility").split(".")[0]
    if kind == "renderer" and "--top-chrome-webui" in arguments:
        return "renderer (WebUI)"
    return kind


def _memory(root: psutil.Process, skip: set) -> dict[str, float]:
    """MiB per process type: PSS of anonymous and shared memory (Pss_Anon + Pss_Shmem). Pages
    of files (Chromium's own code) are left out: they are shared with any other Chromium on
    the machine, so its coming and going moved the summed RSS and PSS by tens of MiB."""
    memory: dict[str, float] = {}
    for process in [root, *root.children(recursive=True)]:
        if process.pid in skip:
            continue
        with contextlib.suppress(psutil.Error, OSError):
            kind = _kind(process)
            fields = {}
            with open(f"/proc/{process.pid}/smaps_rollup") as rollup:
                for line in rollup:
                    key, _, rest = line.partition(":")
                    fields[key] = rest.split()
            used = int(fields["Pss_Anon"][0]) + int(fields["Pss_Shmem"][0])
            memory[kind] = memory.get(kind, 0.0) + used / 1024
    return memory


def _blob_storage(chromium: Chromium, blobs: str) -> tuple[int, float]:
    """How many Blobs the browser process holds, and their bytes (chrome://blob-internals; a
    part shared by several Blobs counts once in each, so the bytes are an upper bound)."""
    chromium.evaluate(blobs, "window.crOld = true; location.reload()")
    chromium.wait(blobs, "!window.crOld && document.readyState === 'complete'")
    text = chromium.evaluate(blobs, "document.body.innerText")
    sizes = re.findall(r"Length: ([\d,]+)", text)
    return text.count("Refcount:"), sum(int(s.replace(",", "")) for s in sizes) / MIB


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
    parser.add_argument(
        "--control-minutes",
        type=float,
        default=None,
        help="the control's length (a bare MediaRecorder, nothing uploaded); 0: none; "
        "default: as long as the recording",
    )
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
        control = args.record_minutes if args.control_minutes is None else args.control_minutes
        runs = recorder_memory(folder, args.record_minutes, control) if args.record_minutes else {}
    load_after = os.getloadavg()
    print()
    if results:
        print_uploads(args, results, cpus, load[0], load_after[0])
    else:
        print(f"{cpus} CPUs; load average {load[0]:.2f} before, {load_after[0]:.2f} after")
    if runs:
        print_recorder(runs)


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


def print_recorder(runs: dict) -> None:
    recorder, control = runs.get("recorder"), runs.get("control")
    names = [n for n in ("control", "recorder") if n in runs]
    minutes = {n: runs[n]["end"]["t"] / 60 for n in names}
    if recorder:
        first, end = recorder["first"], recorder["end"]
        heap = end["heap"] - first["heap"]
        print(
            f"Recorder, {minutes['recorder']:.1f} min: recorded {end['recorded']:.1f} MB, sent "
            f"{end['sent']:.1f} MB; JS heap {first['heap']:.1f} → {end['heap']:.1f} MiB "
            f"({heap:+.1f}); {'PASS' if heap <= 16 else 'MISS'} (heap within 16 MiB of the "
            "first minute's)"
        )
    print(
        "Chromium's memory by process type, MiB: PSS of anonymous and shared memory (file pages "
        "left out), after a forced collection at the first minute → at the end (growth), and the "
        "most seen in between (garbage waits for V8's next collection)"
    )
    kinds = sorted({k for n in names for s in runs[n]["samples"] for k in s["memory"]})
    print(f"{'':18}" + "".join(f"{f'{n}, {minutes[n]:.1f} min':>34}" for n in names))
    for kind in [*kinds, "total"]:
        print(f"{kind:18}" + "".join(f"{_growth(runs[n], kind):>34}" for n in names))
    print(f"{'blob storage':18}" + "".join(f"{_blobs(runs[n]):>34}" for n in names))
    print(
        "(blob storage: Blobs in the browser process after the last collection, and the most "
        "seen in between; a part shared by Blobs counts in each, so the bytes are at most)"
    )
    if recorder and control:
        grew = _total(recorder["end"]) - _total(recorder["first"])
        extra = grew - (_total(control["end"]) - _total(control["first"]))
        peak = _peak(recorder) - _peak(control)
        held = recorder["end"]["blobs"][1]
        kept = extra <= GROWTH_BOUND and held <= HELD_BOUND
        print(
            f"Kept: {'PASS' if kept else 'MISS'} — the recorder's growth beyond the control's "
            f"{extra:+.1f} MiB (bound {GROWTH_BOUND:g}), its blob storage after the last "
            f"collection ≤ {held:.2f} MiB (bound {HELD_BOUND:g}: the pieces not yet acknowledged)"
        )
        print(
            f"Flat: {'PASS' if kept and peak <= GROWTH_BOUND else 'MISS'} — also between "
            f"collections: the recorder's most above its first minute {peak:+.1f} MiB beyond the "
            f"control's (bound {GROWTH_BOUND:g}; the garbage of the upload's requests waits for "
            "V8's next collection)"
        )


def _peak(run: dict) -> float:
    return max(_total(s) for s in run["samples"]) - _total(run["first"])


def _total(sample: dict) -> float:
    return float(sum(sample["memory"].values()))


def _growth(run: dict, kind: str) -> str:
    def value(sample: dict) -> float:
        return _total(sample) if kind == "total" else float(sample["memory"].get(kind, 0.0))

    first, end = value(run["first"]), value(run["end"])
    most = max(value(s) for s in run["samples"])
    return f"{first:6.1f} → {end:6.1f} ({end - first:+5.1f}) ≤ {most:6.1f}"


def _blobs(run: dict) -> str:
    count, size = run["end"]["blobs"]
    most = max(run["samples"], key=lambda s: s["blobs"][1])["blobs"]
    return f"{count} ≤ {size:.1f} MiB; {most[0]:4d} ≤ {most[1]:5.1f} MiB"


if __name__ == "__main__":
    main()
