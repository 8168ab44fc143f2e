"""The harness of the proof runs (`make proof`): private servers that can be restarted, a
self-contained deployment per module, the media the runs feed it, and a record of how long the
whole run took.

Every server a proof test starts or restarts is its own, on a free loopback port, and is
stopped and deleted when its module ends: the machine's shared PostgreSQL, Redis and RabbitMQ
are only ever used through fresh databases, unique queue prefixes and private instances.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis as redis_lib
import requests
from sqlalchemy import select

from tests.conftest import (
    PG_ADMIN,
    REDIS_BASE,
    REDIS_DB,
    LiveServer,
    MotoServer,
    Person,
    WorkerProcess,
    create_person,
    free_port,
    fresh_database,
    stack_environment,
    wait_for,
)
from tests.proof.record import RESULTS

PG_BIN = Path(os.environ.get("CR_PG_BIN", "/usr/lib/postgresql/15/bin"))
AMQP_URL = os.environ.get("CR_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//")
RUN_META = RESULTS.parent / "run.json"


# --- private servers ------------------------------------------------------------------------


def _as_postgres(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the postgres user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


class PrivatePostgres:
    """A PostgreSQL cluster of its own (initdb in a temporary directory, trust on 127.0.0.1),
    so a test can stop and restart it without touching anyone else's database."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="cr-proof-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        subprocess.run(
            _as_postgres(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(self.data),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )

    def _ctl(self, *args: str, timeout: float = 90) -> None:
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args]),
            check=True,
            capture_output=True,
            timeout=timeout,
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root}"
            " -c max_connections=150 -c fsync=off"
        )
        self._ctl("-l", str(self.log), "-o", options, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """``immediate`` is a crash as far as clients can tell: connections drop, no goodbye."""
        self._ctl("-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.running():
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """redis-server on a free port, without persistence: a restart loses every queued message,
    as a Redis without AOF/RDB does."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.folder / "redis.log", "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_for(
            lambda: redis_lib.Redis.from_url(self.url, socket_timeout=1).ping(),
            30,
            f"private Redis on port {self.port}",
        )

    def stop(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def client(self) -> redis_lib.Redis:
        return redis_lib.Redis.from_url(self.url)

    def close(self) -> None:
        self.stop(signal.SIGTERM)


_RESET = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # SO_LINGER on, 0 s: close sends RST


class TcpGate:
    """A loopback TCP forwarder in front of a server. ``down()`` closes its listening socket
    and cuts every open connection, so clients see exactly what a stopped server gives them
    (connection refused, connections reset); ``up()`` accepts again on the same port.

    It lets a test restart moto's S3 server for real while no client reaches it until the
    objects are back: moto keeps objects in memory (MinIO keeps them on disk), and a client
    that met the restarted but still empty server would see a 404 no real restart gives."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 10
        while True:
            try:
                listener.bind(("127.0.0.1", self.port))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        listener.listen(128)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    server.close()
                    return
                self._sockets |= {client, server}
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)
            with self._lock:
                self._sockets.discard(source)
            with contextlib.suppress(OSError):
                source.close()


# --- a deployment of its own ----------------------------------------------------------------


def wait_status(rt, share_id: str, statuses: Iterable[str], timeout: float) -> dict[str, Any]:
    """Poll the share's row until its status is one of ``statuses``; returns its columns."""
    from app.models import Share

    wanted = set(statuses)

    def reached():
        with rt.db.session() as session:
            row = session.get(Share, uuid.UUID(str(share_id)), populate_existing=True)
            return row.status.value in wanted and share_row(rt, share_id)

    return wait_for(reached, timeout, f"share {share_id} to be {' or '.join(sorted(wanted))}")


def share_row(rt, share_id: str) -> dict[str, Any]:
    from app.models import Share

    with rt.db.session() as session:
        row = session.get(Share, uuid.UUID(str(share_id)), populate_existing=True)
        return {
            "status": row.status.value,
            "progress": row.progress,
            "error": row.error,
            "job_attempts": row.job_attempts,
            "job_lease_until": row.job_lease_until,
            "key_id": row.key_id,
            "ready_at": row.ready_at,
        }


class ProofStack:
    """A whole deployment for one proof module: its own database, S3 server, queue prefix
    (or broker), keyring and scratch directory, real Celery workers and, if asked, gunicorn.

    ``database`` is ``"shared"`` (a fresh database on the machine's PostgreSQL) or
    ``"private"`` (a PostgreSQL cluster of its own, restartable); ``broker`` is
    ``"redis"`` (the machine's Redis, unique prefix), ``"private-redis"`` (a redis-server of
    its own) or ``"amqp"`` (the machine's RabbitMQ, unique prefix). With ``s3_gate`` the
    stack reaches moto through a :class:`TcpGate`, so the S3 server can be restarted."""

    def __init__(
        self,
        folder: Path,
        *,
        name: str,
        database: str = "shared",
        broker: str = "redis",
        s3_gate: bool = False,
        **extra_env: str,
    ) -> None:
        self.folder = folder
        self.name = name
        self._exit = contextlib.ExitStack()
        self.workers: list[WorkerProcess] = []
        self.web: LiveServer | None = None
        try:
            self._build(database, broker, s3_gate, extra_env)
        except BaseException:
            self._exit.close()
            raise

    def _build(self, database: str, broker: str, s3_gate: bool, extra_env: dict) -> None:
        self.pg: PrivatePostgres | None = None
        if database == "private":
            self.pg = PrivatePostgres()
            self._exit.callback(self.pg.close)
            self.pg.start()
            self.database_url = self._exit.enter_context(
                fresh_database(self.pg.admin_url, prefix=f"cr_{self.name}")
            )
        else:
            self.database_url = self._exit.enter_context(
                fresh_database(PG_ADMIN, prefix=f"cr_{self.name}")
            )
        self.prefix = f"proof-{self.name}-{uuid.uuid4().hex[:8]}."
        self.redis: PrivateRedis | None = None
        if broker == "private-redis":
            self.redis = PrivateRedis(self.folder / "redis")
            self._exit.callback(self.redis.close)
            self.redis.start()
            broker_url = self.redis.url
        elif broker == "amqp":
            broker_url = AMQP_URL
            self._exit.callback(self._drop_amqp_queues)
        else:
            broker_url = f"{REDIS_BASE}/{REDIS_DB}"
            redis_lib.Redis.from_url(broker_url).ping()
            self._exit.callback(self._drop_redis_keys, broker_url)
        self.broker_url = broker_url
        self.moto = MotoServer(free_port(), self.folder / "moto.log")
        self.moto.start()
        self._exit.callback(self.moto.stop)
        self.gate: TcpGate | None = None
        s3_endpoint = self.moto
        if s3_gate:
            self.gate = TcpGate(self.moto.port)
            self.gate.up()
            self._exit.callback(self.gate.down)
            s3_endpoint = self.gate  # type: ignore[assignment]
        self.env = stack_environment(
            self.folder / "instance",
            database_url=self.database_url,
            broker_url=broker_url,
            s3=s3_endpoint,  # type: ignore[arg-type]
            bucket=f"proof-{self.name}",
            CR_QUEUE_PREFIX=self.prefix,
            CR_JOB_TIME_LIMIT_S="300",
            CR_VISIBILITY_TIMEOUT_S="600",
            **extra_env,
        )
        from app import create_app
        from app import migrate as migrations
        from app.config import load_settings

        settings = load_settings(self.env)
        migrations.upgrade(settings.database_url, settings=settings)
        self.app = create_app(settings)
        self.app.config["TESTING"] = True
        self.rt = self.app.extensions["consent_replay"]
        self._exit.callback(self.rt.db.dispose)
        self.client = self.app.test_client()
        self.settings = settings
        self.queues = f"{self.prefix}media,{self.prefix}io"

    # -- processes --

    def start_worker(
        self, label: str = "worker", *, beat: bool = False, concurrency: int = 1
    ) -> WorkerProcess:
        worker = WorkerProcess(
            self.env,
            self.folder / f"{label}-{len(self.workers)}.log",
            queues=self.queues,
            concurrency=concurrency,
            beat=beat,
        )
        self.workers.append(worker)
        worker.start()
        return worker

    def start_web(self, *, workers: int = 2, threads: int = 8) -> LiveServer:
        self.web = LiveServer(self.env, self.folder / "web.log", workers=workers, threads=threads)
        self.web.start()
        return self.web

    def logs(self) -> dict[str, bytes]:
        """Every log this stack's processes wrote (web, workers, moto)."""
        return {
            path.name: path.read_bytes()
            for path in sorted(self.folder.glob("*.log"))
            if path.is_file()
        }

    # -- people and media --

    def person(self, role: str, **kwargs) -> Person:
        return create_person(self.rt, role, **kwargs)

    def upload(self, person: Person, files: dict[str, Path], **fields: Any) -> dict:
        data: dict[str, Any] = {
            name: (io.BytesIO(path.read_bytes()), path.name) for name, path in files.items()
        }
        data["title"] = fields.pop("title", "A proof call")
        for key, value in fields.items():
            data[key] = str(value).lower() if isinstance(value, bool) else str(value)
        response = self.client.post(
            "/api/v1/recordings",
            data=data,
            headers=person.headers,
            content_type="multipart/form-data",
        )
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    def opt_in(self, owner: Person, recording_id: str, coaches: list[Person], **extra) -> dict:
        response = self.client.post(
            f"/api/v1/recordings/{recording_id}/shares",
            json={
                "coach_ids": [str(c.id) for c in coaches],
                "purpose": extra.pop("purpose", "Proof run"),
                "expires_in_days": extra.pop("expires_in_days", 7),
                **extra,
            },
            headers=owner.headers,
        )
        assert response.status_code == 202, response.get_json()
        return response.get_json()

    def wait_probed(self, owner: Person, recording_id: str, timeout: float = 120) -> dict:
        def probed():
            body = self.client.get(
                f"/api/v1/recordings/{recording_id}", headers=owner.headers
            ).get_json()
            assert body["probe_status"] != "failed", body
            return body["probe_status"] == "ok" and body

        return wait_for(probed, timeout, f"the probe of recording {recording_id}")

    def share(self, share_id: str) -> dict[str, Any]:
        return share_row(self.rt, share_id)

    def wait(self, share_id: str, statuses=("ready", "failed"), timeout: float = 240) -> dict:
        return wait_status(self.rt, share_id, statuses, timeout)

    def store_names(self, prefix: str = "") -> list[str]:
        return list(self.rt.store.list(prefix))

    def scratch_dirs(self) -> list[Path]:
        root = self.settings.scratch_dir
        return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []

    def materialize(self, share_id: str, parts: dict[str, tuple[bytes, str]]) -> None:
        """Seal each part under the share's own key into the store and mark the share ready,
        exactly as the worker's last steps do (worker.pipeline._store_output, then step 5).
        For load runs that need many ready shares: a transcode each would only cost time."""
        import hashlib

        import crypto
        from app.models import MediaObject, Share, ShareStatus, utcnow
        from app.services import keys

        sid = uuid.UUID(share_id)
        with self.rt.db.session() as session:
            key_id = session.get(Share, sid).key_id
            dek = keys.load_data_key(session, self.rt.kek, self.rt.key_cache, key_id)
        rows = []
        for kind, (plaintext, content_type) in parts.items():
            object_id = uuid.uuid4()
            name = f"shares/{share_id}/{object_id}"
            sealed = b"".join(
                crypto.seal(dek, plaintext, key_id=str(key_id), object_id=str(object_id))
            )
            stored = self.rt.store.put_stream(name, [sealed])
            rows.append(
                MediaObject(
                    id=object_id,
                    share_id=sid,
                    kind=kind,
                    name=name,
                    content_type=content_type,
                    stored_size=stored,
                    plaintext_size=len(plaintext),
                    stored_sha256=hashlib.sha256(sealed).hexdigest(),
                )
            )
        with self.rt.db.session() as session:
            share = session.scalar(select(Share).where(Share.id == sid).with_for_update())
            assert share.status is ShareStatus.PROCESSING, share.status
            session.add_all(rows)
            share.status = ShareStatus.READY
            share.progress = 100
            share.ready_at = utcnow()
            share.duration_s = 4.0
            share.job_lease_until = None

    # -- clean-up --

    def _drop_redis_keys(self, broker_url: str) -> None:
        connection = redis_lib.Redis.from_url(broker_url)
        for key in connection.scan_iter(f"*{self.prefix}*"):
            connection.delete(key)

    def _drop_amqp_queues(self) -> None:
        from kombu import Connection

        with Connection(AMQP_URL, connect_timeout=5) as connection:
            channel = connection.default_channel
            for queue in self.queues.split(","):
                with contextlib.suppress(Exception):
                    channel.queue_delete(queue)

    def close(self) -> None:
        try:
            if self.web is not None:
                self.web.stop()
            for worker in self.workers:
                worker.stop()
        finally:
            self._exit.close()


@contextlib.contextmanager
def proof_stack(tmp_path_factory, name: str, **kwargs) -> Iterator[ProofStack]:
    folder = tmp_path_factory.mktemp(f"proof-{name}")
    stack = ProofStack(folder, name=name, **kwargs)
    try:
        yield stack
    finally:
        stack.close()


# --- processes --------------------------------------------------------------------------------


def ffmpeg_processes(marker: str) -> list[psutil.Process]:
    """Running ffmpeg/ffprobe processes whose command line mentions ``marker``."""
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            name = process.info["name"] or ""
            if name in ("ffmpeg", "ffprobe") and marker in " ".join(process.info["cmdline"] or []):
                found.append(process)
    return found


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# --- media the runs feed the stack -------------------------------------------------------------


def ffmpeg(*args: str, timeout: float = 300) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True, timeout=timeout)


