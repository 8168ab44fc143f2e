"""No open redirect after sign-in (finding 6 of issue 12): ``next`` is followed only when it
is a path on this site, checked as a browser would read it.

``POST /login?next=/%09/evil.example`` used to answer ``Location: //evil.example`` (a browser
drops the tab and goes to evil.example). Each entry of the corpus below is a known way around
naive checks, written as it would appear in the query string.
"""

from __future__ import annotations

import itertools
import re
from urllib.parse import unquote, urljoin, urlsplit

import pytest

from app.links import safe_next
from tests.conftest import create_person

PASSWORD = "correct horse battery staple"
ORIGIN = "http://localhost"
_addresses = itertools.count(1)

# As they would be written into ?next=… (so the server percent-decodes them once).
BYPASSES = [
    "//evil.example",
    "///evil.example",
    "////evil.example",
    "/%09/evil.example",
    "/%0a/evil.example",
    "/%0d/evil.example",
    "/%0d%0a/evil.example",
    "%09//evil.example",
    "/%2f/evil.example",
    "/%2F%2Fevil.example",
    "/%252f/evil.example",
    "/%25252f%25252fevil.example",
    "/%5cevil.example",
    "/%5C%5Cevil.example",
    "%5c%5cevil.example",
    "/%5c/evil.example",
    "%5c/%5c/evil.example",
    "/%5c%5c/evil.example",
    "https:evil.example",
    "https:/evil.example",
    "https://evil.example",
    "http:%2f%2fevil.example",
    "HTTPS://evil.example",
    "//evil.example%2f%2e%2e",
    "javascript:alert(1)",
    "%6A%61%76%61%73%63%72%69%70%74:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "evil.example",
    "@evil.example",
    "%20//evil.example",
    "/%20/evil.example",
    "/%00/evil.example",
    "/%e3%80%80/evil.example",  # ideographic space
    "/%ef%bc%8f/evil.example",  # fullwidth solidus
    "/%e2%88%95evil.example",  # division slash
    "/%e2%80%8b/evil.example",  # zero-width space
    "/%c0%af/evil.example",  # overlong "/"
    "%2f%2fevil.example",
    "/%5c%2fevil.example",
    "/%09%09/evil.example",
    "/\\/evil.example",
    "\\/\\/evil.example",
    "/%0b/evil.example",
    "/%0c/evil.example",
]
ALLOWED = [
    "/shares",
    "/recordings?share=0b1c",
    "/coach/shares/3f2a?t=12",
    "/account",
    "/login?next=%2Fshares",
]


def browser_target(location: str) -> str:
    """Where a browser goes: it drops tabs and newlines, reads a backslash as a slash, and
    resolves the rest against the page's origin."""
    cleaned = re.sub(r"[\t\n\r]", "", location).replace("\\", "/").strip()
    return urljoin(f"{ORIGIN}/login", cleaned)


@pytest.mark.parametrize("raw", BYPASSES)
def test_safe_next_refuses_the_corpus(raw):
    # Both as the attacker wrote it and after the server's own percent-decoding.
    assert safe_next(raw) is None
    assert safe_next(unquote(raw)) is None


@pytest.mark.parametrize("raw", ALLOWED)
def test_safe_next_keeps_paths_of_this_site(raw):
    assert safe_next(raw) == raw


@pytest.fixture(scope="module")
def person(rt):
    return create_person(rt, "employee", password=PASSWORD)


def sign_in_with_next(app, person, next_query: str):
    web = app.test_client()
    web.environ_base["REMOTE_ADDR"] = f"127.3.{next(_addresses) % 250}.1"
    page = web.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    return web.post(
        f"/login?next={next_query}",
        data={"login": person.login, "password": PASSWORD, "csrf_token": token},
    )


@pytest.mark.parametrize("raw", BYPASSES)
def test_sign_in_never_redirects_off_site(stack_app, person, raw):
    response = sign_in_with_next(stack_app, person, raw)
    assert response.status_code == 302, response.get_data(as_text=True)[:200]
    location = response.headers["Location"]
    target = urlsplit(browser_target(location))
    assert (target.scheme, target.netloc) == ("http", "localhost"), location
    assert "evil" not in target.path and "alert" not in location, location


@pytest.mark.parametrize("raw", ["/shares", "/recordings?share=0b1c"])
def test_sign_in_follows_a_path_of_this_site(stack_app, person, raw):
    response = sign_in_with_next(stack_app, person, raw)
    assert response.status_code == 302
    assert response.headers["Location"] == raw
