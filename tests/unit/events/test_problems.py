"""Problem details for a database that is away: 503 with Retry-After, not a 500."""

from __future__ import annotations

import httpx
import pytest
from asyncpg import exceptions as pg
from fastapi import FastAPI

from clr_events.service import problems


def app_raising(error: Exception) -> FastAPI:
    app = FastAPI()
    problems.install(app)

    @app.get("/read")
    async def read() -> None:
        raise error

    return app


async def get(app: FastAPI) -> httpx.Response:
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get("/read")


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"),
        ConnectionResetError(104, "Connection reset by peer"),
        pg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        pg.CannotConnectNowError("the database system is starting up"),
        pg.AdminShutdownError("terminating connection due to administrator command"),
        pg.TooManyConnectionsError("sorry, too many clients already"),
        # a pooled connection PostgreSQL dropped mid-operation, met again by the next request
        pg.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
        pg.InterfaceError(
            "cannot call Transaction.rollback(): the underlying connection is closed"
        ),
    ],
    ids=lambda error: type(error).__name__,
)
async def test_a_database_that_is_away_is_a_503_to_retry(error: Exception) -> None:
    answer = await get(app_raising(error))
    assert answer.status_code == 503
    assert answer.headers["content-type"] == problems.MEDIA_TYPE
    assert answer.headers["retry-after"] == str(problems.RETRY_AFTER_SECONDS)
    body = answer.json()
    assert body["type"] == problems.UNAVAILABLE
    assert body["status"] == 503
    assert body["instance"] == "/read"
    assert "retry" in body["detail"]


async def test_an_argument_asyncpg_refuses_is_a_500_not_a_503() -> None:
    refused = pg._base.DataError("invalid input for query argument $1")  # InterfaceError too
    assert isinstance(refused, pg.InterfaceError)
    answer = await get(app_raising(refused))
    assert answer.status_code == 500
    assert "retry-after" not in answer.headers


async def test_any_other_error_stays_a_500_that_says_nothing_inside() -> None:
    answer = await get(app_raising(RuntimeError("secret")))
    assert answer.status_code == 500
    assert answer.json()["detail"] == "see the service log"
