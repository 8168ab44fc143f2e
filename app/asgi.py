"""The web app for the embedded default (``consent-replay up``): gunicorn's asyncio worker
in front of the WSGI app, so that slow clients cost a socket, not a thread.

gunicorn's threaded worker gives each connection a thread as soon as its first bytes arrive;
twenty clients that send half a request and wait stalled all sixteen (issue 12, finding 7).
Here the event loop reads what a client sends; the app's threads (a2wsgi's pool) get a
request only once it can run:

- a request whose body is small (up to ``request_limits.BODY_LIMIT``: everything but an
  upload) is read whole by the event loop first, each read bounded by ``CR_CLIENT_TIMEOUT_S``;
- a large body (an upload) is streamed to its thread as it arrives, each read bounded the
  same way, and at most half the threads stream bodies at once — the other half always serve
  everyone else.

Media and everything else run on two thread pools (two a2wsgi middlewares over the one
Flask app): however many streams play, a revoke or a page never waits behind them for a
thread.

a2wsgi hands the app's response on one block at a time (``send_queue_size=1``), so the
revocation check before each media write still decides every write.
"""

from __future__ import annotations

import asyncio
from typing import Any

from a2wsgi import WSGIMiddleware

from app.api.streaming import is_media_path
from app.config import load_settings
from app.factory import create_app
from app.request_limits import BODY_LIMIT

MEDIA_THREADS = 12
THREADS = 8  # the API and the pages


class SlowClients:
    """ASGI middleware: small bodies read before dispatch; large ones streamed, bounded."""

    def __init__(self, app: Any, *, timeout_s: float, streams: int, limit: int = BODY_LIMIT):
        self.app = app
        self.timeout_s = timeout_s
        self.limit = limit
        self.streams = streams
        self._slots: asyncio.Semaphore | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        length = headers.get(b"content-length")
        small = (length is not None and length.isdigit() and int(length) <= self.limit) or (
            length is None and b"transfer-encoding" not in headers
        )
        if small:
            return await self._buffered(scope, receive, send)
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.streams)
        async with self._slots:
            return await self.app(scope, self._timed(receive), send)

    def _timed(self, receive):
        async def timed():
            try:
                return await asyncio.wait_for(receive(), self.timeout_s)
            except TimeoutError:
                return {"type": "http.disconnect"}

        return timed

    async def _buffered(self, scope, receive, send) -> None:
        timed = self._timed(receive)
        chunks, more = [], True
        while more:
            message = await timed()
            if message["type"] == "http.disconnect":
                return None  # gone (or too slow) before the request was whole: nothing to run
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body, delivered = b"".join(chunks), False

        async def replay():
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


class MediaApart:
    """ASGI: ``/media/…`` to one app (its own thread pool), everything else to the other."""

    def __init__(self, media: Any, rest: Any) -> None:
        self.media = media
        self.rest = rest

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and is_media_path(scope["path"]):
            return await self.media(scope, receive, send)
        return await self.rest(scope, receive, send)


settings = load_settings()
_flask = create_app(settings)
app = SlowClients(
    MediaApart(
        media=WSGIMiddleware(_flask, workers=MEDIA_THREADS, send_queue_size=1),
        rest=WSGIMiddleware(_flask, workers=THREADS, send_queue_size=1),
    ),
    timeout_s=settings.client_timeout_s,
    streams=THREADS // 2,
)
