"""Chat between the customer page and the engineers, through the real relay.

The page seals its chat to the agent on a pairwise channel in the customer slot (0xFFFD); the
agent re-seals it under the group key for the engineers, and seals their chat to the page's
key. Here the agent, a viewer and the page are scripted peers with real keys, so each test
checks what the broker routes where, what it audits, and that it only ever saw ciphertext.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from broker.audit.log import row_to_json
from broker.errors import CloseCode
from broker.relay.handlers import HUB_KEY
from broker.store.records import AuditQuery
from broker.types import Role
from rsb_protocol import messages as msg
from rsb_protocol.e2e import KeyPair, PairwiseChannel, PublicKey, Side
from rsb_protocol.framing import (
    BROADCAST_SLOT,
    CUSTOMER_SLOT,
    NO_FLAGS,
    Flags,
    FrameType,
    pack_header,
    peek_route,
)
from rsb_protocol.readback import readback
from tests.conftest import Broker
from tests.relay_peers import Peer, ScriptedAgent, connect
from tests.relay_sessions import Live, admit_viewer, join_viewer, live_session

CUSTOMER_SAYS = b"PAGE-SECRET: the printer shows E-51"
ENGINEER_SAYS = b"ENGINEER-SECRET: open tray 2"


@dataclass
class Page:
    """The customer page's end of the keys, as web/js/customer-chat.js holds them."""

    peer: Peer
    session_id: str
    keys: KeyPair = field(default_factory=KeyPair.generate)
    channel: PairwiseChannel | None = None

    @classmethod
    async def open(cls, broker: Broker, live: Live) -> Page:
        page = cls(
            await connect(broker.client, "/ws/customer", live.customer_token), live.session_id
        )
        await page.peer.wait(lambda: page.peer.of(msg.Welcome))
        return page

    async def announce(self) -> None:
        await self.peer.send(self.keys.public.announce(CUSTOMER_SLOT))

    async def agent_key(self) -> PublicKey:
        keys = await self.peer.wait(
            lambda: [k for k in self.peer.of(msg.PublicKeyAnnounce) if k.slot == 0]
        )
        return PublicKey.from_announce(keys[-1])

    async def chat(self, text: bytes) -> bytes:
        if self.channel is None:
            self.channel = PairwiseChannel(
                self.session_id, self.keys, await self.agent_key(), CUSTOMER_SLOT, Side.VIEWER, 1
            )
        frame = self.channel.seal(FrameType.CHAT, text)
        await self.peer.ws.send_bytes(frame)
        return frame


def _agent_channel(agent: ScriptedAgent, page: Page) -> PairwiseChannel:
    """The agent's end of the page's channel, from the key the broker relayed to it."""
    relayed = [k for k in agent.peer.of(msg.PublicKeyAnnounce) if k.slot == CUSTOMER_SLOT]
    assert relayed and PublicKey.from_announce(relayed[-1]) == page.keys.public
    return PairwiseChannel(
        agent.session_id, agent.keys, page.keys.public, CUSTOMER_SLOT, Side.AGENT, 1
    )


async def _chats(broker: Broker, session_id: str) -> list[tuple[str, dict[str, object]]]:
    rows = await broker.services.audit.search(AuditQuery(session_id=session_id, limit=1000))
    return [
        (event["actor_role"] or "", event["details"])
        for event in map(row_to_json, rows)
        if event["action"] == "session.chat"
    ]


