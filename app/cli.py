"""The ``consent-replay`` command line."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import click

from app.config import ConfigError, Settings, load_settings


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(f"configuration error: {exc}") from None


@contextlib.contextmanager
def app_context() -> Iterator:
    """The runtime for a command; start-up problems become one clear line, no trace."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    import crypto
    from app import jobs
    from app.logs import configure_logging
    from app.runtime import Runtime

    settings = _settings()
    configure_logging(settings.log_level)
    try:
        rt = Runtime.from_settings(settings)
    except crypto.KeyringError as exc:
        raise click.ClickException(f"keyring error: {exc}") from None
    jobs.connect(settings, rt)
    try:
        try:
            yield rt
        except (OperationalError, ProgrammingError) as exc:
            text = str(exc.orig) if exc.orig is not None else str(exc)
            if "no such table" in text or "does not exist" in text:
                raise click.ClickException(
                    "the database has no tables yet: run `consent-replay migrate`"
                ) from None
            raise click.ClickException(
                f"database error: {text.splitlines()[0] if text else type(exc).__name__}"
            ) from None
    finally:
        rt.db.dispose()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="consent-replay")
def main() -> None:
    """consent-replay: coaching on recordings their owners chose to share."""


# --- database ---------------------------------------------------------------------------------


@main.command()
@click.option("--revision", default="head", show_default=True)
def migrate(revision: str) -> None:
    """Apply the database migrations."""
    from app import migrate as migrations

    settings = _settings()
    migrations.upgrade(settings.database_url, revision, settings=settings)
    click.echo(f"database at revision {migrations.current(settings.database_url)}")


# --- configuration ----------------------------------------------------------------------------


@main.command("config")
@click.option("--markdown", is_flag=True, help="Print README's table of every setting instead.")
def config_command(markdown: bool) -> None:
    """Check the configuration in the environment (exit 1 naming a bad variable)."""
    from app.config import SETTINGS, markdown_table

    if markdown:
        click.echo(markdown_table(), nl=False)
        return
    _settings()
    click.echo(f"configuration OK ({len(SETTINGS)} settings)")


@main.command("data-map")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of Markdown.")
def data_map_command(as_json: bool) -> None:
    """Print the data map: every column, object, log field and e-mail, whose it is, how it
    is protected and when it is deleted (docs/PRIVACY.md carries the same map)."""
    from app.services import datamap

    if as_json:
        click.echo(json.dumps(datamap.as_json(), indent=2, ensure_ascii=False))
        return
    click.echo(datamap.markdown(), nl=False)


# --- users ------------------------------------------------------------------------------------


@main.group()
def users() -> None:
    """Create and list users."""


@users.command("create")
@click.option(
    "--role", required=True, type=click.Choice(["employee", "coach", "admin", "representative"])
)
@click.option("--name", required=True, help="Display name, e.g. 'Kari Nordmann'.")
@click.option("--login", help="Sign-in name (default: derived from the name).")
@click.option("--email", help="The person's own e-mail address (links and notifications).")
@click.option(
    "--password",
    "ask_password",
    is_flag=True,
    help="Also set a password for the web pages (asked for, never echoed).",
)
@click.option(
    "--link",
    "print_link",
    is_flag=True,
    help="Print an enrolment link (the person chooses a password and/or makes a token) "
    "instead of an API token.",
)
def users_create(
    role: str, name: str, login: str | None, email: str | None, ask_password: bool, print_link: bool
) -> None:
    """Create a user and print, once, an API token (or with --link an enrolment link) to hand
    to that person."""
    from app.services import account_links
    from app.services import users as user_service
    from app.services.errors import DomainError

    password = None
    if ask_password:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    login = login or ".".join(name.lower().split())[:60]
    with app_context() as rt, rt.db.session() as session:
        try:
            user = user_service.create_user(
                session, login=login, name=name, role=role, password=password, email=email
            )
            if print_link:
                secret = account_links.issue(session, user, "enrolment")
                shown = account_links.url(rt.settings.public_url, secret)
            else:
                shown = user_service.issue_token(session, user, label="cli")
        except DomainError as exc:
            raise click.ClickException(exc.message) from None
    click.echo(f"created {role} {name!r} (login {user.login}, id {user.id})")
    if print_link:
        hours = account_links.hours_valid("enrolment")
        click.echo(f"Enrolment link (works once, for {hours} hours; hand it to them alone):")
    else:
        click.echo("API token (shown once, keep it secret):")
    click.echo(shown)


