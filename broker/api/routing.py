"""Declarative API routes: one list feeds both aiohttp's router and the OpenAPI document.

Declaring each route once, with its request and response models, is what keeps
``/api/openapi.json`` matching the routes the broker really serves (a test checks both ways).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from aiohttp import hdrs, web
from pydantic import BaseModel, ValidationError

from broker.appkeys import CLOCK_KEY, SETTINGS_KEY
from broker.errors import BadRequest, PayloadTooLarge, RequestTimeout, ValidationFailed

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
        app.router.add_route(
            route.method, route.path, route.handler, expect_handler=expect_continue
        )


async def expect_continue(request: web.Request) -> None:
    """Send ``100 Continue`` only for a body the broker would read.

    aiohttp runs this before any middleware; its default answers ``100 Continue`` to any
    declared length. Withholding it here lets the error middleware refuse the request (413,
    417) with the JSON error shape and the security headers before the client sends a byte.
    """
    if request.version < (1, 1) or request.headers.get(hdrs.EXPECT, "").lower() != "100-continue":
        return
    length = request.content_length
    if length is not None and length > request.app[SETTINGS_KEY].max_body_bytes:
        return
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")


async def read_body(request: web.Request) -> bytes:
    """Read the whole body, once (aiohttp keeps it for later reads), within the body timeout.

    The error middleware calls this for every request that has a body, before the handler, so
    no route can forget these mappings; ``read_model`` calls it again for free.

    Raises:
        PayloadTooLarge: the body exceeds the configured limit.
        RequestTimeout: the body did not arrive within ``request_body_timeout``.
        BadRequest: the body cannot be decoded (a Content-Encoding it does not match, broken
            chunking).
    """
    settings = request.app[SETTINGS_KEY]
    try:
        async with asyncio.timeout(settings.request_body_timeout.total_seconds()):
            return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise PayloadTooLarge(f"request body larger than {settings.max_body_bytes} bytes") from exc
    except TimeoutError as exc:
        raise RequestTimeout(
            f"request body not received within {settings.request_body_timeout.total_seconds():g} s"
        ) from exc
    except web.RequestPayloadError as exc:  # e.g. "gzip" that is not gzip
        raise BadRequest(f"request body cannot be decoded: {exc}") from exc


def is_json(request: web.Request) -> bool:
    """Whether the body is to be read as JSON (the API's type, or none given)."""
    return request.content_type in ("application/json", "")


def parse_json(raw: bytes) -> Any:
    """Parse a JSON body; no body reads as ``{}`` (every field takes its default).

    Raises:
        BadRequest: not JSON, nested too deep for the parser, or an integer too long to convert.
    """
    try:
        return json.loads(raw or b"{}")
    except RecursionError as exc:
        raise BadRequest("body is not valid JSON: nested too deep") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc
    except ValueError as exc:  # Python refuses to convert integers over 4300 digits
        raise BadRequest("body has an integer with too many digits") from exc


async def read_model(request: web.Request, model: type[M]) -> M:
    """Read, parse and validate a JSON body.

    Bad JSON is 400, wrong shape 422, too big 413, too slow 408. The models see the app's
    clock as validation context (``now``), for bounds relative to the present.

    Raises:
        PayloadTooLarge: the body exceeds the configured limit.
        RequestTimeout: the body did not arrive within ``request_body_timeout``.
        BadRequest: the body cannot be decoded or parsed (``read_body``, ``parse_json``), is
            not a JSON object, or is not of type application/json.
        ValidationFailed: fields are missing, unknown or of the wrong type.
    """
    raw = await read_body(request)
    if not is_json(request):
        raise BadRequest(f"expected application/json, got {request.content_type}")
    if not isinstance(parse_json(raw), dict):
        raise BadRequest("body must be a JSON object")
    # JSON mode: strict about types, yet reads enums and datetimes from their JSON text.
    try:
        return model.model_validate_json(raw or b"{}", context={"now": request.app[CLOCK_KEY]()})
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
