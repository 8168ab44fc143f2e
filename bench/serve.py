"""Serving media: stream throughput, seek latency, revoke latency under load, web memory.

Run: .venv/bin/python bench/serve.py [--size-mib 512] [--streams 50] [--revokes 40]
     [--pools two|one] [--media-nice 10] [--embedded]

The defaults are the issue's figures: 50 streams; media and the API in two pools
(`consent-replay web --serve media|api`), the media pool at `--nice 10` as README's production
section recommends for a small machine (the table's label says so; `--media-nice 0` measures
without it).

Self-contained: it starts its own moto S3 server, a fresh PostgreSQL database (admin URL
postgresql://postgres@127.0.0.1:5432/test, or CR_TEST_PG), Redis with a unique CR_QUEUE_PREFIX,
a real Celery worker and a live `consent-replay web` (gunicorn, 2 processes).

The worker makes one real share from a small upload (a real transcode). The large share is
then made by sealing a large H.264 MP4 (moving noise, looped with `ffmpeg -c copy` to
>= --size-mib) under a share's key through the app's own functions (the opt-in API, the share's
data key, crypto.seal, ObjectStore.put_stream, a MediaObject row, status ready): transcoding
half a gigabyte of 720p video would take far longer than this run should. The shares that are
revoked and the shares the background streams play are made the same way from the real
share's derivatives.

From one run it prints a table with absolute figures, ratios, targets and PASS/MISS:

1. throughput: the whole rendition through GET /media/shares/{id}/video, against a direct GET
   of its ciphertext from the S3 server (minio SDK get_object, the whole object);
   best of --repeat interleaved runs (target >= 0.7);
2. time to first byte of a 64 KiB Range at 95 % against one at 0 %, median of --samples each,
   interleaved (target <= 1.5);
3. revoke latency, p50 and p99 of --revokes revocations one after another, each the round trip
   of POST /api/v1/shares/{id}/revoke, while --streams threads play other shares
   (sequential 1 MiB ranges at about 1 MiB/s each, as a player buffering ahead does, started
   over one second; their renditions are 360p, ~4 MiB) (target p99 <= 100 ms). What the
   set-up left for the disk to write is written out first (sync and CHECKPOINT): a revoke's
   commits wait for the disk, and otherwise queue behind the set-up's own write-back;
4. peak RSS of the web processes (psutil on gunicorn's workers) while the streams play.

About the S3 server: moto answers every ranged GET by reading the whole object (for objects
over ~5 MiB, from a temporary file) and slicing it, so a ranged GET of a 512 MiB object takes
hundreds of milliseconds whatever the range; MinIO reads only the range. The time to first
byte measured here is that floor (the 95 % / 0 % ratio is what the target is about).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import redis as redis_lib  # noqa: E402
import requests  # noqa: E402

from tests.conftest import (  # noqa: E402  (the test suite's harness: same parts, same way)
    PG_ADMIN,
    REDIS_BASE,
    REDIS_DB,
    LiveServer,
    MotoServer,
    WorkerProcess,
    create_person,
    free_port,
    fresh_database,
    stack_environment,
)
from tests.media_helpers import noise_mp4_args  # noqa: E402

MIB = 1 << 20
KIB64 = 64 * 1024


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True, timeout=900)


def make_noise_mp4(path: Path, seconds: float, size: str = "1280x720") -> None:
    ffmpeg(*noise_mp4_args(seconds, size), "-movflags", "+faststart", str(path))


def make_big_mp4(folder: Path, size: int) -> Path:
    """An H.264 MP4 of at least ``size`` bytes: 8 s of 720p noise, looped by stream copy."""
    clip = folder / "clip.mp4"
    make_noise_mp4(clip, 8)
    loops = -(-size // clip.stat().st_size)
    big = folder / "big.mp4"
    ffmpeg(
        "-stream_loop",
        str(loops - 1),
        "-i",
        str(clip),
        "-c",
        "copy",
        "-movflags",
        "+faststart",
        str(big),
    )
    clip.unlink()
    return big


# --- the stack -------------------------------------------------------------------------------


class Stack:
    def __init__(
        self,
        stack: contextlib.ExitStack,
        folder: Path,
        threads: int,
        pools: str,
        media_nice: int = 0,
    ) -> None:
        self.folder = folder
        moto = MotoServer(free_port(), folder / "moto.log")
        moto.start()
        stack.callback(moto.stop)
        self.moto = moto
        database_url = stack.enter_context(fresh_database(PG_ADMIN, prefix="cr_bench"))
        self.prefix = f"bench{uuid.uuid4().hex[:10]}-"
        broker = f"{REDIS_BASE}/{REDIS_DB}"
        redis_lib.Redis.from_url(broker).ping()
        stack.callback(self._drop_queues, broker)
        self.env = stack_environment(
            folder / "instance",
            database_url=database_url,
            broker_url=broker,
            s3=moto,
            bucket="consent-replay-bench",
            CR_QUEUE_PREFIX=self.prefix,
            CR_LOG_LEVEL="WARNING",
            CR_JOB_TIME_LIMIT_S="600",
            CR_VISIBILITY_TIMEOUT_S="1200",
        )
        from app import create_app
        from app import migrate as migrations
        from app.config import load_settings

        settings = load_settings(self.env)
        migrations.upgrade(settings.database_url)
        self.app = create_app(settings)
        self.rt = self.app.extensions["consent_replay"]
        stack.callback(self.rt.db.dispose)
        self.client = self.app.test_client()
        self.worker = WorkerProcess(
            self.env,
            folder / "worker.log",
            queues=f"{self.prefix}media,{self.prefix}io",
        )
        self.worker.start()
        stack.callback(self.worker.stop)
        if pools == "two":
            # Media and the API apart (`consent-replay web --serve media|api`), one process each.
            self.web = LiveServer(
                self.env,
                folder / "media.log",
                workers=1,
                threads=threads,
                serve="media",
                nice=media_nice,
            )
            self.api = LiveServer(self.env, folder / "api.log", workers=1, threads=8, serve="api")
            servers = [self.web, self.api]
        else:
            self.web = self.api = LiveServer(
                self.env, folder / "web.log", workers=2, threads=threads
            )
            servers = [self.web]
        for server in servers:
            server.start()
            stack.callback(server.stop)
        self.servers = servers

    def _drop_queues(self, broker: str) -> None:
        connection = redis_lib.Redis.from_url(broker)
        for key in connection.scan_iter(f"*{self.prefix}*"):
            connection.delete(key)

    def web_processes(self) -> list[psutil.Process]:
        return [
            child
            for server in self.servers
            for child in psutil.Process(server.process.pid).children()
        ]


class EmbeddedStack:
    """The embedded default as `consent-replay up` runs it (SQLite, a local object folder, the
    filesystem broker; gunicorn's asyncio worker in front of the app, one process, media on a
    thread pool of its own), with its worker as a process of its own so that it can be
    stopped once the template share is made (as in Stack)."""

    def __init__(self, stack: contextlib.ExitStack, folder: Path) -> None:
        from app import create_app
        from app import migrate as migrations
        from app.cli import _gunicorn_argv
        from app.config import load_settings

        self.env = {
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", "/tmp"),
            "CR_INSTANCE_DIR": str(folder / "instance"),
            "CR_LOG_LEVEL": "WARNING",
        }
        settings = load_settings(self.env)
        migrations.upgrade(settings.database_url, settings=settings)
        self.app = create_app(settings)
        self.rt = self.app.extensions["consent_replay"]
        stack.callback(self.rt.db.dispose)
        self.client = self.app.test_client()
        self.worker = WorkerProcess(self.env, folder / "worker.log")
        self.worker.start()
        stack.callback(self.worker.stop)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        log_file = stack.enter_context((folder / "web.log").open("wb"))
        self.process = subprocess.Popen(
            _gunicorn_argv("127.0.0.1", port, 1, 16, slow_clients=True),
            env={**os.environ, **self.env},
            cwd=ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        stack.callback(self._stop)

        def healthy() -> bool:
            try:
                return requests.get(f"{self.url}/healthz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_until(healthy, 120, "the embedded web server")
        self.web = self.api = self

    def _stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, 15)
        self.process.wait(30)

    def web_processes(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children()


# --- making shares ---------------------------------------------------------------------------


def upload(client, person, files: dict[str, Path]) -> dict:
    data = {name: (io.BytesIO(path.read_bytes()), path.name) for name, path in files.items()}
    data["title"] = "Bench call"
    response = client.post(
        "/api/v1/recordings", data=data, headers=person.headers, content_type="multipart/form-data"
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def opt_in(client, owner, recording_id: str, coach) -> str:
    response = client.post(
        f"/api/v1/recordings/{recording_id}/shares",
        json={"coach_ids": [str(coach.id)], "purpose": "Benchmark", "expires_in_days": 7},
        headers=owner.headers,
    )
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def materialize(rt, share_id: str, parts: dict[str, tuple[Callable[[], object], str]]) -> None:
    """Seal each part under the share's key into the store and mark the share ready, as the
    worker's last steps do (worker.pipeline._store_output and step 5)."""
    import crypto
    from app.models import MediaObject, Share, ShareStatus, utcnow
    from app.services import keys

    sid = uuid.UUID(share_id)
    with rt.db.session() as session:
        share = session.get(Share, sid)
        key_id = share.key_id
        dek = keys.load_data_key(session, rt.kek, rt.key_cache, key_id)
    rows = []
    for kind, (open_plaintext, content_type) in parts.items():
        object_id = uuid.uuid4()
        name = f"shares/{share_id}/{object_id}"
        digest = hashlib.sha256()
        counted = {"plain": 0}

        def sealed(plaintext=open_plaintext, oid=object_id, digest=digest, counted=counted):
            source = plaintext()
            try:
                blocks = source if isinstance(source, bytes) else _counting(source, counted)
                if isinstance(source, bytes):
                    counted["plain"] = len(source)
                for block in crypto.seal(dek, blocks, key_id=str(key_id), object_id=str(oid)):
                    digest.update(block)
                    yield block
            finally:
                if hasattr(source, "close"):
                    source.close()

        stored = rt.store.put_stream(name, sealed())
        rows.append(
            MediaObject(
                id=object_id,
                share_id=sid,
                kind=kind,
                name=name,
                content_type=content_type,
                stored_size=stored,
                plaintext_size=counted["plain"],
                stored_sha256=digest.hexdigest(),
            )
        )
    with rt.db.session() as session:
        share = session.get(Share, sid, with_for_update=True)
        assert share.status is ShareStatus.PROCESSING
        session.add_all(rows)
        share.status = ShareStatus.READY
        share.progress = 100
        share.ready_at = utcnow()
        share.duration_s = 1.0
        share.job_lease_until = None


