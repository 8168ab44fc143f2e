"""The `consent-replay` command line, run as a real subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import uuid

import pytest
from sqlalchemy import select

from app.models import User
from app.services import users
from crypto import FileKeyring
from tests.app.browsing import PASSWORD, browser, csrf_of, signed_in_browser
from tests.conftest import ROOT, create_person

CLI = str(ROOT / ".venv" / "bin" / "consent-replay")


def run_cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the CLI with exactly ``env`` (plus PATH and HOME), as an operator would."""
    return subprocess.run(
        [CLI, *args],
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        # A few of each kind; tests/app/test_config.py covers every variable in-process.
        ("CR_MAX_UPLOAD_BYTES", "lots"),
        ("CR_DATABASE_URL", "mysql://root@127.0.0.1/consent"),
        ("CR_VISIBILITY_TIMEOUT_S", "60"),
        ("CR_RATELIMIT_STORAGE_URL", "bogus"),
    ],
)
def test_cli_refuses_a_bad_value_naming_the_variable(tmp_path, variable, value):
    result = run_cli(
        {"CR_INSTANCE_DIR": str(tmp_path / "instance"), variable: value}, "users", "list"
    )
    assert result.returncode != 0
    assert variable in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_cli_migrate_on_a_fresh_instance(tmp_path):
    env = {"CR_INSTANCE_DIR": str(tmp_path / "instance")}
    result = run_cli(env, "migrate")
    assert result.returncode == 0, result.stderr
    from app import migrate as migrations

    (head,) = migrations.heads(f"sqlite:///{tmp_path / 'x.db'}")
    assert result.stdout.strip().endswith(f"database at revision {head}")
    assert (tmp_path / "instance" / "consent-replay.db").is_file()


def test_users_create_prints_a_working_token_once(stack_env, stack_app, client, rt):
    suffix = uuid.uuid4().hex[:8]
    name = f"Cli Coach {suffix}"
    result = run_cli(stack_env, "users", "create", "--role", "coach", "--name", name)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    token = lines[-1].strip()
    assert token.startswith(users.TOKEN_PREFIX)
    assert result.stdout.count(token) == 1
    assert token not in result.stderr
    assert f"login cli.coach.{suffix}" in result.stdout

    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200, me.get_json()
    body = me.get_json()
    assert (body["name"], body["role"]) == (name, "coach")
    assert body["id"] in result.stdout

    listed = run_cli(stack_env, "users", "list")
    assert listed.returncode == 0, listed.stderr
    (row,) = [line for line in listed.stdout.splitlines() if body["id"] in line]
    assert f"cli.coach.{suffix}" in row and "coach" in row and "active" in row
    assert token not in listed.stdout


def test_users_create_refuses_a_taken_login(stack_env, rt):
    login = f"twice.{uuid.uuid4().hex[:8]}"
    with rt.db.session() as session:
        users.create_user(session, login=login, name="First Holder", role="employee")
    args = ("users", "create", "--role", "employee", "--name", "Second Comer", "--login", login)
    again = run_cli(stack_env, *args)
    assert again.returncode != 0
    assert "taken" in again.stderr
    assert "Traceback" not in again.stderr
    assert users.TOKEN_PREFIX not in again.stdout


def test_users_create_refuses_an_unknown_role(stack_env):
    result = run_cli(stack_env, "users", "create", "--role", "overlord", "--name", "X")
    assert result.returncode != 0
    assert "overlord" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_refuses_a_readable_keyring_without_a_traceback(tmp_path):
    env = {"CR_INSTANCE_DIR": str(tmp_path / "instance")}
    keyring = tmp_path / "instance" / "keyring.json"
    FileKeyring(keyring)  # a valid keyring, as a first start makes it (mode 0600)
    keyring.chmod(0o644)
    result = run_cli(env, "users", "list")
    assert result.returncode != 0
    assert "keyring" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_checks_the_environment_and_prints_the_readme_table(tmp_path):
    from app.config import markdown_table

    env = {"CR_INSTANCE_DIR": str(tmp_path / "instance")}
    ok = run_cli(env, "config")
    assert ok.returncode == 0, ok.stderr
    assert "configuration OK" in ok.stdout
    bad = run_cli({**env, "CR_MAX_FPS": "fast"}, "config")
    assert bad.returncode != 0
    assert "CR_MAX_FPS" in bad.stderr and "Traceback" not in bad.stderr
    table = run_cli(env, "config", "--markdown")
    assert table.returncode == 0, table.stderr
    assert table.stdout == markdown_table()


