"""The request body limit (an ASGI middleware) and the event size limit of commands."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request

from clr_events.service import problems
from clr_events.service.commands import check_event_size
from clr_events.service.limits import BodyLimit, LimitSettings
from clr_events.service.problems import ProblemError
from clr_events.store.base import NewEvent

LIMIT = 1000


@pytest.fixture
def app() -> FastAPI:
    app = FastAPI()
    problems.install(app)
    app.add_middleware(BodyLimit, max_bytes=LIMIT)
    app.state.bodies_read = 0

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        app.state.bodies_read += 1
        return {"length": len(await request.body())}

    return app


async def post(app: FastAPI, content: bytes | AsyncIterator[bytes]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post("/echo", content=content)


async def chunked(body: bytes, size: int = 100) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def test_a_body_up_to_the_limit_reaches_the_app_whole(app: FastAPI) -> None:
    declared = await post(app, b"x" * LIMIT)
    streamed = await post(app, chunked(b"y" * LIMIT))
    assert declared.json() == streamed.json() == {"length": LIMIT}
    assert app.state.bodies_read == 2


async def test_a_larger_body_is_413_and_never_reaches_the_app(app: FastAPI) -> None:
    declared = await post(app, b"x" * (LIMIT + 1))
    streamed = await post(app, chunked(b"y" * (10 * LIMIT)))
    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.headers["content-type"] == problems.MEDIA_TYPE
        assert response.json()["max_bytes"] == LIMIT
        assert f"at most {LIMIT} bytes" in response.json()["detail"]
    assert "content-length" not in streamed.request.headers
    assert app.state.bodies_read == 0


def test_the_limits_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert LimitSettings().max_body_bytes == 1024 * 1024
    assert LimitSettings().max_event_bytes == 256 * 1024
    monkeypatch.setenv("CLR_MAX_BODY_BYTES", "2048")
    monkeypatch.setenv("CLR_MAX_EVENT_BYTES", "4096")
    assert (LimitSettings().max_body_bytes, LimitSettings().max_event_bytes) == (2048, 4096)


def test_an_event_over_the_limit_is_refused_naming_it() -> None:
    data = {"parties": ["p" * 90]}
    metadata = {"actor": "a", "correlation_id": "c"}
    size = len(b'{"parties":["' + b"p" * 90 + b'"]}') + len(b'{"actor":"a","correlation_id":"c"}')
    event = NewEvent(type="AgreementSigned", data=data, metadata=metadata)

    check_event_size(event, max_bytes=size)
    with pytest.raises(ProblemError) as refused:
        check_event_size(event, max_bytes=size - 1)

    assert refused.value.status == 413
    assert refused.value.extensions["max_bytes"] == size - 1
    assert f"AgreementSigned event would take {size} bytes" in str(refused.value.detail)
