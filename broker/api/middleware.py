"""The HTTP half of error mapping, plus security headers on every response.

``BrokerError`` subclasses become ``{"error": code, "message": ...}`` with their status;
aiohttp's own HTTP errors (unknown route, wrong method, body too large) get the same JSON
shape; anything else is logged and answered with a bare 500 that reveals nothing.
"""

from __future__ import annotations

import logging

from aiohttp import web

from broker.api.routing import Handler, json_response
from broker.appkeys import SERVICES_KEY
from broker.errors import BrokerError, Overloaded, RateLimited

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}

# Pages are served from the broker itself; scripts only from files (no inline code), no
# framing (clickjacking a consent button), WebSockets only back to this origin.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; "
    "object-src 'none'"
)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BrokerError as exc:
        response = json_response(exc.to_json(), status=exc.http_status)
        if isinstance(exc, RateLimited | Overloaded):
            response.headers["Retry-After"] = str(max(1, round(exc.retry_after)))
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        response = json_response({"error": code, "message": exc.reason}, status=exc.status)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_response({"error": "internal_error", "message": "internal error"}, status=500)


@web.middleware
async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    route = request.match_info.route.resource
    name = route.canonical if route is not None else "unmatched"
    request.app[SERVICES_KEY].metrics.http_requests.labels(name, str(response.status)).inc()
    return response


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cache-Control", "no-store")
    return response
