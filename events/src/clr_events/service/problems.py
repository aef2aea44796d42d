"""RFC 9457 problem details for every error a service returns."""

from __future__ import annotations

import logging
from typing import Any

from asyncpg import exceptions as pg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from clr_events.application.uow import EventTooLargeError, IdempotencyKeyReusedError
from clr_events.errors import ConcurrencyError
from clr_events.rules import ConflictError, NotFoundError, RuleViolationError

log = logging.getLogger(__name__)
unavailable_log = logging.getLogger(f"{__name__}.unavailable")
"""One line per request while the database is away: ``clr_events.outage.RepeatFilter``
lets the first of an outage through and counts the rest."""

MEDIA_TYPE = "application/problem+json"
RULE_VIOLATION = "urn:cluster-label-registry:problem:rule-violation"
INVALID_REQUEST = "urn:cluster-label-registry:problem:invalid-request"
CONCURRENT_CHANGE = "urn:cluster-label-registry:problem:concurrent-change"
TOO_LARGE = "urn:cluster-label-registry:problem:too-large"
UNAVAILABLE = "urn:cluster-label-registry:problem:unavailable"
RETRY_AFTER_SECONDS = 5

DATABASE_AWAY = (
    ConnectionError,
    pg.PostgresConnectionError,
    pg.CannotConnectNowError,
    pg.AdminShutdownError,
    pg.CrashShutdownError,
    pg.TooManyConnectionsError,
    pg.InternalClientError,
)
"""What a request meets while PostgreSQL is down, restarting or full: refused or dropped
connections, a server shutting down or not yet accepting, no connection slot left, a
pooled connection the server dropped mid-operation (asyncpg's "cannot switch to state";
``consumers.errors.is_transient`` counts it transient too)."""


class ProblemError(Exception):
    """An error with its HTTP status, raised anywhere in a request."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        type_: str = "about:blank",
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type_
        self.headers = headers
        self.extensions = extensions


def event_too_large(error: EventTooLargeError) -> ProblemError:
    """The 413 problem of an event over ``CLR_MAX_EVENT_BYTES``, naming the limit."""
    return ProblemError(413, "Event too large", str(error), type_=TOO_LARGE, max_bytes=error.limit)


def problem_response(
    request: Request,
    status: int,
    title: str,
    detail: str | None = None,
    *,
    type_: str = "about:blank",
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    """A problem+json response for this request."""
    body: dict[str, Any] = {"type": type_, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body["instance"] = request.url.path
    body.update(extensions)
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def install(app: FastAPI) -> None:
    """Map every error to a problem response."""

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, error: ProblemError) -> JSONResponse:
        return problem_response(
            request,
            error.status,
            error.title,
            error.detail,
            type_=error.type,
            headers=error.headers,
            **error.extensions,
        )

    @app.exception_handler(EventTooLargeError)
    async def _too_large(request: Request, error: EventTooLargeError) -> JSONResponse:
        return await _problem(request, event_too_large(error))

    @app.exception_handler(IdempotencyKeyReusedError)
    async def _key_reused(request: Request, error: IdempotencyKeyReusedError) -> JSONResponse:
        return problem_response(request, 422, "Idempotency key reused", str(error))

    @app.exception_handler(RuleViolationError)
    async def _refusal(request: Request, error: RuleViolationError) -> JSONResponse:
        return problem_response(
            request,
            422,
            "The command breaks the labelling rules",
            str(error),
            type_=RULE_VIOLATION,
            violations=[{"rule": v.rule, "message": v.message} for v in error.violations],
        )

    @app.exception_handler(NotFoundError)
    async def _not_found(request: Request, error: NotFoundError) -> JSONResponse:
        return problem_response(request, 404, "Not found", str(error))

    @app.exception_handler(ConflictError)
    async def _domain_conflict(request: Request, error: ConflictError) -> JSONResponse:
        return problem_response(request, 409, "Conflict", str(error))

    @app.exception_handler(ConcurrencyError)
    async def _conflict(request: Request, error: ConcurrencyError) -> JSONResponse:
        return problem_response(
            request,
            409,
            "Changed concurrently",
            f"{error}; read it again and retry",
            type_=CONCURRENT_CHANGE,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "pointer": "/" + "/".join(str(part) for part in item.get("loc", ())[1:]),
                "message": item.get("msg", ""),
            }
            for item in error.errors()
        ]
        return problem_response(
            request,
            422,
            "The request is not valid",
            "; ".join(f"{e['pointer']}: {e['message']}" for e in errors),
            type_=INVALID_REQUEST,
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return problem_response(
            request,
            error.status_code,
            str(error.detail) if error.status_code != 404 else "Not found",
            headers=dict(error.headers or {}),
        )

    async def _unavailable(request: Request, error: Exception) -> JSONResponse:
        unavailable_log.warning(
            "database unavailable on %s %s: %r", request.method, request.url.path, error
        )
        return problem_response(
            request,
            503,
            "Service unavailable",
            "the database cannot be reached now; retry later",
            type_=UNAVAILABLE,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    for away in DATABASE_AWAY:
        app.add_exception_handler(away, _unavailable)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, _error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem_response(request, 500, "Internal error", "see the service log")

    @app.exception_handler(pg.InterfaceError)
    async def _interface(request: Request, error: Exception) -> JSONResponse:
        # asyncpg's InterfaceError is a closed connection or a closing pool (the database
        # went away under the request: 503), or, when also a ValueError, an argument it
        # refused (a bug: 500)
        if isinstance(error, ValueError):
            return await _unexpected(request, error)
        return await _unavailable(request, error)
