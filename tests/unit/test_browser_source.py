"""The browser source marker: ``hello.source`` and ``join.source`` (sparse), and the room's use.

A customer page that shares its own screen connects as the agent and says so in its ``hello``;
the room then names slot 0 ``source: "browser"`` in the ``join`` everyone else gets (and every
later newcomer), so the console can say the session is view only. The field is sparse: an
agent that says nothing writes exactly what it wrote before, so older strict parsers still
accept it (docs/protocol.md, "JSON control messages").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from broker.audit.log import Actor
from broker.relay.peer import Peer
from broker.relay.room import AGENT_JOIN, BROWSER_JOIN, Room, Send
from rsb_protocol import messages as msg
from rsb_protocol.errors import InvalidMessage
from rsb_protocol.framing import AGENT_SLOT
from tests.unit.test_room_core import Sink

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def test_an_agent_hello_is_written_as_before_and_parses_as_an_agent_source() -> None:
    hello = msg.Hello(msg.Role.AGENT, (msg.KeyAlgorithm.X25519,), "rsb-agent/0.2.0")
    assert hello.source is msg.Source.AGENT
    assert "source" not in hello.to_dict()
    text = '{"v":1,"type":"hello","role":"agent","algorithms":["x25519"],"software":"a"}'
    assert msg.parse_message(text, 1024) == msg.Hello(
        msg.Role.AGENT, (msg.KeyAlgorithm.X25519,), "a", msg.Source.AGENT
    )


def test_a_browser_hello_round_trips_with_its_source() -> None:
    hello = msg.Hello(
        msg.Role.AGENT,
        (msg.KeyAlgorithm.X25519, msg.KeyAlgorithm.P256),
        "rsb-browser-share/0.1",
        source=msg.Source.BROWSER,
    )
    assert json.loads(hello.to_json())["source"] == "browser"
    assert msg.parse_message(hello.to_json(), 1024) == hello


@pytest.mark.parametrize("value", ["", "Browser", "phone", 1, None, True])
def test_an_unknown_source_is_refused_naming_the_field(value: object) -> None:
    text = json.dumps(
        {"v": 1, "type": "hello", "role": "agent", "algorithms": ["x25519"], "software": "a"}
        | {"source": value}
    )
    with pytest.raises(InvalidMessage, match=r"hello\.source"):
        msg.parse_message(text, 1024)


def test_join_carries_the_source_only_for_a_browser() -> None:
    assert "source" not in AGENT_JOIN.to_dict()
    assert BROWSER_JOIN.to_dict()["source"] == "browser"
    assert BROWSER_JOIN.slot == AGENT_SLOT
    assert msg.parse_message(BROWSER_JOIN.to_json(), 1024) == BROWSER_JOIN


async def _no_audit(actor: Actor, action: str, details: Mapping[str, Any]) -> None:
    """Nothing is written here."""


def _room() -> Room:
    return Room(
        "s" * 22,
        "C-000123",
        organisation="Acme",
        resume_window=timedelta(seconds=30),
        clock=lambda: T0,
        audit=_no_audit,
    )


def _browser_hello() -> msg.Hello:
    return msg.Hello(msg.Role.AGENT, (msg.KeyAlgorithm.X25519,), "b", source=msg.Source.BROWSER)


def _joins_for_slot_0(effects: list[Any], to: Sink) -> list[msg.Join]:
    return [
        e.message
        for e in effects
        if isinstance(e, Send)
        and e.to is to
        and isinstance(e.message, msg.Join)
        and e.message.slot == AGENT_SLOT
    ]


def test_the_room_names_a_browser_source_to_those_present_and_to_newcomers() -> None:
    room = _room()
    viewer = Sink("viewer", "rita", room.slot_for("rita"), "Rita Reyes", "L2", "rse")
    page = Sink("customer", "customer", 0xFFFD)
    room.attach_viewer(cast(Peer, viewer))
    room.attach_page(cast(Peer, page))
    agent = Sink("agent", "agent", AGENT_SLOT)
    attached = room.attach_agent(cast(Peer, agent))
    # The connection has not said what it is yet: an agent, as always.
    assert _joins_for_slot_0(attached, viewer) == [AGENT_JOIN]

    said = room.agent_hello(cast(Peer, agent), _browser_hello())
    assert room.agent_source is msg.Source.BROWSER
    assert _joins_for_slot_0(said, viewer) == [BROWSER_JOIN]
    assert _joins_for_slot_0(said, page) == [BROWSER_JOIN]
    assert _joins_for_slot_0(said, agent) == []
    # Saying it again changes nothing and tells nobody.
    assert room.agent_hello(cast(Peer, agent), _browser_hello()) == []

    late = Sink("viewer", "bob", room.slot_for("bob"), "Bob", "L1", "rse")
    greeted = room.attach_viewer(cast(Peer, late))
    assert _joins_for_slot_0(greeted, late) == [BROWSER_JOIN]


def test_a_new_agent_connection_starts_as_an_agent_and_a_stale_one_is_not_heard() -> None:
    room = _room()
    viewer = Sink("viewer", "rita", room.slot_for("rita"), "Rita Reyes", "L2", "rse")
    room.attach_viewer(cast(Peer, viewer))
    browser = Sink("agent", "agent", AGENT_SLOT)
    room.attach_agent(cast(Peer, browser))
    room.agent_hello(cast(Peer, browser), _browser_hello())
    # The customer installed the agent: its connection replaces the page's.
    installed = Sink("agent", "agent", AGENT_SLOT)
    replaced = room.attach_agent(cast(Peer, installed))
    assert room.agent_source is msg.Source.AGENT
    assert _joins_for_slot_0(replaced, viewer) == [AGENT_JOIN]
    # The replaced page's late hello does not bring the browser back.
    assert room.agent_hello(cast(Peer, browser), _browser_hello()) == []
    assert room.agent_source is msg.Source.AGENT
