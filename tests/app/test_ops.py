"""Operations endpoints (app/api/ops.py): liveness, readiness per part, metrics, JWKS.

Readiness is checked against real outages: a moto S3 server that is stopped and started again
on the same port, and TCP forwarders to the real PostgreSQL and Redis that are closed and
reopened, all while the same app keeps running.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import jwt
import pytest
from celery import _state as celery_state

from app import create_app
from app.config import load_settings
from app.services import audit as audit_service
from crypto import tokens
from tests.conftest import (
    METRICS_TOKEN,
    MotoServer,
    create_person,
    free_port,
    stack_environment,
)
from tests.media_helpers import error_code


class TcpForwarder:
    """Forward a loopback port to another; stop() closes everything, start() reopens it."""

    def __init__(self, target_port: int, port: int | None = None) -> None:
        self.target = ("127.0.0.1", target_port)
        self.port = port or free_port()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._running = False

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.1)
        self._listener, self._running = listener, True
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while self._running:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                self._close(sock)

    def _close(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()
        with self._lock:
            self._sockets.discard(sock)

    def stop(self) -> None:
        self._running = False
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            open_sockets = list(self._sockets)
        for sock in open_sockets:
            self._close(sock)
        time.sleep(0.15)  # let the accept loop notice


def readyz(app) -> tuple[int, dict]:
    response = app.test_client().get("/readyz")
    return response.status_code, response.get_json()


def assert_only_down(app, part: str) -> None:
    status, body = readyz(app)
    assert status == 503, body
    assert body["status"] == "unavailable"
    assert body["checks"][part] != "ok"
    assert {name for name, state in body["checks"].items() if state != "ok"} == {part}
    assert body["error"]["code"] == "not_ready"
    assert part in body["error"]["message"]


def assert_ready(app) -> None:
    status, body = readyz(app)
    assert status == 200, body
    assert body == {"status": "ok", "checks": {"database": "ok", "broker": "ok", "storage": "ok"}}


@contextlib.contextmanager
def app_for(env: dict[str, str]) -> Iterator:
    # create_app() makes its Celery app the process default; give the default back after, so
    # no later test runs a task against this throwaway app's (dead) services.
    previous = celery_state.default_app
    app = create_app(load_settings(env))
    try:
        yield app
    finally:
        app.extensions["consent_replay"].db.dispose()
        celery_state.set_default_app(previous)


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_on_the_real_stack(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["checks"] == {"database": "ok", "broker": "ok", "storage": "ok"}


def test_readyz_follows_the_storage(tmp_path, pg_url, redis_url):
    server = MotoServer(free_port(), tmp_path / "moto.log")
    server.start()
    try:
        env = stack_environment(
            tmp_path / "instance",
            database_url=pg_url,
            broker_url=redis_url,
            s3=server,
            bucket="cr-readyz-storage",
        )
        with app_for(env) as app:
            assert_ready(app)
            server.stop()
            assert_only_down(app, "storage")
            server.start()  # same port, same app
            assert_ready(app)
    finally:
        server.stop()


def pg_url_via(port: int, pg_url: str) -> str:
    parts = urlsplit(pg_url)
    user = parts.username or "postgres"
    return f"postgresql+psycopg://{user}@127.0.0.1:{port}{parts.path}"


def test_readyz_follows_the_database(tmp_path, pg_url, redis_url):
    forwarder = TcpForwarder(urlsplit(pg_url).port or 5432)
    env = stack_environment(
        tmp_path / "instance",
        database_url=pg_url_via(forwarder.port, pg_url),
        broker_url=redis_url,
        s3=None,
    )
    with app_for(env) as app:
        assert_only_down(app, "database")  # nothing listens on the port yet
        forwarder.start()
        try:
            assert_ready(app)
            forwarder.stop()  # the pooled connection dies with it
            assert_only_down(app, "database")
            forwarder.start()
            assert_ready(app)
        finally:
            forwarder.stop()


def test_readyz_follows_the_broker(tmp_path, pg_url, redis_url):
    parts = urlsplit(redis_url)
    forwarder = TcpForwarder(parts.port or 6379)
    env = stack_environment(
        tmp_path / "instance",
        database_url=pg_url,
        broker_url=f"redis://127.0.0.1:{forwarder.port}{parts.path}",
        s3=None,
    )
    with app_for(env) as app:
        assert_only_down(app, "broker")
        forwarder.start()
        try:
            assert_ready(app)
            forwarder.stop()
            assert_only_down(app, "broker")
            forwarder.start()
            assert_ready(app)
        finally:
            forwarder.stop()


def metric_value(body: str, name: str, labels: dict[str, str]) -> float:
    for line in body.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line[len(name) : line.index("}") + 1]))
        if found == labels:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


SCRAPER = {"Authorization": f"Bearer {METRICS_TOKEN}"}


def scrape(client) -> str:
    response = client.get("/metrics", headers=SCRAPER)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return response.get_data(as_text=True)


def test_metrics_are_prometheus_text_and_count_requests(client):
    labels = {"endpoint": "ops.healthz", "method": "GET", "status": "200"}
    before = client.get("/metrics", headers=SCRAPER)
    assert before.status_code == 200
    assert before.mimetype == "text/plain"
    text = before.get_data(as_text=True)
    assert "# TYPE consent_replay_http_requests_total counter" in text
    assert "# TYPE consent_replay_http_request_seconds histogram" in text
    start = metric_value(text, "consent_replay_http_requests_total", labels)
    for _ in range(3):
        client.get("/healthz")
    after = scrape(client)
    assert metric_value(after, "consent_replay_http_requests_total", labels) == start + 3


def test_metrics_answer_only_the_metrics_token(client, rt, stack_env):
    """Finding 4 of issue 12: /metrics answered anyone."""
    admin = create_person(rt, "admin")
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token-of-the-right-length-0000"},
        {"Authorization": f"Bearer {METRICS_TOKEN}x"},
        {"Authorization": f"Basic {METRICS_TOKEN}"},
        admin.headers,  # an API token is not the metrics credential
    ):
        response = client.get("/metrics", headers=headers)
        assert error_code(response, 401) == "metrics_token_required", headers
        assert "consent_replay" not in response.get_data(as_text=True)
    assert client.get("/metrics", headers=SCRAPER).status_code == 200
    # Without CR_METRICS_TOKEN, metrics are off for everyone.
    settings = dataclasses.replace(load_settings(stack_env), metrics_token=None)
    app = create_app(settings)
    try:
        response = app.test_client().get("/metrics", headers=SCRAPER)
        assert error_code(response, 403) == "metrics_disabled"
    finally:
        app.extensions["revocations"].stop()
        app.extensions["consent_replay"].db.dispose()


def _counters(text: str) -> dict[str, float]:
    """Every counter sample, and every histogram's buckets and count, by series."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        series, _, value = line.rpartition(" ")
        if series.split("{")[0].endswith(("_created", "_sum")):
            continue  # a timestamp and a sum of seconds; the buckets and counts are compared
        out[series] = float(value)
    return out