async def test_chat_goes_page_to_agent_and_back_and_the_broker_sees_only_ciphertext(
    broker: Broker, db_path: Path
) -> None:
    live = await live_session(broker)
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    viewer = await join_viewer(broker, live, live.staff)
    await admit_viewer(broker, live, agent, viewer)
    page = await Page.open(broker, live)
    await page.announce()

    # The agent and the engineer see the page as a participant with its key; the page is not
    # sent its own key back.
    for peer in (agent.peer, viewer.peer):
        joins = await peer.wait(
            lambda p=peer: [j for j in p.of(msg.Join) if j.slot == CUSTOMER_SLOT]
        )
        assert joins[-1].role is msg.Role.CUSTOMER
        await peer.wait(
            lambda p=peer: [k for k in p.of(msg.PublicKeyAnnounce) if k.slot == CUSTOMER_SLOT]
        )
    assert not [k for k in page.peer.of(msg.PublicKeyAnnounce) if k.slot == CUSTOMER_SLOT]

    # Page -> agent, pairwise: only the agent receives it, and only the agent can open it.
    sent = await page.chat(CUSTOMER_SAYS)
    assert CUSTOMER_SAYS not in sent
    frames = await agent.peer.wait(lambda: agent.peer.frames(FrameType.CHAT))
    assert frames == [sent]
    agent_end = _agent_channel(agent, page)
    assert agent_end.open(frames[0])[1] == CUSTOMER_SAYS

    # Agent -> engineers under the group key (the customer's line), agent -> page pairwise.
    assert agent.sender is not None
    relayed = agent.sender.seal_update(FrameType.CHAT, CUSTOMER_SAYS)
    await agent.peer.ws.send_bytes(relayed)
    to_page = agent_end.seal(FrameType.CHAT, ENGINEER_SAYS)
    await agent.peer.ws.send_bytes(to_page)
    group = await viewer.peer.wait(lambda: viewer.peer.frames(FrameType.CHAT))
    assert group == [relayed] and peek_route(group[0])[1] == BROADCAST_SLOT
    viewer.open_all()  # installs the epoch key the agent wrapped for this viewer
    assert viewer.receiver is not None and viewer.receiver.open(group[0])[1] == CUSTOMER_SAYS
    received = await page.peer.wait(lambda: page.peer.frames(FrameType.CHAT))
    assert received == [to_page] and received[0][2] & Flags.PAIRWISE
    assert page.channel is not None and page.channel.open(received[0])[1] == ENGINEER_SAYS
    # Each end got exactly its own: the page's pairwise frame never reached the viewer.
    await page.chat(b"second line")
    await agent.peer.wait(lambda: len(agent.peer.frames(FrameType.CHAT)) == 2)
    assert viewer.peer.frames(FrameType.CHAT) == [relayed]
    assert page.peer.frames(FrameType.CHAT) == [to_page]

    # The audit log has the page's messages as metadata only.
    chats = await _chats(broker, live.session_id)
    assert [(role, details["slot"], details["seq"]) for role, details in chats] == [
        ("customer", CUSTOMER_SLOT, 1),
        ("customer", CUSTOMER_SLOT, 2),
    ]
    assert chats[0][1]["size"] == len(sent)
    for peer in (agent.peer, viewer.peer, page.peer):
        for text in peer.texts:
            assert "SECRET" not in text.to_json()
        await peer.close()
    await broker.client.app[HUB_KEY].tick()
    stored = db_path.read_bytes() + b"".join(
        p.read_bytes() for p in db_path.parent.glob(db_path.name + "-*")
    )
    assert b"SECRET" not in stored


async def test_the_read_back_covers_the_page_key_only_while_the_page_is_here(
    broker: Broker,
) -> None:
    live = await live_session(broker)
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    page = await Page.open(broker, live)
    await page.announce()
    await agent.peer.wait(lambda: [k for k in agent.peer.of(msg.PublicKeyAnnounce) if k.slot])
    viewer = await join_viewer(broker, live, live.staff)
    # A viewer that arrives later is greeted with the page as a participant, then its key.
    kinds = await viewer.peer.wait(
        lambda: [
            type(m).__name__
            for m in viewer.peer.texts
            if isinstance(m, msg.Join | msg.PublicKeyAnnounce) and m.slot == CUSTOMER_SLOT
        ]
    )
    assert kinds == ["Join", "PublicKeyAnnounce"]
    await agent.peer.wait(lambda: agent.viewer_key(viewer.slot))
    # Every end computes the same words over agent, engineer and page keys.
    keys = [agent.keys.public, viewer.keys.public, page.keys.public]
    words = readback(live.session_id, keys).words
    assert readback(live.session_id, reversed(keys)).words == words

    # The page goes: everyone is told it left, and a newcomer is not greeted with its key.
    await page.peer.close()
    for peer in (agent.peer, viewer.peer):
        await peer.wait(lambda p=peer: [m for m in p.of(msg.Leave) if m.slot == CUSTOMER_SLOT])
    dana = await join_viewer(broker, live, await broker.staff("dana", Role.DESK, "Dana Desk"))
    await dana.peer.wait(lambda: dana.peer.of(msg.State))
    await dana.peer.wait(lambda: [k for k in dana.peer.of(msg.PublicKeyAnnounce) if k.slot == 0])
    assert not [m for m in dana.peer.texts if getattr(m, "slot", None) == CUSTOMER_SLOT]

    # The same page back (same key, as a reconnect keeps it): joined again, same key relayed.
    again = await Page.open(broker, live)
    again.keys = page.keys
    await again.announce()
    relayed = await dana.peer.wait(
        lambda: [k for k in dana.peer.of(msg.PublicKeyAnnounce) if k.slot == CUSTOMER_SLOT]
    )
    assert PublicKey.from_announce(relayed[-1]) == page.keys.public
    for peer in (agent.peer, viewer.peer, dana.peer, again.peer):
        await peer.close()


