"""Sign-in with the organisation's identity provider against a real one (SPEC §15), by a plain
HTTP client: the code flow, roles from groups, and every check of the ID token, each broken."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from sqlalchemy import select

from app import create_app
from app.config import load_settings
from app.models import Recording, Role, User
from app.services import users
from tests.conftest import Person, create_person
from tests.media_helpers import small_files, upload_recording
from tests.oidc.conftest import (
    CLIENT_ID,
    PROVIDER_NAME,
    http_sign_in,
    new_key,
    oidc_env,
    provider_sign_in,
    sign,
    unverified_claims,
)


def provider_user(rt, provider, sub: str) -> User | None:
    with rt.db.session() as db:
        return db.scalar(
            select(User).where(User.oidc_issuer == provider.issuer, User.oidc_subject == sub)
        )


def me(http: requests.Session, app_url: str) -> requests.Response:
    return http.get(f"{app_url}/api/v1/me", timeout=10)


def signed_in(http: requests.Session, app_url: str) -> bool:
    return me(http, app_url).status_code == 200


def callback_of(final: requests.Response) -> str:
    (url,) = [r.url for r in [*final.history, final] if "/auth/oidc/callback" in r.url]
    return url


# --- the flow ---------------------------------------------------------------------------------


def test_code_flow_with_a_plain_http_client_creates_the_user(app_server, provider, person, rt):
    sub = person(["cc-agents", "unrelated"], name="Kari Nordmann", email="Kari@Example.org")
    http = requests.Session()
    start = http.get(f"{app_server.url}/auth/oidc/login", allow_redirects=False, timeout=30)
    # What the app asks for: PKCE S256, a state and a nonce.
    query = dict(parse_qsl(urlsplit(start.headers["Location"]).query))
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert len(query["state"]) >= 20 and len(query["nonce"]) >= 20
    assert query["redirect_uri"] == f"{app_server.url}/auth/oidc/callback"
    final = provider_sign_in(http, http.get(start.headers["Location"], timeout=30), sub)
    assert final.status_code == 200, final.text[:500]
    assert final.url == f"{app_server.url}/recordings"
    body = me(http, app_server.url).json()
    assert body["name"] == "Kari Nordmann" and body["role"] == "employee"
    user = provider_user(rt, provider, sub)
    assert user is not None and user.role == Role.EMPLOYEE
    assert user.email == "Kari@example.org" and user.password_hash is None


def test_next_is_kept_and_only_a_path_on_this_site(app_server, person):
    sub = person(["cc-agents"])
    http = requests.Session()
    start = http.get(f"{app_server.url}/auth/oidc/login?next=/shares", timeout=30)
    assert provider_sign_in(http, start, sub).url == f"{app_server.url}/shares"
    http = requests.Session()
    start = http.get(f"{app_server.url}/auth/oidc/login?next=//evil.example/", timeout=30)
    assert provider_sign_in(http, start, sub).url == f"{app_server.url}/recordings"


def test_the_role_is_derived_again_at_every_sign_in(app_server, provider, person, rt):
    sub = person(["cc-agents"])
    http_sign_in(app_server.url, sub)
    first = provider_user(rt, provider, sub)
    assert first.role == Role.EMPLOYEE
    provider.set_account(sub, ["cc-coaches"], name="Moved To Coaching")
    http, final = http_sign_in(app_server.url, sub)
    assert final.url == f"{app_server.url}/coach"
    again = provider_user(rt, provider, sub)
    assert again.id == first.id and again.role == Role.COACH and again.name == "Moved To Coaching"
    assert me(http, app_server.url).json()["role"] == "coach"


def test_moved_to_coaching_their_recordings_stay_theirs(
    app_server, provider, person, rt, samples, client
):
    sub = person(["cc-agents"])
    http_sign_in(app_server.url, sub)
    with rt.db.session() as db:
        user = db.scalar(select(User).where(User.oidc_subject == sub))
        agent = Person(user.id, user.name, "employee", users.issue_token(db, user), user.login)
    recording = upload_recording(client, agent, small_files(samples))
    provider.set_account(sub, ["cc-coaches"])
    http, _ = http_sign_in(app_server.url, sub)
    assert me(http, app_server.url).json()["role"] == "coach"
    with rt.db.session() as db:
        kept = db.get(Recording, uuid.UUID(recording["id"]))
        assert kept is not None and kept.owner_id == agent.id


@pytest.mark.parametrize(
    ("groups", "says"),
    [
        ([], "None of your groups gives you a role here"),
        (["somebody-else"], "None of your groups gives you a role here"),
        (["cc-agents", "cc-coaches"], "more than one role here (coach, employee)"),
        ("cc-agents", "something other than a list of group names"),
    ],
    ids=["no-groups", "unmapped-group", "two-roles", "groups-a-string"],
)
def test_no_role_or_two_is_refused_with_a_page_and_nothing_is_created(
    app_server, provider, person, rt, groups, says
):
    sub = person(groups)
    http, final = http_sign_in(app_server.url, sub)
    assert final.status_code == 403
    assert says in final.text
    assert "Ask the people who manage groups in Example Corp Entra" in final.text
    assert "cc-coaches" in final.text  # which group gives which role
    assert provider_user(rt, provider, sub) is None
    assert not signed_in(http, app_server.url)


def test_a_deactivated_user_stays_out_whatever_the_provider_says(app_server, provider, person, rt):
    sub = person(["cc-agents"])
    http, _ = http_sign_in(app_server.url, sub)
    with rt.db.session() as db:
        user = db.scalar(select(User).where(User.oidc_subject == sub))
        users.set_active(db, user, False)
        db.commit()
    assert not signed_in(http, app_server.url)  # deactivation ended the session
    http, final = http_sign_in(app_server.url, sub)
    assert final.status_code == 403 and "deactivated" in final.text
    assert not signed_in(http, app_server.url)


def test_the_same_sub_from_another_issuer_is_another_person(app_server, provider, person, rt):
    """A forged `sub` collision: an account of another issuer with the sub someone has here is
    never signed in to by it (and vice versa); nor is a local account with the same login."""
    sub = person(["cc-agents"])
    with rt.db.session() as db:
        elsewhere = users.create_user(db, login=f"x-{sub}", name="Other IdP Admin", role="admin")
        elsewhere.oidc_issuer, elsewhere.oidc_subject = "https://login.other.example/", sub
        local = users.create_user(db, login=sub, name="Local Namesake", role="admin")
        db.commit()
        elsewhere_id, local_id = elsewhere.id, local.id
    http, _ = http_sign_in(app_server.url, sub)
    body = me(http, app_server.url).json()
    assert body["role"] == "employee" and body["id"] not in {str(elsewhere_id), str(local_id)}
    assert body["login"] != sub  # the namesake's login is taken, not joined


# --- state, nonce and PKCE --------------------------------------------------------------------


def test_a_replayed_callback_is_refused_even_with_the_old_cookie(app_server, person):
    sub = person(["cc-agents"])
    http = requests.Session()
    start = http.get(f"{app_server.url}/auth/oidc/login", timeout=30)
    anonymous_cookies = http.cookies.copy()
    final = provider_sign_in(http, start, sub)
    assert final.status_code == 200
    replay = requests.Session()
    replay.cookies = anonymous_cookies  # the cookie that held the state's key
    answer = replay.get(callback_of(final), timeout=30)
    assert answer.status_code == 400
    assert "already used" in answer.text
    assert not signed_in(replay, app_server.url)


def test_a_callback_with_a_state_we_never_made_is_refused(app_server):
    http = requests.Session()
    http.get(f"{app_server.url}/auth/oidc/login", allow_redirects=False, timeout=30)
    answer = http.get(
        f"{app_server.url}/auth/oidc/callback?code=abc&state={uuid.uuid4().hex}", timeout=30
    )
    assert answer.status_code == 400 and "already used, has expired" in answer.text


def test_a_code_without_its_pkce_verifier_is_refused(app_server, provider, person):
    provider.proxy.on_token_request = lambda form: {
        k: v for k, v in form.items() if k != "code_verifier"
    }
    http, final = http_sign_in(app_server.url, person(["cc-agents"]))
    assert final.status_code == 400
    assert "did not sign you in" in final.text and "invalid_grant" in final.text
    assert not signed_in(http, app_server.url)


def test_the_provider_refuses_an_authorization_request_without_pkce(app_server, provider):
    """The provider the tests use insists on PKCE, as the app's configuration advice says."""
    http = requests.Session()
    start = http.get(f"{app_server.url}/auth/oidc/login", allow_redirects=False, timeout=30)
    url = start.headers["Location"]
    stripped = "&".join(p for p in url.split("&") if not p.startswith("code_challenge"))
    answer = http.get(stripped, timeout=30)
    assert answer.status_code == 400
    assert "PKCE" in answer.text