@users.command("reset")
@click.argument("login")
def users_reset(login: str) -> None:
    """Reset an account: end every session and API token of LOGIN and print a single-use link
    with which they choose a new password (hand it to them alone). They are told at their
    next sign-in; the reset is in the audit chain and counted in oversight."""
    from app.services import account_links
    from app.services import users as user_service
    from app.services.errors import DomainError

    with app_context() as rt, rt.db.session() as session:
        try:
            user = user_service.get_user_by_login(session, login)
            if not user.active:
                raise click.ClickException(f"{user.login} is deactivated; reactivate them first.")
            user_service.reset(session, user, actor_id=None)
            secret = account_links.issue(session, user, "reset")
        except DomainError as exc:
            raise click.ClickException(exc.message) from None
        link = account_links.url(rt.settings.public_url, secret)
    hours = account_links.hours_valid("reset")
    click.echo(f"reset {user.login}: every session and API token of theirs has ended.")
    click.echo(f"Reset link (works once, for {hours} hours; hand it to them alone):")
    click.echo(link)


@users.command("set-email")
@click.argument("login")
@click.argument("email")
def users_set_email(login: str, email: str) -> None:
    """Set the e-mail address of LOGIN (use "" for none)."""
    from app.services import users as user_service
    from app.services.errors import DomainError

    with app_context() as rt, rt.db.session() as session:
        try:
            user = user_service.get_user_by_login(session, login)
            user_service.set_email(session, user, email, actor_id=None, by_admin=False)
        except DomainError as exc:
            raise click.ClickException(exc.message) from None
        shown = user.email or "(none)"
    click.echo(f"{user.login}: e-mail {shown}")


@users.command("list")
def users_list() -> None:
    """List users: id, login, role, active, name, e-mail."""
    from app.services import users as user_service

    with app_context() as rt, rt.db.session() as session:
        rows = user_service.list_users(session)
        for user in rows:
            state = "active" if user.active else "inactive"
            click.echo(
                f"{user.id}  {user.login:<24} {user.role.value:<15} {state:<8} {user.name}"
                + (f" <{user.email}>" if user.email else "")
            )


# --- demo -------------------------------------------------------------------------------------

DEMO_USERS = [
    ("employee", "Ada Employee", "ada"),
    ("employee", "Ben Employee", "ben"),
    ("coach", "Cleo Coach", "cleo"),
    ("coach", "Dan Coach", "dan"),
    ("admin", "Ola Admin", "admin"),
    ("representative", "Rita Representative", "rita"),
]


def ensure_demo(rt) -> list[tuple[str, str, str]]:
    """Create the demo users (once) and return (role, login, password) for each."""
    from sqlalchemy import select

    from app.models import User
    from app.services import users as user_service

    path = rt.settings.instance_dir / "demo-logins.json"
    known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    with rt.db.session() as session:
        for role, name, login in DEMO_USERS:
            if session.scalar(select(User).where(User.login == login)) is not None:
                continue
            password = known.get(login) or f"{login}-{secrets.token_urlsafe(9)}"
            user_service.create_user(session, login=login, name=name, role=role, password=password)
            known[login] = password
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(known, handle, indent=2)
    from app.services import demo

    demo.ensure_sample_recording(rt, owner_login="ada")
    return [(role, login, known.get(login, "(set before)")) for role, _, login in DEMO_USERS]


@main.command("demo")
def demo_command() -> None:
    """Create demo users of every role and a synthetic sample recording."""
    with app_context() as rt:
        for role, login, password in ensure_demo(rt):
            click.echo(f"{role:<15} {login:<8} {password}")


# --- running ----------------------------------------------------------------------------------


WSGI_TARGETS = {"all": "app.wsgi:app", "media": "app.wsgi:media_app", "api": "app.wsgi:api_app"}


def _gunicorn_argv(
    host: str,
    port: int,
    workers: int,
    threads: int,
    *,
    slow_clients: bool = False,
    serve: str = "all",
) -> list[str]:
    """gunicorn's threaded worker (production, behind a buffering reverse proxy; ``serve``
    picks all routes, only the media streams or only the rest), or with ``slow_clients`` its
    asyncio worker in front of the app (``app.asgi``: the embedded default, which faces its
    clients directly and keeps media on a thread pool of its own)."""
    worker = ["--worker-class", "asgi"] if slow_clients else ["--worker-class", "gthread"]
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"{host}:{port}",
        *worker,
        "--workers",
        str(workers),
        *([] if slow_clients else ["--threads", str(threads)]),
        "--timeout",
        "120",
        "--graceful-timeout",
        "10",
        "--access-logfile",
        "-",
        "--no-control-socket",
        "app.asgi:app" if slow_clients else WSGI_TARGETS[serve],
    ]


