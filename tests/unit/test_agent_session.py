"""The agent's session logic, driven without a broker.

`FakeBroker` stands in for the broker in this unit test only: each connection is an in-memory
pair of asyncio queues in place of the WebSocket, and the test plays the broker's side of
docs/protocol.md ("Session flow over the relay") by hand, with real viewer keys from
`rsb_protocol.e2e`, so every KEY_WRAP and frame the agent sends is really opened. The real
broker is exercised by the integration and end-to-end suites.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.typing import Subprotocol

from agent_client.capture import TestPatternSource
from agent_client.chat_relay import MAX_CHAT_CHARS
from agent_client.consent import PendingRequest
from agent_client.prompt import Banner, Command, Question, TerminalPrompt
from agent_client.session import AgentOptions, AgentSession, ExitStatus, JoinInfo
from agent_client.session_rules import CloseVerdict, close_verdict, reconnect_delays
from agent_client.transport import (
    CLOSE_TIMEOUT,
    Transport,
    TransportClosed,
    websocket_connector,
)
from rsb_protocol.e2e import GroupReceiver, KeyPair, PairwiseChannel, PublicKey, Side
from rsb_protocol.errors import ProtocolError, UnknownEpoch
from rsb_protocol.framing import BROADCAST_SLOT, CUSTOMER_SLOT, Envelope, Flags, FrameType
from rsb_protocol.messages import (
    ConsentGrant,
    ConsentRequest,
    End,
    Hello,
    Join,
    KeyAlgorithm,
    Leave,
    Level,
    Message,
    Pause,
    Permission,
    PublicKeyAnnounce,
    Resume,
    Role,
    State,
    Welcome,
    parse_message,
)
from rsb_protocol.readback import readback

SID = "Glt5M5z9WROoJ9ThynxK2A"
CASE = "C-000123"
MAX = 1 << 20
WAIT = 5.0 * float(os.environ.get("RSB_TEST_TIME_SCALE", "1"))


class FakeTransport:
    """One connection: `inbox` is what the broker sends, `sent` what the agent sent."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[str | bytes | TransportClosed] = asyncio.Queue()
        self.sent: asyncio.Queue[str | bytes] = asyncio.Queue()
        self.closed: int | None = None

    async def send(self, data: str | bytes) -> None:
        if self.closed is not None:
            raise TransportClosed(self.closed)
        self.sent.put_nowait(data)

    async def recv(self) -> str | bytes:
        item = await self.inbox.get()
        if isinstance(item, TransportClosed):
            self.closed = item.code
            raise item
        return item

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.closed is None:
            self.inbox.put_nowait(TransportClosed(code, reason))

    def push(self, item: Message | bytes | TransportClosed) -> None:
        self.inbox.put_nowait(item.to_json() if isinstance(item, Message) else item)

    async def take(self) -> str | bytes:
        return await asyncio.wait_for(self.sent.get(), WAIT)

    def taken(self) -> list[str | bytes]:
        out = []
        while not self.sent.empty():
            out.append(self.sent.get_nowait())
        return out


class FakeBroker:
    """Hands out a fresh `FakeTransport` per connection attempt."""

    def __init__(self) -> None:
        self.connections: asyncio.Queue[FakeTransport] = asyncio.Queue()
        self.count = 0

    def connect(self) -> AbstractAsyncContextManager[Transport]:
        @asynccontextmanager
        async def opened() -> AsyncIterator[Transport]:
            transport = FakeTransport()
            self.count += 1
            self.connections.put_nowait(transport)
            yield transport

        return opened()

    async def next(self) -> FakeTransport:
        return await asyncio.wait_for(self.connections.get(), WAIT)


