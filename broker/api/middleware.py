"""The HTTP half of error mapping, plus security headers on every response.

``BrokerError`` subclasses become ``{"error": code, "message": ...}`` with their status;
aiohttp's own HTTP errors (unknown route, wrong method, body too large) get the same JSON
shape; anything else is logged and answered with a bare 500 that reveals nothing.

This is also where every request is looked at before any handler runs: a declared body over
the limit is refused from its headers, and a client that goes away mid-request is not a
server error (status 499 in the metrics, no traceback).
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping

from aiohttp import hdrs, web

from broker.api.routing import Handler, is_json, json_response, parse_json, read_body
from broker.appkeys import SERVICES_KEY, SETTINGS_KEY
from broker.errors import BrokerError, Overloaded, PayloadTooLarge, RateLimited

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    417: "expectation_failed",
}

CLIENT_CLOSED_REQUEST = 499
"""Status recorded (never sent: nobody is listening) for a client that left mid-request."""

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
        check_declared_body(request)
        if request.body_exists:
            # Read and parse here, before any handler (or its auth check) runs: a body that
            # breaks the reader or the parser is a 400 on every route, present or future.
            raw = await read_body(request)
            if is_json(request):
                parse_json(raw)
        return await handler(request)
    except ConnectionError:
        # The client closed the connection while we read its body or wrote the answer.
        log.debug("client left during %s %s", request.method, request.path)
        return web.Response(status=CLIENT_CLOSED_REQUEST)
    except BrokerError as exc:
        response = json_response(exc.to_json(), status=exc.http_status)
        if isinstance(exc, RateLimited | Overloaded):
            response.headers["Retry-After"] = str(max(1, round(exc.retry_after)))
        if isinstance(exc, PayloadTooLarge):
            response.force_close()  # the rest of the body is never read
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


def check_declared_body(request: web.Request) -> None:
    """Refuse from the headers alone a body the broker would never read.

    Runs before the handler, so a declared ``Content-Length`` over the limit is answered at
    once instead of after the client has sent (or failed to send) it; ``expect_continue``
    (in routing) has already withheld the ``100 Continue`` for it.

    Raises:
        PayloadTooLarge: the declared length exceeds ``max_body_bytes``.
        web.HTTPExpectationFailed: an ``Expect`` other than ``100-continue``.
    """
    expect = request.headers.get(hdrs.EXPECT)
    if expect is not None and expect.lower() != "100-continue":
        raise web.HTTPExpectationFailed(reason="only Expect: 100-continue is supported")
    limit = request.app[SETTINGS_KEY].max_body_bytes
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(f"request body larger than {limit} bytes (Content-Length {length})")


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
    set_security_headers(response.headers)
    return response


def set_security_headers(headers: MutableMapping[str, str]) -> None:
    """Add the broker's security headers where the response has not set its own."""
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cache-Control", "no-store")
