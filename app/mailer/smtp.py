"""An SMTP relay: ``smtp://user:password@host:587?starttls=true`` or ``smtps://host:465``.

Options in the query: ``starttls`` (upgrade a plain connection; refused if the server cannot),
``timeout`` (seconds, default 30), ``cafile`` (a private CA to trust for the relay's
certificate). Certificates are always verified.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from app.mailer import MailError

_TRUE = {"1", "true", "yes", "on"}


class SmtpMailer:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        self.implicit_tls = parts.scheme == "smtps"
        self.starttls = options.get("starttls", "").lower() in _TRUE
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (465 if self.implicit_tls else 587 if self.starttls else 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.timeout = int(options.get("timeout", "30"))
        self.cafile = options.get("cafile")

    def __repr__(self) -> str:  # never the password
        return f"SmtpMailer({self.host}:{self.port})"

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.cafile)

    def _connect(self) -> smtplib.SMTP:
        if self.implicit_tls:
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self._tls())
        client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        if self.starttls:
            client.starttls(context=self._tls())
        return client

    def send(self, message: EmailMessage) -> None:
        try:
            with self._connect() as client:
                if self.username is not None:
                    client.login(self.username, self.password or "")
                client.send_message(message)
        except smtplib.SMTPRecipientsRefused:
            raise MailError("smtp:recipient_refused", permanent=True) from None
        except smtplib.SMTPResponseException as exc:
            # 5xx is the server's final word on this message; 4xx is worth another try.
            raise MailError(f"smtp:{exc.smtp_code}", permanent=exc.smtp_code >= 500) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise MailError(f"smtp:{type(exc).__name__}") from None
