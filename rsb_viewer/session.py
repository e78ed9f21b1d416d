"""The viewer's side of a session as a sans-I/O state machine: messages in, messages out.

`ViewerSession.receive` takes one WebSocket message exactly as received (``str`` for a JSON
control message, ``bytes`` for a binary frame) and returns what to send back. It installs the
group key wrapped for our slot, opens screen and cursor frames, paints updates onto a BGRA
canvas and answers each painted update with an ACK. Frames it must refuse (another epoch, a
replay, a forged tag) are dropped and counted, never painted: the broker relays them, so a
bad frame is the broker's or the network's doing and must not end the engineer's session.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from rsb_codec.wire import Cursor, Update, parse_cursor, parse_update
from rsb_protocol import messages as msg
from rsb_protocol.e2e import GroupReceiver, KeyPair, PairwiseChannel, PublicKey, Side, negotiate
from rsb_protocol.errors import ProtocolError, UnexpectedFrame, UnknownEpoch, VersionMismatch
from rsb_protocol.framing import (
    AGENT_SLOT,
    RECORDING_SLOT,
    Envelope,
    Flags,
    FrameType,
    peek_route,
)
from rsb_protocol.readback import ReadbackString, readback
from rsb_viewer.screen import Canvas, Screen

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "Cursor",
    "Outgoing",
    "ViewerError",
    "ViewerProtocolError",
    "ViewerSession",
]

Outgoing = str | bytes
"""A message to send: ``str`` goes out as a text frame, ``bytes`` as a binary frame."""

DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024
MAX_CONTROL_SIZE = 64 * 1024
"""Control messages are small JSON objects; a bigger one is refused before parsing."""
MAX_KNOWN_KEYS = 512
MAX_INPUT_SIZE = 16 * 1024
SOFTWARE = "rsb-view/1"
_ALWAYS_COUNTED = frozenset({AGENT_SLOT, RECORDING_SLOT})


class ViewerError(Exception):
    """Base of the errors this package raises itself (protocol errors keep their own tree)."""


class ViewerProtocolError(ViewerError):
    """The broker broke the session contract in a way we cannot continue from."""


class ViewerSession:
    """One viewer's protocol state; see the module docstring.

    Args:
        session_id: The session joined; it salts every key and the read-back string.
        algorithms: Key algorithms to offer; our key pair uses the preferred one.
        max_frame_size: Largest binary frame accepted.

    Attributes:
        own: Our ephemeral key pair, made here and kept in memory only.
        welcome, state, ended: The latest ``welcome``, ``state`` and ``end`` messages.
        participants: ``join`` messages by slot, until the matching ``leave``.
        screen: The picture rebuilt from updates (`canvas` is a shortcut to it).
        cursor: The agent's pointer; None before the first CURSOR frame.
        paused: Whether the customer paused the session.
        errors: Recent refusals as ``"<code>: <message>"``, newest last.
        broker_errors: Recent ``error`` messages from the broker.
        chat: Recent decrypted chat texts.
        frames_dropped, wraps_ignored: Counters of frames refused and wraps for others.
    """

    def __init__(
        self,
        session_id: str,
        *,
        algorithms: Sequence[str] = ("x25519",),
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> None:
        try:
            self.algorithms = tuple(msg.KeyAlgorithm(a) for a in algorithms)
        except ValueError:
            raise ValueError(f"algorithms must be among x25519, p256: {algorithms!r}") from None
        self.session_id = session_id
        self.own = KeyPair.generate(negotiate(self.algorithms, self.algorithms))
        self.max_frame_size = max_frame_size
        self.welcome: msg.Welcome | None = None
        self.state: msg.State | None = None
        self.participants: dict[int, msg.Join] = {}
        self.screen = Screen()
        self.cursor: Cursor | None = None
        self.paused = False
        self.ended: msg.End | None = None
        self.errors: deque[str] = deque(maxlen=64)
        self.broker_errors: deque[msg.ErrorMessage] = deque(maxlen=64)
        self.chat: deque[str] = deque(maxlen=100)
        self.frames_dropped = 0
        self.wraps_ignored = 0
        self._keys: dict[tuple[int, msg.KeyAlgorithm], PublicKey] = {}
        self._readback: ReadbackString | None = None
        self._receiver: GroupReceiver | None = None
        self._receiver_agent: PublicKey | None = None
        self._pairwise: PairwiseChannel | None = None
        self._pending_wrap: bytes | None = None
        self._request_ids = 0
        self._text_handlers: dict[type[msg.Message], Callable[[Any], list[Outgoing]]] = {
            msg.Welcome: self._on_welcome,
            msg.State: self._on_state,
            msg.Join: self._on_join,
            msg.Leave: self._on_leave,
            msg.PublicKeyAnnounce: self._on_public_key,
            msg.GroupKey: self._on_group_key,
            msg.ErrorMessage: self._on_error,
            msg.Pause: self._on_pause_or_resume,
            msg.Resume: self._on_pause_or_resume,
            msg.End: self._on_end,
        }

    # --- read-only views ------------------------------------------------------------------

    @property
    def slot(self) -> int | None:
        """Our slot, from ``welcome``; None before it."""
        return self.welcome.slot if self.welcome else None

    @property
    def canvas(self) -> Canvas | None:
        """The screen, (H, W, 4) uint8 BGRA; None before the first keyframe."""
        return self.screen.canvas

    @property
    def keyframes_applied(self) -> int:
        """Keyframes painted so far (0 until the customer admits us)."""
        return self.screen.keyframes_applied

    @property
    def updates_applied(self) -> int:
        """Updates painted so far, keyframes included."""
        return self.screen.updates_applied

    @property
    def epoch(self) -> int:
        """The installed key epoch; 0 until the customer admits us."""
        return self._receiver.epoch if self._receiver else 0

    @property
    def waiting_for_agent_key(self) -> bool:
        """True while a key wrap for us is held because the agent announced no key of our
        algorithm: the customer let us in, but we cannot read the screen until it does."""
        return self._pending_wrap is not None and self._receiver is None

    @property
    def agent_key(self) -> PublicKey | None:
        """The agent's public key of our algorithm, once announced."""
        return self._keys.get((AGENT_SLOT, self.own.algorithm))

    @property
    def public_keys(self) -> tuple[PublicKey, ...]:
        """The keys the read-back covers: ours, the agent's, the recorder's, and those of the
        viewers present (the broker also replays keys of viewers who left; the agent, whose
        words the customer reads, does not count those)."""
        own_slot = self.slot
        others = [
            key
            for (slot, _), key in self._keys.items()
            if slot != own_slot and (slot in _ALWAYS_COUNTED or slot in self.participants)
        ]
        return (self.own.public, *others)

    @property
    def readback(self) -> ReadbackString:
        """The read-back string over `public_keys`; recomputed only after they change."""
        if self._readback is None:
            self._readback = readback(self.session_id, self.public_keys)
        return self._readback

    # --- outgoing messages ------------------------------------------------------------------

    def hello(self) -> msg.Hello:
        """The first message to send on a new connection."""
        return msg.Hello(msg.Role.VIEWER, self.algorithms, SOFTWARE)

    def control_request(self, reason: str = "") -> tuple[str, str]:
        """A ``control_request`` from our slot.

        Returns:
            Its request id (the broker's ``error`` about it names this id) and its JSON text.

        Raises:
            ViewerError: Before ``welcome``.
        """
        self._request_ids += 1
        request_id = f"view-{self._request_ids}"
        return request_id, msg.ControlRequest(request_id, self.own_slot(), reason).to_json()

    def control_release(self) -> str:
        """A ``control_release`` from our slot. Raises as ``control_request``."""
        return msg.ControlRelease(self.own_slot()).to_json()

    def keyframe_request(self) -> bytes:
        """A clear KEYFRAME_REQUEST frame from our slot.

        Raises:
            ViewerError: Before ``welcome``.
        """
        return Envelope(FrameType.KEYFRAME_REQUEST, self.own_slot(), self.epoch, 0).serialize()

    def seal_input(self, event: dict[str, Any]) -> bytes:
        """Seal one input event for the agent, pairwise, with our slot in the header.

        Raises:
            ViewerError: No key installed yet (not admitted), or the event is not a small
                JSON object.
        """
        if self._pairwise is None:
            raise ViewerError("no key yet: input needs the customer's consent first")
        try:
            payload = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
        except (TypeError, ValueError):
            payload = b""
        if not isinstance(event, dict) or not payload or len(payload) > MAX_INPUT_SIZE:
            raise ViewerError(f"an input event is a JSON object under {MAX_INPUT_SIZE} bytes")
        return self._pairwise.seal(FrameType.INPUT, payload)

    def own_slot(self) -> int:
        """Our slot.

        Raises:
            ViewerError: Before ``welcome``.
        """
        if self.welcome is None:
            raise ViewerError("no slot yet: the broker has not sent welcome")
        return self.welcome.slot

    # --- incoming ---------------------------------------------------------------------------

    def receive(self, data: str | bytes) -> list[Outgoing]:
        """Handle one WebSocket message.

        Args:
            data: The message as received: ``str`` (text frame) or ``bytes`` (binary frame).

        Returns:
            The messages to send in reply, in order (often none).

        Raises:
            VersionMismatch: The broker or agent speaks another protocol version; close 4002.
            ViewerProtocolError: ``welcome`` names another session, or changes our slot.
        """
        try:
            if isinstance(data, str):
                message = msg.parse_message(data, MAX_CONTROL_SIZE)
                handler = self._text_handlers.get(type(message))
                # Types meant for the agent (consent_request, ...) carry nothing for us.
                return handler(message) if handler else []
            return self._receive_frame(bytes(data))
        except VersionMismatch:
            raise
        except (ProtocolError, ValueError) as exc:
            # ValueError: an update or cursor payload that decrypted but does not parse or
            # decode; the agent's bug, so drop it like a forged frame and ask for a keyframe.
            self.frames_dropped += not isinstance(data, str)
            code = exc.code if isinstance(exc, ProtocolError) else "bad_payload"
            self.errors.append(f"{code}: {exc}")
            if isinstance(exc, ValueError):
                self.screen.mark_missing()
            return self._keyframe_requests() if self.welcome else []

    # --- control messages -------------------------------------------------------------------

    def _on_welcome(self, message: msg.Welcome) -> list[Outgoing]:
        if message.session_id != self.session_id:
            raise ViewerProtocolError(f"welcome is for session {message.session_id!r}")
        if self.welcome is not None and self.welcome.slot != message.slot:
            raise ViewerProtocolError("a second welcome changed our slot")
        self.welcome = message
        self._readback = None
        self._setup_receiver()
        return [self.own.public.announce(message.slot).to_json()]

    def _on_state(self, message: msg.State) -> list[Outgoing]:
        self.state = message
        return []

    def _on_join(self, message: msg.Join) -> list[Outgoing]:
        known = self.participants.get(message.slot)
        newcomer = known is None or known.participant != message.participant
        if newcomer and message.slot not in _ALWAYS_COUNTED:
            # A key already held for this viewer slot predates this arrival (the broker
            # replays keys of viewers who left), so it is not the newcomer's: wait for theirs.
            self._forget_keys(message.slot)
        if known is not None or len(self.participants) < MAX_KNOWN_KEYS:
            self.participants[message.slot] = message
        self._readback = None
        return []

    def _on_leave(self, message: msg.Leave) -> list[Outgoing]:
        # Whoever left no longer holds a key in this session: the read-back covers the
        # participants present, as the agent's and the customer page's do.
        self.participants.pop(message.slot, None)
        if message.slot != self.slot:
            self._forget_keys(message.slot)
        return []

    def _forget_keys(self, slot: int) -> None:
        for index in [index for index in self._keys if index[0] == slot]:
            del self._keys[index]
        self._readback = None

    def _on_public_key(self, message: msg.PublicKeyAnnounce) -> list[Outgoing]:
        key = PublicKey.from_announce(message)
        if message.slot == self.slot:
            if key != self.own.public:  # someone announcing a key for our slot: not us
                raise UnexpectedFrame(f"public_key for our slot {message.slot} is not ours")
            return []
        index = (message.slot, message.algorithm)
        if index not in self._keys and len(self._keys) >= MAX_KNOWN_KEYS:
            raise UnexpectedFrame(f"more than {MAX_KNOWN_KEYS} public keys announced")
        if self._keys.get(index) != key:
            self._keys[index] = key
            self._readback = None
            self._setup_receiver()
        return []

    def _on_group_key(self, message: msg.GroupKey) -> list[Outgoing]:
        return self._install(message.wrapped_bytes)

    def _on_error(self, message: msg.ErrorMessage) -> list[Outgoing]:
        self.broker_errors.append(message)
        return []

    def _on_pause_or_resume(self, message: msg.Pause | msg.Resume) -> list[Outgoing]:
        self.paused = isinstance(message, msg.Pause)
        return []

    def _on_end(self, message: msg.End) -> list[Outgoing]:
        self.ended = message
        return []

    # --- keys -------------------------------------------------------------------------------

    def _setup_receiver(self) -> None:
        agent = self.agent_key
        if self.welcome is None or agent is None or agent == self._receiver_agent:
            return
        # A new agent key (first one, or the agent reconnected with a fresh pair): every key
        # derived from the old one is useless, so start over and wait for its next wrap.
        self._receiver = GroupReceiver(self.session_id, self.own, self.welcome.slot, agent)
        self._receiver_agent = agent
        self._pairwise = None
        if self._pending_wrap is not None:
            wrap, self._pending_wrap = self._pending_wrap, None
            self._install(wrap)

    def _install(self, wrap: bytes) -> list[Outgoing]:
        if self._receiver is None:
            # The wrap overtook the agent's public_key; keep the latest one only.
            self._pending_wrap = wrap
            return []
        epoch = self._receiver.install_wrapped_key(wrap, self.max_frame_size)
        if self._pairwise is None:
            assert self.welcome is not None and self._receiver_agent is not None
            self._pairwise = PairwiseChannel(
                self.session_id,
                self.own,
                self._receiver_agent,
                self.welcome.slot,
                Side.VIEWER,
                epoch,
            )
        else:
            self._pairwise.advance_epoch(epoch)
        self.screen.new_epoch()
        return []

    # --- binary frames ----------------------------------------------------------------------

    def _receive_frame(self, data: bytes) -> list[Outgoing]:
        if self.welcome is None:
            raise UnexpectedFrame("binary frame before welcome")
        frame_type, slot = peek_route(data)
        if frame_type is FrameType.KEY_WRAP:
            if slot != self.welcome.slot:
                # Another viewer's wrap: the broker should not send it and we could not open
                # it (it is sealed to that viewer's key), so it is no reason to complain.
                self.wraps_ignored += 1
                return []
            return self._install(data)
        if self._receiver is None:
            raise UnknownEpoch(f"{frame_type.name} before any key was installed")
        if frame_type is FrameType.CHAT and data[2] & Flags.PAIRWISE and self._pairwise:
            _, text = self._pairwise.open(data, self.max_frame_size)
            self.chat.append(text.decode("utf-8", "replace"))
            return []
        envelope, plaintext = self._receiver.open(data, self.max_frame_size)
        if frame_type is FrameType.CURSOR:
            self.cursor = parse_cursor(plaintext)
            return []
        if frame_type is FrameType.CHAT:
            self.chat.append(plaintext.decode("utf-8", "replace"))
            return []
        return self._on_update(envelope, parse_update(plaintext))

    def _on_update(self, envelope: Envelope, update: Update) -> list[Outgoing]:
        if not self.screen.add(update, more=bool(envelope.flags & Flags.MORE)):
            return []
        # ACK even an update we could not paint: it was consumed, and withholding the ACK
        # would only stall the agent's credits; the keyframe request repairs the picture.
        ack = Envelope(FrameType.ACK, self.own_slot(), envelope.epoch, envelope.seq)
        return [*self._keyframe_requests(), ack.serialize()]

    def _keyframe_requests(self) -> list[Outgoing]:
        return [self.keyframe_request()] if self.screen.take_keyframe_request() else []
