"""Each service's OpenAPI document, made to say every answer a route really gives.

FastAPI documents a route's success body and its own 422 validation error as plain JSON.
The services answer every error as RFC 9457 problem details, check bearer tokens in
dependencies FastAPI does not see as security, read ``Idempotency-Key`` from the raw
request, and stream or export some answers in other media types. ``install`` completes
the generated document from what each route depends on:

- every route: ``503`` (a dependency such as the database is away), except ``/healthz``;
- a route with parameters or a body: ``422`` invalid request, with the field ``errors``;
- a route with a body: ``400`` unreadable body, ``413`` body too large;
- a route with path parameters: ``404``;
- a route depending on an ``Actor`` (``auth.require``): the ``bearer`` security scheme
  (an HTTP bearer JWT), ``401`` and ``403``, and the roles in its description;
- a command (depending on a ``CommandContext``, ``commands.command``): all of that, plus
  the optional ``Idempotency-Key`` and ``X-Correlation-ID`` headers, ``400`` for a bad
  key, ``404`` (it names other records), ``409`` (changed concurrently, or a conflict),
  ``422`` (a labelling rule refused it, with ``violations``, or a reused key), and the
  ``Idempotent-Replayed`` header on its success answers;
- a route that reads ``Last-Event-ID`` streams ``text/event-stream``; a route whose path
  ends in a file extension (``/exports/labels.csv``) answers that file's media type.

Every error answer, those a route declares itself included, is ``application/problem+json``
with the ``Problem`` schema; a route's own descriptions and success answers are kept.
"""

from __future__ import annotations

import copy
import inspect
import mimetypes
from collections.abc import Callable, Iterator
from typing import Any, get_type_hints

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field

from clr_events.service.auth import Actor, Role
from clr_events.service.commands import CommandContext
from clr_events.service.problems import MEDIA_TYPE

BEARER = "bearer"
PROBLEM_REF = "#/components/schemas/Problem"
SSE_MEDIA_TYPE = "text/event-stream"
UNLESS_NEEDED = ("/healthz",)
"""Routes that never depend on the database (liveness), so never answer 503."""


class FieldError(BaseModel):
    """One invalid part of a request."""

    pointer: str = Field(description="JSON pointer into the request: /body/name, /query/on")
    message: str


class Violation(BaseModel):
    """One labelling rule a command breaks."""

    rule: str = Field(description="the rule, e.g. R13")
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem: every error answer of every service."""

    model_config = ConfigDict(extra="allow")

    type: str = Field("about:blank", description="a URI naming the kind of problem")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str | None = Field(None, description="what went wrong in this request")
    instance: str = Field(description="the path of the request")
    errors: list[FieldError] | None = Field(None, description="invalid request: every field")
    violations: list[Violation] | None = Field(None, description="refused by the rules")
    failing: dict[str, str] | None = Field(None, description="not ready: the failing work")


REASONS = {
    400: "The request cannot be read (a body that is not JSON, a bad Idempotency-Key)",
    401: "No bearer token, or one that is invalid or expired",
    403: "The token's actor holds none of the roles the route needs",
    404: "No such record",
    409: "Changed concurrently (read again and retry), or in conflict with a record",
    413: "The request body is too large",
    422: "The request is not valid, or the rules refuse it",
    503: "Not available now (the database is away): retry later",
}


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the completed document (built once, on first use)."""
    generate = app.openapi
    completed: dict[str, Any] | None = None

    def openapi() -> dict[str, Any]:
        nonlocal completed
        if completed is None:
            completed = complete(copy.deepcopy(generate()), app)
            app.openapi_schema = completed
        return completed

    app.openapi = openapi  # type: ignore[method-assign]