def _counting(handle, counted: dict) -> Iterable[bytes]:
    while True:
        block = handle.read(4 * MIB)
        if not block:
            return
        counted["plain"] += len(block)
        yield block


# --- measurements ----------------------------------------------------------------------------


def stream_media(url: str, headers: dict) -> tuple[int, float]:
    started = time.perf_counter()
    total = 0
    with requests.get(url, headers=headers, stream=True, timeout=600) as response:
        assert response.status_code == 200, response.status_code
        for block in response.iter_content(MIB):
            total += len(block)
    return total, time.perf_counter() - started


def stream_s3(rt, name: str) -> tuple[int, float]:
    started = time.perf_counter()
    total = 0
    response = rt.store.client.get_object(rt.store.bucket, name)
    try:
        while True:
            block = response.read(MIB)
            if not block:
                break
            total += len(block)
    finally:
        response.close()
        response.release_conn()
    return total, time.perf_counter() - started


class CpuMeter:
    """CPU seconds (user + system) spent by groups of processes over a with-block."""

    def __init__(self, groups: dict[str, Callable[[], list[psutil.Process]]]) -> None:
        self._groups = groups
        self.seconds: dict[str, float] = {}

    @staticmethod
    def _total(processes: list[psutil.Process]) -> float:
        total = 0.0
        for process in processes:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    def __enter__(self) -> CpuMeter:
        self._start = {name: self._total(get()) for name, get in self._groups.items()}
        return self

    def __exit__(self, *exc) -> None:
        for name, get in self._groups.items():
            self.seconds[name] = self._total(get()) - self._start[name]


