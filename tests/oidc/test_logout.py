"""Sign-out with the identity provider (SPEC §15): RP-initiated logout through the real
provider, and Back-Channel Logout 1.0 — a valid logout token ends every session of its user, a
bad one is refused with 400 and ends nothing."""

from __future__ import annotations

import re
import time
import uuid
from html import unescape
from urllib.parse import parse_qsl, urljoin, urlsplit

import pytest
import requests

from tests.conftest import wait_for
from tests.oidc.conftest import (
    CLIENT_ID,
    http_sign_in,
    new_key,
    provider_sign_in,
    sign,
    unverified_claims,
)

EVENT = "http://schemas.openid.net/event/backchannel-logout"


def signed_in(http: requests.Session, app_url: str) -> bool:
    return http.get(f"{app_url}/api/v1/me", timeout=10).status_code == 200


def logout_claims(provider, sub: str | None, **changes) -> dict:
    now = int(time.time())
    claims = {
        "iss": provider.issuer,
        "aud": CLIENT_ID,
        "iat": now,
        "exp": now + 120,
        "jti": uuid.uuid4().hex,
        "events": {EVENT: {}},
    }
    if sub is not None:
        claims["sub"] = sub
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def post_logout(app_url: str, token: str) -> requests.Response:
    return requests.post(
        f"{app_url}/auth/oidc/backchannel-logout", data={"logout_token": token}, timeout=10
    )


def two_sessions(app_url: str, sub: str) -> list[requests.Session]:
    return [http_sign_in(app_url, sub)[0] for _ in range(2)]


def test_a_valid_logout_token_ends_every_session_of_that_user_only(app_server, provider, person):
    alice, bob = person(["cc-agents"]), person(["cc-agents"])
    alice_sessions = two_sessions(app_server.url, alice)
    bob_session, _ = http_sign_in(app_server.url, bob)
    assert all(signed_in(s, app_server.url) for s in [*alice_sessions, bob_session])
    answer = post_logout(
        app_server.url, sign(logout_claims(provider, alice), provider.key, typ="logout+jwt")
    )
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    assert not any(signed_in(s, app_server.url) for s in alice_sessions)
    assert signed_in(bob_session, app_server.url)  # a logout token for someone else
    # Their next request signs in again: a page sends them to the sign-in page.
    page = alice_sessions[0].get(f"{app_server.url}/recordings", allow_redirects=False)
    assert page.status_code == 302 and "/login" in page.headers["Location"]


def test_a_logout_token_naming_only_the_sid_ends_that_users_sessions(app_server, provider, person):
    sub = person(["cc-agents"])
    http = requests.Session()
    start = http.get(f"{app_server.url}/auth/oidc/login", timeout=30)
    sid_seen = {}

    def keep_sid(payload):
        sid_seen["sid"] = unverified_claims(payload["id_token"])["sid"]
        return payload

    provider.proxy.on_token = keep_sid
    provider_sign_in(http, start, sub)
    assert signed_in(http, app_server.url)
    token = sign(logout_claims(provider, None, sid=sid_seen["sid"]), provider.key)
    assert post_logout(app_server.url, token).status_code == 200
    assert not signed_in(http, app_server.url)


def _bad(provider, sub):
    other_key = new_key()
    return {
        "signed-by-another-key": sign(logout_claims(provider, sub), other_key),
        "another-key-with-the-providers-kid": sign(
            logout_claims(provider, sub), new_key(kid=provider.key.kid)
        ),
        "wrong-aud": sign(logout_claims(provider, sub, aud="another-client"), provider.key),
        "wrong-iss": sign(logout_claims(provider, sub, iss="https://evil.example"), provider.key),
        "no-events": sign(logout_claims(provider, sub, events=None), provider.key),
        "wrong-event": sign(
            logout_claims(provider, sub, events={"http://example.org/other": {}}), provider.key
        ),
        "has-a-nonce": sign(logout_claims(provider, sub, nonce="abc"), provider.key),
        "expired": sign(
            logout_claims(provider, sub, exp=int(time.time()) - 3600, iat=int(time.time()) - 7200),
            provider.key,
        ),
        "no-jti": sign(logout_claims(provider, sub, jti=None), provider.key),
        "neither-sub-nor-sid": sign(logout_claims(provider, None), provider.key),
        "an-id-token-typ": sign(logout_claims(provider, sub), provider.key, typ="JWT+id"),
        "not-a-jwt": "not.a.jwt",
        "alg-none": "eyJhbGciOiJub25lIn0."
        + sign(logout_claims(provider, sub), provider.key).split(".")[1]
        + ".",
    }


