"""E-mail to a person: what it says (a link, never content), queued and sent by the worker.

A request only records that a message is owed (``outgoing_mail``: to whom, what kind) and
sends the row's id to the worker after the commit. The worker makes what the message needs
(for an account link: a fresh single-use secret, stored only as its hash), composes it and
hands it to the transport of ``CR_SMTP_URL`` (``app.mailer``), retrying with backoff; after the
last retry the row is marked failed, where an admin sees it (a count and a list without
content). Nothing secret passes through the broker or sits in the database in the clear.

A message holds a link and no content: no title, purpose, comment, or the name of anyone else.
"""

from __future__ import annotations

import uuid
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app import jobs
from app.db import after_commit
from app.mailer import MailError
from app.models import AccountLink, OutgoingMail, User, utcnow
from app.services import account_links, audit, i18n
from app.services.errors import Conflict

if TYPE_CHECKING:
    from app.runtime import Runtime

ACCOUNT_KINDS = account_links.KINDS
# Notifications (SPEC §13): the page they link to, and nothing about what is there.
NOTIFICATION_PATHS = {
    "feedback_sent": "/feedback",
    "share_ready": "/coach",
    "share_ending": "/shares",
}
# In English here; each message goes out in its recipient's language (see compose).
SUBJECTS = {
    "enrolment": i18n.N_("Set up your consent-replay account"),
    "reset": i18n.N_("Your consent-replay account was reset"),
    "feedback_sent": i18n.N_("You have new coaching feedback"),
    "share_ready": i18n.N_("A recording was shared with you for coaching"),
    "share_ending": i18n.N_("A share of yours ends in two days"),
}
BODIES = {
    "enrolment": i18n.N_(
        "Hello,\n\n"
        "An account on consent-replay was made for you. Open this link to choose your password "
        "or make an API token:\n\n{link}\n\n"
        "The link works once, for {hours} hours. If you did not expect this message, ignore it."
    ),
    "reset": i18n.N_(
        "Hello,\n\n"
        "Your consent-replay account was reset: every session and API token of yours has ended. "
        "Open this link to choose a new password or make a new API token:\n\n{link}\n\n"
        "The link works once, for {hours} hours. If you did not ask for this, tell your "
        "representative; your account page lists who reset it and when."
    ),
    "feedback_sent": i18n.N_(
        "Hello,\n\n"
        "A coach has sent you feedback on consent-replay. Sign in to read it:\n\n{link}\n\n"
        "You can turn these messages off on your account page."
    ),
    "share_ending": i18n.N_(
        "Hello,\n\n"
        "A recording you shared for coaching on consent-replay ends in two days; then it is "
        "deleted. To keep it shared longer, share it again. Your shares:\n\n{link}\n\n"
        "You can turn these messages off on your account page."
    ),
    "share_ready": i18n.N_(
        "Hello,\n\n"
        "A recording was shared with you for coaching on consent-replay and is ready to watch. "
        "Sign in to see it:\n\n{link}\n\n"
        "You can turn these messages off on your account page."
    ),
}


def compose(kind: str, link: str, *, to: str, sender: str) -> EmailMessage:
    """The message for ``kind``: a subject, a link and when it ends — nothing else; in the
    current language (the worker sets the recipient's, see :func:`recipient_language`)."""
    message = EmailMessage()
    message["Subject"] = i18n.translate(SUBJECTS[kind])
    message["From"] = sender
    message["To"] = to
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1].rstrip(">"))
    message["Auto-Submitted"] = "auto-generated"
    hours = account_links.hours_valid(kind) if kind in ACCOUNT_KINDS else None
    message.set_content(i18n.translate(BODIES[kind]).format(link=link, hours=hours) + "\n")
    message["Content-Language"] = i18n.current()  # after set_content, which drops Content-*
    return message


def no_address_message(user: User) -> str:
    return i18n._(
        "%(name)s has no e-mail address, so no link can reach them. Add their address "
        "(possible until they first sign in), or ask the operator to run "
        "`consent-replay users reset %(login)s` on the server and hand the link over "
        "in person.",
        name=user.name,
        login=user.login,
    )


