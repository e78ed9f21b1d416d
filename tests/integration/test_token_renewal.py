"""A live viewer socket ends at its token's expiry, unless the console renews the token.

``POST /api/v1/token`` gives a signed-in engineer a fresh token; the console sends it on its
viewer socket as ``renew``, and the socket then lives to the new token's expiry. A renewal
must name the same user, and a disabled user cannot renew.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from broker.auth.keys import LEEWAY
from broker.errors import CloseCode
from broker.relay.handlers import HUB_KEY
from broker.relay.hub import Hub
from broker.settings import Settings
from broker.types import Role
from rsb_protocol import messages as msg
from rsb_protocol.errors import InvalidMessage
from tests.conftest import TEST_SETTINGS, Broker
from tests.relay_sessions import admitted_session, audit_events, until

STAFF_TTL = timedelta(minutes=5)
"""A short staff token lifetime for this module (the default is an hour)."""


@pytest.fixture
def settings(db_path: Path) -> Settings:
    return Settings.from_mapping(
        {"db": str(db_path), "staff_token_ttl": STAFF_TTL.total_seconds(), **TEST_SETTINGS}
    )


def _hub(broker: Broker) -> Hub:
    return broker.client.app[HUB_KEY]


async def _renewed(broker: Broker, headers: dict[str, str]) -> str:
    body = await broker.call("POST", "/api/v1/token", status=200, headers=headers)
    assert body["token_type"] == "Bearer"
    token: str = body["token"]
    return token


async def test_a_renewed_token_keeps_the_viewer_socket_past_the_first_expiry(
    broker: Broker,
) -> None:
    live, agent, rita = await admitted_session(broker)
    broker.clock.advance(seconds=STAFF_TTL.total_seconds() * 0.8)  # when the console renews
    token = await _renewed(broker, live.staff)
    server_side = _hub(broker).rooms[live.session_id].viewers[rita.slot]
    first = server_side.credential
    await rita.peer.send(msg.Renew(token))
    await until(lambda: server_side.credential != first, "the broker took the renewal")
    # Past the first token's end (exp plus the leeway): the socket carries on.
    broker.clock.advance(seconds=(STAFF_TTL * 0.2 + LEEWAY).total_seconds() + 1)
    assert (await broker.client.get("/api/v1/me", headers=live.staff)).status == 401
    await _hub(broker).tick()
    assert not rita.peer.ws.closed
    sealed = await agent.screen(b"still watching")
    await rita.peer.wait(lambda: sealed in rita.peer.binaries)
    # ... and ends at the renewed one's.
    broker.clock.advance(seconds=STAFF_TTL.total_seconds())
    await _hub(broker).tick()
    assert await rita.peer.closed() == CloseCode.TOKEN_EXPIRED
    actions = [e["action"] for e in await audit_events(broker, live.session_id)]
    assert "relay.closed" in actions
    await agent.peer.close()


async def test_a_renewal_must_name_the_same_user(broker: Broker) -> None:
    live, agent, rita = await admitted_session(broker)
    other = await broker.staff("evan", Role.ENGINEERING, "Evan Eng")
    await rita.peer.send(msg.Renew(await _renewed(broker, other)))
    assert await rita.peer.closed() == CloseCode.INVALID_TOKEN
    await agent.peer.close()


async def test_renewal_needs_a_valid_token_of_an_enabled_user_and_is_audited(
    broker: Broker,
) -> None:
    await broker.call("POST", "/api/v1/token", status=401)
    headers = await broker.staff("dana", Role.DESK, "Dana Desk")
    token = await _renewed(broker, headers)
    me = await broker.call(
        "GET", "/api/v1/me", status=200, headers={"Authorization": f"Bearer {token}"}
    )
    assert me["name"] == "dana"
    admin = await broker.staff("ada", Role.ADMIN, "Ada Admin")
    await broker.call("POST", "/api/v1/users/dana/disable", status=200, headers=admin)
    await broker.call("POST", "/api/v1/token", status=401, headers=headers)
    sec = await broker.staff("sam", Role.SECURITY)
    events = await broker.call("GET", "/api/v1/audit?actor=dana", status=200, headers=sec)
    assert [e["action"] for e in events["events"]].count("auth.token_renewed") == 1


def test_a_renew_message_never_shows_its_token() -> None:
    token = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJyaXRhIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    assert token not in repr(msg.Renew(token))
    with pytest.raises(InvalidMessage) as refused:
        msg.parse_message('{"v":1,"type":"renew","token":"' + token + '!"}', 1 << 16)
    assert "eyJ" not in str(refused.value)