class ScriptedPrompt:
    """A consent UI the test answers by hand."""

    def __init__(self) -> None:
        self.questions: asyncio.Queue[tuple[Question, asyncio.Future[bool | None]]] = (
            asyncio.Queue()
        )
        self.notices: list[str] = []
        self.on_command: Callable[[Command], None] | None = None

    def start(self, banner: Banner, on_command: Callable[[Command], None]) -> None:
        self.on_command = on_command

    async def ask(self, question: Question) -> bool | None:
        future: asyncio.Future[bool | None] = asyncio.get_running_loop().create_future()
        self.questions.put_nowait((question, future))
        return await future

    async def answer(self, allow: bool) -> Question:
        question, future = await asyncio.wait_for(self.questions.get(), WAIT)
        future.set_result(allow)
        return question

    def withdraw(self, request: PendingRequest) -> None:
        self.notices.append(f"withdrawn {request.request_id}")

    def notice(self, text: str) -> None:
        self.notices.append(text)

    def close(self) -> None:
        pass


class RecordingInjector:
    """Stands in for the X11/pynput backend in these tests: records what it would inject."""

    def __init__(self, log: list[tuple[object, ...]]) -> None:
        self.log = log

    def pointer_move(self, x: int, y: int) -> None:
        self.log.append(("pointer_move", x, y))

    def pointer_button(self, button: int, pressed: bool) -> None:
        self.log.append(("pointer_button", button, pressed))

    def scroll(self, dx: int, dy: int) -> None:
        self.log.append(("scroll", dx, dy))

    def key(self, key: str, pressed: bool) -> None:
        self.log.append(("key", key, pressed))

    def type_text(self, text: str) -> None:
        self.log.append(("type_text", text))

    def close(self) -> None:
        self.log.append(("close",))


@dataclass
class Viewer:
    """An engineer's end of the keys, as the console would hold them."""

    slot: int
    participant: str
    name: str = "Alice Martin"
    keys: KeyPair = field(default_factory=KeyPair.generate)
    receiver: GroupReceiver | None = None
    channel: PairwiseChannel | None = None
    opened: list[FrameType] = field(default_factory=list)
    refused: list[type[Exception]] = field(default_factory=list)
    chats: list[bytes] = field(default_factory=list)

    def messages(self, permission: Permission = Permission.VIEW) -> list[Message]:
        return [
            Join(self.slot, self.participant, self.name, Role.VIEWER, Level.L2),
            self.keys.public.announce(self.slot),
            self.request(permission),
        ]

    def request(self, permission: Permission) -> ConsentRequest:
        return ConsentRequest(
            f"req-{self.slot}-{permission.value}", self.slot, permission, self.name,
            Level.L2, CASE, "Acme Support", False,
        )  # fmt: skip

    def feed(self, agent: PublicKey, data: bytes) -> None:
        """Process one binary frame the agent broadcast, as a viewer would."""
        envelope = Envelope.parse(data, MAX)
        if envelope.frame_type is FrameType.KEY_WRAP:
            if envelope.slot == self.slot:
                self.receiver = self.receiver or GroupReceiver(SID, self.keys, self.slot, agent)
                epoch = self.receiver.install_wrapped_key(data)
                self.channel = PairwiseChannel(SID, self.keys, agent, self.slot, Side.VIEWER, epoch)
            return
        try:
            if self.receiver is None:
                raise UnknownEpoch("no key")
            plaintext = self.receiver.open(data)[1]
            self.opened.append(envelope.frame_type)
            if envelope.frame_type is FrameType.CHAT:
                self.chats.append(plaintext)
        except ProtocolError as exc:
            self.refused.append(type(exc))

    def input(self, *events: dict[str, object]) -> bytes:
        assert self.channel is not None
        return self.channel.seal(FrameType.INPUT, json.dumps(list(events)).encode())