def s3_first_byte(rt, name: str, start: int) -> float:
    """Seconds to the first byte of a direct 64 KiB ranged GET from the S3 server."""
    started = time.perf_counter()
    response = rt.store.client.get_object(rt.store.bucket, name, offset=start, length=KIB64)
    try:
        assert response.read(1)
        elapsed = time.perf_counter() - started
        assert len(response.read()) == KIB64 - 1
    finally:
        response.close()
        response.release_conn()
    return elapsed


def first_byte(url: str, headers: dict, start: int) -> float:
    """Seconds from sending a 64 KiB Range request (new connection) to its first body byte."""
    started = time.perf_counter()
    with requests.get(
        url,
        headers={**headers, "Range": f"bytes={start}-{start + KIB64 - 1}", "Connection": "close"},
        stream=True,
        timeout=120,
    ) as response:
        assert response.status_code == 206, response.status_code
        assert response.raw.read(1)
        elapsed = time.perf_counter() - started
        rest = response.raw.read()
        assert len(rest) == KIB64 - 1
    return elapsed


class Streams:
    """``count`` players, each fetching sequential 1 MiB ranges of a share at ~1 MiB/s."""

    def __init__(self, base: str, shares: list[tuple[str, int]], headers: dict, count: int):
        self.base, self.shares, self.headers, self.count = base, shares, headers, count
        self.stop = threading.Event()
        self.requests = 0
        self.bytes = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._play, args=(n,), daemon=True) for n in range(count)
        ]

    def _play(self, n: int) -> None:
        share_id, size = self.shares[n % len(self.shares)]
        session = requests.Session()
        position = (n * 3 * MIB) % size
        # Players start at different moments, as people do (not all in the same millisecond).
        self.stop.wait(n / self.count)
        while not self.stop.is_set():
            began = time.monotonic()
            last = min(position + MIB, size) - 1
            try:
                response = session.get(
                    f"{self.base}/media/shares/{share_id}/video",
                    headers={**self.headers, "Range": f"bytes={position}-{last}"},
                    timeout=60,
                )
                if response.status_code != 206 or len(response.content) != last + 1 - position:
                    self.errors.append(f"{response.status_code} {len(response.content)}")
            except requests.RequestException as exc:
                self.errors.append(repr(exc))
            with self._lock:
                self.requests += 1
                self.bytes += last + 1 - position
            position = 0 if last + 1 >= size else last + 1
            self.stop.wait(max(0.0, 1.0 - (time.monotonic() - began)))

    def __enter__(self) -> Streams:
        self.started = time.monotonic()
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.ended = time.monotonic()
        for thread in self.threads:
            thread.join(60)