def complete(document: dict[str, Any], app: FastAPI) -> dict[str, Any]:
    """The generated ``document`` with every route's problems, security and media types."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem.pop("$defs", {}))
    for name, field in problem["properties"].items():  # absent, never null
        kinds = field.pop("anyOf", None)
        if kinds is not None:
            field.pop("default", None)
            problem["properties"][name] = {**field, **kinds[0]}
    schemas["Problem"] = problem
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    components.setdefault("securitySchemes", {})[BEARER] = {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A JWT from the registry's identity provider; its roles claim"
        " names what the actor may do (registry_admin holds every role).",
    }
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        for method in route.methods or ():
            operation = document.get("paths", {}).get(route.path_format, {}).get(method.lower())
            if operation is not None:
                _describe(operation, route)
    return document


def _describe(operation: dict[str, Any], route: RouteContext) -> None:
    guard = next(_guards(route.dependant), None)
    command = guard is not None and guard[0] is CommandContext
    body = "requestBody" in operation
    where = {(p["in"], p["name"].lower()) for p in operation.get("parameters", [])}
    path_params = any(place == "path" for place, _ in where)
    path = route.path_format or ""
    parameters = bool(where) or body
    responses: dict[str, Any] = operation.setdefault("responses", {})

    statuses: set[int] = set()
    if path not in UNLESS_NEEDED:
        statuses.add(503)
    if parameters or command:
        statuses.add(422)
    if body:
        statuses |= {400, 413}
    if path_params:
        statuses.add(404)
    if guard is not None:
        statuses |= {401, 403}
        operation["security"] = [{BEARER: []}]
        roles = _roles(guard[1])
        if roles:
            needs = ", ".join(role.value for role in roles)
            note = f"Needs a bearer token with one of the roles: {needs}."
            operation["description"] = f"{operation.get('description', '')}\n\n{note}".strip()
    if command:
        statuses |= {400, 404, 409}
        _add_command_headers(operation, responses)

    if ("header", "last-event-id") in where:
        _success_media_type(responses, SSE_MEDIA_TYPE)
    else:
        guessed, _ = mimetypes.guess_type(path)
        if guessed and guessed != "application/json":
            _success_media_type(responses, guessed, only_replacing="application/json")

    for needed in statuses:
        responses.setdefault(str(needed), {"description": REASONS[needed]})
    for status, answer in responses.items():
        if status[0] not in "45":
            continue
        answer["content"] = {MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}}
        if status == "422" and answer.get("description") == "Validation Error":
            answer["description"] = REASONS[422]
        if status == "401":
            answer.setdefault("headers", {})["WWW-Authenticate"] = {
                "description": "the scheme to authenticate with: Bearer",
                "schema": {"type": "string"},
            }
    operation["responses"] = dict(sorted(responses.items()))


def _add_command_headers(operation: dict[str, Any], responses: dict[str, Any]) -> None:
    parameters: list[dict[str, Any]] = operation.setdefault("parameters", [])
    named = {param.get("name", "").lower() for param in parameters}
    if "idempotency-key" not in named:
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Retry safely: the first result for a key is stored and"
                " returned again for the same request; another request with it is refused.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 200},
            }
        )
    if "x-correlation-id" not in named:
        parameters.append(
            {
                "name": "X-Correlation-ID",
                "in": "header",
                "required": False,
                "description": "Recorded on the events the command causes (default: a new id).",
                "schema": {"type": "string"},
            }
        )
    for status, answer in responses.items():
        if status.startswith("2"):
            answer.setdefault("headers", {})["Idempotent-Replayed"] = {
                "description": "true when this is the stored answer to an earlier request"
                " with the same Idempotency-Key",
                "schema": {"type": "string", "enum": ["true"]},
            }
            answer["headers"]["X-Command-ID"] = {
                "description": "the command's id: the causation id of every event it records",
                "schema": {"type": "string"},
            }


def _success_media_type(
    responses: dict[str, Any], media_type: str, only_replacing: str | None = None
) -> None:
    for status, answer in responses.items():
        declared = set(answer.get("content", {}))
        if status.startswith("2") and (only_replacing is None or declared <= {only_replacing}):
            answer["content"] = {media_type: {"schema": {"type": "string"}}}


def _guards(dependant: Dependant) -> Iterator[tuple[type, Callable[..., Any]]]:
    """The token checks among a route's dependencies: (what it returns, the dependency)."""
    for sub in dependant.dependencies:
        if sub.call is not None:
            returns = _returns(sub.call)
            if returns in (Actor, CommandContext):
                yield returns, sub.call
        yield from _guards(sub)


def _returns(call: Callable[..., Any]) -> Any:
    target = call if inspect.isroutine(call) else getattr(call, "__call__", call)  # noqa: B004
    try:
        return get_type_hints(target).get("return")
    except (NameError, TypeError):
        return None


def _roles(call: Callable[..., Any], depth: int = 2) -> tuple[Role, ...]:
    """The roles a token check asks for (``require(*roles)`` closes over them)."""
    try:
        captured = inspect.getclosurevars(call).nonlocals
    except TypeError:
        return ()
    roles = captured.get("roles")
    if isinstance(roles, tuple) and all(isinstance(role, Role) for role in roles):
        return roles
    if depth > 0:
        for value in captured.values():
            if callable(value):
                found = _roles(value, depth - 1)
                if found:
                    return found
    return ()
