"""E-mail: enrolment and reset links reach only the person's own address, sent by the real
worker through a real SMTP server (aiosmtpd on loopback), retried while the server is down and
then recorded as failed where an admin sees it — without any request waiting or failing.

Also: the embedded default's ``.eml`` outbox (mode 0600), STARTTLS and implicit TLS with a
private CA, a refused address (not retried), and that a message holds a link and nothing else.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
import ssl
import stat
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import select

from app.mailer import MailError
from app.mailer.smtp import SmtpMailer
from app.models import AccountLink, OutgoingMail, User
from app.runtime import Runtime
from app.services import account_links, mail, users
from tests.app.browsing import PASSWORD, browser, csrf_of, sign_in, signed_in_browser
from tests.app.db_scan import text_columns_holding
from tests.conftest import WorkerProcess, app_for, create_person, free_port, wait_for

# The test's own SMTP server takes AUTH without TLS on loopback, on purpose (aiosmtpd warns).
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
SMTP_USER, SMTP_PASSWORD = "relay-user", "s3cret@pw/with:odd chars"
SENDER = "Coaching <coaching@example.org>"


@dataclass
class Inbox:
    """What the SMTP server received: (envelope sender, recipients, parsed message)."""

    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            self.logins.append((auth_data.login, auth_data.password))
            if (auth_data.login, auth_data.password) == (
                SMTP_USER.encode(),
                SMTP_PASSWORD.encode(),
            ):
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def to(self, address: str) -> list[EmailMessage]:
        return [message for _, rcpts, message in self.messages if address in rcpts]


def smtp_server(inbox: Inbox, port: int, **kwargs) -> Controller:
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=inbox.authenticate,
        auth_required=True,
        auth_require_tls=False,
        **kwargs,
    )
    controller.start()
    return controller


@pytest.fixture(scope="module")
def smtp(tmp_path_factory, stack_env, stack_app) -> Iterator[dict]:
    """A real SMTP server, an app and a real worker whose CR_SMTP_URL points at it."""
    inbox = Inbox()
    port = free_port()
    controller = smtp_server(inbox, port)
    quoted = SMTP_PASSWORD.replace("@", "%40").replace("/", "%2F").replace(":", "%3A")
    env = {
        **stack_env,
        "CR_SMTP_URL": f"smtp://{SMTP_USER}:{quoted.replace(' ', '%20')}@127.0.0.1:{port}",
        "CR_MAIL_FROM": SENDER,
        "CR_MAIL_RETRIES": "2",
        "CR_MAIL_RETRY_S": "1",
        "CR_QUEUE_PREFIX": f"m{uuid.uuid4().hex[:8]}-",
        "CR_INSTANCE_DIR": str(tmp_path_factory.mktemp("mail-instance")),
    }
    worker = WorkerProcess(env, tmp_path_factory.mktemp("mail-worker") / "worker.log")
    worker.start()
    state = {"inbox": inbox, "port": port, "controller": controller, "worker": worker}
    with app_for(env) as app:
        state["app"] = app
        state["rt"] = app.extensions["consent_replay"]
        yield state
    worker.stop()
    state["controller"].stop()


def link_in(message: EmailMessage) -> str:
    body = message.get_content()
    found = re.findall(r"https?://\S+/account/link#(crl_[A-Za-z0-9_-]+)", body)
    assert len(found) == 1, body
    return found[0]


def use_link(app, secret: str, **form):
    web = browser(app)
    page = web.get("/account/link")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    data = {"csrf_token": csrf_of(page.get_data(as_text=True)), "token": secret, **form}
    return web, web.post("/account/link", data=data)


def admin_creates(client, admin, address: str, name: str, role: str = "employee"):
    """The admin makes an account with an e-mail address (so an enrolment link is owed)."""
    login = f"{role[:3]}-{uuid.uuid4().hex[:8]}"
    return client.post(
        "/api/v1/admin/users",
        json={"login": login, "name": name, "role": role, "email": address},
        headers=admin.headers,
    )


def admin_of(rt):
    return create_person(rt, "admin", name=f"Admin {uuid.uuid4().hex[:6]}")


def failed_mail(rt, user_id: uuid.UUID) -> OutgoingMail | None:
    """The person's message once it is recorded as failed (for ``wait_for``)."""
    with rt.db.session() as session:
        row = session.scalar(select(OutgoingMail).where(OutgoingMail.user_id == user_id))
        return row if row is not None and row.status == "failed" else None


