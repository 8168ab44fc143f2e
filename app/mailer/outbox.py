"""The embedded default: every message an ``.eml`` file in the instance folder (mode 0600)."""

from __future__ import annotations

import os
import secrets
import time
from email.message import EmailMessage
from pathlib import Path

from app.mailer import MailError


class OutboxMailer:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, message: EmailMessage) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            name = f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(6)}.eml"
            tmp = self.folder / f".{name}.tmp"
            # Private from the first byte (it holds a sign-in link), then moved into place whole.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(message.as_bytes())
            os.replace(tmp, self.folder / name)
        except OSError as exc:
            raise MailError(f"outbox:{type(exc).__name__}") from None