@dataclass
class Rig:
    session: AgentSession
    broker: FakeBroker
    prompt: ScriptedPrompt
    source: TestPatternSource
    injected: list[tuple[object, ...]]
    task: asyncio.Task[ExitStatus] | None = None
    agent_key: PublicKey | None = None

    async def connect(self, *, welcome: Welcome | None = None) -> FakeTransport:
        link = await self.broker.next()
        assert Hello.parse(await link.take(), MAX).role is Role.AGENT
        keys = [PublicKeyAnnounce.parse(await link.take(), MAX) for _ in range(2)]
        assert [k.slot for k in keys] == [0, 0]
        self.agent_key = next(
            PublicKey.from_announce(k) for k in keys if k.algorithm is KeyAlgorithm.X25519
        )
        link.push(welcome or Welcome(0, "agent", SID, CASE, "Acme Support"))
        link.push(State("pending_consent"))
        return link

    async def admit(self, link: FakeTransport, viewer: Viewer) -> list[str | bytes]:
        for message in viewer.messages():
            link.push(message)
        await self.prompt.answer(True)
        return await self.until(link, viewer, lambda d: _type(d) is FrameType.KEYFRAME)

    async def until(
        self, link: FakeTransport, viewer: Viewer | list[Viewer], done: Callable[[object], bool]
    ) -> list[str | bytes]:
        """Collect what the agent sends, feeding binary frames to the viewers, until `done`."""
        viewers = viewer if isinstance(viewer, list) else [viewer]
        seen: list[str | bytes] = []
        while True:
            data = await link.take()
            seen.append(data)
            if isinstance(data, bytes):
                assert self.agent_key is not None
                for v in viewers:
                    v.feed(self.agent_key, data)
            if done(data):
                return seen

    async def eventually(self, probe: Callable[[], bool]) -> None:
        deadline = asyncio.get_running_loop().time() + WAIT
        while not probe():
            assert asyncio.get_running_loop().time() < deadline, "condition never held"
            await asyncio.sleep(0.005)


def binary(data: str | bytes) -> bytes:
    assert isinstance(data, bytes), data
    return data


def _type(data: object) -> FrameType | str:
    if isinstance(data, bytes):
        return Envelope.parse(data, MAX).frame_type
    assert isinstance(data, str)
    return parse_message(data, MAX).TYPE


@asynccontextmanager
async def running_session(prompt: ScriptedPrompt) -> AsyncIterator[Rig]:
    """An agent session on a test pattern, run against the fake broker, asking ``prompt``;
    ended and waited for on the way out."""
    executor = ThreadPoolExecutor(max_workers=1)
    injected: list[tuple[object, ...]] = []
    source = TestPatternSource(128, 96)
    broker = FakeBroker()
    session = AgentSession(
        JoinInfo(SID, CASE, "token", "Alice Martin", "L2", "http://127.0.0.1"),
        broker.connect,
        prompt,
        source,
        executor=executor,
        injector_factory=lambda: RecordingInjector(injected),
        options=AgentOptions(max_fps=200, window=3),
        rng=random.Random(7),
    )
    rig = Rig(session, broker, prompt, source, injected)
    rig.task = asyncio.create_task(session.run())
    try:
        yield rig
    finally:
        if not rig.task.done():
            session.request_end("test over")
            await asyncio.wait_for(rig.task, WAIT)
        executor.shutdown()


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with running_session(ScriptedPrompt()) as running:
        yield running


async def test_nothing_is_captured_or_sent_before_the_customer_says_yes(rig: Rig) -> None:
    link = await rig.connect()
    viewer = Viewer(3, "alice")
    for message in viewer.messages():
        link.push(message)
    question = await rig.prompt.answer(False)
    assert question.request.engineer_name == "Alice Martin" and not question.request.recorded
    # The prompt's read-back words cover every key, exactly as the viewer computes them.
    viewer_side = readback(SID, [*rig.session.keyring.sender.public_keys, viewer.keys.public])
    assert question.readback == viewer_side
    await rig.eventually(lambda: not link.sent.empty())
    sent = link.taken()
    assert [_type(d) for d in sent] == ["consent_refuse"]
    assert rig.source.frame_index == 0  # not even captured