@pytest.fixture(scope="session")
def proof_media(tmp_path_factory) -> dict[str, Path]:
    """Inputs made once per run: ``long`` is 120 s of 720p video with stereo sound in one MP4,
    whose transcode takes well over 10 s on this kind of machine (the faults need a job that
    is still running when they strike); ``noise`` is 4 s of 360p noise (an H.264 MP4 of a
    few MiB that does not compress, for streaming)."""
    folder = tmp_path_factory.mktemp("proof-media")
    long = folder / "long.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=s=1280x720:r=15:d=120",
        "-f", "lavfi", "-i", "sine=f=440:d=120:sample_rate=16000",
        "-f", "lavfi", "-i", "sine=f=1000:d=120:sample_rate=16000",
        "-filter_complex", "[1][2]amerge=inputs=2[a]", "-map", "0:v", "-map", "[a]",
        "-c:v", "libx264", "-preset", "ultrafast", "-crf", "30", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-ac", "2", str(long),
    )  # fmt: skip
    noise = folder / "noise.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=s=640x360:r=15:d=4,noise=alls=60:allf=t+u",
        "-c:v", "libx264", "-preset", "ultrafast", "-crf", "20", "-pix_fmt", "yuv420p",
        "-movflags", "+faststart", str(noise),
    )  # fmt: skip
    return {"long": long, "noise": noise}


