"""The embedded default, end to end: `consent-replay up` with nothing but an instance folder.

SQLite, a local object folder, the filesystem broker and a real worker, started by the one
command a newcomer runs; driven over HTTP like a user would, then stopped with SIGINT.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import stat
import subprocess
import threading
import time
from pathlib import Path

import jwt
import psutil
import pytest
import requests

from tests.conftest import ROOT, free_port, wait_for

CLI = str(ROOT / ".venv" / "bin" / "consent-replay")
DEMO_ROLES = {"employee", "coach", "admin", "representative"}
# Magic numbers of the plaintext formats that pass through the store.
PLAINTEXT_MAGIC = (b"ftyp", b"\x1a\x45\xdf\xa3", b"RIFF", b"WAVE", b"\xff\xd8\xff", b"moov")


class Up:
    """`consent-replay up` as a subprocess, its stdout collected line by line."""

    def __init__(self, instance: Path, port: int, log: Path) -> None:
        self.env = {
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", "/tmp"),
            "CR_INSTANCE_DIR": str(instance),
        }
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.lines: list[str] = []
        self.stderr_path = log
        self._stderr = open(log, "wb")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            [CLI, "up", "--port", str(port)],
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def running(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"`up` exited early: {self.stderr()[-3000:]}")
        return f"consent-replay is running at {self.url}/" in self.output()

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [CLI, *args], env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=60
        )

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self._stderr.close()


@pytest.fixture
def up(tmp_path):
    instance = tmp_path / "instance"
    server = Up(instance, free_port(), tmp_path / "up.stderr")
    try:
        yield server
    finally:
        server.close()


def created_user(up: Up, role: str, name: str) -> tuple[str, str]:
    result = up.cli("users", "create", "--role", role, "--name", name)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip().splitlines()[-1]
    user_id = re.search(r"id ([0-9a-f-]{36})", result.stdout).group(1)
    return user_id, token


def sign_in(base: str, login: str, password: str) -> requests.Session:
    web = requests.Session()
    page = web.get(f"{base}/login", timeout=10)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    response = web.post(
        f"{base}/login",
        data={"login": login, "password": password, "csrf_token": token},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302, (login, response.status_code)
    return web


def test_embedded_default_end_to_end(samples, up):
    wait_for(up.running, 120, "`consent-replay up` to print its URL")
    base = up.url
    instance = Path(up.env["CR_INSTANCE_DIR"])

    # Every part is up, and they are the embedded ones.
    ready = requests.get(f"{base}/readyz", timeout=15)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok", "storage": "ok"}
    assert (instance / "consent-replay.db").is_file()

    # The printed demo sign-ins work, one per role at least.
    demo = re.findall(r"^\s+(\w+)\s+login (\S+)\s+password (\S+)$", up.output(), re.M)
    assert {role for role, _, _ in demo} == DEMO_ROLES
    for role, login, password in demo:
        me = sign_in(base, login, password).get(f"{base}/api/v1/me", timeout=10)
        assert me.status_code == 200
        assert me.json()["role"] == role

    # Users made with the CLI, against the same instance.
    employee_id, employee_token = created_user(up, "employee", "Embedded Employee")
    coach_id, coach_token = created_user(up, "coach", "Embedded Coach")
    employee = {"Authorization": f"Bearer {employee_token}"}
    coach = {"Authorization": f"Bearer {coach_token}"}
    assert requests.get(f"{base}/api/v1/me", headers=coach, timeout=10).json()["id"] == coach_id
    me = requests.get(f"{base}/api/v1/me", headers=employee, timeout=10).json()
    assert (me["id"], me["role"]) == (employee_id, "employee")

    with samples.screen_webm.open("rb") as screen, samples.call_wav.open("rb") as audio:
        uploaded = requests.post(
            f"{base}/api/v1/recordings",
            headers=employee,
            files={
                "screen": ("screen.webm", screen, "video/webm"),
                "audio": ("call.wav", audio, "audio/wav"),
            },
            data={"title": "An embedded call", "customer_informed": "true"},
            timeout=60,
        )
    assert uploaded.status_code == 201, uploaded.text
    recording = uploaded.json()
    assert recording["status"] == "draft"

    def probed():
        body = requests.get(
            f"{base}/api/v1/recordings/{recording['id']}", headers=employee, timeout=10
        ).json()
        assert body["probe_status"] != "failed", body
        return body["probe_status"] == "ok"

    wait_for(probed, 60, "the worker to probe the upload")

    shared = requests.post(
        f"{base}/api/v1/recordings/{recording['id']}/shares",
        headers=employee,
        json={"coach_ids": [coach_id], "purpose": "Embedded check", "expires_in_days": 3},
        timeout=30,
    )
    assert shared.status_code == 202, shared.text
    share = shared.json()
    assert share["coach_ids"] == [coach_id]
    # The receipt names the address the app is served at (`up --port`), not a default one.
    claims = jwt.decode(share["receipt"], options={"verify_signature": False})
    assert claims["iss"].startswith(base), claims["iss"]
    assert claims["revocation_url"] == f"{base}/api/v1/shares/{share['id']}/revoke"

    def ready_share():
        body = requests.get(f"{base}/api/v1/shares/{share['id']}", headers=coach, timeout=10)
        body = body.json()
        assert body["status"] not in ("failed", "revoked", "expired"), body
        return body if body["status"] == "ready" else None

    body = wait_for(ready_share, 120, "the share to be ready")
    video = requests.get(
        f"{base}{body['media']['video']}",
        headers={**coach, "Range": "bytes=0-99"},
        timeout=30,
    )
    assert video.status_code == 206, video.text[:500]
    assert video.headers["Content-Type"].startswith("video/mp4")
    assert re.fullmatch(r"bytes 0-99/\d+", video.headers["Content-Range"])
    assert len(video.content) == 100
    assert video.content[4:8] == b"ftyp"  # an MP4 starts with its ftyp box

    # Secrets of the instance are private to its user.
    for secret in ("keyring.json", "secret_key", "demo-logins.json"):
        assert stat.S_IMODE((instance / secret).stat().st_mode) == 0o600, secret

    # The object folder holds ciphertext only.
    objects = [p for p in (instance / "objects").rglob("*") if p.is_file()]
    assert len(objects) >= 3  # at least the two uploads and the rendition
    for path in objects:
        head = path.read_bytes()[:4096]
        for magic in PLAINTEXT_MAGIC:
            assert magic not in head, f"{path} starts like plaintext ({magic!r})"

    # Plaintext lives in scratch only while a job runs.
    scratch = instance / "scratch"
    wait_for(
        lambda: not scratch.exists() or not any(p.is_file() for p in scratch.rglob("*")),
        20,
        "the worker's scratch folder to be emptied",
    )

    # Ctrl-C stops the whole tree cleanly.
    tree = psutil.Process(up.process.pid).children(recursive=True)
    names = " ".join(" ".join(child.cmdline()) for child in tree)
    assert "gunicorn" in names and "celery" in names
    up.process.send_signal(signal.SIGINT)
    started = time.monotonic()
    returncode = up.process.wait(20)
    assert time.monotonic() - started < 20
    assert returncode == 0, up.stderr()[-3000:]
    wait_for(
        lambda: not any(child.is_running() and child.status() != "zombie" for child in tree),
        5,
        "every child of `up` to be gone",
    )
    assert "Traceback" not in up.stderr()


def test_the_embedded_server_keeps_answering_under_slow_clients(up):
    """Issue 12, finding 7: twenty idle half-sent requests stalled `up` (gunicorn's threaded
    worker gives each connection a thread). Fifty slow clients — half that never finish their
    headers, half that never finish a small body, and a few slow uploads — and `/healthz`
    still answers within a second."""
    wait_for(up.running, 120, "`up` to start")
    port = up.port
    slow = []
    try:
        for n in range(50):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            if n % 2:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            elif n % 10 == 0:
                sock.sendall(
                    b"POST /api/v1/recordings HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Type: multipart/form-data; boundary=b\r\n"
                    b"Content-Length: 100000000\r\n\r\n--b\r\n"
                )
            else:
                sock.sendall(
                    b"POST /api/v1/coaches HTTP/1.1\r\nHost: x\r\n"
                    b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"a": '
                )
            slow.append(sock)
        time.sleep(1)
        worst = 0.0
        for _ in range(10):
            started = time.monotonic()
            response = requests.get(f"{up.url}/healthz", timeout=5)
            worst = max(worst, time.monotonic() - started)
            assert response.status_code == 200
            time.sleep(0.1)
        assert worst < 1.0, worst
    finally:
        for sock in slow:
            sock.close()