async def test_a_view_grant_wraps_the_key_to_that_viewer_then_sends_a_keyframe(rig: Rig) -> None:
    link = await rig.connect()
    viewer = Viewer(3, "alice")
    sent = await rig.admit(link, viewer)
    assert [_type(d) for d in sent] == ["consent_grant", FrameType.KEY_WRAP, FrameType.KEYFRAME]
    assert ConsentGrant.parse(sent[0], MAX) == ConsentGrant("req-3-view", 3, Permission.VIEW)
    assert viewer.opened == [FrameType.KEYFRAME]


async def test_each_admission_and_each_leave_starts_a_new_epoch_for_those_who_remain(
    rig: Rig,
) -> None:
    link = await rig.connect()
    alice, bob = Viewer(3, "alice"), Viewer(4, "bob", "Bob Stone")
    await rig.admit(link, alice)
    for message in bob.messages():
        link.push(message)
    await rig.prompt.answer(True)
    both = [alice, bob]
    sent = await rig.until(link, both, lambda d: _type(d) is FrameType.KEYFRAME)
    wraps = [
        Envelope.parse(d, MAX)
        for d in sent
        if isinstance(d, bytes) and _type(d) is FrameType.KEY_WRAP
    ]
    assert [w.slot for w in wraps] == [3, 4] and wraps[0].epoch == wraps[1].epoch
    link.push(Leave(3, "alice"))
    sent = await rig.until(link, both, lambda d: _type(d) is FrameType.SCREEN_UPDATE)
    assert [
        Envelope.parse(d, MAX).slot
        for d in sent
        if isinstance(d, bytes) and _type(d) is FrameType.KEY_WRAP
    ] == [4]
    assert bob.opened[-1] is FrameType.SCREEN_UPDATE
    assert alice.refused[-1] is UnknownEpoch  # the departed viewer cannot read what follows


async def test_input_is_injected_only_for_the_slot_the_customer_gave_control(rig: Rig) -> None:
    link = await rig.connect()
    alice, bob = Viewer(3, "alice"), Viewer(4, "bob", "Bob Stone")
    await rig.admit(link, alice)
    for message in bob.messages():
        link.push(message)
    await rig.prompt.answer(True)
    await rig.until(link, [alice, bob], lambda d: _type(d) is FrameType.KEYFRAME)
    link.push(alice.request(Permission.CONTROL))
    await rig.prompt.answer(True)
    await rig.until(link, [alice, bob], lambda d: _type(d) == "consent_grant")
    link.push(bob.input({"type": "pointer_move", "x": 1, "y": 2}))  # no control: dropped
    link.push(alice.input({"type": "pointer_move", "x": 5, "y": 6}))
    await rig.eventually(lambda: bool(rig.injected))
    assert rig.injected == [("pointer_move", 5, 6)]
    assert rig.session.input.stats["dropped_no_consent"] == 1


async def test_revoked_control_stops_injection_at_once(rig: Rig) -> None:
    link = await rig.connect()
    alice = Viewer(3, "alice")
    await rig.admit(link, alice)
    link.push(alice.request(Permission.CONTROL))
    await rig.prompt.answer(True)
    await rig.until(link, alice, lambda d: _type(d) == "consent_grant")
    frame = alice.input({"type": "key", "key": "a", "pressed": True})
    assert rig.prompt.on_command is not None
    rig.prompt.on_command(Command.REVOKE_CONTROL)
    assert not rig.session.input.receive(3, frame)  # the very next frame, no await between
    assert ("key", "a", True) not in rig.injected
    sent = await rig.until(link, alice, lambda d: _type(d) is FrameType.KEY_WRAP)
    assert "consent_revoke" in [_type(d) for d in sent]