def _worker_argv(concurrency: int, queues: str | None, beat: bool) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker.entry",
        "worker",
        "--concurrency",
        str(concurrency),
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
    ]
    if queues:
        argv += ["--queues", queues]
    if beat:
        argv.append("--beat")
    return argv


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
@click.option(
    "--serve",
    type=click.Choice(list(WSGI_TARGETS)),
    default="all",
    show_default=True,
    help="Only the media streams (/media/), only the rest, or all: two pools behind one proxy.",
)
@click.option(
    "--nice",
    default=0,
    show_default=True,
    type=click.IntRange(0, 19),
    help="Lower this pool's CPU priority by this much (os.nice). On a small machine, run the "
    "media pool at 10 so that streams cannot starve the API pool's revokes.",
)
def web(host: str, port: int, workers: int, threads: int, serve: str, nice: int) -> None:
    """Run the web app under gunicorn (production)."""
    _settings()
    if nice:
        os.nice(nice)  # inherited by gunicorn's arbiter and its workers
    os.execv(sys.executable, _gunicorn_argv(host, port, workers, threads, serve=serve))


@main.command()
@click.option("--concurrency", default=2, show_default=True, type=int)
@click.option(
    "--queues",
    default=None,
    help="Comma-separated queue names (default: both, with CR_QUEUE_PREFIX).",
)
@click.option(
    "--beat/--no-beat",
    default=False,
    show_default=True,
    help="Also run the scheduler (run exactly one scheduler per deployment).",
)
def worker(concurrency: int, queues: str | None, beat: bool) -> None:
    """Run a Celery worker (production: one per machine, as many machines as needed)."""
    _settings()
    os.execv(sys.executable, _worker_argv(concurrency, queues, beat))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--demo/--no-demo", default=True, show_default=True)
def up(host: str, port: int, demo: bool) -> None:
    """Run everything in one process tree: migrations, web app, one worker with the scheduler."""
    from app import migrate as migrations

    # Unless the operator says otherwise, the app's address (in receipts, links and e-mails)
    # is the one it is served at here.
    os.environ.setdefault("CR_PUBLIC_URL", f"http://{_reachable(host)}:{port}")
    settings = _settings()
    migrations.upgrade(settings.database_url, settings=settings)
    logins = []
    if demo:
        with app_context() as rt:
            logins = ensure_demo(rt)
    env = {**os.environ, "CR_INSTANCE_DIR": str(settings.instance_dir)}
    children = [
        subprocess.Popen(_gunicorn_argv(host, port, 1, 16, slow_clients=True), env=env),
        subprocess.Popen(_worker_argv(2, None, True), env=env),
    ]
    stopping = False

    def stop(signum, _frame):
        nonlocal stopping
        if stopping:
            return
        stopping = True
        click.echo("\nstopping ...", err=True)
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    url = f"http://{host}:{port}"
    if _wait_for(f"{url}/healthz", children, timeout=60):
        click.echo(f"\nconsent-replay is running at {url}/")
        for role, login, password in logins:
            click.echo(f"  {role:<15} login {login:<6} password {password}")
        click.echo("Press Ctrl-C to stop.\n")
    try:
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.5)
    finally:
        stop(signal.SIGTERM, None)
        deadline = time.monotonic() + 15
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=max(deadline - time.monotonic(), 0.1))
            if child.poll() is None:
                child.kill()
                child.wait()
    failed = [c for c in children if c.returncode not in (0, -signal.SIGTERM, -signal.SIGINT)]
    if failed and not stopping:
        raise click.ClickException("a part of consent-replay stopped unexpectedly")