def _delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    # The scrape itself is observed too, and its latency bucket depends on the machine's load,
    # not on what anyone did: the observer's own requests are left out of the comparison.
    return {
        k: v - before.get(k, 0.0)
        for k, v in after.items()
        if k.startswith("consent_replay_")
        and v != before.get(k, 0.0)
        and 'endpoint="ops.metrics"' not in k
    }


def test_metrics_cannot_tell_a_draft_kept_private_from_a_share(client, rt, worker, samples):
    """Uploads minus shares gave drafts made and not shared (finding 4 of issue 12). Two
    employees do different things with the same number of requests: one looks at their draft
    twice (declining to share it), the other shares it and revokes. An observer of
    the counters sees the same deltas."""
    from tests.media_helpers import upload_recording, wait_probed

    coach = create_person(rt, "coach")
    deltas = []
    for shares_it in (False, True):
        owner = create_person(rt, "employee")
        recording = upload_recording(client, owner, {"audio": samples.mono_wav})
        wait_probed(client, owner, recording["id"])
        before = _counters(scrape(client))
        if shares_it:
            created = client.post(
                f"/api/v1/recordings/{recording['id']}/shares",
                json={"coach_ids": [str(coach.id)], "purpose": "metrics", "expires_in_days": 1},
                headers=owner.headers,
            )
            assert created.status_code == 202
            revoked = client.post(
                f"/api/v1/shares/{created.get_json()['id']}/revoke", headers=owner.headers
            )
            assert revoked.status_code == 200
        else:
            for _ in range(2):
                assert client.get(f"/api/v1/recordings/{recording['id']}", headers=owner.headers)
        deltas.append(_delta(before, _counters(scrape(client))))
    declined, shared = deltas
    assert declined == shared, (declined, shared)
    text = scrape(client)
    for word in ("recordings.", "shares.", "media.", "revoke", "upload", "create_share"):
        assert word not in text, word


