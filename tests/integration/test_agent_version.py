"""An outdated agent is refused before it joins the session; a current one joins (real broker)."""

from __future__ import annotations

from dataclasses import replace

from broker.app import create_app
from broker.errors import CloseCode
from broker.settings import Settings
from rsb_protocol import messages as msg
from tests.conftest import Broker, ClientFactory, FakeClock
from tests.relay_peers import connect
from tests.relay_sessions import audit_events, live_session


async def _broker(
    aiohttp_client: ClientFactory, settings: Settings, clock: FakeClock, minimum: str
) -> Broker:
    configured = replace(settings, min_agent_version=tuple(int(p) for p in minimum.split(".")))
    return Broker(await aiohttp_client(create_app(configured, clock=clock)), clock)


async def test_an_older_agent_is_closed_4105_with_a_message_and_audited(
    aiohttp_client: ClientFactory, settings: Settings, clock: FakeClock
) -> None:
    broker = await _broker(aiohttp_client, settings, clock, "0.3.0")
    live = await live_session(broker)
    old = await connect(
        broker.client, "/ws/agent", live.agent_token, headers={"User-Agent": "rsb-agent/0.2.9"}
    )
    assert await old.closed() == CloseCode.AGENT_OUTDATED
    assert old.close_reason is not None and "download the agent again" in old.close_reason
    events = await audit_events(broker, live.session_id)
    refused = [e for e in events if e["action"] == "relay.closed"]
    assert [e["details"]["reason"] for e in refused] == ["agent_outdated"]
    assert refused[0]["details"]["version"] == "0.2.9"
    # It never joined: the session did not count an agent.
    assert "session.agent_connected" not in [e["action"] for e in events]
    # The agent's own token still works once the customer has a current agent.
    current = await connect(
        broker.client, "/ws/agent", live.agent_token, headers={"User-Agent": "rsb-agent/0.3.0"}
    )
    welcome = await current.wait(lambda: current.of(msg.Welcome))
    assert welcome[0].session_id == live.session_id
    await current.close()
