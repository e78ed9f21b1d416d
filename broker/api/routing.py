"""Declarative API routes: one list feeds both aiohttp's router and the OpenAPI document.

Declaring each route once, with its request and response models, is what keeps
``/api/openapi.json`` matching the routes the broker really serves (a test checks both ways).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from broker.appkeys import SETTINGS_KEY
from broker.errors import BadRequest, PayloadTooLarge, ValidationFailed

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Auth = Literal["none", "staff", "customer"]
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class ApiRoute:
    method: str
    path: str
    handler: Handler
    summary: str
    auth: Auth = "staff"
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[int, ...] = ()
    tags: tuple[str, ...] = field(default_factory=tuple)


def add_routes(app: web.Application, routes: Sequence[ApiRoute]) -> None:
    for route in routes:
        app.router.add_route(route.method, route.path, route.handler)


async def read_model(request: web.Request, model: type[M]) -> M:
    """Parse and validate a JSON body: bad JSON is 400, wrong shape 422, too big 413.

    Raises:
        PayloadTooLarge: the body exceeds the configured limit.
        BadRequest: the body is not JSON or not a JSON object.
        ValidationFailed: fields are missing, unknown or of the wrong type.
    """
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise PayloadTooLarge(
            f"request body larger than {request.app[SETTINGS_KEY].max_body_bytes} bytes"
        ) from exc
    if request.content_type not in ("application/json", ""):
        raise BadRequest(f"expected application/json, got {request.content_type}")
    try:
        data = json.loads(raw or b"{}")  # no body: every field takes its default
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    # JSON mode: strict about types, yet reads enums and datetimes from their JSON text.
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        raise _validation_failed(exc) from exc


def read_query(request: web.Request, model: type[M]) -> M:
    """Validate query parameters (each given at most once) against ``model``."""
    params: dict[str, Any] = {}
    for key in request.query:
        values = request.query.getall(key)
        if len(values) > 1:
            raise ValidationFailed(f"query parameter {key!r} given more than once")
        params[key] = values[0]
    return validate(model, params)


def validate(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _validation_failed(exc) from exc


def _validation_failed(exc: ValidationError) -> ValidationFailed:
    problems = [
        {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "problem": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]
    summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems[:5])
    return ValidationFailed(f"invalid request: {summary}", problems=problems)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