def test_the_audit_check_is_a_verdict_not_a_live_counter(client, rt):
    """The audit endpoint's event count let an admin watch activity (finding 4 of issue 12)."""
    admin = create_person(rt, "admin")
    first = client.get("/api/v1/oversight/audit-chain", headers=admin.headers)
    assert first.status_code == 200
    employee = create_person(rt, "employee")
    assert client.get("/api/v1/recordings", headers=employee.headers).status_code == 200
    with rt.db.session() as session:
        audit_service.append(session, "test.activity", actor_id=employee.id)
    second = client.get("/api/v1/oversight/audit-chain", headers=admin.headers)
    body = second.get_json()
    assert body["ok"] is True
    assert set(body) == {"ok", "broken_seq", "reason", "checked_at"}
    assert {k: v for k, v in body.items() if k != "checked_at"} == {
        k: v for k, v in first.get_json().items() if k != "checked_at"
    }


def b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def test_jwks_publishes_ed25519_public_keys_that_verify(client, rt):
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    jwks = response.get_json()
    assert jwks["keys"]
    for key in jwks["keys"]:
        assert key["kty"] == "OKP"
        assert key["crv"] == "Ed25519"
        assert key["alg"] == "EdDSA"
        assert len(b64url_decode(key["x"])) == 32
        assert key["kid"]
        assert "d" not in key  # never the private half
    # A token the app signs verifies with nothing but the published set.
    now = int(time.time())
    signed = tokens.sign(rt.keyring, {"sub": "x", "iat": now, "exp": now + 60}, typ="test+jwt")
    kid = jwt.get_unverified_header(signed)["kid"]
    (entry,) = [k for k in jwks["keys"] if k["kid"] == kid]
    claims = jwt.decode(signed, jwt.PyJWK(entry).key, algorithms=["EdDSA"])
    assert claims["sub"] == "x"
    # The private material is nowhere in the answer.
    keyring_text = Path(rt.settings.keyring_path).read_text()
    secrets = re.findall(r'"(?:seed|key)": "([^"]+)"', keyring_text)
    assert secrets
    for secret in secrets:
        assert secret not in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/.well-known/jwks.json"])
def test_ops_endpoints_need_no_credentials(client, path):
    assert client.get(path).status_code == 200


class Blackhole:
    """A loopback port that accepts connections and never answers (a hung server)."""

    def __init__(self) -> None:
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.1)
        self._accepted: list[socket.socket] = []
        self._running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self._running:
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._accepted.append(sock)

    def close(self) -> None:
        self._running = False
        self._listener.close()
        for sock in self._accepted:
            with contextlib.suppress(OSError):
                sock.close()


def test_a_hung_part_does_not_make_the_others_look_down(tmp_path, pg_url, redis_url):
    # A store that accepts connections and never answers ties up its check until the HTTP
    # read timeout. Probes keep coming meanwhile (here: 8 at once); the database and the
    # broker must still be reported as they are, and only storage as not ready.
    hole = Blackhole()
    env = stack_environment(
        tmp_path / "instance",
        database_url=pg_url,
        broker_url=redis_url,
        s3=None,
        CR_STORE="s3",
        CR_S3_ENDPOINT=f"127.0.0.1:{hole.port}",
        CR_S3_ACCESS_KEY="test-access-key",
        CR_S3_SECRET_KEY="test-secret-key-not-a-real-one",
    )
    results: list[tuple[int, dict]] = []
    try:
        with app_for(env) as app:
            probes = [
                threading.Thread(target=lambda: results.append(readyz(app))) for _ in range(8)
            ]
            for probe in probes:
                probe.start()
            for probe in probes:
                probe.join(60)
            assert len(results) == 8
            for status, body in results:
                assert status == 503, body
                assert body["checks"]["database"] == "ok", body
                assert body["checks"]["broker"] == "ok", body
                assert body["checks"]["storage"] != "ok", body
                assert "storage" in body["error"]["message"]
                assert "database" not in body["error"]["message"]
    finally:
        hole.close()  # the hung reads end, and their threads with them