def test_an_enrolment_link_reaches_the_person_alone(smtp):
    app, rt, inbox = smtp["app"], smtp["rt"], smtp["inbox"]
    admin = admin_of(rt)
    address = f"new-{uuid.uuid4().hex[:6]}@example.org"
    name = f"Nina Newcomer {uuid.uuid4().hex[:4]}"
    started = time.monotonic()
    created = admin_creates(app.test_client(), admin, address, name, "coach")
    assert time.monotonic() - started < 5  # the request never waits for the mail server
    assert created.status_code == 201 and created.get_json()["enrolment_link_sent"] is True
    assert "link" not in created.get_data(as_text=True).replace("enrolment_link_sent", "")
    (message,) = wait_for(lambda: inbox.to(address), 60, "the enrolment e-mail")
    sender, recipients, _ = next(m for m in inbox.messages if m[2] is message)
    assert recipients == [address] and sender == "coaching@example.org"
    assert message["To"] == address and message["Subject"] == mail.SUBJECTS["enrolment"]
    secret = link_in(message)
    # A link and nothing else: exactly the template, no names (not even the admin's).
    link = account_links.url(rt.settings.public_url, secret)
    expected = mail.BODIES["enrolment"].format(link=link, hours=72)
    assert message.get_content().replace("\r\n", "\n").strip() == expected.strip()
    raw = message.as_string()
    assert name not in raw and admin.name not in raw
    assert (SMTP_USER.encode(), SMTP_PASSWORD.encode()) in inbox.logins
    # Stored only as its hash.
    assert text_columns_holding(rt, secret) == []
    with rt.db.session() as session:
        user = session.get(User, uuid.UUID(created.get_json()["id"]))
        link_row = session.scalar(select(AccountLink).where(AccountLink.user_id == user.id))
        assert link_row.token_hash == account_links._hash(secret)
        expires_in = link_row.expires_at - link_row.created_at
        assert expires_in == dt.timedelta(hours=72)
        row = session.scalar(select(OutgoingMail).where(OutgoingMail.user_id == user.id))
        assert (row.status, row.attempts, row.kind) == ("sent", 1, "enrolment")
        login = user.login

    # The person chooses a password and makes a token; the link then works no more.
    new_password = "my very own password"
    web, done = use_link(
        app, secret, password=new_password, password_confirm=new_password, make_token="on"
    )
    assert done.status_code == 200, done.get_data(as_text=True)[:500]
    token = re.search(r'value="(cr_[^"]+)"', done.get_data(as_text=True)).group(1)
    me = app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.get_json()["login"] == login
    assert web.get("/api/v1/me").get_json()["login"] == login  # and this browser is signed in
    _, again = use_link(
        app, secret, password="another password!", password_confirm="another password!"
    )
    assert again.status_code == 400 and "expired or was already used" in again.get_data(
        as_text=True
    )
    assert sign_in(browser(app), login, new_password).status_code == 302
    log = [e["action"] for e in web.get("/api/v1/me/security-log").get_json()["events"]]
    assert {"user.link_sent", "user.link_used", "user.password_changed", "user.token_created",
            "user.signed_in"} <= set(log)  # fmt: skip


def test_each_message_is_in_its_recipients_language(smtp):
    """SPEC §14: an e-mail goes out in the person's own language, whatever the language of the
    admin who caused it; without a choice of their own, in CR_DEFAULT_LANGUAGE (en here)."""
    app, rt, inbox = smtp["app"], smtp["rt"], smtp["inbox"]
    admin = admin_of(rt)
    received = {}
    for language in ("nb", None):
        person = create_person(rt, "employee", password=PASSWORD)
        address = f"lang-{language}-{uuid.uuid4().hex[:6]}@example.org"
        with rt.db.session() as session:
            user = session.get(User, person.id)
            user.email, user.language = address, language
        answered = app.test_client().post(
            f"/api/v1/admin/users/{person.id}/reset",
            headers={**admin.headers, "Accept-Language": "en"},
        )
        assert answered.status_code == 202
        (received[language],) = wait_for(lambda a=address: inbox.to(a), 60, "the reset e-mail")
    norwegian, english = received["nb"], received[None]
    assert norwegian["Subject"] == "Kontoen din i consent-replay er tilbakestilt"
    assert norwegian["Content-Language"] == "nb"
    body = norwegian.get_content()
    assert body.startswith("Hei,") and "Lenken virker én gang, i 4 timer." in body
    assert "Hello" not in body and "The link works" not in body
    link_in(norwegian)  # the link itself is untouched by the translation
    assert english["Subject"] == mail.SUBJECTS["reset"]
    assert english["Content-Language"] == "en"
    assert english.get_content().startswith("Hello,")