class PeakRss:
    def __init__(self, processes: Callable[[], list[psutil.Process]]) -> None:
        self.processes = processes
        self.peak: dict[int, int] = {}
        self.peak_total = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> dict[int, int]:
        now = {}
        for process in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                now[process.pid] = process.memory_info().rss
        return now

    def _run(self) -> None:
        while not self.stop.is_set():
            now = self.sample()
            for pid, rss in now.items():
                self.peak[pid] = max(self.peak.get(pid, 0), rss)
            self.peak_total = max(self.peak_total, sum(now.values()))
            self.stop.wait(0.05)

    def __enter__(self) -> PeakRss:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(5)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# --- the run ---------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--streams", type=int, default=50, help="the issue's figure: 50")
    parser.add_argument("--revokes", type=int, default=40)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=16, help="gunicorn threads per process")
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="only the revoke figure, on the embedded default (consent-replay up's server)",
    )
    parser.add_argument(
        "--pools",
        choices=["two", "one"],
        default="two",
        help="media and the API in two pools (one process each), or one pool of 2 processes",
    )
    parser.add_argument(
        "--media-nice",
        type=int,
        default=10,
        help="the media pool's `consent-replay web --nice` (two pools; README recommends 10 "
        "on a small machine; 0 to measure without it)",
    )
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        raise SystemExit("ffmpeg is needed")
    began = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="cr-bench-serve-"))
    try:
        with contextlib.ExitStack() as stack:
            return (run_embedded if args.embedded else run)(stack, folder, args, began)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def make_template(s: Stack, owner, coach, folder: Path) -> tuple[dict, dict]:
    """A real share made by the worker from a small upload; its derivatives dress the shares
    that are sealed in directly. The worker is stopped after (see the docstring)."""
    client, coach_headers = s.client, coach.headers
    log("a real share: upload, opt-in, the worker transcodes it")
    samples = folder / "samples"
    samples.mkdir()
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=s=640x360:r=15:d=6", "-c:v", "libvpx", "-deadline",
        "realtime", "-cpu-used", "8", "-b:v", "600k", str(samples / "screen.webm"),
    )  # fmt: skip
    recording = upload(client, owner, {"screen": samples / "screen.webm"})
    template_id = opt_in(client, owner, recording["id"], coach)

    def template_ready():
        body = client.get(f"/api/v1/shares/{template_id}", headers=owner.headers).get_json()
        if body["status"] == "failed":
            raise SystemExit(f"the template share failed: {body['error']}")
        return body["status"] == "ready"

    wait_until(template_ready, 300, "the worker to make the share")
    derivatives = {}
    for kind, path, content_type in (
        ("rendition", "video", "video/mp4"),
        ("poster", "poster.jpg", "image/jpeg"),
        ("thumbnails", "thumbnails.jpg", "image/jpeg"),
        ("waveform", "waveform.json", "application/json"),
    ):
        response = client.get(f"/media/shares/{template_id}/{path}", headers=coach_headers)
        assert response.status_code == 200
        derivatives[kind] = (response.data, content_type)
    # The shares below are made without the worker (see the docstring): stop it, so it does not
    # start transcoding them too. Their jobs stay in this run's own queue and are dropped.
    s.worker.stop()
    return recording, derivatives


