"""The OpenAPI document ``create_app`` publishes says every answer a route gives."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel

from clr_events.observability.metrics import Families
from clr_events.pg import Pool
from clr_events.service.auth import Actor, Role, require
from clr_events.service.commands import CommandContext, Id, command
from clr_events.service.runtime import create_app

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


class Idle:
    """A background that is never started: the document needs none."""

    failing: dict[str, str] = {}

    @property
    def pool(self) -> Pool:
        raise AssertionError("not started")

    async def start(self) -> None:
        """Nothing to start."""

    async def stop(self) -> None:
        """Nothing to stop."""

    async def metrics(self) -> Families:
        return Families()

    async def unready(self) -> dict[str, str]:
        return {}


class Body(BaseModel):
    on: date


router = APIRouter()


@router.post("/things/{thing_id}/changes", status_code=201)
async def change(
    thing_id: Id, body: Body, ctx: Annotated[CommandContext, Depends(command(Role.ASSESSOR))]
) -> JSONResponse:
    """Change a thing."""
    return JSONResponse({}, 201)


@router.get("/things/{thing_id}/secrets")
async def secrets(
    thing_id: Id, actor: Annotated[Actor, Depends(require(Role.AUDITOR, Role.LABELLING_BOARD))]
) -> dict[str, Any]:
    return {}


@router.get("/things")
async def things(limit: int = 10) -> dict[str, Any]:
    return {}


@router.get("/things/newest", responses={409: {"description": "Two are newest"}})
async def newest() -> dict[str, Any]:
    return {}


@router.get("/things.csv")
async def export() -> Response:
    return Response("a,b\r\n", media_type="text/csv")


@router.get("/stream", response_class=StreamingResponse)
async def stream(
    request: Request, last_event_id: Annotated[str | None, Header()] = None
) -> StreamingResponse:
    raise AssertionError("not called")


def document() -> dict[str, Any]:
    app = create_app(Idle(), title="t", description="d", routers=[router])
    result: dict[str, Any] = app.openapi()
    return result


def test_every_error_is_a_problem_and_fastapis_validation_schema_is_gone() -> None:
    doc = document()
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert schemas["Problem"]["required"] == ["title", "status", "instance"]
    for path in doc["paths"].values():
        for operation in path.values():
            for status, answer in operation["responses"].items():
                if int(status) >= 400:
                    assert answer["content"] == PROBLEM, (operation["operationId"], status)


def test_a_command_needs_a_token_takes_a_key_and_lists_its_problems() -> None:
    operation = document()["paths"]["/things/{thing_id}/changes"]["post"]
    assert operation["security"] == [{"bearer": []}]
    assert "assessor" in operation["description"]
    assert set(operation["responses"]) == {
        "201", "400", "401", "403", "404", "409", "413", "422", "503"
    }  # fmt: skip
    headers = {p["name"]: p for p in operation["parameters"] if p["in"] == "header"}
    assert headers["Idempotency-Key"]["required"] is False
    assert headers["Idempotency-Key"]["schema"]["maxLength"] == 200
    assert "Idempotent-Replayed" in operation["responses"]["201"]["headers"]
    assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]


def test_the_bearer_scheme_is_declared_once() -> None:
    schemes = document()["components"]["securitySchemes"]
    assert schemes == {"bearer": schemes["bearer"]}
    assert schemes["bearer"]["type"] == "http"
    assert schemes["bearer"]["scheme"] == "bearer"
    assert schemes["bearer"]["bearerFormat"] == "JWT"


def test_a_read_with_roles_needs_a_token_but_no_key() -> None:
    operation = document()["paths"]["/things/{thing_id}/secrets"]["get"]
    assert operation["security"] == [{"bearer": []}]
    assert "auditor, labelling_board" in operation["description"]
    assert set(operation["responses"]) == {"200", "401", "403", "404", "422", "503"}
    assert all(p["in"] == "path" for p in operation["parameters"])


def test_a_public_read_has_no_security_and_only_its_own_problems() -> None:
    paths = document()["paths"]
    assert "security" not in paths["/things"]["get"]
    assert set(paths["/things"]["get"]["responses"]) == {"200", "422", "503"}
    assert set(paths["/healthz"]["get"]["responses"]) == {"200"}
    assert set(paths["/readyz"]["get"]["responses"]) == {"200", "503"}


def test_exports_and_event_streams_name_their_media_types() -> None:
    paths = document()["paths"]
    assert list(paths["/things.csv"]["get"]["responses"]["200"]["content"]) == ["text/csv"]
    assert list(paths["/stream"]["get"]["responses"]["200"]["content"]) == ["text/event-stream"]
    assert list(paths["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain"]


def test_an_error_a_route_declares_itself_keeps_its_words_and_becomes_a_problem() -> None:
    answer = document()["paths"]["/things/newest"]["get"]["responses"]["409"]
    assert answer == {"description": "Two are newest", "content": PROBLEM}