def queue(
    session: Session, rt: Runtime, user: User, kind: str, *, actor_id: uuid.UUID | None
) -> OutgoingMail:
    """Owe ``user`` a message of ``kind``; the worker sends it after the commit."""
    if kind in ACCOUNT_KINDS:
        account_links.refuse_provider_account(user)
    if not user.email:
        raise Conflict(no_address_message(user), code="no_email")
    if not user.active:
        raise Conflict(
            i18n._("%(name)s is deactivated; reactivate them first.", name=user.name),
            code="inactive",
        )
    row = OutgoingMail(user_id=user.id, kind=kind, status="queued")
    session.add(row)
    session.flush()
    if kind in ACCOUNT_KINDS:
        audit.append(
            session,
            "user.link_sent",
            actor_id=actor_id,
            detail={"user": str(user.id), "kind": kind},
        )
    mail_id = str(row.id)
    after_commit(session, lambda: rt.jobs.send(jobs.SEND_MAIL, mail_id))
    return row


def notify(session: Session, rt: Runtime, user: User, kind: str) -> OutgoingMail | None:
    """Owe ``user`` a notification of ``kind`` if they want e-mail and can get it; a person
    without an address (or who turned e-mail off) just is not notified."""
    if not (user.email and user.email_notifications and user.active):
        return None
    return queue(session, rt, user, kind, actor_id=None)


def _link(rt: Runtime, session: Session, user: User, kind: str) -> str:
    if kind in ACCOUNT_KINDS:
        secret = account_links.issue(session, user, kind)
        return account_links.url(rt.settings.public_url, secret)
    return rt.settings.public_url.rstrip("/") + NOTIFICATION_PATHS[kind]


def _prepare(rt: Runtime, mail_id: uuid.UUID, attempt: int) -> EmailMessage | None:
    """Make the message (and its link) in one transaction; None if there is nothing to send."""
    with rt.db.session() as session:
        row = session.get(OutgoingMail, mail_id)
        if row is None or row.status != "queued":
            return None
        row.attempts = attempt
        user = row.user
        if not user.active or not user.email:
            _fail(session, row, "no_recipient")
            return None
        link = _link(rt, session, user, row.kind)
        with i18n.language(recipient_language(rt, user)):
            return compose(row.kind, link, to=user.email, sender=rt.settings.mail_from)


def recipient_language(rt: Runtime, user: User) -> str:
    """The person's own choice of language, else the deployment's default (a worker has no
    browser to ask)."""
    return i18n.normalise(user.language) or rt.settings.default_language


def deliver(rt: Runtime, mail_id: uuid.UUID, attempt: int) -> str:
    """Send one owed message. Raises :class:`MailError` when the transport refused it."""
    message = _prepare(rt, mail_id, attempt)
    if message is None:
        return "skipped"
    rt.mailer.send(message)
    with rt.db.session() as session:
        row = session.get(OutgoingMail, mail_id)
        if row is not None:
            row.status, row.sent_at, row.error = "sent", utcnow(), None
    return "sent"


def _fail(session: Session, row: OutgoingMail, kind: str) -> None:
    row.status, row.failed_at, row.error = "failed", utcnow(), kind[:120]
    if row.kind in ACCOUNT_KINDS:
        # A link nobody received must not stay usable.
        session.execute(
            delete(AccountLink).where(
                AccountLink.user_id == row.user_id, AccountLink.used_at.is_(None)
            )
        )


def record_failure(rt: Runtime, mail_id: uuid.UUID, error: MailError | str) -> None:
    kind = error.kind if isinstance(error, MailError) else error
    with rt.db.session() as session:
        row = session.get(OutgoingMail, mail_id)
        if row is not None and row.status == "queued":
            _fail(session, row, kind)


def overview(session: Session, limit: int = 50) -> dict[str, Any]:
    """For admins: how many messages wait or failed, and which failed — without content.
    Account messages (which an admin started) name the person; any other kind does not."""
    counts = dict(
        session.execute(
            select(OutgoingMail.status, func.count())
            .where(OutgoingMail.status.in_(["queued", "failed"]))
            .group_by(OutgoingMail.status)
        ).all()
    )
    failed = session.scalars(
        select(OutgoingMail)
        .where(OutgoingMail.status == "failed")
        .order_by(OutgoingMail.failed_at.desc())
        .limit(limit)
    )
    return {
        "queued": int(counts.get("queued", 0)),
        "failed": int(counts.get("failed", 0)),
        "failures": [
            {
                "id": row.id,
                "kind": row.kind if row.kind in ACCOUNT_KINDS else "notification",
                "user_id": row.user_id if row.kind in ACCOUNT_KINDS else None,
                "login": row.user.login if row.kind in ACCOUNT_KINDS else None,
                "created_at": row.created_at,
                "failed_at": row.failed_at,
                "attempts": row.attempts,
                "error": row.error,
            }
            for row in failed
        ],
    }