def make_playing_shares(
    s, owner, coach, recording: dict, derivatives: dict, folder: Path, revokes: int
) -> tuple[list[tuple[str, int]], list[str]]:
    """Shares for the background streams (4, a 360p clip each) and ``revokes`` to revoke."""
    rt, client = s.rt, s.client
    log("shares for the background streams and for revoking")
    # 2 s of 360p noise: ~4.3 MiB, below the size at which moto spills an object to a file
    # and reads all of it back for every ranged GET (see the docstring).
    clip = folder / "clip360.mp4"
    make_noise_mp4(clip, 2, "640x360")
    clip_bytes = clip.read_bytes()
    stream_shares = []
    for _ in range(4):
        sid = opt_in(client, owner, recording["id"], coach)
        materialize(
            rt,
            sid,
            {
                "rendition": ((lambda: clip_bytes), "video/mp4"),
                **{
                    k: ((lambda v=v: v), t) for k, (v, t) in derivatives.items() if k != "rendition"
                },
            },
        )
        stream_shares.append((sid, len(clip_bytes)))
    revocable = []
    for _ in range(revokes):
        sid = opt_in(client, owner, recording["id"], coach)
        materialize(rt, sid, {k: ((lambda v=v: v), t) for k, (v, t) in derivatives.items()})
        revocable.append(sid)
    return stream_shares, revocable


