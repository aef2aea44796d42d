"""Size limits of what a service accepts: request bodies and the events a command stores.

``CLR_MAX_BODY_BYTES`` (1 MiB by default) bounds a request body: ``BodyLimit`` answers
413 before the application reads a byte of a larger one, whether the client declared its
length or streams it chunked. ``CLR_MAX_EVENT_BYTES`` (256 KiB by default) bounds one
stored event, its data and metadata encoded as JSON: a unit of work refuses a larger
one (413) before anything is stored, so no relay ever meets an event Kafka would refuse
(a topic's ``max.message.bytes`` is about 1 MB by default).
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clr_events.service.problems import TOO_LARGE, event_too_large, problem_response

__all__ = ["TOO_LARGE", "BodyLimit", "LimitSettings", "settings", "too_large"]
too_large = event_too_large


class LimitSettings(BaseSettings):
    """``CLR_MAX_BODY_BYTES`` and ``CLR_MAX_EVENT_BYTES``."""

    model_config = SettingsConfigDict(env_prefix="CLR_")

    max_body_bytes: int = Field(1024 * 1024, ge=1)
    max_event_bytes: int = Field(256 * 1024, ge=1)


@lru_cache(maxsize=1)
def settings() -> LimitSettings:
    """The limits of this process, read from the environment once."""
    return LimitSettings()


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` is answered 413, unread by the app.

    The body is read ahead, counting bytes as they arrive, and handed to the application
    only when it has ended within the limit; a larger declared ``Content-Length`` is
    refused without reading at all.
    """

    def __init__(self, app: ASGIApp, max_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes if max_bytes is not None else settings().max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on with its body read, or answer 413."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        read: list[Message] = []
        size = 0
        while True:
            message = await receive()
            read.append(message)
            if message["type"] != "http.request":
                break  # the client went away: let the application see it
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return read.pop(0) if read else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            Request(scope),
            413,
            "Request body too large",
            f"a request body may hold at most {self.max_bytes} bytes",
            type_=TOO_LARGE,
            max_bytes=self.max_bytes,
        )
        await response(scope, receive, send)
