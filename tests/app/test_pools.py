"""Media apart from the API (issue 19): `consent-replay web --serve media|api` runs one of two
pools behind one proxy; each answers its own paths and the probes, and 404 to the other's."""

from __future__ import annotations

from werkzeug.test import Client

from app.cli import _gunicorn_argv
from app.factory import serving_only


def test_each_pool_answers_only_its_paths_and_the_probes(stack_app):
    media = Client(serving_only(stack_app, media=True))
    api = Client(serving_only(stack_app, media=False))
    share_video = "/media/shares/00000000-0000-0000-0000-000000000000/video"

    refused = media.get("/api/v1/me")
    assert refused.status_code == 404
    assert refused.get_json() == {
        "error": {"code": "not_found", "message": "This server serves only media."}
    }
    assert api.get(share_video).status_code == 404
    assert api.get(share_video).get_json()["error"]["message"] == "This server serves no media."
    # Reached the app: not signed in, rather than the pool's 404.
    assert media.get(share_video).status_code == 401
    assert api.get("/api/v1/me").status_code == 401
    for pool in (media, api):
        assert pool.get("/healthz").status_code == 200


def test_the_web_command_runs_the_chosen_pool():
    targets = {
        serve: _gunicorn_argv("127.0.0.1", 8000, 2, 8, serve=serve)[-1]
        for serve in ("all", "media", "api")
    }
    assert targets == {
        "all": "app.wsgi:app",
        "media": "app.wsgi:media_app",
        "api": "app.wsgi:api_app",
    }


def test_a_pool_can_run_at_a_lower_cpu_priority(monkeypatch, stack_env):
    """`--nice N` lowers the priority of the process that becomes gunicorn (README recommends
    10 for the media pool on a small machine, so that streams do not starve revokes)."""
    from click.testing import CliRunner

    from app import cli

    for name, value in stack_env.items():
        monkeypatch.setenv(name, value)
    calls: list[tuple[str, object]] = []
    monkeypatch.setattr(cli.os, "nice", lambda n: calls.append(("nice", n)))
    monkeypatch.setattr(cli.os, "execv", lambda path, argv: calls.append(("exec", argv[-1])))
    runner = CliRunner()
    assert runner.invoke(cli.main, ["web", "--serve", "media", "--nice", "10"]).exit_code == 0
    assert calls == [("nice", 10), ("exec", "app.wsgi:media_app")]
    calls.clear()
    assert runner.invoke(cli.main, ["web", "--serve", "api"]).exit_code == 0
    assert calls == [("exec", "app.wsgi:api_app")]
    assert runner.invoke(cli.main, ["web", "--nice", "20"]).exit_code != 0