def measure_revokes(s, owner, coach_headers: dict, stream_shares, revocable, count: int):
    """Revoke one share after another while ``count`` players stream; check every
    certificate and that nothing is left. (latencies, failures, streams, rss, baseline)

    The first share is revoked before the streams start and is not counted: the API pool's
    first revoke pays for its lazy set-up (imports, the store's and the signing key's first
    use), as the media pool's first requests do in the throughput warm-up. It is printed."""
    rt, client = s.rt, s.client
    warm, revocable = revocable[0], revocable[1:]
    started = time.perf_counter()
    response = requests.post(
        f"{s.api.url}/api/v1/shares/{warm}/revoke", headers=owner.headers, timeout=60
    )
    assert response.status_code == 200, response.text
    log(f"warm-up revoke (the API pool's first, not counted): "
        f"{(time.perf_counter() - started) * 1000:.0f} ms")  # fmt: skip
    log(f"revoke latency: {len(revocable)} revokes one after another while {count} stream")
    settle_disk(rt)
    baseline = PeakRss(s.web_processes).sample()
    latencies: list[float] = []
    steps: list[dict[str, float]] = []
    failures = []
    with (
        PeakRss(s.web_processes) as rss,
        Streams(s.web.url, stream_shares, coach_headers, count) as streams,
    ):
        time.sleep(3)  # let the players get going
        for sid in revocable:
            started = time.perf_counter()
            response = requests.post(
                f"{s.api.url}/api/v1/shares/{sid}/revoke", headers=owner.headers, timeout=60
            )
            latencies.append(time.perf_counter() - started)
            steps.append(server_timing(response.headers.get("Server-Timing", "")))
            body = response.json()
            if response.status_code != 200 or not body.get("certificate"):
                failures.append(f"{response.status_code} {body}")
            time.sleep(0.05)
        time.sleep(1)
    print_steps(latencies, steps)
    import crypto

    jwks = requests.get(f"{s.api.url}/.well-known/jwks.json", timeout=10).json()
    for sid in revocable:
        share = client.get(f"/api/v1/shares/{sid}", headers=owner.headers).get_json()
        claims = crypto.verify(
            share["certificate"],
            jwks,
            typ=crypto.CERTIFICATE_TYP,
            required=crypto.CERTIFICATE_CLAIMS,
        )
        if not claims["absence_check"]["all_absent"]:
            failures.append(f"{sid}: objects not verified absent")
        if list(rt.store.list(f"shares/{sid}/")):
            failures.append(f"{sid}: objects left")
    if failures or streams.errors:
        print("FAILURES:", failures[:5], streams.errors[:5])
    return latencies, failures, streams, rss, baseline


def settle_disk(rt) -> None:
    """Write out what the set-up left dirty (the rendition sealed into the store, the new
    database) before the revokes are timed: a revoke's commit waits for its WAL to reach the
    disk, and on this machine's one disk that flush otherwise queues behind the write-back of
    the benchmark's own half gigabyte (seen as 150-300 ms outliers in one step or another)."""
    from sqlalchemy import text

    started = time.perf_counter()
    os.sync()
    if rt.db.engine.dialect.name == "postgresql":
        with rt.db.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("CHECKPOINT"))
    os.sync()
    log(f"the set-up's writes flushed to disk before timing: {time.perf_counter() - started:.1f} s")


def server_timing(header: str) -> dict[str, float]:
    """The steps of a Server-Timing header (``name;dur=ms, ...``), in seconds."""
    steps = {}
    for part in header.split(","):
        name, _, rest = part.strip().partition(";dur=")
        if name and rest:
            steps[name] = float(rest) / 1000
    return steps


def print_steps(latencies: list[float], steps: list[dict[str, float]]) -> None:
    """Where the revokes' time went, from the API's Server-Timing (PostgreSQL only): each
    step's p50 / p99, and what the client waited beyond the steps (request handling,
    authentication, scheduling on a busy machine)."""
    names = list(dict.fromkeys(name for entry in steps for name in entry))
    if not names:
        return
    outside = [total - sum(entry.values()) for total, entry in zip(latencies, steps, strict=True)]
    columns = [(name, [entry.get(name, 0.0) for entry in steps]) for name in names]
    print("revoke steps in the handler, p50 / p99 ms: " + ", ".join(
        f"{name} {percentile(values, 0.5) * 1000:.0f} / {percentile(values, 0.99) * 1000:.0f}"
        for name, values in [*columns, ("outside the steps", outside)]
    ))  # fmt: skip


