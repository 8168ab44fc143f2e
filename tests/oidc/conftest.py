"""A real OpenID Provider for the sign-in tests (SPEC §15): npm's oidc-provider on Node.js.

The provider (``provider.mjs``) runs on a loopback port behind a small pass-through proxy of
this process, which is its public address (the issuer). The proxy changes nothing unless a
test asks it to — as a network attacker, or a broken provider, would: rewrite the token
response's ID token, drop the PKCE verifier from the token request, count JWKS fetches. The
test holds the provider's signing keys, so it can also sign tokens the provider never made.

The app runs under gunicorn (one process, so its caches are the ones the tests observe), with
``CR_PUBLIC_URL`` its own address: the provider sends browsers and back-channel logouts there.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.conftest import LiveServer, free_port, wait_for

HERE = Path(__file__).resolve().parent
CLIENT_ID, CLIENT_SECRET = "consent-replay", "a-client-secret-for-the-tests-only"
NOPW_CLIENT_ID = "consent-replay-nopw"
ROLE_MAP = "employee=cc-agents,coach=cc-coaches,admin=cr-admins,representative=union"
PROVIDER_NAME = "Example Corp Entra"


def new_key(kid: str | None = None) -> RSAKey:
    return RSAKey.generate_key(2048, {"kid": kid or uuid.uuid4().hex[:12], "use": "sig"})


def sign(claims: dict[str, Any], key: RSAKey, **header: Any) -> str:
    return jwt.encode({"alg": "RS256", "kid": key.kid, **header}, claims, key)


def unverified_claims(token: str) -> dict[str, Any]:
    import base64

    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


# --- Node and the provider's package ----------------------------------------------------------


def _ensure_node_project() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "Node.js 20 or newer is needed for the sign-in tests (a real OpenID Provider): "
            "apt-get install nodejs npm",
            pytrace=False,
        )
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout
    if int(version.strip().lstrip("v").split(".")[0]) < 20:
        pytest.fail(f"Node.js 20 or newer is needed, found {version.strip()}", pytrace=False)
    installed = HERE / "node_modules" / ".package-lock.json"
    lock = HERE / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail(
                "npm is needed to install oidc-provider: apt-get install npm", pytrace=False
            )
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE, check=True
        )
    return node


# --- the proxy --------------------------------------------------------------------------------


class Proxy(ThreadingHTTPServer):
    """Forwards everything to the provider; hooks rewrite what a test names."""

    daemon_threads = True

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), _ProxyHandler)
        self.upstream_port = 0
        self.hits: list[str] = []
        self.reset()

    def reset(self) -> None:
        # on_token(payload) -> payload: the token endpoint's JSON answer
        self.on_token: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        # on_token_request(form) -> form: what the app sends to the token endpoint
        self.on_token_request: Callable[[dict[str, str]], dict[str, str]] | None = None
        # Paths answered by a closed connection, as a provider that is down ("*": every path).
        self.down: set[str] = set()


class _ProxyHandler(BaseHTTPRequestHandler):
    server: Proxy
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _forward(self) -> None:
        path = urlsplit(self.path).path
        if path in self.server.down or "*" in self.server.down:
            self.close_connection = True
            self.connection.close()
            return
        self.server.hits.append(f"{self.command} {path}")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if path == "/token" and self.server.on_token_request:
            form = self.server.on_token_request(dict(parse_qsl(body.decode())))
            body = urlencode(form).encode()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
        headers["Content-Length"] = str(len(body))
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=30)
        try:
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            answer = upstream.getresponse()
        except OSError:  # the provider is (re)starting
            self.send_error(502)
            return
        payload = answer.read()
        if path == "/token" and answer.status == 200 and self.server.on_token:
            payload = json.dumps(self.server.on_token(json.loads(payload))).encode()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in _HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        upstream.close()

    do_GET = do_POST = do_HEAD = _forward


_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "accept-encoding"}


class TestProvider:
    """oidc-provider on a loopback port, reached through :class:`Proxy` (the issuer's address)."""

    def __init__(self, node: str, workdir: Path) -> None:
        self.node = node
        self.workdir = workdir
        self.proxy = Proxy(free_port())
        self.issuer = f"http://127.0.0.1:{self.proxy.server_address[1]}"
        self.accounts_file = workdir / "accounts.json"
        self.accounts_file.write_text("{}")
        self.keys = [new_key()]
        self.clients: list[dict[str, Any]] = []
        self.process: subprocess.Popen | None = None
        threading.Thread(target=self.proxy.serve_forever, daemon=True).start()

    @property
    def key(self) -> RSAKey:
        return self.keys[0]  # the provider signs with the first

    def add_client(self, client_id: str, app_url: str) -> None:
        self.clients.append(
            {
                "client_id": client_id,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [f"{app_url}/auth/oidc/callback"],
                "post_logout_redirect_uris": [f"{app_url}/"],
                "backchannel_logout_uri": f"{app_url}/auth/oidc/backchannel-logout",
                "backchannel_logout_session_required": True,
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "client_secret_basic",
            }
        )

    def set_account(self, sub: str, groups: Any, **claims: Any) -> None:
        accounts = json.loads(self.accounts_file.read_text())
        accounts[sub] = {
            "name": claims.pop("name", f"Person {sub}"),
            "email": claims.pop("email", f"{sub}@example.org"),
            "email_verified": True,
            "preferred_username": sub,
            "groups": groups,
            **claims,
        }
        self.accounts_file.write_text(json.dumps(accounts))

    def start(self) -> None:
        port = free_port()
        config = {
            "issuer": self.issuer,
            "port": port,
            "jwks": {"keys": [k.as_dict(private=True) for k in self.keys]},
            "clients": self.clients,
            "accountsFile": str(self.accounts_file),
        }
        config_path = self.workdir / "provider.json"
        config_path.write_text(json.dumps(config))
        self.log = open(self.workdir / "provider.log", "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [self.node, str(HERE / "provider.mjs"), str(config_path)],
            cwd=HERE,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.proxy.upstream_port = port

        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"the provider exited: {self.log_text()[-2000:]}")
            discovery = f"{self.issuer}/.well-known/openid-configuration"
            return requests.get(discovery, timeout=2).status_code == 200

        wait_for(ready, 30, "oidc-provider")

    def log_text(self) -> str:
        return (self.workdir / "provider.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        self.log.close()

    def rotate_keys(self) -> RSAKey:
        """A new signing key (and the old one dropped), as a provider rotates: restarts it."""
        self.keys = [new_key()]
        self.stop()
        self.start()
        return self.key


@pytest.fixture(scope="session")
def provider(tmp_path_factory) -> Iterator[TestProvider]:
    node = _ensure_node_project()
    test_provider = TestProvider(node, tmp_path_factory.mktemp("oidc-provider"))
    yield test_provider
    test_provider.stop()
    test_provider.proxy.shutdown()


def oidc_env(provider: TestProvider, client_id: str, **extra: str) -> dict[str, str]:
    return {
        "CR_OIDC_ISSUER": provider.issuer,
        "CR_OIDC_CLIENT_ID": client_id,
        "CR_OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "CR_OIDC_ROLE_MAP": ROLE_MAP,
        "CR_OIDC_NAME": PROVIDER_NAME,
        **extra,
    }


@pytest.fixture(scope="session")
def oidc_servers(
    provider, stack_env, stack_app, tmp_path_factory
) -> Iterator[dict[str, LiveServer]]:
    """Two web servers on the stack's database: passwords allowed ("main") and off ("nopw")."""
    logs = tmp_path_factory.mktemp("oidc-web")
    servers = {
        "main": LiveServer(
            {**stack_env, **oidc_env(provider, CLIENT_ID)}, logs / "main.log", workers=1, threads=4
        ),
        "nopw": LiveServer(
            {**stack_env, **oidc_env(provider, NOPW_CLIENT_ID, CR_PASSWORD_LOGIN="false")},
            logs / "nopw.log",
            workers=1,
            threads=4,
        ),
    }
    provider.add_client(CLIENT_ID, servers["main"].url)
    provider.add_client(NOPW_CLIENT_ID, servers["nopw"].url)
    provider.start()
    for server in servers.values():
        server.env["CR_PUBLIC_URL"] = server.url
        server.start()
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def app_server(oidc_servers, provider) -> Iterator[LiveServer]:
    provider.proxy.reset()
    yield oidc_servers["main"]
    provider.proxy.reset()


@pytest.fixture
def person(provider) -> Callable[..., str]:
    """``person(groups, **claims)``: a new account at the provider; returns its sub."""

    def make(groups: Any, **claims: Any) -> str:
        sub = f"p{uuid.uuid4().hex[:10]}"
        provider.set_account(sub, groups, **claims)
        return sub

    return make


# --- signing in with a plain HTTP client ------------------------------------------------------

_FORM_ACTION = re.compile(r'<form[^>]*action="([^"]+)"')


def submit_provider_form(http: requests.Session, page: requests.Response, **fields: str):
    """Fill the provider's login or consent form (its own pages) and send it."""
    action = _FORM_ACTION.search(page.text)
    assert action, f"no form on the provider's page: {page.text[:500]}"
    return http.post(urljoin(page.url, action.group(1)), data=fields, timeout=30)


def provider_sign_in(http: requests.Session, start: requests.Response, login: str):
    """From the provider's login page to wherever the app sends the browser at the end."""
    page = start
    for _ in range(3):
        if "/interaction/" not in page.url:
            return page
        prompt = "login" if 'name="login"' in page.text else "consent"
        fields = {"prompt": prompt}
        if prompt == "login":
            fields.update(login=login, password="anything")
        page = submit_provider_form(http, page, **fields)
    return page


def http_sign_in(app_url: str, login: str, http: requests.Session | None = None):
    """The whole code flow with a plain HTTP client: returns (session, final response)."""
    http = http or requests.Session()
    start = http.get(f"{app_url}/auth/oidc/login", timeout=30)
    return http, provider_sign_in(http, start, login)