async def test_ack_credits_pace_the_updates(rig: Rig) -> None:
    link = await rig.connect()
    alice = Viewer(3, "alice")
    keyframe = Envelope.parse(binary((await rig.admit(link, alice))[-1]), MAX)
    screen = rig.session.screen
    assert screen is not None
    await asyncio.wait_for(screen.stalled.wait(), WAIT)
    updates = [Envelope.parse(d, MAX) for d in link.taken() if isinstance(d, bytes)]
    assert len(updates) == 2  # the keyframe plus two deltas: a window of three
    screen.stalled.clear()
    link.push(Envelope(FrameType.ACK, 3, keyframe.epoch, keyframe.seq).serialize())
    more = Envelope.parse(binary(await link.take()), MAX)
    assert more.frame_type is FrameType.SCREEN_UPDATE and more.seq == updates[-1].seq + 1
    await asyncio.wait_for(screen.stalled.wait(), WAIT)
    assert link.taken() == []


async def test_pause_stops_frames_and_resume_starts_with_a_keyframe(rig: Rig) -> None:
    link = await rig.connect()
    alice = Viewer(3, "alice")
    await rig.admit(link, alice)
    assert rig.prompt.on_command is not None
    rig.prompt.on_command(Command.PAUSE)
    sent = await rig.until(link, alice, lambda d: _type(d) == "pause")
    assert Pause.parse(sent[-1], MAX).by is Role.AGENT
    captured = rig.source.frame_index
    link.push(Resume(Role.CUSTOMER))  # the customer paused here: only they can resume
    link.push(Pause(Role.CUSTOMER))
    await rig.eventually(lambda: any("press p" in n for n in rig.prompt.notices))
    assert rig.source.frame_index <= captured + 1  # at most the one being encoded
    rig.prompt.on_command(Command.PAUSE)
    sent = await rig.until(link, alice, lambda d: _type(d) is FrameType.KEYFRAME)
    assert "resume" in [_type(d) for d in sent]


async def test_reconnect_keeps_consent_and_rewraps_without_asking_again(rig: Rig) -> None:
    link = await rig.connect()
    alice = Viewer(3, "alice")
    await rig.admit(link, alice)
    link.push(TransportClosed(None))  # the network dropped
    link = await rig.connect()
    for message in alice.messages()[:2]:  # the broker replays the roster, not the request
        link.push(message)
    sent = await rig.until(link, alice, lambda d: _type(d) is FrameType.KEYFRAME)
    assert [_type(d) for d in sent] == [FrameType.KEY_WRAP, FrameType.KEYFRAME]
    assert rig.prompt.questions.empty() and alice.opened[-1] is FrameType.KEYFRAME
    link.push(End(Role.CUSTOMER, "done"))
    assert await asyncio.wait_for(rig.task, WAIT) is ExitStatus.ENDED  # type: ignore[arg-type]


async def test_a_viewer_that_drops_and_resumes_gets_the_key_and_frames_again(rig: Rig) -> None:
    link = await rig.connect()
    alice = Viewer(3, "alice")
    await rig.admit(link, alice)
    # The console's socket dropped: the broker keeps its grant for the resume window.
    link.push(Leave(3, "alice", "disconnected"))
    await rig.eventually(lambda: not rig.session.frames_allowed())
    assert rig.session.consent.admitted_viewers() == {3}
    opened = len(alice.opened)
    # It resumes in the same slot: the broker replays its join, the console its key.
    for message in alice.messages()[:2]:
        link.push(message)
    sent = await rig.until(link, alice, lambda d: _type(d) is FrameType.KEYFRAME)
    assert [_type(d) for d in sent] == [FrameType.KEY_WRAP, FrameType.KEYFRAME]
    assert rig.prompt.questions.empty(), "no new prompt for a resume"
    assert alice.opened[opened:] == [FrameType.KEYFRAME]


