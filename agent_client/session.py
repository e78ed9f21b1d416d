"""The agent's session: one connection loop around the consent record, the keys and the screen.

`AgentSession.run` connects, says `hello` and announces its public keys, checks the broker's
`welcome`, then feeds every message to one handler per type (docs/protocol.md, "Session flow
over the relay"). Each handler asks the consent record (`agent_client.consent`) what changed
and `_apply` carries it out: messages out, prompts, a new key epoch wrapped only to admitted
viewers, a keyframe. Screen frames come from `ScreenLoop`, input goes through `InputGate`;
both consult the consent record themselves right before acting.

The agent is also the customer side's end of chat: CHAT frames go to the session's
`ChatRelay` (`agent_client.chat_relay`), which opens, shows and re-seals them with the same keys.

Nothing leaves the agent before consent except `hello` and its public keys: no frame is
captured until a viewer the customer admitted holds the group key. A dropped connection is
retried with jittered exponential backoff (0.5 s doubling to 10 s) with the same token; grants
survive (no new prompt) and a new epoch is wrapped on every reconnect. Close codes the broker
uses for "do not come back" (session ended, token refused, replaced, ...) end the loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from agent_client.capture import FrameSource
from agent_client.chat_relay import ChatRelay
from agent_client.consent import NOTHING, AgentConsent, Change, Origin, PendingRequest
from agent_client.inject import InputInjector
from agent_client.input_gate import InjectionFailed, InputGate
from agent_client.keyring import DEFAULT_ALGORITHMS, Keyring
from agent_client.pointer import PointerProbe
from agent_client.prompt import (
    ENGINEER_UNNAMED,
    Activity,
    ActivityDisplay,
    Banner,
    Command,
    ConsentPrompt,
    Question,
    Watcher,
)
from agent_client.screen_loop import ScreenLoop
from agent_client.session_rules import CloseVerdict, close_verdict, reconnect_delays
from agent_client.texts import TEXTS
from agent_client.transport import (
    ConnectFailed,
    Connector,
    Kind,
    Outbox,
    Transport,
    TransportClosed,
)
from rsb_protocol.close_codes import CloseCode
from rsb_protocol.e2e import PublicKey
from rsb_protocol.errors import E2EError, ProtocolError, VersionMismatch
from rsb_protocol.framing import (
    AGENT_SLOT,
    CUSTOMER_SLOT,
    RECORDING_SLOT,
    Envelope,
    FrameType,
    peek_route,
)
from rsb_protocol.messages import (
    ConsentRequest,
    ConsentRevoke,
    End,
    Hello,
    Join,
    KeyAlgorithm,
    Leave,
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

__all__ = ["AgentOptions", "AgentSession", "ExitStatus", "JoinInfo"]

log = logging.getLogger(__name__)

_SEQ = struct.Struct(">Q")
_SEQ_OFFSET = 10  # the header's seq field (rsb_protocol.framing: format >BBBBHIQ)
DISCONNECTED = "disconnected"
"""The `leave` reason of a dropped connection, which may resume (docs/protocol.md)."""


class ExitStatus(IntEnum):
    """The agent's process exit codes."""

    ENDED = 0
    BAD_INPUT = 2
    CONNECTION_FAILED = 3


@dataclass(frozen=True)
class JoinInfo:
    """What `POST /api/v1/join` returned, plus where the broker is."""

    session_id: str
    case_number: str
    agent_token: str
    engineer_name: str | None
    """None for `rsb-agent attach`: the token does not name the engineer; each request does."""
    engineer_level: str | None
    broker: str


@dataclass(frozen=True)
class AgentOptions:
    """Tunables of one agent run; the defaults are what the CLI uses."""

    max_fps: float = 15.0
    window: int = 3
    ack_timeout: float = 5.0
    max_message: int = 1 << 20
    consent_timeout: float = 180.0
    give_up_after: float = 150.0
    welcome_timeout: float = 10.0
    algorithms: tuple[KeyAlgorithm, ...] = DEFAULT_ALGORITHMS
    software: str = "rsb-agent"


