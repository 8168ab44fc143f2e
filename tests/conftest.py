"""The real stack for the tests: PostgreSQL, Redis, moto's S3 server, a real Celery worker.

PostgreSQL and Redis must be running (``make test`` starts them when they are not); a test
that needs one that is missing fails with a message naming it. Each run gets its own
PostgreSQL database and Redis database number, and its own moto S3 server on a free port.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import redis as redis_lib

from tests.chromium import browser  # noqa: F401 - the one browser of the session

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get("CR_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_BASE = os.environ.get("CR_TEST_REDIS", "redis://127.0.0.1:6379")
REDIS_DB = int(os.environ.get("CR_TEST_REDIS_DB", "11"))
S3_ACCESS, S3_SECRET = "test-access-key", "test-secret-key-not-a-real-one"
METRICS_TOKEN = f"metrics-{uuid.uuid4().hex}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception as exc:
            last_error = exc
        else:
            if value:
                return value
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout:.0f} s waiting for {what}"
        + (f" (last error: {last_error!r})" if last_error else "")
    )


def _require_service(url: str, name: str, hint: str) -> None:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=3).close()
    except OSError:
        pytest.fail(
            f"{name} is not reachable at {parts.hostname}:{parts.port}. {hint}", pytrace=False
        )


# --- services ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server() -> str:
    _require_service(PG_ADMIN, "PostgreSQL", "Start it (make test does) or set CR_TEST_PG.")
    return PG_ADMIN


@contextlib.contextmanager
def fresh_database(admin_url: str, prefix: str = "cr_test") -> Iterator[str]:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(admin_url)
    url = f"postgresql+psycopg://{parts.netloc}/{name}"
    try:
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


SOFTHSM_MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")


@dataclass
class HsmToken:
    module: Path
    label: str
    pin: str
    pin_file: Path


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory) -> Path:
    """A SoftHSM2 token directory of the run's own (SOFTHSM2_CONF points at it)."""
    if not SOFTHSM_MODULE.is_file() or shutil.which("softhsm2-util") is None:
        pytest.fail(
            "SoftHSM2 is missing (the PKCS#11 KEK provider's tests need it): "
            "apt-get install softhsm2 (make test does)",
            pytrace=False,
        )
    folder = tmp_path_factory.mktemp("softhsm")
    (folder / "tokens").mkdir()
    conf = folder / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {folder / 'tokens'}\nobjectstore.backend = file\n"
        "log.level = ERROR\n"
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)  # read by the library when it initialises
    return folder


@pytest.fixture
def hsm_token(softhsm) -> HsmToken:
    """A fresh token (its own label and PIN), visible to this process's PKCS#11 library."""
    import pkcs11

    label, pin = f"cr-{uuid.uuid4().hex[:12]}", uuid.uuid4().hex[:8]
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin,
         "--so-pin", uuid.uuid4().hex[:8]],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    pkcs11.lib(str(SOFTHSM_MODULE)).reinitialize()  # a token made after C_Initialize
    pin_file = softhsm / f"{label}.pin"
    pin_file.write_text(pin + "\n")
    pin_file.chmod(0o600)
    return HsmToken(SOFTHSM_MODULE, label, pin, pin_file)


@pytest.fixture(scope="session")
def pg_url(pg_server) -> Iterator[str]:
    with fresh_database(pg_server) as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> str:
    _require_service(REDIS_BASE, "Redis", "Start it (make test does) or set CR_TEST_REDIS.")
    url = f"{REDIS_BASE}/{REDIS_DB}"
    redis_lib.Redis.from_url(url).ping()
    return url


