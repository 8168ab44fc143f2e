"""A browser's view of the app for the tests: a client with its own address, the CSRF token of
a page, a password sign-in (as the sign-in form posts it)."""

from __future__ import annotations

import itertools
import re

PASSWORD = "correct horse battery staple"
_addresses = itertools.count(1)


def browser(app):
    """A test client with its own loopback address (sign-in limits are per address)."""
    n = next(_addresses)
    web = app.test_client()
    web.environ_base["REMOTE_ADDR"] = f"127.1.{n // 250 % 250}.{n % 250 + 1}"
    return web


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html) or re.search(
        r'<meta name="csrf-token" content="([^"]+)"', html
    )
    assert match, "no CSRF token on the page"
    return match.group(1)


def sign_in(web, login: str, password: str = PASSWORD, base: str = ""):
    token = csrf_of(web.get(f"{base}/login").get_data(as_text=True))
    # Under https Flask-WTF also wants a same-origin Referer, as a browser sends it.
    return web.post(
        f"{base}/login",
        data={"login": login, "password": password, "csrf_token": token},
        headers={"Referer": f"{base or 'http://localhost'}/login"},
    )


def signed_in_browser(app, person, password: str = PASSWORD):
    """A client signed in as ``person`` and its CSRF token (from the account page)."""
    web = browser(app)
    response = sign_in(web, person.login, password)
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    return web, csrf_of(web.get("/account").get_data(as_text=True))