def run_embedded(stack: contextlib.ExitStack, folder: Path, args, began: float) -> int:
    """Only the revoke figure, on the embedded default (target p99 <= 250 ms)."""
    log("starting the embedded default: SQLite, local objects, its worker and web server")
    s = EmbeddedStack(stack, folder)
    owner, coach = create_person(s.rt, "employee"), create_person(s.rt, "coach")
    recording, derivatives = make_template(s, owner, coach, folder)
    stream_shares, revocable = make_playing_shares(
        s, owner, coach, recording, derivatives, folder, args.revokes + 1
    )
    latencies, failures, streams, rss, _ = measure_revokes(
        s, owner, coach.headers, stream_shares, revocable, args.streams
    )
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    print()
    print("embedded default: one gunicorn asyncio process, media 12 threads + API 8, SQLite")
    print(f"revoke p50 ({len(latencies)} revokes, {args.streams} streams): {p50 * 1000:.1f} ms")
    print(
        f"revoke p99: {p99 * 1000:.1f} ms (target <= 250 ms: {'PASS' if p99 <= 0.25 else 'MISS'})"
    )
    print(f"revoke max: {max(latencies) * 1000:.1f} ms")
    print(f"background streams served: {streams.requests} x 1 MiB; web RSS peak "
          f"{rss.peak_total / MIB:.1f} MiB")  # fmt: skip
    print(f"revoke latencies (ms): {' '.join(f'{x * 1000:.0f}' for x in latencies)}")
    print(
        f"{os.cpu_count()} CPUs; total run time {time.monotonic() - began:.0f} s; "
        f"load average {os.getloadavg()}"
    )
    return 1 if failures or streams.errors else 0


