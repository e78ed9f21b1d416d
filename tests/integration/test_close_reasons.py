"""Close frames stay valid whatever the reason's language: cut between characters, not bytes.

RFC 6455 allows 123 bytes of valid UTF-8 after the close code. Cut at a fixed byte count, a
reason in Spanish splits an "é" in two, and the client must then fail the connection (aiohttp
reports an error, a browser 1006) instead of reporting the close code: the customer's page
would show "reconnecting" for a session that has ended. The peers here are aiohttp clients,
which refuse a close frame whose reason is not valid UTF-8.
"""

from __future__ import annotations

import json

import pytest

from broker.errors import CloseCode
from rsb_protocol import messages as msg
from rsb_protocol.close_codes import CLOSE_REASON_MAX
from tests.conftest import Broker
from tests.relay_peers import ScriptedAgent, connect
from tests.relay_sessions import admit_viewer, join_viewer, live_session

REASONS = [
    "Sesión terminada: ñañañañá ÁÉÍÓÚ áéíóú ñÑ " * 8,
    "Ремонт завершён: принтер снова печатает, клиент доволен. " * 6,
]


def _splits_at_120_bytes(text: str) -> bool:
    try:
        text.encode()[:120].decode()
    except UnicodeDecodeError:
        return True
    return False


@pytest.mark.parametrize("reason", REASONS, ids=["accented", "cyrillic"])
async def test_a_long_accented_end_reason_reaches_every_peer_as_a_valid_close(
    broker: Broker, reason: str
) -> None:
    said = f"session ended: {reason}"
    assert 300 <= len(reason) <= 500
    # The reasons the old byte cut broke: at 120 bytes, of the whole text or of its first
    # 100 characters (the relay keeps that many), it lands inside a letter.
    assert _splits_at_120_bytes(said) and _splits_at_120_bytes(said[:100])
    live = await live_session(broker)
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    viewer = await join_viewer(broker, live, live.staff)
    customer = await connect(broker.client, "/ws/customer", live.customer_token)
    await admit_viewer(broker, live, agent, viewer)
    await broker.call(
        "POST",
        f"/api/v1/sessions/{live.session_id}/end",
        status=200,
        headers=live.staff,
        json={"reason": reason},
    )
    for peer in (agent.peer, viewer.peer, customer):
        assert await peer.closed() == CloseCode.SESSION_ENDED
        assert peer.close_reason is not None
        assert 0 < len(peer.close_reason.encode()) <= CLOSE_REASON_MAX
        assert said.startswith(peer.close_reason)
        assert len(peer.close_reason) > len("session ended: ") + 40


async def test_a_refused_message_quoting_accented_input_closes_validly(broker: Broker) -> None:
    live = await live_session(broker)
    agent = await connect(broker.client, "/ws/agent", live.agent_token)
    hello = json.loads(msg.Hello(msg.Role.AGENT, (msg.KeyAlgorithm.X25519,), "test").to_json())
    hello["é" * 60] = 1  # quoted back in the refusal, which is longer than a close frame
    await agent.ws.send_str(json.dumps(hello))
    assert await agent.closed() == CloseCode.BAD_MESSAGE
    assert agent.close_reason is not None
    assert agent.close_reason.startswith("hello: unexpected field(s) ['éé")
    assert len(agent.close_reason.encode()) <= CLOSE_REASON_MAX