def test_a_reset_ends_everything_at_once_and_the_link_sets_a_new_password(smtp):
    app, rt, inbox = smtp["app"], smtp["rt"], smtp["inbox"]
    admin = admin_of(rt)
    person = create_person(rt, "employee", password=PASSWORD)
    address = f"reset-{uuid.uuid4().hex[:6]}@example.org"
    with rt.db.session() as session:
        session.get(User, person.id).email = address
    web, _ = signed_in_browser(app, person)
    answered = app.test_client().post(
        f"/api/v1/admin/users/{person.id}/reset", headers=admin.headers
    )
    assert answered.status_code == 202
    assert answered.get_json() == {"kind": "reset", "email": address, "queued": True}
    assert web.get("/api/v1/me").status_code == 401  # at once, before any mail
    (message,) = wait_for(lambda: inbox.to(address), 60, "the reset e-mail")
    assert message["Subject"] == mail.SUBJECTS["reset"]
    secret = link_in(message)
    fresh = "a brand new password"
    mismatch = use_link(app, secret, password=fresh, password_confirm=fresh + "!")[1]
    assert mismatch.status_code == 400  # a typo does not use the link up
    short = use_link(app, secret, password="short", password_confirm="short")[1]
    assert short.status_code == 400 and "12 characters" in short.get_data(as_text=True)
    new_web, done = use_link(app, secret, password=fresh, password_confirm=fresh)
    assert done.status_code == 200
    page = done.get_data(as_text=True)
    assert "Your account was reset" in page  # shown as the person signs in
    assert "cr_" not in page  # no token was asked for
    assert sign_in(browser(app), person.login, PASSWORD).status_code == 401
    assert sign_in(browser(app), person.login, fresh).status_code == 302
    events = new_web.get("/api/v1/me/security-log").get_json()["events"]
    reset = next(e for e in events if e["action"] == "user.reset")
    assert reset["by"] == f"{admin.name} (admin)"


def test_a_mail_server_that_is_down_is_retried_then_recorded_failed(smtp):
    app, rt, inbox = smtp["app"], smtp["rt"], smtp["inbox"]
    admin = admin_of(rt)
    smtp["controller"].stop()
    try:
        address = f"down-{uuid.uuid4().hex[:6]}@example.org"
        client = app.test_client()
        started = time.monotonic()
        made = admin_creates(client, admin, address, "Down", "employee")
        assert made.status_code == 201 and time.monotonic() - started < 5
        user_id = uuid.UUID(made.get_json()["id"])

        row = wait_for(lambda: failed_mail(rt, user_id), 90, "the message to be recorded as failed")
        assert row.attempts == 3  # the first try and CR_MAIL_RETRIES=2 retries
        assert row.error.startswith("smtp:")
        log = smtp["worker"].log_path.read_text()
        assert log.count(f"mail {row.id}: smtp:") == 2 and "retrying in" in log
        overview = client.get("/api/v1/admin/mail", headers=admin.headers).get_json()
        mine = next(f for f in overview["failures"] if f["id"] == str(row.id))
        assert mine["kind"] == "enrolment" and mine["attempts"] == 3
        assert overview["failed"] >= 1
        assert address not in str(overview)  # a count and a list, without content
        with rt.db.session() as session:  # no usable link is left behind
            assert session.scalar(select(AccountLink).where(AccountLink.user_id == user_id)) is None
        # Meanwhile every request went on as usual.
        assert client.get("/api/v1/admin/users", headers=admin.headers).status_code == 200
    finally:
        smtp["controller"] = smtp_server(inbox, smtp["port"])
    assert inbox.to(address) == []


def test_a_refused_address_is_not_retried(smtp):
    app, rt, inbox = smtp["app"], smtp["rt"], smtp["inbox"]
    admin = admin_of(rt)
    address = f"gone-{uuid.uuid4().hex[:6]}@example.org"
    inbox.refuse.add(address)
    made = admin_creates(app.test_client(), admin, address, "Gone", "employee")
    user_id = uuid.UUID(made.get_json()["id"])

    row = wait_for(
        lambda: failed_mail(rt, user_id), 60, "the refused message to be recorded as failed"
    )
    assert (row.attempts, row.error) == (1, "smtp:recipient_refused")


