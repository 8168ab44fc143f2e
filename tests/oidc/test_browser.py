"""Sign-in with the identity provider in a real browser (Debian's Chromium): the app's sign-in
page, the provider's own login and consent pages, sign-out through the provider, the no-role
page and the admin's view of where people come from. Screenshots wide and at 390 px."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import assert_accessible, screenshot
from tests.chromium import watch_for_script_errors
from tests.oidc.conftest import PROVIDER_NAME

pytestmark = pytest.mark.browser
WIDE, NARROW = {"width": 1280, "height": 860}, {"width": 390, "height": 844}


@pytest.fixture
def context(browser, app_server) -> Iterator:
    context = browser.new_context(base_url=app_server.url, viewport=WIDE)
    context.set_default_timeout(20_000)
    yield context
    context.close()


@pytest.fixture
def page(context, app_server) -> Iterator:
    """A page whose own scripts and styles (not the provider's) must run without an error or a
    Content-Security-Policy refusal."""
    page = context.new_page()
    errors = watch_for_script_errors(page)
    yield page
    assert errors == []


def provider_login(page, login: str) -> None:
    """The provider's own pages: its login form, then its consent."""
    page.wait_for_selector("input[name=login]")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any password")
    page.click("button[type=submit]")
    page.wait_for_selector("button:has-text('Continue')")
    page.click("button:has-text('Continue')")


def test_sign_in_and_out_through_the_provider_in_a_browser(page, app_server, provider, person):
    sub = person(["cc-agents"], name="Ingrid Agent")
    page.goto("/login")
    button = page.get_by_role("link", name=f"Sign in with {PROVIDER_NAME}")
    assert button.is_visible()
    assert_accessible(page)
    screenshot(page, "oidc-sign-in")
    page.set_viewport_size(NARROW)
    screenshot(page, "oidc-sign-in-390")
    page.set_viewport_size(WIDE)
    button.click()
    assert page.url.startswith(provider.issuer)
    provider_login(page, sub)
    page.wait_for_url(f"{app_server.url}/recordings")
    assert page.locator(".who-name").inner_text() == "Ingrid Agent"

    # My account: no password form (the provider keeps the password), words that say so, and
    # a page script that runs without it (the page fixture fails on a script error).
    page.goto("/account")
    expect(page.locator("#provider-password")).to_contain_text(
        f"You sign in with {PROVIDER_NAME}, so your password is managed there"
    )
    expect(page.locator("#password-form")).to_have_count(0)
    expect(page.locator("#token-rows")).not_to_contain_text("Loading")
    assert_accessible(page)
    screenshot(page, "oidc-account")

    page.get_by_role("button", name="Sign out", exact=True).click()
    # Signed out here; the page moves on to the provider's own sign-out.
    page.wait_for_url(lambda url: url.startswith(provider.issuer))
    page.get_by_role("button", name="Yes, sign me out").click()
    page.wait_for_url(f"{app_server.url}/login")
    assert page.get_by_role("link", name=f"Sign in with {PROVIDER_NAME}").is_visible()
    # The provider's session ended too: signing in asks for the login again.
    page.get_by_role("link", name=f"Sign in with {PROVIDER_NAME}").click()
    page.wait_for_selector("input[name=login]")


def test_the_no_role_page_says_why_and_whom_to_ask(page, app_server, person):
    page.goto("/auth/oidc/login")
    provider_login(page, person(["cc-agents", "cc-coaches"], name="Two Hats"))
    page.wait_for_url(f"{app_server.url}/auth/oidc/callback**")
    assert page.get_by_role("heading", name="No role for you here yet").is_visible()
    assert "more than one role" in page.locator("[role=alert]").inner_text()
    assert page.get_by_role("heading", name="Whom to ask").is_visible()
    assert_accessible(page)
    screenshot(page, "oidc-no-role")
    page.set_viewport_size(NARROW)
    screenshot(page, "oidc-no-role-390")


def test_the_no_role_page_in_norwegian(browser, app_server, person):
    context = browser.new_context(base_url=app_server.url, viewport=NARROW, locale="nb-NO")
    page = context.new_page()
    page.goto("/auth/oidc/login")
    provider_login(page, person(["somebody-else"], name="Ingen Rolle"))
    page.wait_for_url(f"{app_server.url}/auth/oidc/callback**")
    assert page.locator("html").get_attribute("lang") == "nb"
    assert page.get_by_role("heading", name="Du har ingen rolle her ennå").is_visible()
    assert (
        "Ingen av gruppene dine gir deg en rolle her." in page.locator("[role=alert]").inner_text()
    )
    assert page.get_by_role("heading", name="Hvem du kan spørre").is_visible()
    assert "medarbeider" in page.locator("table.role-groups").inner_text()
    assert_accessible(page)
    screenshot(page, "oidc-no-role-nb-390")
    context.close()


def test_an_admin_from_the_provider_sees_where_each_user_comes_from(page, app_server, person):
    newcomer = person(["cc-coaches"], name="Provider Coach")
    page.goto("/auth/oidc/login")
    provider_login(page, newcomer)  # so that the list has a provider's user
    page.wait_for_url(f"{app_server.url}/coach")
    page.context.clear_cookies()
    page.goto("/auth/oidc/login")
    provider_login(page, person(["cr-admins"], name="Provider Admin"))
    page.wait_for_url(f"{app_server.url}/admin/users")
    row = page.locator("tr", has_text="Provider Coach")
    row.wait_for()
    assert f"Signs in with {PROVIDER_NAME}" in row.inner_text()
    assert row.get_by_role("button", name="Reset…").count() == 0
    assert row.get_by_role("button", name="Send enrolment link").count() == 0
    screenshot(page, "oidc-admin-users")


def test_password_login_off_the_sign_in_page_offers_only_the_provider(browser, oidc_servers):
    context = browser.new_context(base_url=oidc_servers["nopw"].url, viewport=WIDE)
    page = context.new_page()
    page.goto("/login")
    assert page.get_by_role("link", name=f"Sign in with {PROVIDER_NAME}").is_visible()
    assert page.locator("input[name=password]").count() == 0
    assert_accessible(page)
    screenshot(page, "oidc-sign-in-provider-only")
    page.set_viewport_size(NARROW)
    screenshot(page, "oidc-sign-in-provider-only-390")
    context.close()