async def test_a_viewer_that_left_is_asked_about_again(rig: Rig) -> None:
    link = await rig.connect()
    alice = Viewer(3, "alice")
    await rig.admit(link, alice)
    link.push(Leave(3, "alice", "left"))
    await rig.eventually(lambda: not rig.session.consent.admitted_viewers())
    for message in alice.messages():
        link.push(message)
    assert (await rig.prompt.answer(False)).request.slot == 3


@pytest.mark.parametrize(
    ("code", "status"),
    [(4103, ExitStatus.ENDED), (4003, ExitStatus.CONNECTION_FAILED)],
)
async def test_final_close_codes_end_the_run_without_reconnecting(
    rig: Rig, code: int, status: ExitStatus
) -> None:
    link = await rig.connect()
    link.push(TransportClosed(code))
    assert await asyncio.wait_for(rig.task, WAIT) is status  # type: ignore[arg-type]
    assert rig.broker.count == 1


async def test_a_welcome_for_another_session_is_refused(rig: Rig) -> None:
    await rig.connect(welcome=Welcome(0, "agent", "another-session", CASE, "Acme"))
    status = await asyncio.wait_for(rig.task, WAIT)  # type: ignore[arg-type]
    assert status is ExitStatus.CONNECTION_FAILED and rig.broker.count == 1


async def test_ending_from_the_agent_tells_the_broker_and_exits_normally(rig: Rig) -> None:
    link = await rig.connect()
    assert rig.prompt.on_command is not None
    rig.prompt.on_command(Command.END)
    assert End.parse(await link.take(), MAX).by is Role.AGENT
    assert await asyncio.wait_for(rig.task, WAIT) is ExitStatus.ENDED  # type: ignore[arg-type]
    assert link.closed == 1000


def test_close_codes_and_backoff() -> None:
    assert close_verdict(None)[0] is CloseVerdict.RETRY
    assert close_verdict(1001)[0] is CloseVerdict.RETRY
    assert close_verdict(4201)[0] is CloseVerdict.RETRY
    assert close_verdict(4104)[0] is CloseVerdict.FAILED
    delays = reconnect_delays(random.Random(1))
    bounds = [next(delays) for _ in range(8)]
    for delay, cap in zip(bounds, [0.5, 1, 2, 4, 8, 10, 10, 10], strict=True):
        assert cap / 2 <= delay <= cap


async def test_the_websocket_sets_nodelay_no_compression_and_the_token_subprotocol() -> None:
    seen: dict[str, str | None] = {}

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        seen["protocols"] = ws.request.headers.get("Sec-WebSocket-Protocol")
        seen["extensions"] = ws.request.headers.get("Sec-WebSocket-Extensions")
        await ws.send("hi")
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, subprotocols=[Subprotocol("rsb.v1")]) as server:
        port = server.sockets[0].getsockname()[1]
        connect = websocket_connector(
            f"ws://127.0.0.1:{port}/ws/agent", "a.b.c", ssl_context=None, max_size=MAX,
            user_agent="test",
        )  # fmt: skip
        async with connect() as transport:
            assert await transport.recv() == "hi"
            assert transport.nodelay  # type: ignore[attr-defined]
            # Ending must not wait websockets' default 10 s for a broker that does not answer.
            assert transport.close_timeout == CLOSE_TIMEOUT  # type: ignore[attr-defined]
    assert seen == {"protocols": "rsb.v1, rsb.token.a.b.c", "extensions": None}


