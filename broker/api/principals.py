"""Who is calling: client address and the principal named by the Authorization header."""

from __future__ import annotations

from typing import Literal

from aiohttp import web

from broker.appkeys import SERVICES_KEY, SETTINGS_KEY
from broker.auth.ratelimit import client_address
from broker.auth.roles import Action
from broker.auth.service import SessionPrincipal, StaffPrincipal
from broker.auth.tokens import bearer_from_header


def client_addr(request: web.Request) -> str:
    """The caller's address; X-Forwarded-For counts only from a configured trusted proxy."""
    settings = request.app[SETTINGS_KEY]
    return client_address(
        request.remote or "unknown",
        request.headers.get("X-Forwarded-For"),
        frozenset(settings.trusted_proxies),
    )


async def staff(request: web.Request, action: Action | None = None) -> StaffPrincipal:
    """The staff user of the request's bearer token, checked against ``action`` if given.

    Raises:
        InvalidToken: missing, malformed, expired or revoked token.
        Forbidden: the user's role does not allow ``action``.
    """
    auth = request.app[SERVICES_KEY].auth
    principal = await auth.staff_principal(bearer_from_header(request.headers.get("Authorization")))
    if action is not None:
        auth.require(principal, action)
    return principal


async def session_party(
    request: web.Request, kind: Literal["customer", "agent"] = "customer"
) -> SessionPrincipal:
    auth = request.app[SERVICES_KEY].auth
    return await auth.session_principal(
        bearer_from_header(request.headers.get("Authorization")), kind
    )