async def test_the_page_sends_only_chat_and_only_the_page_holding_the_key_is_relayed(
    broker: Broker,
) -> None:
    live = await live_session(broker)
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    first = await Page.open(broker, live)
    # No key announced yet: its chat has no channel at the agent, so the broker drops it.
    first.channel = PairwiseChannel(
        live.session_id, first.keys, await first.agent_key(), CUSTOMER_SLOT, Side.VIEWER, 1
    )
    await first.chat(b"before any key")
    await first.announce()
    await agent.peer.wait(lambda: [m for m in agent.peer.of(msg.Join) if m.slot == CUSTOMER_SLOT])
    # A second page (another tab) announces another key: the agent is told the first one
    # left before the new one joins, and from now on only the second page's chat passes.
    second = await Page.open(broker, live)
    await second.announce()
    await agent.peer.wait(
        lambda: (
            len([k for k in agent.peer.of(msg.PublicKeyAnnounce) if k.slot == CUSTOMER_SLOT]) == 2
        )
    )
    order = [
        type(m).__name__
        for m in agent.peer.texts
        if isinstance(m, msg.Join | msg.Leave | msg.PublicKeyAnnounce) and m.slot == CUSTOMER_SLOT
    ]
    assert order == ["Join", "PublicKeyAnnounce", "Leave", "Join", "PublicKeyAnnounce"]
    await first.chat(b"from the old tab")
    await second.chat(b"from the new tab")
    frames = await agent.peer.wait(lambda: agent.peer.frames(FrameType.CHAT))
    assert len(frames) == 1
    assert _agent_channel(agent, second).open(frames[0])[1] == b"from the new tab"
    # A frame that claims another slot is dropped; any frame other than CHAT closes the page.
    forged = pack_header(FrameType.CHAT, 3, 1, 9, Flags.PAIRWISE) + bytes(32)
    await second.peer.ws.send_bytes(forged)
    await second.peer.ws.send_bytes(
        pack_header(FrameType.KEYFRAME_REQUEST, CUSTOMER_SLOT, 0, 0, NO_FLAGS)
    )
    assert await second.peer.closed() == CloseCode.BAD_MESSAGE
    assert len(agent.peer.frames(FrameType.CHAT)) == 1
    # The chat page closed: the customer slot leaves, and the old tab still cannot chat.
    await agent.peer.wait(
        lambda: len([m for m in agent.peer.of(msg.Leave) if m.slot == CUSTOMER_SLOT]) == 2
    )
    await first.chat(b"still the old tab")
    await agent.peer.send(msg.Pause(msg.Role.AGENT, ""))  # a later message orders the check
    await first.peer.wait(lambda: [s for s in first.peer.of(msg.State) if s.phase == "paused"])
    assert len(agent.peer.frames(FrameType.CHAT)) == 1
    await agent.peer.close()
    await first.peer.close()


async def test_a_page_flooding_chat_is_closed_by_the_rate_limit(broker: Broker) -> None:
    live = await live_session(broker)
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    page = await Page.open(broker, live)
    await page.announce()
    await agent.peer.wait(lambda: [m for m in agent.peer.of(msg.Join) if m.slot == CUSTOMER_SLOT])
    # 2 lines a second with bursts of 10: a hundred at once is far past it (refilling enough
    # for them would take the broker 45 s).
    for _ in range(100):
        if page.peer.ws.closed:
            break
        await page.chat(b"spam")
    assert await page.peer.closed() == CloseCode.RATE_LIMITED
    # The agent got at most the first bursts, and the page's key left with it.
    assert len(agent.peer.frames(FrameType.CHAT)) <= 20
    await agent.peer.wait(lambda: [m for m in agent.peer.of(msg.Leave) if m.slot == CUSTOMER_SLOT])
    await agent.peer.close()