def test_the_embedded_default_writes_private_eml_files(stack_app, rt, worker):
    """Without CR_SMTP_URL each message is an .eml file in instance/outbox/ (mode 0600)."""
    outbox = rt.settings.instance_dir / "outbox"
    before = set(outbox.glob("*.eml")) if outbox.exists() else set()
    admin = admin_of(rt)
    address = f"eml-{uuid.uuid4().hex[:6]}@example.org"
    made = admin_creates(stack_app.test_client(), admin, address, "Eml", "employee")
    assert made.status_code == 201

    def written() -> list[Path]:
        new = set(outbox.glob("*.eml")) - before if outbox.exists() else set()
        return [p for p in new if address in p.read_text()]

    (path,) = wait_for(written, 60, "the .eml file")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(outbox.stat().st_mode) == 0o700
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert message["To"] == address
    secret = link_in(message)
    assert use_link(stack_app, secret, make_token="on")[1].status_code == 200
    assert not list(outbox.glob(".*.tmp"))


# --- the SMTP transport over TLS, with a private CA -------------------------------------------


def _message(to: str) -> EmailMessage:
    return mail.compose("reset", "https://coaching.example.org/account/link#crl_x", to=to,
                        sender=SENDER)  # fmt: skip


@pytest.mark.parametrize("mode", ["starttls", "smtps"])
def test_tls_with_a_private_ca(tmp_path, mode):
    authority = trustme.CA()  # a private CA, as a company's own relay would have
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    cert = tmp_path / "private-ca.pem"
    authority.cert_pem.write_to_path(str(cert))
    inbox, port = Inbox(), free_port()
    extra = (
        {"tls_context": context, "require_starttls": True}
        if mode == "starttls"
        # aiosmtpd cannot tell that an implicit-TLS connection is encrypted: allow AUTH on it.
        else {"ssl_context": context, "auth_require_tls": False}
    )
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, authenticator=inbox.authenticate,
        auth_required=True, server_hostname="127.0.0.1", **extra,
    )  # fmt: skip
    controller.start()
    try:
        quoted = SMTP_PASSWORD.replace("@", "%40").replace("/", "%2F").replace(":", "%3A")
        userinfo = f"{SMTP_USER}:{quoted.replace(' ', '%20')}"
        scheme, query = ("smtp", "starttls=true&") if mode == "starttls" else ("smtps", "")
        url = f"{scheme}://{userinfo}@127.0.0.1:{port}?{query}cafile={cert}&timeout=10"
        SmtpMailer(url).send(_message("tls@example.org"))
        assert [m["To"] for m in inbox.to("tls@example.org")] == ["tls@example.org"]
        # Without the private CA the relay's certificate is not trusted: nothing is sent.
        untrusted = url.replace(f"cafile={cert}&", "")
        with pytest.raises(MailError) as refused:
            SmtpMailer(untrusted).send(_message("tls-2@example.org"))
        assert refused.value.permanent is False
        assert inbox.to("tls-2@example.org") == []
        assert repr(SmtpMailer(url)) == f"SmtpMailer(127.0.0.1:{port})"  # no password
    finally:
        controller.stop()


def test_only_the_mail_id_goes_through_the_broker(rt):
    """The job carries the row's id only; the link's secret is made later, by the worker."""
    own = Runtime.from_settings(rt.settings)
    sent: list[tuple[str, tuple[str, ...]]] = []

    class Recorder:
        def send(self, name: str, *args: str) -> None:
            sent.append((name, args))

    own.jobs = Recorder()
    admin = admin_of(rt)
    person = create_person(rt, "coach")
    try:
        with own.db.session() as session:
            user = session.get(User, person.id)
            user.email = f"broker-{uuid.uuid4().hex[:6]}@example.org"
            row = mail.queue(session, own, user, "reset", actor_id=admin.id)
            users.reset(session, user, actor_id=admin.id)
        assert sent == [("worker.tasks.send_mail", (str(row.id),))]
        with own.db.session() as session:
            assert session.scalar(select(AccountLink).where(AccountLink.user_id == user.id)) is None
    finally:
        own.db.dispose()