async def test_the_terminal_prompt_answers_and_commands_from_stdin() -> None:
    read_fd, write_fd = os.pipe()
    out = io.StringIO()
    commands: list[Command] = []
    with open(read_fd, encoding="utf-8") as stdin, open(write_fd, "w", encoding="utf-8") as keys:
        prompt = TerminalPrompt(stdin, out)
        prompt.start(Banner(CASE, "Alice Martin (L2)", "https://x"), commands.append)
        request = PendingRequest(
            "r1", 3, "alice", Permission.CONTROL, "Alice\x1b[2J Martin", Level.L2, CASE, "Acme",
            True,
        )  # fmt: skip
        keys.write("p\ny\n")
        keys.flush()
        question = Question(request, readback(SID, [KeyPair.generate().public]))
        assert await asyncio.wait_for(prompt.ask(question), WAIT) is True
        assert commands == [Command.PAUSE]
        keys.close()
        assert await asyncio.wait_for(prompt.ask(question), WAIT) is None  # stdin closed
        prompt.close()
    text = out.getvalue()
    assert "CONTROL your mouse and keyboard" in text and "YES: this session is recorded" in text
    assert " ".join(question.readback.words) in text and "p = pause/resume" in text
    assert "\x1b" not in text  # no escape sequence from the network reaches the terminal


# --- chat with the customer's web page (slot 0xFFFD) ------------------------------------------


@dataclass
class CustomerPage:
    """The customer page's end of the keys, as web/js/customer-chat.js holds them."""

    keys: KeyPair = field(default_factory=KeyPair.generate)
    channel: PairwiseChannel | None = None

    def arrive(self, link: FakeTransport, agent: PublicKey) -> None:
        """What the broker sends the agent when the page announces its key."""
        link.push(Join(CUSTOMER_SLOT, "customer", "Customer", Role.CUSTOMER))
        link.push(self.keys.public.announce(CUSTOMER_SLOT))
        if self.channel is None:  # kept across a reconnect, as the page keeps it in memory
            self.channel = PairwiseChannel(SID, self.keys, agent, CUSTOMER_SLOT, Side.VIEWER, 1)

    def say(self, text: str) -> bytes:
        assert self.channel is not None
        return self.channel.seal(FrameType.CHAT, text.encode())

    def read(self, frame: bytes) -> dict[str, str]:
        assert self.channel is not None
        envelope, plaintext = self.channel.open(frame, MAX)
        assert envelope.slot == CUSTOMER_SLOT and envelope.flags & Flags.PAIRWISE
        parsed: dict[str, str] = json.loads(plaintext)
        return parsed


def _to_page(data: object) -> bool:
    return isinstance(data, bytes) and Envelope.parse(data, MAX).slot == CUSTOMER_SLOT


async def test_customer_chat_goes_to_the_engineers_under_the_group_key(rig: Rig) -> None:
    link = await rig.connect()
    alice = Viewer(3, "alice")
    await rig.admit(link, alice)
    page = CustomerPage()
    assert rig.agent_key is not None
    page.arrive(link, rig.agent_key)
    # The page's key joins the read-back, and the customer is told the words changed.
    everyone = [*rig.session.keyring.sender.public_keys, alice.keys.public, page.keys.public]
    words = " ".join(readback(SID, everyone).words)
    await rig.eventually(
        lambda: any(f"Read-back words now: {words}" in n for n in rig.prompt.notices)
    )
    link.push(page.say("the printer shows E-51"))
    sent = await rig.until(link, alice, lambda d: _type(d) is FrameType.CHAT)
    assert Envelope.parse(binary(sent[-1]), MAX).slot == BROADCAST_SLOT
    assert not Envelope.parse(binary(sent[-1]), MAX).flags & Flags.PAIRWISE
    assert alice.chats == [b"the printer shows E-51"]
    assert "You (web page): the printer shows E-51" in rig.prompt.notices


async def test_an_engineers_chat_reaches_the_page_sealed_to_its_key_with_their_name(
    rig: Rig,
) -> None:
    link = await rig.connect()
    alice = Viewer(3, "alice")
    await rig.admit(link, alice)
    assert alice.channel is not None and rig.agent_key is not None
    link.push(alice.channel.seal(FrameType.CHAT, b"before the page"))  # shown here only
    await rig.eventually(lambda: "Alice Martin: before the page" in rig.prompt.notices)
    page = CustomerPage()
    page.arrive(link, rig.agent_key)
    link.push(alice.channel.seal(FrameType.CHAT, b"please open tray 2"))
    sent = await rig.until(link, alice, _to_page)
    assert page.read(binary(sent[-1])) == {"from": "Alice Martin", "text": "please open tray 2"}
    assert [d for d in sent[:-1] if _to_page(d)] == []  # the earlier line was not queued
    assert alice.chats == []  # nothing went to the engineers under the group key