def _reachable(host: str) -> str:
    """An address to reach a server bound to ``host`` (all interfaces: this machine's)."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - compared only


def _wait_for(url: str, children: list[subprocess.Popen], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(child.poll() is not None for child in children):
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.3)
    return False


# --- keys -------------------------------------------------------------------------------------


@main.group()
def keys() -> None:
    """Key-encryption keys: status, rotation, retirement."""


@keys.command("status")
def keys_status() -> None:
    """KEK versions and how many data keys each one wraps."""
    from app.services import keys as key_service

    with app_context() as rt:
        for row in key_service.status(rt.db, rt.kek):
            mark = "*" if row["current"] else " "
            click.echo(
                f"{mark} v{row['version']:<4} {row['state']:<10} "
                f"{row['data_keys']:>8} data keys  created {row['created_at']}"
            )


@keys.command("rotate")
@click.option("--batch-size", default=500, show_default=True, type=int)
def keys_rotate(batch_size: int) -> None:
    """Add a KEK version and rewrap every live data key under it."""
    from sqlalchemy import func, select

    from app.models import DataKey
    from app.services import keys as key_service

    with app_context() as rt:
        with rt.db.session() as session:
            total = session.scalar(select(func.count()).select_from(DataKey)) or 0
        with click.progressbar(length=total, label="rewrapping data keys") as bar:
            report = key_service.rotate(
                rt.db, rt.kek, actor_id=None, batch_size=batch_size, progress=bar.update
            )
    click.echo(
        f"KEK v{report.new_version} is current; rewrapped {report.rewrapped} data keys"
        + (f" ({report.skipped} shredded meanwhile)" if report.skipped else "")
    )
    click.echo("Run `consent-replay keys retire` to destroy the versions no key uses any more.")


@keys.command("retire")
def keys_retire() -> None:
    """Destroy every KEK version that wraps no live data key."""
    from app.services import keys as key_service

    with app_context() as rt:
        destroyed = key_service.retire(rt.db, rt.kek, actor_id=None)
    if destroyed:
        click.echo("destroyed KEK versions: " + ", ".join(f"v{v}" for v in destroyed))
    else:
        click.echo("nothing to retire")


# --- receipts ---------------------------------------------------------------------------------


@main.group()
def receipts() -> None:
    """Consent receipts and deletion certificates."""


def _load_jwks(source: str | None) -> dict:
    if source is None:
        import crypto

        settings = _settings()
        return crypto.FileKeyring(settings.keyring_path).jwks()
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=10) as response:  # noqa: S310 - user's URL
            return json.load(response)
    return json.loads(Path(source).read_text())


@receipts.command("verify")
@click.argument("token")
@click.option(
    "--jwks",
    "jwks_source",
    metavar="FILE|URL",
    help="Where the public keys are (default: this deployment's keyring).",
)
@click.option(
    "--online",
    is_flag=True,
    help="Also ask the issuer whether the consent still holds (a receipt verifies offline "
    "until its end date even after it was withdrawn).",
)
@click.option(
    "--server",
    metavar="URL",
    help="With --online: the service to ask (default: the receipt's issuer, its iss claim).",
)
def receipts_verify(token: str, jwks_source: str | None, online: bool, server: str | None) -> None:
    """Verify a receipt or certificate offline and print its claims; --online also asks the
    issuer for the receipt's current status."""
    import jwt

    import crypto

    token = token.strip()
    if token == "-":  # noqa: S105 - "-" means read the token from stdin
        token = click.get_text_stream("stdin").read().strip()
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise click.ClickException("not a JWT: expected three base64url parts") from None
    typ = header.get("typ")
    required = {
        crypto.RECEIPT_TYP: crypto.RECEIPT_CLAIMS,
        crypto.CERTIFICATE_TYP: crypto.CERTIFICATE_CLAIMS,
    }.get(typ)
    if required is None:
        raise click.ClickException(
            f"unknown token type {typ!r}: expected {crypto.RECEIPT_TYP} or {crypto.CERTIFICATE_TYP}"
        )
    try:
        jwks = _load_jwks(jwks_source)
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot read the JWKS: {exc}") from None
    try:
        claims = crypto.verify(token, jwks, typ=typ, required=required)
    except crypto.TokenError as exc:
        raise click.ClickException(f"INVALID ({exc.reason}): {exc}") from None
    kind = "consent receipt" if typ == crypto.RECEIPT_TYP else "deletion certificate"
    click.echo(f"valid {kind}, signed by key {header.get('kid')}")
    click.echo(json.dumps(claims, indent=2, sort_keys=True))
    if online:
        if typ != crypto.RECEIPT_TYP:
            raise click.ClickException("--online checks consent receipts, not certificates")
        _print_online_status(token, server or str(claims.get("iss") or ""))


def _print_online_status(token: str, server: str) -> None:
    """POST the receipt to the issuer's /api/v1/receipts/status and say what it answers."""
    if not server.startswith(("http://", "https://")):
        raise click.ClickException("no issuer URL to ask: give --server URL")
    request = urllib.request.Request(  # noqa: S310 - the receipt's issuer or the user's URL
        f"{server.rstrip('/')}/api/v1/receipts/status",
        data=json.dumps({"receipt": token}).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
            answer = json.load(response)
    except urllib.error.HTTPError as exc:
        try:
            message = json.load(exc)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {exc.code}"
        raise click.ClickException(f"the issuer refused the question: {message}") from None
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot reach the issuer at {server}: {exc}") from None
    status = answer.get("status")
    if status == "active":
        click.echo(f"online: consent is active (checked {answer.get('checked_at')})")
        return
    raise click.ClickException(
        f"online: the signature is valid, but this consent has ended: {status}"
        + (f" at {answer['ended_at']}" if answer.get("ended_at") else "")
    )


# --- audit ------------------------------------------------------------------------------------


@main.group()
def audit() -> None:
    """The hash-chained audit log."""


@audit.command("verify")
def audit_verify() -> None:
    """Check the audit chain and name the first broken link."""
    from app.services import audit as audit_service

    with app_context() as rt, rt.db.session() as session:
        verdict = audit_service.verify_chain(session)
    if verdict.ok:
        click.echo(f"audit chain ok: {verdict.events} events, head {verdict.head_hash}")
        return
    raise click.ClickException(
        f"audit chain broken at event {verdict.broken_seq}: {verdict.reason}"
    )


if __name__ == "__main__":  # pragma: no cover
    main()