class MotoServer:
    """moto's standalone S3 server on loopback; can be stopped and started on the same port."""

    def __init__(self, port: int, log_path: Path) -> None:
        self.port = port
        self.endpoint = f"127.0.0.1:{port}"
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        binary = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which(
            "moto_server"
        )
        if binary is None:
            pytest.fail("moto_server is not installed: pip install 'moto[server]'", pytrace=False)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(
            [binary, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(self._answers, 30, f"moto S3 server on port {self.port}")

    def _answers(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[MotoServer]:
    server = MotoServer(free_port(), tmp_path_factory.mktemp("moto") / "moto.log")
    server.start()
    yield server
    server.stop()


# --- the application --------------------------------------------------------------------------


def stack_environment(
    instance: Path,
    *,
    database_url: str,
    broker_url: str,
    s3: MotoServer | None,
    bucket: str = "consent-replay-test",
    **extra: str,
) -> dict[str, str]:
    env = {
        "CR_INSTANCE_DIR": str(instance),
        "CR_DATABASE_URL": database_url,
        "CR_BROKER_URL": broker_url,
        "CR_SCRATCH_DIR": str(instance / "scratch"),
        "CR_LOG_LEVEL": "INFO",
        "CR_PUBLIC_URL": "http://127.0.0.1:8000",
        "CR_STORE": "local",
        # Queues of its own, so concurrent test runs on one Redis never take each other's jobs.
        "CR_QUEUE_PREFIX": f"t{uuid.uuid4().hex[:8]}-",
        "CR_METRICS_TOKEN": METRICS_TOKEN,
    }
    if s3 is not None:
        env.update(
            {
                "CR_STORE": "s3",
                "CR_S3_ENDPOINT": s3.endpoint,
                "CR_S3_ACCESS_KEY": S3_ACCESS,
                "CR_S3_SECRET_KEY": S3_SECRET,
                "CR_S3_BUCKET": bucket,
            }
        )
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def stack_env(tmp_path_factory, pg_url, redis_url, s3_server) -> dict[str, str]:
    instance = tmp_path_factory.mktemp("instance")
    return stack_environment(
        instance,
        database_url=pg_url,
        broker_url=redis_url,
        s3=s3_server,
        CR_JOB_TIME_LIMIT_S="300",
        CR_VISIBILITY_TIMEOUT_S="600",
    )


@contextlib.contextmanager
def app_for(env: dict[str, str]):
    """The app (in testing mode) for an environment, its database migrated to the head."""
    from app import create_app
    from app import migrate as migrations
    from app.config import load_settings

    settings = load_settings(env)
    migrations.upgrade(settings.database_url, settings=settings)
    app = create_app(settings)
    app.config["TESTING"] = True
    try:
        yield app
    finally:
        app.extensions["revocations"].stop()
        app.extensions["consent_replay"].db.dispose()


@pytest.fixture(scope="session")
def stack_app(stack_env):
    with app_for(stack_env) as app:
        yield app


@pytest.fixture(scope="session")
def rt(stack_app):
    return stack_app.extensions["consent_replay"]


class WorkerProcess:
    """A real `celery worker` subprocess with the stack's environment."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        *,
        queues: str | None = None,
        concurrency: int = 2,
        beat: bool = False,
    ) -> None:
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.queues = queues
        self.concurrency = concurrency
        self.beat = beat
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker.entry",
            "worker",
            "--concurrency",
            str(self.concurrency),
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            f"test-{uuid.uuid4().hex[:6]}@%h",
        ]
        if self.queues:
            argv += ["--queues", self.queues]
        if self.beat:
            argv.append("--beat")
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(self._ready, 60, "the Celery worker to be ready")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"the worker exited: {self.log_path.read_text()[-2000:]}")
        return b"ready." in self.log_path.read_bytes()

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None
        with contextlib.suppress(Exception):
            self.log.close()


@pytest.fixture(scope="session")
def worker(stack_env, stack_app, tmp_path_factory) -> Iterator[WorkerProcess]:
    process = WorkerProcess(stack_env, tmp_path_factory.mktemp("worker") / "worker.log")
    process.start()
    yield process
    process.stop()


@pytest.fixture
def client(stack_app):
    return stack_app.test_client()


# --- people -----------------------------------------------------------------------------------


class Person:
    def __init__(self, user_id: uuid.UUID, name: str, role: str, token: str, login: str):
        self.id = user_id
        self.name = name
        self.role = role
        self.token = token
        self.login = login

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def create_person(rt, role: str, name: str | None = None, password: str | None = None) -> Person:
    from app.services import users

    suffix = uuid.uuid4().hex[:8]
    name = name or f"{role.title()} {suffix}"
    login = f"{role[:3]}-{suffix}"
    with rt.db.session() as session:
        user = users.create_user(session, login=login, name=name, role=role, password=password)
        token = users.issue_token(session, user, label="test")
        return Person(user.id, user.name, role, token, login)


@pytest.fixture
def make_person(rt) -> Callable[..., Person]:
    return lambda role, **kw: create_person(rt, role, **kw)


# --- recordings and shares through the API ----------------------------------------------------
# The plain functions are in tests/media_helpers.py (for module-scoped fixtures, and for a
# share the real worker makes ready: make_ready_share); these bind the test's client.


@pytest.fixture
def make_recording(client, samples) -> Callable[..., dict]:
    """``make_recording(person, files=None, **fields)``: a draft uploaded through the API (201),
    by default from the session's small samples (a screen and a stereo call)."""
    from tests.media_helpers import small_files, upload_recording

    def make(person: Person, files: dict[str, Path] | None = None, **fields) -> dict:
        return upload_recording(client, person, files or small_files(samples), **fields)

    return make


@pytest.fixture
def make_share(client) -> Callable[..., dict]:
    """``make_share(owner, recording, coaches, **options)``: the owner's opt-in through the
    API (202) for one coach or a list; options as in media_helpers.opt_in."""
    from tests.media_helpers import opt_in

    def make(owner: Person, recording: dict, coaches: Person | list[Person], **options) -> dict:
        named = coaches if isinstance(coaches, list) else [coaches]
        return opt_in(client, owner, recording["id"], named, **options)

    return make


@pytest.fixture(scope="session")
def samples(tmp_path_factory):
    from tests.samples import make_samples

    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is not installed (make test installs it with apt-get)", pytrace=False)
    return make_samples(tmp_path_factory.mktemp("samples"))


class LiveServer:
    """`consent-replay web` (gunicorn) on a free loopback port, with the stack's environment."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        *,
        workers: int = 2,
        threads: int = 8,
        serve: str = "all",
        nice: int = 0,
    ) -> None:
        self.env = {**os.environ, **env}
        self.nice = nice  # `consent-replay web --nice`: a lower CPU priority for this pool
        self.log_path = log_path
        self.workers = workers
        self.threads = threads
        self.serve = serve  # all routes, or one of the two pools: media, api
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        import requests

        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "consent-replay"),
                "web",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
                "--threads",
                str(self.threads),
                "--serve",
                self.serve,
                "--nice",
                str(self.nice),
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def healthy() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"the web server exited: {self.log_path.read_text()[-2000:]}")
            return requests.get(f"{self.url}/healthz", timeout=2).status_code == 200

        wait_for(healthy, 60, "the web server")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None
        with contextlib.suppress(Exception):
            self.log.close()


@pytest.fixture(scope="session")
def live_server(stack_env, stack_app, worker, tmp_path_factory) -> Iterator[LiveServer]:
    """The web app under gunicorn (2 processes) plus the real worker, for HTTP and browsers."""
    server = LiveServer(stack_env, tmp_path_factory.mktemp("web") / "web.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_server(stack_env, stack_app, tmp_path) -> Iterator[LiveServer]:
    """A web server of the test's own (same database, broker and store as the stack), to kill
    and restart; it drops a client that sends nothing for 5 s."""
    server = LiveServer({**stack_env, "CR_CLIENT_TIMEOUT_S": "5"}, tmp_path / "web.log")
    server.start()
    yield server
    server.stop()


def kill_server(server: LiveServer) -> None:
    """SIGKILL the web server's processes: a crash, not a shutdown."""
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait()
    server.process = None