class AgentSession:
    """One customer's agent in one session, for the life of the process."""

    def __init__(
        self,
        join: JoinInfo,
        connect: Connector,
        prompt: ConsentPrompt,
        source: FrameSource,
        *,
        executor: Executor,
        injector_factory: Callable[[], InputInjector] | None,
        pointer: PointerProbe | None = None,
        origin: tuple[int, int] = (0, 0),
        options: AgentOptions | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """Prepare the session; nothing is sent until `run`.

        Args:
            join: The join response.
            connect: Opens a connection to the broker's agent endpoint.
            prompt: The consent UI.
            source: The frame source, used only on `executor`'s thread.
            executor: One worker thread for capture and encoding.
            injector_factory: Builds the input backend; None if this machine has none, in
                which case control is refused without asking.
            pointer: Pointer probe for CURSOR frames (called on `executor`'s thread).
            origin: Screen coordinates of the source's top-left pixel.
            options: Tunables.
            rng: Randomness for the backoff jitter (tests pass a seeded one).
        """
        self.options = options or AgentOptions()
        self._join = join
        self._connect = connect
        self._prompt = prompt
        self._source = source
        self._executor = executor
        self._pointer = pointer
        self._origin = origin
        self._rng = rng or random.Random()
        supported = {Permission.VIEW} | ({Permission.CONTROL} if injector_factory else set())
        self.consent = AgentConsent(supported=frozenset(supported))
        self.keyring = Keyring(join.session_id, self.options.algorithms)
        self.input = InputGate(
            self.consent,
            self.keyring,
            injector_factory or _no_injector,
            screen_size=source.size,
            origin=origin,
            max_size=self.options.max_message,
        )
        self.outbox = Outbox()
        self.chat = ChatRelay(
            self.keyring,
            self.consent,
            self.outbox,
            notice=prompt.notice,
            frames_allowed=self.frames_allowed,
            max_message=self.options.max_message,
        )
        self.screen: ScreenLoop | None = None
        self._transport: Transport | None = None
        self._parked: dict[tuple[int, Permission], PendingRequest] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._connections = 0
        self._organisation = "the support team"
        self._levels: dict[int, str | None] = {}
        self._activity = Activity()
        self._handlers: dict[type[Message], Callable[[Any], Change]] = {
            State: self._on_state,
            Join: self._on_join,
            Leave: self._on_leave,
            PublicKeyAnnounce: self._on_public_key,
            ConsentRequest: self.consent.request,
            ConsentRevoke: lambda m: self.consent.revoke(m.slot, m.permission, Origin.REMOTE),
            Pause: lambda m: self._unless_own(m, lambda: self.consent.pause(Origin.REMOTE)),
            Resume: lambda m: self._unless_own(m, lambda: self.consent.resume(Origin.REMOTE)),
            End: lambda m: self.consent.end(Origin.REMOTE, m.reason),
        }

    async def run(self) -> ExitStatus:
        """Run until the session ends or the broker cannot be reached; returns the exit code."""
        join = self._join
        level = f" ({join.engineer_level})" if join.engineer_level else ""
        engineer = join.engineer_name + level if join.engineer_name else ENGINEER_UNNAMED
        banner = Banner(join.case_number, engineer, join.broker)
        self._prompt.start(banner, self.on_command)
        try:
            return await self._connect_loop()
        finally:
            for task in list(self._tasks):
                task.cancel()
            self._prompt.close()
            self.input.close()

    def on_command(self, command: Command) -> None:
        """Apply one of the customer's commands at once."""
        consent = self.consent
        if command is Command.PAUSE:
            paused = consent.paused
            change = consent.resume(Origin.LOCAL) if paused else consent.pause(Origin.LOCAL)
        elif command is Command.REVOKE_CONTROL:
            change = consent.revoke_control("taken back by the customer")
        elif command is Command.REVOKE_VIEW:
            change = consent.revoke_all_viewing("stopped by the customer")
        else:
            change = consent.end(Origin.LOCAL, "ended by the customer")
        self._apply(change)

    def request_end(self, reason: str) -> None:
        """End the session from outside (Ctrl-C, SIGTERM): tell the broker, then stop."""
        self._apply(self.consent.end(Origin.LOCAL, reason))
        self._stop.set()

    # Connection loop.

    async def _connect_loop(self) -> ExitStatus:
        loop = asyncio.get_running_loop()
        delays: Iterator[float] = reconnect_delays(self._rng)
        failing_since: float | None = None
        while not self._stop.is_set():
            try:
                async with self._connect() as transport:
                    delays, failing_since = reconnect_delays(self._rng), None
                    verdict = await self._serve(transport)
            except ConnectFailed as exc:
                if exc.final:
                    self._prompt.notice(f"Cannot connect: {exc}")
                    return ExitStatus.CONNECTION_FAILED
                log.info("connect failed: %s", exc)
                verdict = CloseVerdict.RETRY
            if verdict is CloseVerdict.ENDED or self.consent.ended:
                return ExitStatus.ENDED
            if verdict is CloseVerdict.FAILED:
                return ExitStatus.CONNECTION_FAILED
            failing_since = failing_since if failing_since is not None else loop.time()
            if loop.time() - failing_since > self.options.give_up_after:
                self._prompt.notice("The support server cannot be reached; giving up.")
                return ExitStatus.CONNECTION_FAILED
            try:
                await asyncio.wait_for(self._stop.wait(), next(delays))
            except TimeoutError:
                continue
        return ExitStatus.ENDED

    async def _serve(self, transport: Transport) -> CloseVerdict:
        """One connection, from hello to close."""
        hello = Hello(Role.AGENT, self.keyring.algorithms, self.options.software)
        try:
            await transport.send(hello.to_json())
            for announce in self.keyring.announcements():
                await transport.send(announce.to_json())
            first = await asyncio.wait_for(transport.recv(), self.options.welcome_timeout)
            refusal = self._check_welcome(first)
            if refusal:
                self._prompt.notice(refusal)
                await transport.close(1008, "unexpected welcome")
                return CloseVerdict.FAILED
        except TransportClosed as exc:
            return self._closed(exc)
        except TimeoutError:
            return CloseVerdict.RETRY
        self._transport = transport
        self._connections += 1
        if self._connections == 1:
            self._prompt.notice(f"Connected to {self._organisation}. Waiting for the engineer.")
        else:
            self._prompt.notice("Reconnected; your earlier answers still apply.")
        self.screen = ScreenLoop(
            self._source,
            self,
            executor=self._executor,
            pointer=self._pointer,
            origin=self._origin,
            max_fps=self.options.max_fps,
            window=self.options.window,
            ack_timeout=self.options.ack_timeout,
        )
        tasks = [
            asyncio.create_task(self._pump(transport), name="rsb-outbox"),
            asyncio.create_task(self.screen.run(), name="rsb-screen"),
        ]
        self._rekey(keyframe=True)  # a new epoch on every (re)connect
        try:
            while True:
                self._receive(await transport.recv())
        except TransportClosed as exc:
            return self._closed(exc)
        except VersionMismatch as exc:
            self._prompt.notice(f"{exc}: please update the agent.")
            await transport.close(4002, "unsupported version")
            return CloseVerdict.FAILED
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._transport, self.screen = None, None
            self.outbox.purge(Kind.KEY_WRAP, Kind.FRAME, Kind.CURSOR)

    async def _pump(self, transport: Transport) -> None:
        try:
            await self.outbox.pump(transport)
        except TransportClosed:
            pass  # the reader sees the same close and decides what to do

    def _check_welcome(self, data: str | bytes) -> str | None:
        """Return why the first message is unacceptable, or None if it is our welcome."""
        if not isinstance(data, str):
            return "The broker's first message is not a welcome."
        try:
            welcome = Welcome.parse(data, self.options.max_message)
        except ProtocolError as exc:
            return f"The broker's first message is not a welcome: {exc}"
        self._organisation = welcome.organisation
        if (welcome.slot, welcome.session_id, welcome.case_number) != (
            AGENT_SLOT,
            self._join.session_id,
            self._join.case_number,
        ):
            # A broker that mixes sessions up must not get frames meant for another case.
            return "The broker's welcome is for another session; disconnecting."
        return None

    def _closed(self, exc: TransportClosed) -> CloseVerdict:
        if self.consent.ended:
            return CloseVerdict.ENDED
        verdict, text = close_verdict(exc.code)
        if verdict is CloseVerdict.ENDED:
            self._apply(self.consent.end(Origin.REMOTE))
        elif exc.code == CloseCode.AGENT_OUTDATED:
            # Refused for good like any REFUSED code, with the one thing the customer can do.
            self._prompt.notice(_OUTDATED)
        elif verdict is CloseVerdict.FAILED:
            self._prompt.notice(f"Disconnected for good: {text}.")
        else:
            self._prompt.notice(f"Connection lost ({text}); reconnecting...")
        return verdict

    # Incoming messages.

    def _receive(self, data: str | bytes) -> None:
        if isinstance(data, bytes):
            self._on_binary(data)
            return
        try:
            message = parse_message(data, self.options.max_message)
        except VersionMismatch:
            raise
        except ProtocolError as exc:
            log.warning("control message dropped: %s", exc)
            return
        handler = self._handlers.get(type(message))
        if handler is None:
            log.debug("ignored %s message", message.TYPE)
            return
        self._apply(handler(message))

    def _on_binary(self, data: bytes) -> None:
        try:
            frame_type, slot = peek_route(data)
        except ProtocolError as exc:
            log.warning("binary frame dropped: %s", exc)
            return
        if frame_type is FrameType.INPUT:
            try:
                self.input.receive(slot, data)
            except InjectionFailed as exc:
                self._prompt.notice(f"{exc}; control is taken back.")
                self._apply(self.consent.revoke(slot, Permission.CONTROL, Origin.LOCAL, str(exc)))
        elif frame_type in (FrameType.ACK, FrameType.KEYFRAME_REQUEST):
            try:
                envelope = Envelope.parse(data, self.options.max_message)
            except ProtocolError as exc:
                log.warning("flow-control frame dropped: %s", exc)
                return
            if self.screen is None:
                return
            if frame_type is FrameType.ACK:
                self.screen.acked(envelope.epoch, envelope.seq)
            else:
                self.screen.request_keyframe()
        elif frame_type is FrameType.CHAT:
            self.chat.receive_frame(slot, data)
        else:
            log.debug("ignored %s frame", frame_type.name)

    def _on_state(self, message: State) -> Change:
        return self.consent.observe_state(
            message.phase, message.viewing_slots, message.controller_slot
        )

    def _on_join(self, message: Join) -> Change:
        if message.role is not Role.VIEWER:
            return NOTHING
        if self.consent.participant(message.slot) not in (None, message.participant):
            self.keyring.forget(message.slot)  # a new person in that slot: not their key
        self._levels[message.slot] = message.level.value if message.level else None
        return self.consent.joined(
            message.slot, message.participant, message.display_name, message.level
        )

    def _on_leave(self, message: Leave) -> Change:
        # Its key goes either way: a viewer that resumes announces one again, and only then
        # is the group key wrapped to it (``_on_public_key``).
        self.keyring.forget(message.slot)
        if message.reason == DISCONNECTED and message.participant == self.consent.participant(
            message.slot
        ):
            return self.consent.away(message.slot)
        return self.consent.left(message.slot)

    def _on_public_key(self, message: PublicKeyAnnounce) -> Change:
        slot = message.slot
        try:
            key = PublicKey.from_announce(message)
            if slot == RECORDING_SLOT:
                self.keyring.learn_recording_key(key)
                return NOTHING
            if slot == CUSTOMER_SLOT:
                if not self.keyring.learn_customer_key(key):
                    return NOTHING  # the same page again: same channel, same words
                return self._customer_page_changed()
            if slot == AGENT_SLOT or self.consent.participant(slot) is None:
                return NOTHING  # our own key echoed, or nobody joined in that slot
            changed = self.keyring.learn(slot, key)
        except (E2EError, ValueError) as exc:
            log.warning("public key for slot %d refused: %s", slot, exc)
            return NOTHING
        for parked in [p for k, p in self._parked.items() if k[0] == slot]:
            del self._parked[(parked.slot, parked.permission)]
            self._ask_soon(parked)
        if changed and slot in self.consent.admitted_viewers():
            name = self.consent.display_name(slot)
            words = " ".join(self.keyring.readback().words)
            return Change(
                rekey=True,
                keyframe=True,
                notices=(f"{name} is back; read-back words now: {words}",),
            )
        return NOTHING

    def _customer_page_changed(self) -> Change:
        text = "Chat from the web page is open."
        if self.consent.admitted_viewers() or self._parked or self.consent.pending():
            # The page's key is part of the read-back: tell the customer the words changed.
            text += f" Read-back words now: {' '.join(self.keyring.readback().words)}"
        return Change(notices=(text,))

    def _unless_own(self, message: Pause | Resume, apply: Callable[[], Change]) -> Change:
        # The broker echoes our own pause and resume; only the customer page's count here.
        return NOTHING if message.by is Role.AGENT else apply()

    # Carrying out what the consent record decided.

    def _apply(self, change: Change) -> None:
        for message in change.send:
            self.outbox.put(message.to_json(), Kind.CONTROL)
        for request in change.withdrawn:
            self._parked.pop((request.slot, request.permission), None)
            self._prompt.withdraw(request)
        for text in change.notices:
            self._prompt.notice(text)
        if change.ask is not None:
            self._ask_soon(change.ask)
        if change.rekey:
            self._rekey(keyframe=change.keyframe)
        elif change.keyframe and self.screen is not None:
            self.screen.request_keyframe()
        self.input.sync()
        if not self.frames_allowed():
            # Frames sealed before the change must not reach anyone after it.
            self.outbox.purge(Kind.FRAME, Kind.CURSOR)
        if self.screen is not None:
            self.screen.kick()
        if self.consent.ended:
            self._finish()
        self._show_activity()

    def _show_activity(self) -> None:
        """Tell a prompt that shows who is watching (the indicator) what consent now allows."""
        if not isinstance(self._prompt, ActivityDisplay):
            return
        consent = self.consent
        watchers = {
            slot: Watcher(consent.display_name(slot) or f"slot {slot}", self._levels.get(slot))
            for slot in sorted(consent.admitted_viewers())
        }
        controller = consent.controller
        activity = Activity(
            tuple(watchers.values()),
            watchers.get(controller) if controller is not None else None,
            consent.paused,
        )
        if activity != self._activity:
            self._activity = activity
            self._prompt.show_activity(activity)

    def _rekey(self, *, keyframe: bool) -> None:
        for wrap in self.keyring.rekey(self.consent.admitted_viewers()):
            self.outbox.put(wrap, Kind.KEY_WRAP)
        if self.screen is not None:
            self.screen.new_epoch(self.keyring.epoch)
            if keyframe:
                self.screen.request_keyframe()

    def _ask_soon(self, request: PendingRequest) -> None:
        if not self.keyring.has_key(request.slot):
            # The read-back words must cover the requester's key, so wait for it.
            self._parked[(request.slot, request.permission)] = request
            return
        self._spawn(self._ask(request))

    async def _ask(self, request: PendingRequest) -> None:
        question = Question(request, self.keyring.readback())
        reason = ""
        try:
            answer = await asyncio.wait_for(
                self._prompt.ask(question), self.options.consent_timeout
            )
        except TimeoutError:
            answer, reason = None, "no answer in time"
            self._prompt.notice("No answer in time: the request was refused.")
        self._apply(self.consent.answer(request, bool(answer), reason or _why(answer)))

    def _finish(self) -> None:
        self._stop.set()
        transport = self._transport
        if transport is not None:
            self._spawn(self._close_after_flush(transport))

    async def _close_after_flush(self, transport: Transport) -> None:
        await self.outbox.drained(2.0)
        await transport.close(1000, "session ended")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # FrameSink, for the screen loop.

    def frames_allowed(self) -> bool:
        """Consent allows frames and an admitted viewer holds the current key."""
        return (
            self._transport is not None
            and self.consent.frames_allowed()
            and any(self.keyring.has_key(s) for s in self.consent.admitted_viewers())
        )

    def send_frame(self, frame_type: FrameType, payload: bytes) -> tuple[int, int]:
        """Seal under the group key and queue; returns (epoch, seq) for the credits."""
        data = self.keyring.sender.seal_update(frame_type, payload)
        kind = Kind.CURSOR if frame_type is FrameType.CURSOR else Kind.FRAME
        self.outbox.put(data, kind)
        return self.keyring.epoch, _SEQ.unpack_from(data, _SEQ_OFFSET)[0]


_OUTDATED = TEXTS["en"]["n_outdated"]


def _why(answer: bool | None) -> str:
    return "" if answer else ("declined by the customer" if answer is False else "no answer")


def _no_injector() -> InputInjector:
    raise RuntimeError("this machine has no input backend")
