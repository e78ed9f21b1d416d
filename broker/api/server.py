"""How the broker is served: the access log, the connection handler and the runner.

Three things aiohttp does by default do not fit a broker that holds tokens and faces the
internet, and each is replaced here, in the one place every runner of the broker goes through:

* Its access log writes the whole request line, query string included, so a token a client
  put in a URL lands in the log. ``PathAccessLogger`` writes the path only.
* Its parser refusals (over-long lines, bad methods, NULs, bad chunking) are answered in plain
  text without the security headers and logged with a traceback at ERROR, so anyone can fill
  the error log. ``BrokerRequestHandler`` answers them in the API's JSON error shape, with the
  headers, and logs one line at INFO.
* It has no timeout for reading a request head: it only closes a connection that has not
  delivered a complete request within its keep-alive timeout, 3630 s by default. The broker
  sets that timeout to ``request_header_timeout`` (``http_handler_args``), which bounds both
  a half-sent request head and an idle keep-alive connection.

``create_app`` passes ``http_handler_args`` to the application, so any runner (pytest-aiohttp's
test server, ``web.run_app``) logs paths only and times out heads; ``BrokerRunner`` adds the
JSON refusals and the count of open connections, and is what ``rsb serve`` uses.
"""

from __future__ import annotations

import logging
import resource
from http import HTTPStatus
from typing import Any

from aiohttp import http_exceptions, web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_protocol import RequestHandler

from broker.api.middleware import set_security_headers
from broker.api.routing import json_response
from broker.appkeys import SERVICES_KEY
from broker.settings import Settings

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_SECONDS = 10.0
"""How long a stopping broker waits for requests still being handled after telling peers 1001."""

# What a refused request is told, by the parser's exception: fixed texts, never the parser's
# own message, which quotes the offending bytes (a request line may carry a token).
_REFUSALS: tuple[tuple[type[Exception], str], ...] = (
    (http_exceptions.LineTooLong, "request line or header too long"),
    (http_exceptions.BadHttpMethod, "unknown or malformed HTTP method"),
    (http_exceptions.InvalidURLError, "malformed request target"),
    (http_exceptions.BadStatusLine, "malformed request line"),
    (http_exceptions.InvalidHeader, "malformed header"),
    (http_exceptions.TransferEncodingError, "malformed chunked body"),
    (http_exceptions.ContentLengthError, "malformed Content-Length"),
    (http_exceptions.PayloadEncodingError, "malformed body encoding"),
)


def refusal_text(exc: BaseException | None) -> str:
    """The fixed, client-safe description of why aiohttp's parser refused a request."""
    for kind, text in _REFUSALS:
        if isinstance(exc, kind):
            return text
    return "malformed HTTP request"


class PathAccessLogger(AbstractAccessLogger):
    """One access log line per request with the path only: never the query string.

    The format aiohttp is given (``access_log_format``) is ignored on purpose: every format
    it offers for the request (``%r``, ``%U``) includes the query string.
    """

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        # raw_path: percent-encoded, so a path cannot forge a line break in the log.
        self.logger.info(
            '%s "%s %s" %s %s %.3fs',
            request.remote,
            request.method,
            request.rel_url.raw_path,
            response.status,
            response.body_length,
            time,
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


def http_handler_args(settings: Settings) -> dict[str, Any]:
    """Connection handler options for every runner of the app (``Application(handler_args)``)."""
    return {
        "access_log_class": PathAccessLogger,
        # aiohttp closes a connection whose handler is still waiting for a complete request
        # head once this expires, counted from the connection or its previous response.
        "keepalive_timeout": settings.request_header_timeout.total_seconds(),
    }


class BrokerRequestHandler(RequestHandler):
    """aiohttp's connection handler, answering its own refusals like the API answers errors."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            # Only a bug reaches here (the error middleware maps everything a handler raises).
            self.logger.error("error handling request from %s", request.remote, exc_info=exc)
            body = {"error": "internal_error", "message": "internal error"}
        else:
            text = refusal_text(exc)
            # A malformed request is the client's problem: one line, no traceback, no quote.
            self.logger.info("refused a malformed request from %s: %s", request.remote, text)
            body = {"error": "bad_request", "message": text}
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot send the error")
        response = json_response(body, status=status if status >= 400 else HTTPStatus.BAD_REQUEST)
        set_security_headers(response.headers)
        response.force_close()
        return response


class BrokerServer(web.Server):
    """aiohttp's server, making ``BrokerRequestHandler`` connections."""

    def __call__(self) -> RequestHandler:
        return BrokerRequestHandler(self, loop=self._loop, **self._kwargs)


class BrokerRunner(web.AppRunner):
    """The runner of ``rsb serve`` (and of the tests that serve the broker like it does)."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        kwargs.setdefault("shutdown_timeout", SHUTDOWN_TIMEOUT_SECONDS)
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # starts the app: its services now exist
        server = BrokerServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            **plain._kwargs,
        )
        self.app[SERVICES_KEY].metrics.http_connections.set_function(
            lambda: len(server.connections)
        )
        return server


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft limit on open descriptors to the hard limit (each connection holds one).

    Returns:
        The soft limit before and after.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == resource.RLIM_INFINITY or soft >= hard:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:  # e.g. a container forbidding it: keep going
        log.warning("could not raise the open file limit from %d to %d: %s", soft, hard, exc)
        return soft, soft
    return soft, hard
