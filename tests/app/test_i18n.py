"""Two languages (SPEC §14): which one a request is in, the switch, the person's choice, the
scripts' catalog, API messages in Norwegian with English codes, and complete catalogs."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC
from pathlib import Path

import pytest
from babel.messages import pofile

from app.services import i18n
from tests.app.browsing import browser, csrf_of, signed_in_browser

ROOT = Path(__file__).resolve().parents[2]
NB = {"Accept-Language": "nb-NO,nb;q=0.9,en;q=0.5"}


def html_lang(response) -> str:
    match = re.search(r'<html lang="([a-z]+)"', response.get_data(as_text=True))
    assert match, "no <html lang>"
    return match.group(1)


def test_accept_language_then_default(stack_app):
    web = browser(stack_app)
    assert html_lang(web.get("/login")) == "en"
    page = web.get("/login", headers=NB)
    assert html_lang(page) == "nb"
    assert "Logg inn" in page.get_data(as_text=True)
    # Nynorsk and plain "no" readers are closer to Bokmål than to English.
    assert html_lang(web.get("/login", headers={"Accept-Language": "nn"})) == "nb"
    assert html_lang(web.get("/login", headers={"Accept-Language": "no-NO"})) == "nb"
    assert html_lang(web.get("/login", headers={"Accept-Language": "de, fr;q=0.5"})) == "en"


def test_default_language_setting(stack_env):
    from tests.conftest import app_for

    with app_for({**stack_env, "CR_DEFAULT_LANGUAGE": "nb"}) as app:
        web = browser(app)
        assert html_lang(web.get("/login")) == "nb"
        assert html_lang(web.get("/login", headers={"Accept-Language": "en-GB"})) == "en"


def test_switch_on_the_sign_in_page_sets_a_cookie(stack_app):
    web = browser(stack_app)
    page = web.get("/login")
    response = web.post(
        "/language",
        data={"language": "nb", "next": "/login", "csrf_token": csrf_of(page.get_data(True))},
    )
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert "cr_lang=nb" in response.headers["Set-Cookie"]
    # The cookie outranks the browser's Accept-Language.
    assert html_lang(web.get("/login", headers={"Accept-Language": "en"})) == "nb"


@pytest.mark.parametrize(
    "form, status",
    [
        ({"language": "nb", "next": "//evil.example/"}, 303),  # an unsafe next goes home
        ({"language": "de"}, 400),
        ({"language": "nb", "csrf_token": ""}, 400),  # no CSRF token: refused
    ],
)
def test_switch_refuses_what_it_must(stack_app, form, status):
    web = browser(stack_app)
    token = csrf_of(web.get("/login").get_data(True))
    response = web.post("/language", data={"csrf_token": token, **form})
    assert response.status_code == status
    if status == 303:
        assert response.headers["Location"] == "/"
    if form.get("csrf_token") == "":
        assert response.get_json()["error"]["code"] == "csrf_failed"


def test_the_persons_choice_outranks_cookie_and_browser(stack_app, make_person):
    person = make_person("employee", password="correct horse battery staple")
    web, token = signed_in_browser(stack_app, person)
    response = web.patch(
        "/api/v1/me", json={"language": "nb"}, headers={"X-CSRFToken": token, **NB}
    )
    assert response.status_code == 200 and response.get_json()["language"] == "nb"
    web.set_cookie("cr_lang", "en")
    page = web.get("/recordings", headers={"Accept-Language": "en"})
    assert html_lang(page) == "nb" and "Mine opptak" in page.get_data(as_text=True)
    # The header's switch, signed in, changes the person's own choice.
    web.post("/language", data={"language": "en", "csrf_token": token})
    me = web.get("/api/v1/me").get_json()
    assert me["language"] == "en"
    # null: back to the browser's choice (the cookie the switch set says en).
    web.patch("/api/v1/me", json={"language": None}, headers={"X-CSRFToken": token})
    assert web.get("/api/v1/me").get_json()["language"] is None


def test_unknown_language_is_422_with_its_code(client, make_person):
    person = make_person("coach")
    response = client.patch("/api/v1/me", json={"language": "sv"}, headers=person.headers)
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "unsupported_language"
    nb = client.patch("/api/v1/me", json={"language": "xx"}, headers={**person.headers, **NB})
    assert nb.get_json()["error"]["message"] == "Språket må være ett av disse: en, nb."


def test_api_error_messages_in_norwegian_codes_in_english(client, make_person):
    anonymous = client.get("/api/v1/recordings", headers=NB)
    assert anonymous.status_code == 401
    assert anonymous.get_json()["error"]["code"] == "unauthenticated"
    missing = client.get("/api/v1/nothing-here", headers=NB)
    assert missing.get_json()["error"] == {
        "code": "not_found",
        "message": "Det finnes ingenting på denne adressen.",
    }
    english = client.get("/api/v1/nothing-here")
    assert english.get_json()["error"]["message"] == "There is nothing at this address."


def test_the_scripts_catalog(client):
    response = client.get("/i18n/nb.json")
    assert response.status_code == 200
    assert "immutable" in response.headers["Cache-Control"]
    body = response.get_json()
    assert body["language"] == "nb" and body["messages"]["Cancel"] == "Avbryt"
    assert client.get("/i18n/en.json").get_json()["messages"] == {}
    assert client.get("/i18n/xx.json").status_code == 404
    page = client.get("/login", headers=NB).get_data(as_text=True)
    url = re.search(r'<meta name="i18n-catalog" content="([^"]+)"', page).group(1)
    assert url.startswith("/i18n/nb.json?v=")


def test_catalog_falls_back_to_the_po_without_a_compiled_catalog(tmp_path, monkeypatch):
    """A fresh checkout has no .mo: the .po is read instead (and a stale .mo is ignored)."""
    nb = tmp_path / "nb" / "LC_MESSAGES"
    nb.mkdir(parents=True)
    (nb / "messages.po").write_text(
        'msgid ""\nmsgstr ""\n"Language: nb\\n"\n\nmsgid "Cancel"\nmsgstr "Avbryt"\n',
        encoding="utf-8",
    )
    monkeypatch.setattr(i18n, "TRANSLATIONS_DIR", tmp_path)
    i18n._translations.cache_clear()
    with i18n.language("nb"):
        assert i18n._("Cancel") == "Avbryt"
    with i18n.language("en"):
        assert i18n._("Cancel") == "Cancel"
    i18n._translations.cache_clear()


def _read(path: Path):
    with path.open("rb") as handle:
        return pofile.read_po(handle)


@pytest.mark.parametrize("domain", ["messages", "js"])
def test_every_catalog_entry_is_translated(domain):
    catalog = _read(ROOT / "app" / "translations" / "nb" / "LC_MESSAGES" / f"{domain}.po")
    untranslated = [
        message.id
        for message in catalog
        if message.id
        and (
            message.fuzzy
            or not (all(message.string) if isinstance(message.string, tuple) else message.string)
        )
    ]
    assert untranslated == []


@pytest.mark.parametrize(
    "domain, config, keywords",
    [
        ("messages", "babel.cfg", []),
        ("js", "babel-js.cfg", ["--no-default-keywords", "-k", "t", "-k", "tn:1,2"]),
    ],
)
def test_every_template_and_script_string_is_in_the_catalog(tmp_path, domain, config, keywords):
    pot = tmp_path / f"{domain}.pot"
    pybabel = Path(sys.executable).with_name("pybabel")
    subprocess.run(
        [str(pybabel), "extract", "-F", config, *keywords, "-o", str(pot), "."],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    wanted = {message.id for message in _read(pot) if message.id}
    have = _read(ROOT / "app" / "translations" / "nb" / "LC_MESSAGES" / f"{domain}.po")
    known = {message.id for message in have if message.id}
    assert sorted(map(str, wanted - known)) == [], "run scripts/i18n.sh extract and translate"


def test_formats_follow_the_language():
    from datetime import datetime

    moment = datetime(2026, 12, 7, 14, 5, tzinfo=UTC)
    with i18n.language("nb"):
        assert i18n.format_number(12345.5) == "12\xa0345,5"
        assert "des." in i18n.format_date(moment)
        assert i18n.format_duration(180) == "3 minutter"
    with i18n.language("en"):
        assert i18n.format_number(12345.5) == "12,345.5"
        assert i18n.format_duration(180) == "3 minutes"