async def test_customer_chat_with_no_engineer_admitted_goes_nowhere(rig: Rig) -> None:
    link = await rig.connect()
    assert rig.agent_key is not None
    page = CustomerPage()
    page.arrive(link, rig.agent_key)
    await rig.eventually(lambda: any("Chat from the web page" in n for n in rig.prompt.notices))
    link.push(page.say("hello?"))
    await rig.eventually(lambda: "(No engineer can read chat right now.)" in rig.prompt.notices)
    assert "You (web page): hello?" in rig.prompt.notices
    assert [d for d in link.taken() if isinstance(d, bytes)] == []


async def test_a_returning_page_keeps_its_channel_and_a_stranger_cannot_use_it(rig: Rig) -> None:
    link = await rig.connect()
    alice = Viewer(3, "alice")
    await rig.admit(link, alice)
    assert alice.channel is not None and rig.agent_key is not None
    page = CustomerPage()
    page.arrive(link, rig.agent_key)
    link.push(alice.channel.seal(FrameType.CHAT, b"one"))
    first = Envelope.parse(binary((await rig.until(link, alice, _to_page))[-1]), MAX)
    # The page leaves: its key leaves the read-back at once ...
    link.push(Leave(CUSTOMER_SLOT, "customer", "page closed"))
    without = readback(SID, [*rig.session.keyring.sender.public_keys, alice.keys.public])
    await rig.eventually(lambda: rig.session.keyring.readback() == without)
    # ... and comes back with the same key: the same channel, so its counter goes on (a
    # rebuilt channel would start again at 1 and reuse a nonce under the same key).
    page.arrive(link, rig.agent_key)
    link.push(alice.channel.seal(FrameType.CHAT, b"two"))
    sent = await rig.until(link, alice, _to_page)
    again = Envelope.parse(binary(sent[-1]), MAX)
    assert (again.epoch, again.seq) == (first.epoch, first.seq + 1)
    assert page.read(binary(sent[-1]))["text"] == "two"
    link.push(page.say("still me"))
    await rig.until(link, alice, lambda d: _type(d) is FrameType.CHAT and not _to_page(d))
    assert alice.chats == [b"still me"]
    # Another page takes over with its own key; frames sealed by the old one no longer open.
    other = CustomerPage()
    other.arrive(link, rig.agent_key)
    link.push(page.say("old tab"))
    link.push(other.say("new tab"))
    await rig.until(link, alice, lambda d: _type(d) is FrameType.CHAT and not _to_page(d))
    assert alice.chats == [b"still me", b"new tab"]


async def test_chat_is_cut_to_max_chat_chars_both_ways(rig: Rig) -> None:
    link = await rig.connect()
    alice = Viewer(3, "alice")
    await rig.admit(link, alice)
    assert alice.channel is not None and rig.agent_key is not None
    page = CustomerPage()
    page.arrive(link, rig.agent_key)
    link.push(alice.channel.seal(FrameType.CHAT, b"x" * (MAX_CHAT_CHARS + 1)))
    sent = await rig.until(link, alice, _to_page)
    assert page.read(binary(sent[-1]))["text"] == "x" * MAX_CHAT_CHARS
    assert f"Alice Martin: {'x' * MAX_CHAT_CHARS}" in rig.prompt.notices
    link.push(page.say("y" * (MAX_CHAT_CHARS + 1)))
    await rig.until(link, alice, lambda d: _type(d) is FrameType.CHAT and not _to_page(d))
    assert alice.chats == [b"y" * MAX_CHAT_CHARS]
