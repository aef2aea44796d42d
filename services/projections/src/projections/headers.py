"""Security headers on every response, and ``Cache-Control`` with an ``ETag`` on public GETs.

An ASGI middleware (not Starlette's ``BaseHTTPMiddleware``, which would buffer the
Server-Sent Events stream). It sits inside the gzip middleware, so it hashes the
uncompressed body; the ``ETag`` is weak, as one tag then stands for both encodings of
the same content (RFC 9110, 8.8.1).
"""

from __future__ import annotations

import hashlib

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self';"
    " frame-ancestors 'none'; base-uri 'none'"
)
"""Pages: no script at all, styles and images from here only, never framed."""
DOCS_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline' https://cdn.jsdelivr.net;"
    " style-src 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com;"
    " font-src https://fonts.gstatic.com; img-src 'self' data: https:; connect-src 'self';"
    " worker-src blob:; frame-ancestors 'none'; base-uri 'none'"
)
"""The generated API documentation (Swagger UI, ReDoc): their scripts from their CDN.
It shows the OpenAPI description only, never stored data."""
DOCS = ("/docs", "/redoc")
UNCACHED = (
    "/api/feed/stream",
    "/healthz",
    "/readyz",
    "/metrics",
    "/read-models",
    "/webhooks",
)
"""Live answers: the stream, health, the operations' figures, the webhook admin API."""


def security_headers(path: str) -> dict[str, str]:
    """The security headers of a response to ``path``."""
    return {
        "Content-Security-Policy": DOCS_POLICY if path.startswith(DOCS) else PAGE_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }


def etag_of(body: bytes) -> str:
    """A weak entity tag over the (uncompressed) body."""
    return f'W/"{hashlib.sha256(body).hexdigest()[:32]}"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` value matches ``etag`` (weak comparison)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(t.strip().removeprefix("W/") == bare for t in if_none_match.split(","))


class PublicHeaders:
    """Security headers on every response; on a successful public GET also
    ``Cache-Control: public, max-age`` and an ``ETag``, with ``If-None-Match`` answered 304.
    """

    def __init__(self, app: ASGIApp, *, max_age: int) -> None:
        self.app = app
        self.cache_control = f"public, max-age={max_age}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        secure = security_headers(path)
        if scope["method"] != "GET" or path.startswith(UNCACHED):

            async def send_secured(message: Message) -> None:
                if message["type"] == "http.response.start":
                    MutableHeaders(scope=message).update(secure)
                await send(message)

            await self.app(scope, receive, send_secured)
            return
        await _Conditional(
            self.app, secure, self.cache_control, Headers(scope=scope).get("if-none-match")
        )(scope, receive, send)


class _Conditional:
    """One GET: its body buffered, tagged, and answered 304 when the client has it."""

    def __init__(
        self, app: ASGIApp, secure: dict[str, str], cache_control: str, if_none_match: str | None
    ) -> None:
        self.app = app
        self.secure = secure
        self.cache_control = cache_control
        self.if_none_match = if_none_match
        self.start: Message | None = None
        self.passthrough = False
        self.body = bytearray()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def buffered(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.update(self.secure)
                streamed = headers.get("content-type", "").startswith("text/event-stream")
                if message["status"] != 200 or streamed or "etag" in headers:
                    # errors, streams, and static files (tagged already) go through
                    if message["status"] == 200 and not streamed:
                        headers.setdefault("Cache-Control", self.cache_control)
                    self.passthrough = True
                    await send(message)
                else:
                    self.start = message
                return
            if self.passthrough or message["type"] != "http.response.body" or self.start is None:
                await send(message)
                return
            self.body += message.get("body", b"")
            if message.get("more_body", False):
                return
            await self._finish(send)

        await self.app(scope, receive, buffered)

    async def _finish(self, send: Send) -> None:
        assert self.start is not None
        etag = etag_of(bytes(self.body))
        headers = MutableHeaders(scope=self.start)
        headers["ETag"] = etag
        headers["Cache-Control"] = self.cache_control
        if matches(self.if_none_match, etag):
            self.start["status"] = 304
            for name in ("content-length", "content-type", "content-disposition"):
                if name in headers:
                    del headers[name]
            await send(self.start)
            await send({"type": "http.response.body", "body": b""})
            return
        await send(self.start)
        await send({"type": "http.response.body", "body": bytes(self.body)})
