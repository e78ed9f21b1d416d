"""Sessions across a broker restart, as docs/architecture.md and docs/deployment.md tell it.

Two broker processes in turn on one SQLite file: the first leaves sessions ``active``; in the
second, one whose agent comes back stays live, one whose agent does not is ended by the sweeper
with ``agent_lost_after_restart`` once the resume window after the start has passed.
"""

from __future__ import annotations

from broker.app import AGENT_LOST_AFTER_RESTART, create_app, sweep
from broker.appkeys import SERVICES_KEY
from broker.settings import Settings
from tests.conftest import Broker, BrokerTestServer, ClientFactory, FakeClock
from tests.relay_peers import ScriptedAgent
from tests.relay_sessions import audit_events, live_session


async def test_session_whose_agent_does_not_come_back_ends_after_the_window(
    broker: Broker, aiohttp_client: ClientFactory, settings: Settings, clock: FakeClock
) -> None:
    lost = await live_session(broker)
    back = await live_session(broker, "bob")
    for live in (lost, back):
        agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
        await agent.peer.close()
    await broker.client.close()  # the first process stops

    client = await aiohttp_client(BrokerTestServer(create_app(settings, clock=clock)))
    second = Broker(client, clock)
    store = client.app[SERVICES_KEY].store
    for live in (lost, back):
        record = await store.get_session(live.session_id)
        assert record is not None and record.state == "active"  # as the old process left it
    await ScriptedAgent.join(client, back.agent_token, back.session_id)
    clock.advance(seconds=settings.resume_window.total_seconds())
    await sweep(client.app)  # not yet past the window: nothing ends
    waiting = await store.get_session(lost.session_id)
    assert waiting is not None and waiting.state == "active"
    clock.advance(seconds=1)
    await sweep(client.app)
    ended = await store.get_session(lost.session_id)
    assert ended is not None and ended.state == "ended"
    assert ended.end_reason == AGENT_LOST_AFTER_RESTART
    kept = await store.get_session(back.session_id)
    assert kept is not None and kept.state == "active"
    events = await audit_events(second, lost.session_id)
    last = [e for e in events if e["action"] == "session.ended"][-1]
    assert last["actor"] == "system" and AGENT_LOST_AFTER_RESTART in str(last["details"])