def test_keys_rotate_and_retire_are_audited_with_no_actor(tmp_path):
    from sqlalchemy import select

    from app.models import AuditEvent
    from tests.conftest import app_for

    env = {"CR_INSTANCE_DIR": str(tmp_path / "instance")}
    assert run_cli(env, "migrate").returncode == 0
    rotated = run_cli(env, "keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    assert "KEK v2 is current" in rotated.stdout
    retired = run_cli(env, "keys", "retire")
    assert retired.returncode == 0, retired.stderr
    assert "destroyed KEK versions: v1" in retired.stdout
    with app_for(env) as app, app.extensions["consent_replay"].db.session() as session:
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
    assert [(e.action, e.actor_id, e.detail) for e in events] == [
        ("keys.rotated", None, {"new_version": 2, "rewrapped": 0}),
        ("keys.retired", None, {"destroyed": [1]}),
    ]


def _link_secret(output: str) -> str:
    found = re.findall(r"http\S+/account/link#(crl_[A-Za-z0-9_-]+)", output)
    assert len(found) == 1, output
    return found[0]


def _use_link(app, secret: str, **form):
    web = browser(app)
    page = web.get("/account/link").get_data(as_text=True)
    return web, web.post(
        "/account/link", data={"csrf_token": csrf_of(page), "token": secret, **form}
    )


def test_users_create_with_link_prints_an_enrolment_link_once(stack_env, stack_app, rt):
    suffix = uuid.uuid4().hex[:8]
    result = run_cli(
        stack_env, "users", "create", "--role", "employee", "--name", f"Link Person {suffix}",
        "--email", f"link-{suffix}@example.org", "--link",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert users.TOKEN_PREFIX not in result.stdout  # a link instead of a token
    secret = _link_secret(result.stdout)
    with rt.db.session() as session:
        user = session.scalar(select(User).where(User.login == f"link.person.{suffix}"))
        assert user.email == f"link-{suffix}@example.org" and user.enrolled_at is None
    web, done = _use_link(stack_app, secret, make_token="on")
    assert done.status_code == 200
    assert web.get("/api/v1/me").get_json()["login"] == f"link.person.{suffix}"


def test_users_reset_ends_everything_and_prints_a_reset_link(stack_env, stack_app, rt):
    person = create_person(rt, "coach", password=PASSWORD)
    web, _ = signed_in_browser(stack_app, person)
    result = run_cli(stack_env, "users", "reset", person.login)
    assert result.returncode == 0, result.stderr
    assert "every session and API token of theirs has ended" in result.stdout
    assert web.get("/api/v1/me").status_code == 401
    assert stack_app.test_client().get("/api/v1/me", headers=person.headers).status_code == 401
    secret = _link_secret(result.stdout)
    fresh = "chosen after the reset"
    new_web, done = _use_link(stack_app, secret, password=fresh, password_confirm=fresh)
    assert done.status_code == 200 and "Your account was reset" in done.get_data(as_text=True)
    events = new_web.get("/api/v1/me/security-log").get_json()["events"]
    assert next(e for e in events if e["action"] == "user.reset")["by"] == "the operator"
    unknown = run_cli(stack_env, "users", "reset", f"nobody-{uuid.uuid4().hex[:6]}")
    assert unknown.returncode != 0 and "No such user" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_users_set_email(stack_env, rt):
    person = create_person(rt, "employee")
    address = f"set-{uuid.uuid4().hex[:6]}@example.org"
    result = run_cli(stack_env, "users", "set-email", person.login, address)
    assert result.returncode == 0, result.stderr
    with rt.db.session() as session:
        assert session.get(User, person.id).email == address
    bad = run_cli(stack_env, "users", "set-email", person.login, "not-an-address")
    assert bad.returncode != 0 and "not an e-mail address" in bad.stderr