# --- the ID token, broken every way -----------------------------------------------------------


def at_hash(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def _flip_signature(token: str) -> str:
    head, _, signature = token.split(".")
    claims = unverified_claims(token)
    claims["sub"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    return f"{head}.{forged.decode()}.{signature}"


def _resigned(change, key=None, header=None):
    """An ID token rewrite: the provider's claims, changed, signed (by default) with the
    provider's own key — so only the claim checks can catch it."""

    def rewrite(provider, payload):
        claims = unverified_claims(payload["id_token"])
        change(claims, payload)
        payload["id_token"] = sign(claims, key() if key else provider.key, **(header or {}))
        return payload

    return rewrite


def _set(**values):
    return lambda claims, payload: claims.update(values)


ONE_HOUR = 3600
BROKEN = {
    "tampered-signature": lambda provider, payload: {
        **payload,
        "id_token": _flip_signature(payload["id_token"]),
    },
    "signed-by-a-key-the-provider-does-not-have": _resigned(
        lambda c, p: None, key=lambda: new_key(kid=None)
    ),
    "foreign-key-with-the-providers-kid": None,  # filled in below: needs the provider's kid
    "wrong-aud": _resigned(_set(aud="someone-elses-client")),
    "wrong-iss": _resigned(_set(iss="https://login.evil.example")),
    "expired": _resigned(
        lambda c, p: c.update(exp=int(time.time()) - ONE_HOUR, iat=int(time.time()) - 2 * ONE_HOUR)
    ),
    "wrong-nonce": _resigned(_set(nonce="not-the-nonce-we-sent")),
    "wrong-at-hash": _resigned(lambda c, p: c.update(at_hash=at_hash("another-access-token"))),
    "no-nonce": _resigned(lambda c, p: c.pop("nonce")),
    "alg-none": lambda provider, payload: {
        **payload,
        "id_token": ".".join(
            [
                base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode(),
                payload["id_token"].split(".")[1],
                "",
            ]
        ),
    },
}


def _foreign_key_same_kid(provider, payload):
    impostor = new_key(kid=provider.key.kid)
    claims = unverified_claims(payload["id_token"])
    return {**payload, "id_token": sign(claims, impostor)}


BROKEN["foreign-key-with-the-providers-kid"] = _foreign_key_same_kid


@pytest.mark.parametrize("breakage", list(BROKEN))
def test_every_id_token_check_refuses_a_broken_token(app_server, provider, person, rt, breakage):
    provider.proxy.on_token = lambda payload: BROKEN[breakage](provider, payload)
    sub = person(["cc-agents"])
    http, final = http_sign_in(app_server.url, sub)
    assert final.status_code == 400, final.text[:300]
    assert "did not pass our checks" in final.text
    assert "Traceback" not in final.text
    assert not signed_in(http, app_server.url)
    assert provider_user(rt, provider, sub) is None


def test_the_unbroken_rewrite_is_accepted(app_server, provider, person):
    """The control for the test above: re-signing unchanged claims with the provider's key
    passes, so each refusal there is the check it names."""
    provider.proxy.on_token = lambda payload: _resigned(lambda c, p: None)(provider, payload)
    http, final = http_sign_in(app_server.url, person(["cc-agents"]))
    assert final.status_code == 200 and signed_in(http, app_server.url)


def test_key_rotation_at_the_provider_refetches_the_jwks_once(oidc_servers, provider, person):
    server = oidc_servers["main"]
    provider.proxy.reset()
    http_sign_in(server.url, person(["cc-agents"]))  # the JWKS is in the app's cache now
    old_kid = provider.key.kid
    fetches = provider.proxy.hits.count("GET /jwks")
    provider.rotate_keys()
    assert provider.key.kid != old_kid
    http, final = http_sign_in(server.url, person(["cc-coaches"]))
    assert final.status_code == 200 and signed_in(http, server.url)
    assert provider.proxy.hits.count("GET /jwks") == fetches + 1
    http, final = http_sign_in(server.url, person(["cc-coaches"]))  # cached again
    assert final.status_code == 200
    assert provider.proxy.hits.count("GET /jwks") == fetches + 1


# --- the provider down ------------------------------------------------------------------------


def test_provider_down_at_the_token_exchange_is_a_clear_page(app_server, provider, person):
    provider.proxy.down = {"/token"}
    http, final = http_sign_in(app_server.url, person(["cc-agents"]))
    assert final.status_code == 503
    assert "Example Corp Entra could not be reached just now" in final.text
    assert not signed_in(http, app_server.url)


def test_provider_down_at_discovery_is_a_clear_page(provider, stack_env, stack_app):
    provider.proxy.reset()
    provider.proxy.down = {"*"}
    try:
        app = create_app(load_settings({**stack_env, **oidc_env(provider, CLIENT_ID)}))
        answer = app.test_client().get("/auth/oidc/login")
    finally:
        provider.proxy.reset()
        app.extensions["revocations"].stop()
        app.extensions["consent_replay"].db.dispose()
    assert answer.status_code == 503
    assert b"could not be reached" in answer.data


# --- the sign-in page and CR_PASSWORD_LOGIN ---------------------------------------------------


def test_the_sign_in_page_offers_the_provider_by_name_and_the_password(app_server):
    page = requests.get(f"{app_server.url}/login", timeout=10).text
    assert f"Sign in with {PROVIDER_NAME}" in page
    assert 'href="/auth/oidc/login"' in page
    assert 'name="password"' in page


def test_password_login_false_offers_only_the_provider(oidc_servers, rt, person):
    server = oidc_servers["nopw"]
    page = requests.get(f"{server.url}/login", timeout=10)
    assert f"Sign in with {PROVIDER_NAME}" in page.text
    assert 'name="password"' not in page.text
    local = create_person(rt, "employee", password="a-long-enough-password")
    http = requests.Session()
    form = http.get(f"{server.url}/login", timeout=10).text
    csrf = form.split('name="csrf-token" content="')[1].split('"')[0]
    answer = http.post(
        f"{server.url}/login",
        data={"login": local.login, "password": "a-long-enough-password", "csrf_token": csrf},
        timeout=10,
    )
    assert answer.status_code == 403 and "Passwords are turned off here" in answer.text
    assert not signed_in(http, server.url)
    # API tokens still work for integrations; the provider still signs people in.
    assert requests.get(f"{server.url}/api/v1/me", headers=local.headers, timeout=10).ok
    http, final = http_sign_in(server.url, person(["cc-agents"]))
    assert final.status_code == 200 and signed_in(http, server.url)
