"""Sending e-mail: a small interface with two transports, chosen by ``CR_SMTP_URL``.

- :class:`~app.mailer.outbox.OutboxMailer` (the embedded default, no ``CR_SMTP_URL``): each
  message is written as an ``.eml`` file (mode 0600) in ``instance/outbox/``.
- :class:`~app.mailer.smtp.SmtpMailer`: an SMTP relay, ``smtp://`` (optionally upgraded with
  ``?starttls=true``) or ``smtps://`` (TLS from the first byte), with the account in the URL.

Only the worker sends (``worker.tasks.send_mail``): a request never waits on a mail server.
What a message says is composed by the domain (``app.services.mail``); a transport only
carries it.
"""

from __future__ import annotations

from email.message import EmailMessage
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from app.config import Settings


class MailError(Exception):
    """A message could not be handed over. ``kind`` names the failure without its text (it
    may quote the message); ``permanent`` failures (a refused address) are not retried."""

    def __init__(self, kind: str, *, permanent: bool = False) -> None:
        super().__init__(kind)
        self.kind = kind[:120]
        self.permanent = permanent


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> None:
        """Hand the message over, or raise :class:`MailError`."""


def create_mailer(settings: Settings) -> Mailer:
    if settings.smtp_url:
        from app.mailer.smtp import SmtpMailer

        return SmtpMailer(settings.smtp_url)
    from app.mailer.outbox import OutboxMailer

    return OutboxMailer(settings.instance_dir / "outbox")