# --- how long the whole run took ----------------------------------------------------------------

_outcomes: dict[str, dict[str, Any]] = {}
_started = time.time()


def pytest_runtest_logreport(report) -> None:
    if "proof" not in report.keywords:
        return
    entry = _outcomes.setdefault(report.nodeid, {"outcome": "passed", "seconds": 0.0})
    entry["seconds"] = round(entry["seconds"] + report.duration, 1)
    if getattr(report, "wasxfail", None) is not None and report.when == "call":
        entry["outcome"] = "xfailed (known bug)"
        entry["reason"] = str(report.wasxfail).removeprefix("reason: ").removeprefix("known bug: ")
    elif report.failed:
        entry["outcome"] = "failed" if report.when == "call" else f"error in {report.when}"
        entry["reason"] = str(report.longrepr).strip().splitlines()[-1][:300]
    elif report.skipped and report.when != "teardown":
        entry["outcome"] = "skipped"


def pytest_sessionfinish(session, exitstatus) -> None:
    if not _outcomes:
        return  # no proof test ran (e.g. `make test`, which deselects them)
    RUN_META.parent.mkdir(parents=True, exist_ok=True)
    RUN_META.write_text(
        json.dumps(
            {
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(_started)),
                "seconds": round(time.time() - _started, 1),
                "exit_status": int(exitstatus),
                "cpus": os.cpu_count(),
                "tests": _outcomes,
            },
            indent=1,
        )
    )


def fetch(url: str, **kwargs) -> requests.Response:
    return requests.get(url, timeout=kwargs.pop("timeout", 30), **kwargs)