def run(stack: contextlib.ExitStack, folder: Path, args, began: float) -> int:
    from app.models import MediaObject

    log("starting moto S3, PostgreSQL database, worker and web server")
    s = Stack(stack, folder, args.threads, args.pools, args.media_nice)
    rt, client = s.rt, s.client
    owner, coach = create_person(rt, "employee"), create_person(rt, "coach")
    coach_headers = coach.headers

    recording, derivatives = make_template(s, owner, coach, folder)

    log(f"an H.264 MP4 of >= {args.size_mib} MiB, sealed into the store as a share's rendition")
    big_path = make_big_mp4(folder, args.size_mib * MIB)
    big_id = opt_in(client, owner, recording["id"], coach)
    materialize(
        rt,
        big_id,
        {
            "rendition": (lambda: big_path.open("rb"), "video/mp4"),
            **{k: ((lambda v=v: v), t) for k, (v, t) in derivatives.items() if k != "rendition"},
        },
    )
    with rt.db.session() as session:
        big = (
            session.query(MediaObject).filter_by(share_id=uuid.UUID(big_id), kind="rendition").one()
        )
        big_name, big_plain, big_stored = big.name, big.plaintext_size, big.stored_size
    big_path.unlink()
    log(f"rendition: {big_plain / MIB:.0f} MiB plaintext, {big_stored / MIB:.0f} MiB stored")

    stream_shares, revocable = make_playing_shares(
        s, owner, coach, recording, derivatives, folder, args.revokes + 1
    )

    base = s.web.url
    video = f"{base}/media/shares/{big_id}/video"
    # Warm both web processes (imports, key cache, connection pools) before measuring.
    for _ in range(6):
        first_byte(video, coach_headers, 0)

    log(f"throughput: media endpoint vs a direct S3 GET, best of {args.repeat}")
    media_times, s3_times = [], []
    me = psutil.Process()
    groups = {
        "web": s.web_processes,
        "s3": lambda: [psutil.Process(s.moto.process.pid)],
        "client": lambda: [me],
    }
    media_cpu, s3_cpu = [], []
    for _ in range(args.repeat):
        with CpuMeter(groups) as cpu:
            served, seconds = stream_media(video, coach_headers)
        assert served == big_plain, (served, big_plain)
        media_times.append(seconds)
        media_cpu.append(cpu.seconds)
        with CpuMeter(groups) as cpu:
            fetched, seconds = stream_s3(rt, big_name)
        assert fetched == big_stored
        s3_times.append(seconds)
        s3_cpu.append(cpu.seconds)
    media_rate = big_plain / min(media_times)
    s3_rate = big_stored / min(s3_times)

    log(f"time to first byte of 64 KiB at 95 % and at 0 %, median of {args.samples}")
    far = int(big_plain * 0.95)
    ttfb_far, ttfb_near = [], []
    for _ in range(args.samples):
        ttfb_near.append(first_byte(video, coach_headers, 0))
        ttfb_far.append(first_byte(video, coach_headers, far))
    near, far_median = statistics.median(ttfb_near), statistics.median(ttfb_far)
    s3_near = statistics.median(s3_first_byte(rt, big_name, 0) for _ in range(args.samples))

    latencies, failures, streams, rss, baseline = measure_revokes(
        s, owner, coach_headers, stream_shares, revocable, args.streams
    )
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    pools_label = (
        f"media 1 process x {args.threads} threads at nice {args.media_nice}, API 1 x 8, apart"
        if args.pools == "two"
        else f"one pool, 2 processes x {args.threads} threads"
    )
    stream_rate = streams.bytes / MIB / max(1e-9, streams.ended - streams.started)
    ratio, ttfb_ratio = media_rate / s3_rate, far_median / near
    rows: list[tuple[str, str, str, bool | None]] = [
        ("stream whole rendition (media endpoint)", f"{media_rate / MIB:.1f} MiB/s", "", None),
        ("direct GET of the ciphertext (minio SDK)", f"{s3_rate / MIB:.1f} MiB/s", "", None),
        ("  throughput ratio", f"{ratio:.2f}", ">= 0.7", ratio >= 0.7),
        ("TTFB 64 KiB at 0 % (median)", f"{near * 1000:.1f} ms", "", None),
        ("TTFB 64 KiB at 95 % (median)", f"{far_median * 1000:.1f} ms", "", None),
        ("  TTFB ratio 95 % / 0 %", f"{ttfb_ratio:.2f}", "<= 1.5", ttfb_ratio <= 1.5),
        ("  (direct S3 ranged GET of 64 KiB at 0 %)", f"{s3_near * 1000:.1f} ms", "", None),
        (f"revoke p50 ({len(latencies)} revokes, {args.streams} streams)",
         f"{p50 * 1000:.1f} ms", "", None),
        (f"revoke p99 ({pools_label})", f"{p99 * 1000:.1f} ms", "<= 100 ms", p99 <= 0.1),
        ("revoke max", f"{max(latencies) * 1000:.1f} ms", "", None),
        ("web RSS before the streams (sum of 2)", f"{sum(baseline.values()) / MIB:.1f} MiB", "",
         None),
        ("web RSS peak with the streams (sum of 2)", f"{rss.peak_total / MIB:.1f} MiB", "", None),
        ("  peak per process",
         " / ".join(f"{v / MIB:.0f}" for v in rss.peak.values()) + " MiB", "", None),
        ("background streams served",
         f"{streams.requests} x 1 MiB, {stream_rate:.1f} MiB/s", "", None),
    ]  # fmt: skip
    print()
    print(
        f"rendition {big_plain / MIB:.0f} MiB (sealed in through the app's functions, not "
        f"transcoded); web: {pools_label}; "
        f"{os.cpu_count()} CPUs; moto S3 server"
    )
    print(f"{'measure':48} {'value':>28} {'target':>10}  result")
    print("-" * 98)
    for name, value, target, ok in rows:
        verdict = "" if ok is None else ("PASS" if ok else "MISS")
        print(f"{name:48} {value:>28} {target:>10}  {verdict}")
    print(f"\nrevoke latencies (ms): {' '.join(f'{x * 1000:.0f}' for x in latencies)}")
    print(f"media stream runs (s): {' '.join(f'{x:.2f}' for x in media_times)}; "
          f"S3 runs (s): {' '.join(f'{x:.2f}' for x in s3_times)}")  # fmt: skip
    gib = big_plain / (1 << 30)
    for label, runs in (("media endpoint", media_cpu), ("direct S3 GET", s3_cpu)):
        best = min(runs, key=lambda run: sum(run.values()))
        print(
            f"CPU s per GiB, {label}: "
            + ", ".join(f"{name} {value / gib:.2f}" for name, value in best.items())
            + f" (sum {sum(best.values()) / gib:.2f}; {os.cpu_count()} CPUs shared by all three)"
        )
    print(f"TTFB 0 % (ms): {' '.join(f'{x * 1000:.0f}' for x in sorted(ttfb_near))}")
    print(f"TTFB 95 % (ms): {' '.join(f'{x * 1000:.0f}' for x in sorted(ttfb_far))}")
    print(f"total run time {time.monotonic() - began:.0f} s; load average {os.getloadavg()}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
