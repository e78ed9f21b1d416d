"""One exception tree for the whole broker, each class knowing its HTTP status and close code.

Handlers raise these; exactly two places translate them for clients: the aiohttp error
middleware (JSON body ``{"error": code, "message": ...}``) and the WebSocket wrapper
(``ws.close(code=close_code, message=...)``). Anything that is not a ``BrokerError`` becomes a
bare 500 / 1011 with no details, because an unexpected message may carry sensitive data.

Tree::

    BrokerError
    ├── BadRequest                400  4400
    │   ├── ValidationFailed      422  4422
    │   ├── PayloadTooLarge       413  4009
    │   ├── RequestTimeout        408  4400   (request body not received in time)
    │   └── UnsupportedVersion    400  4002
    ├── AuthError                 401  4001
    │   ├── InvalidCredentials    401  4001
    │   └── InvalidToken          401  4003
    │       ├── UnknownSigningKey
    │       ├── AccessRevoked     401  4006   (user disabled or key revoked while connected)
    │       └── TokenExpired      401  4007   (a live connection's token ran out)
    ├── Forbidden                 403  4004
    │   ├── ConfirmWindowClosed   403  4004   (customer confirm after the session's window)
    │   ├── ViewOnly              403  4004   (control asked of a screen shared from a browser)
    │   └── OriginRejected        403  4005
    ├── NotFound                  404  4404
    ├── Conflict                  409  4409
    │   ├── InvalidTransition     409  4100
    │   └── ConsentRequired       409  4101
    ├── CodeRejected              410  4102   (used, expired or unknown session code)
    ├── AgentOutdated             426  4105   (an agent older than ``min_agent_version``)
    ├── RateLimited               429  4029
    ├── Overloaded                503  1013   (too much password hashing waiting; Retry-After)
    └── RelayError                503  4200
        └── FlowControlClosed     503  4201
"""

from __future__ import annotations

from typing import Any, ClassVar

# The codes live with the protocol, where the agent, the viewer and the web pages read them too;
# re-exported so that ``from broker.errors import CloseCode`` names the one definition.
from rsb_protocol.close_codes import CLOSE_CODE_EXPLANATIONS as CLOSE_CODE_EXPLANATIONS
from rsb_protocol.close_codes import CloseCode as CloseCode
from rsb_protocol.close_codes import StandardCloseCode


class BrokerError(Exception):
    """Base of every error a client may see; carries a stable machine-readable ``code``."""

    http_status: ClassVar[int] = 500
    close_code: ClassVar[int] = StandardCloseCode.INTERNAL_ERROR
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class BadRequest(BrokerError):
    http_status = 400
    close_code = CloseCode.BAD_MESSAGE
    code = "bad_request"


class ValidationFailed(BadRequest):
    http_status = 422
    close_code = CloseCode.VALIDATION_FAILED
    code = "validation_failed"


class PayloadTooLarge(BadRequest):
    http_status = 413
    close_code = CloseCode.MESSAGE_TOO_BIG
    code = "payload_too_large"


class RequestTimeout(BadRequest):
    """The client did not send its request body within ``request_body_timeout``."""

    http_status = 408
    code = "request_timeout"


class UnsupportedVersion(BadRequest):
    http_status = 400
    close_code = CloseCode.UNSUPPORTED_VERSION
    code = "unsupported_version"


class AuthError(BrokerError):
    http_status = 401
    close_code = CloseCode.AUTH_FAILED
    code = "unauthorized"


class InvalidCredentials(AuthError):
    code = "invalid_credentials"


class InvalidToken(AuthError):
    close_code = CloseCode.INVALID_TOKEN
    code = "invalid_token"


class UnknownSigningKey(InvalidToken):
    """Signed by a key this process does not know: maybe rotated in by another process."""


class AccessRevoked(InvalidToken):
    """The connection's user was disabled, or its token's signing key revoked, while it was
    being opened or was open (``Hub.revoke``; docs/security.md, "Ending live connections")."""

    close_code = CloseCode.ACCESS_REVOKED
    code = "access_revoked"


class TokenExpired(InvalidToken):
    """A live connection reached its token's expiry (``Hub.tick``): a WebSocket is
    authenticated once, so it is closed rather than allowed to outlive the token."""

    close_code = CloseCode.TOKEN_EXPIRED
    code = "token_expired"


class Forbidden(BrokerError):
    http_status = 403
    close_code = CloseCode.FORBIDDEN
    code = "forbidden"


class ConfirmWindowClosed(Forbidden):
    """A customer token tried to confirm (solved / not solved) after its session's window."""

    code = "confirm_window_closed"


class ViewOnly(Forbidden):
    """Control was asked of a session whose screen comes from the customer's browser, which
    can only show: the customer must install the agent first."""

    code = "view_only"


class OriginRejected(Forbidden):
    close_code = CloseCode.ORIGIN_REJECTED
    code = "origin_rejected"


class NotFound(BrokerError):
    http_status = 404
    close_code = CloseCode.NOT_FOUND
    code = "not_found"


class Conflict(BrokerError):
    http_status = 409
    close_code = CloseCode.CONFLICT
    code = "conflict"


class InvalidTransition(Conflict):
    """An event the session state machine has no rule for; the state is left unchanged."""

    close_code = CloseCode.INVALID_TRANSITION
    code = "invalid_transition"


class ConsentRequired(Conflict):
    close_code = CloseCode.CONSENT_REQUIRED
    code = "consent_required"


class CodeRejected(BrokerError):
    """A session code that is unknown, expired or already used (deliberately indistinct)."""

    http_status = 410
    close_code = CloseCode.CODE_REJECTED
    code = "code_rejected"


class AgentOutdated(BrokerError):
    """An agent older than the broker accepts: the customer must download it again."""

    http_status = 426
    close_code = CloseCode.AGENT_OUTDATED
    code = "agent_outdated"


class RateLimited(BrokerError):
    http_status = 429
    close_code = CloseCode.RATE_LIMITED
    code = "rate_limited"

    def __init__(self, message: str, retry_after: float, **details: Any) -> None:
        super().__init__(message, **details)
        self.retry_after = retry_after


class Overloaded(BrokerError):
    """Refused at once because a bounded queue is full (password hashing, see ``auth/kdf.py``).

    Answering now with a Retry-After is the point: waiting in an unbounded queue would turn a
    burst of logins into a stall for every client. Close code 1013 is RFC 6455's "Try Again
    Later"; no private code is needed since no WebSocket waits on the KDF.
    """

    http_status = 503
    close_code = StandardCloseCode.TRY_AGAIN_LATER
    code = "overloaded"

    def __init__(self, message: str, retry_after: float, **details: Any) -> None:
        super().__init__(message, **details)
        self.retry_after = retry_after


class RelayError(BrokerError):
    http_status = 503
    close_code = CloseCode.RELAY_UNAVAILABLE
    code = "relay_unavailable"


class FlowControlClosed(RelayError):
    close_code = CloseCode.FLOW_CONTROL
    code = "flow_control"
