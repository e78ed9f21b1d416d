"""Public keys on the relay: every algorithm the agent announces reaches every viewer.

Regression: the relay kept one announced key per slot, so of the agent's two (X25519 for
Python viewers and most browsers, P-256 for browsers without X25519) a viewer that joined later
was greeted with the P-256 one only. An X25519 viewer then held its wrapped epoch key forever,
waiting for an agent key it could use, and never painted a frame (`rsb view --snapshot`: "no
screen after 30 s").
"""

from __future__ import annotations

from broker.types import Role
from rsb_protocol import messages as msg
from rsb_protocol.e2e import KeyPair
from tests.conftest import Broker
from tests.relay_peers import ScriptedAgent, ScriptedViewer
from tests.relay_sessions import join_viewer, live_session

X25519, P256 = msg.KeyAlgorithm.X25519, msg.KeyAlgorithm.P256


def _keys_of(viewer: ScriptedViewer, slot: int) -> dict[msg.KeyAlgorithm, str]:
    return {k.algorithm: k.key for k in viewer.peer.of(msg.PublicKeyAnnounce) if k.slot == slot}


async def test_a_late_viewer_is_greeted_with_every_agent_key(broker: Broker) -> None:
    live = await live_session(broker)
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    p256 = KeyPair.generate(P256)
    await agent.peer.send(p256.public.announce(0))  # after the X25519 one, as rsb-agent does
    # A first viewer sees the P-256 key relayed live: from then on the broker holds both.
    early = await join_viewer(broker, live, live.staff)
    await early.peer.wait(lambda: P256 in _keys_of(early, 0))
    late = await join_viewer(broker, live, await broker.staff("lara", Role.RSE, "Lara Late"))
    keys = await late.peer.wait(lambda: k if len(k := _keys_of(late, 0)) == 2 else None)
    assert keys == {X25519: agent.keys.public.announce(0).key, P256: p256.public.announce(0).key}
    for peer in (agent.peer, early.peer, late.peer):
        await peer.close()


async def test_a_viewer_key_of_another_algorithm_replaces_the_old_one(broker: Broker) -> None:
    live = await live_session(broker)
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    first = await join_viewer(broker, live, live.staff)
    replacement = KeyPair.generate(P256)
    await first.peer.send(replacement.public.announce(first.slot))
    await agent.peer.wait(
        lambda: [
            k
            for k in agent.peer.of(msg.PublicKeyAnnounce)
            if k.key == replacement.public.announce(first.slot).key
        ]
    )
    late = await join_viewer(broker, live, await broker.staff("lara", Role.RSE, "Lara Late"))
    # A message a viewer may not send makes the broker close: everything it greeted with is
    # in by then, so a stale key sent after the new one would be seen too.
    await late.peer.send(msg.State("observing"))
    assert await late.peer.closed() == 4400
    greeted = _keys_of(late, first.slot)
    assert greeted == {P256: replacement.public.announce(first.slot).key}
    for peer in (agent.peer, first.peer, late.peer):
        await peer.close()