BAD_KINDS = [
    "signed-by-another-key",
    "another-key-with-the-providers-kid",
    "wrong-aud",
    "wrong-iss",
    "no-events",
    "wrong-event",
    "has-a-nonce",
    "expired",
    "no-jti",
    "neither-sub-nor-sid",
    "an-id-token-typ",
    "not-a-jwt",
    "alg-none",
]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_a_bad_logout_token_is_refused_and_ends_nothing(app_server, provider, person, kind):
    sub = person(["cc-agents"])
    http, _ = http_sign_in(app_server.url, sub)
    answer = post_logout(app_server.url, _bad(provider, sub)[kind])
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_request"
    assert "Traceback" not in answer.text
    assert signed_in(http, app_server.url)


def test_a_replayed_logout_token_is_refused(app_server, provider, person):
    sub = person(["cc-agents"])
    token = sign(logout_claims(provider, sub), provider.key)
    assert post_logout(app_server.url, token).status_code == 200
    http, _ = http_sign_in(app_server.url, sub)
    answer = post_logout(app_server.url, token)
    assert answer.status_code == 400 and "used before" in answer.json()["error_description"]
    assert signed_in(http, app_server.url)


def test_a_logout_post_without_a_token_is_refused(app_server):
    answer = requests.post(f"{app_server.url}/auth/oidc/backchannel-logout", timeout=10)
    assert answer.status_code == 400


# --- RP-initiated logout through the provider, which then logs out by the back channel ---------

_META_REFRESH = re.compile(r'http-equiv="refresh" content="0;url=([^"]+)"')


def test_sign_out_continues_at_the_provider_which_ends_the_other_sessions(
    app_server, provider, person
):
    sub = person(["cc-agents"])
    here, elsewhere = two_sessions(app_server.url, sub)
    page = here.get(f"{app_server.url}/recordings", timeout=10).text
    csrf = page.split('name="csrf-token" content="')[1].split('"')[0]
    signed_out = here.post(f"{app_server.url}/logout", data={"csrf_token": csrf}, timeout=10)
    assert signed_out.status_code == 200 and "Signed out" in signed_out.text
    assert not signed_in(here, app_server.url)
    end_session = unescape(_META_REFRESH.search(signed_out.text).group(1))
    query = dict(parse_qsl(urlsplit(end_session).query))
    assert end_session.startswith(provider.issuer)
    assert query["client_id"] == CLIENT_ID
    assert query["post_logout_redirect_uri"] == f"{app_server.url}/"
    confirm = here.get(end_session, timeout=10)
    form = re.search(r'<form[^>]*action="([^"]+)"', confirm.text)
    fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', confirm.text))
    done = here.post(
        urljoin(confirm.url, form.group(1)), data={**fields, "logout": "yes"}, timeout=10
    )
    assert done.url.startswith(f"{app_server.url}/login")
    # The provider told the app, by the back channel, to end the user's other session too.
    wait_for(lambda: "backchannel logout to consent-replay " in provider.log_text(), 10, "it")
    assert "backchannel logout to consent-replay delivered" in provider.log_text()
    assert not signed_in(elsewhere, app_server.url)


def test_logout_tokens_naming_new_kids_refetch_the_jwks_at_most_once_a_minute(
    app_server, provider, person
):
    """Anyone can post to the back channel: junk naming ever new kids must not make the app
    fetch the provider's keys again and again."""
    sub = person(["cc-agents"])
    before = provider.proxy.hits.count("GET /jwks")
    for _ in range(5):
        forged = sign(logout_claims(provider, sub), new_key())
        assert post_logout(app_server.url, forged).status_code == 400
    assert provider.proxy.hits.count("GET /jwks") - before <= 1
