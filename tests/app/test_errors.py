"""One error shape for every failure (app/errors.py), and nothing internal ever leaks."""

from __future__ import annotations

import logging
import re

import pytest
from celery import _state as celery_state
from sqlalchemy import text

from app import create_app
from app import migrate as migrations
from app.config import load_settings
from app.services.errors import Conflict
from app.storage.s3 import S3Store
from tests.conftest import free_port

SECRET_DETAIL = "kek-material-3f9a /srv/consent/keyring.json"


def assert_json_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert re.fullmatch(r"[0-9a-f]{16}", response.headers.get("X-Request-Id", ""))
    return body["error"]


def test_unknown_api_path_is_404_json(client):
    for accept in (None, "text/html"):
        headers = {"Accept": accept} if accept else {}
        error = assert_json_error(
            client.get("/api/v1/no-such-thing", headers=headers), 404, "not_found"
        )
        assert "no-such-thing" not in error["message"]


def test_unknown_page_answers_html_to_a_browser(client):
    response = client.get("/no-such-page", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert response.mimetype == "text/html"


def test_wrong_method_is_405_json(client, make_person):
    person = make_person("employee")
    response = client.delete("/api/v1/me", headers=person.headers)
    assert_json_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]
    assert_json_error(client.post("/healthz", headers=person.headers), 405, "method_not_allowed")


def test_each_response_gets_its_own_request_id(client):
    first = client.get("/api/v1/nope").headers["X-Request-Id"]
    second = client.get("/api/v1/nope").headers["X-Request-Id"]
    assert first != second


@pytest.fixture(scope="module")
def boom_app(tmp_path_factory):
    """A fresh app (embedded settings) with throwaway routes that fail in different ways."""
    instance = tmp_path_factory.mktemp("errors-instance")
    settings = load_settings({"CR_INSTANCE_DIR": str(instance)})
    migrations.upgrade(settings.database_url)
    previous_celery = celery_state.default_app
    app = create_app(settings)
    celery_state.set_default_app(previous_celery)  # keep the process default as it was

    @app.route("/api/v1/test-boom")
    def boom():
        raise RuntimeError(SECRET_DETAIL)

    @app.route("/api/v1/test-sql")
    def sql():
        rt = app.extensions["consent_replay"]
        with rt.db.session() as session:
            session.execute(text("SELECT secret_column FROM no_such_table_xyz"))
        return "unreachable"

    @app.route("/test-page-boom")
    def page_boom():
        raise KeyError(SECRET_DETAIL)

    @app.route("/api/v1/test-store-down")
    def store_down():
        # A real S3Store aimed at a loopback port where nothing listens.
        S3Store(
            endpoint=f"127.0.0.1:{free_port()}",
            access_key="test-access-key",
            secret_key="test-secret-key-not-a-real-one",
            bucket="cr-errors-test",
        ).check()
        return "unreachable"

    @app.route("/api/v1/test-conflict")
    def conflict():
        raise Conflict("That name is taken.", code="name_taken", details={"field": "name"})

    yield app
    app.extensions["consent_replay"].db.dispose()


def assert_no_leak(body: str) -> None:
    for leak in (
        "Traceback",
        "RuntimeError",
        "KeyError",
        "OperationalError",
        "kek-material",
        "/srv/consent",
        "no_such_table_xyz",
        "secret_column",
        "SELECT",
        ".py",
        "/work/",
        "site-packages",
    ):
        assert leak not in body, f"{leak!r} leaked into the response"


@pytest.mark.parametrize("path", ["/api/v1/test-boom", "/api/v1/test-sql"])
def test_unexpected_exception_is_a_bare_500(boom_app, path, caplog):
    web = boom_app.test_client()
    with caplog.at_level(logging.ERROR, logger="app.errors"):
        response = web.get(path)
    error = assert_json_error(response, 500, "internal_error")
    request_id = response.headers["X-Request-Id"]
    assert request_id in error["message"]
    assert set(error) == {"code", "message"}
    assert_no_leak(response.get_data(as_text=True))
    # The operator gets the details, tied to the same reference.
    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None


def test_unexpected_exception_on_a_page_is_a_bare_html_500(boom_app):
    response = boom_app.test_client().get("/test-page-boom", headers={"Accept": "text/html"})
    assert response.status_code == 500
    assert response.mimetype == "text/html"
    body = response.get_data(as_text=True)
    assert response.headers["X-Request-Id"] in body
    assert_no_leak(body)


def test_app_errors_keep_their_code_and_details(boom_app):
    response = boom_app.test_client().get("/api/v1/test-conflict")
    error = assert_json_error(response, 409, "name_taken")
    assert error["message"] == "That name is taken."
    assert error["details"] == {"field": "name"}


def test_a_store_outage_is_a_503_to_retry(boom_app):
    response = boom_app.test_client().get("/api/v1/test-store-down")
    assert_json_error(response, 503, "storage_unavailable")
    assert int(response.headers["Retry-After"]) > 0
    body = response.get_data(as_text=True)
    assert_no_leak(body)
    for leak in ("MaxRetryError", "urllib3", "127.0.0.1", "cr-errors-test"):
        assert leak not in body
