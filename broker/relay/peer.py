"""One WebSocket in a live session, with its own bounded outgoing queue and sender task.

Whoever relays to a peer only ever calls ``offer``, which never waits. While nothing is queued
and the peer's socket keeps up (its write buffer is at or below the low-water mark), a frame is
written at once: no queue entry, no task switch, no flow decision. Otherwise it joins the
queue, which the sender task drains at the pace of that peer's socket, so one slow reader
cannot hold up the agent or the other viewers (``flow.decide`` says what to drop when the
queue is full).

Writing at once matters for more than speed: the agent's reader handles every message of a
socket read (up to 256 KiB, 250 small frames) before the sender tasks get to run, so a queue
of 8 frames overflowed on bursts even for a fast viewer, and its deltas were dropped
(docs/benchmarks.md, "Frame path: before and after").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections import deque
from collections.abc import Callable
from typing import Literal, cast

from aiohttp import web

from broker.auth.revocation import Credential
from broker.relay.flow import DELTAS, FlowLimits, Offer, decide
from rsb_protocol.close_codes import close_reason
from rsb_protocol.framing import FrameType
from rsb_protocol.messages import Message

log = logging.getLogger(__name__)

PeerKind = Literal["agent", "viewer", "customer"]

WRITE_BUFFER_HIGH = 256 * 1024
"""Bytes a socket's transport buffers before it pauses: four 64 KiB frames."""
WRITE_BUFFER_LOW = 64 * 1024
"""Below this the transport is writable again, and a frame of up to 192 KiB goes out at once."""
_WS_HEADER = 10  # the largest server-to-client WebSocket frame header (RFC 6455 section 5.2)
_FIN_BINARY = 0x82  # final fragment, binary opcode; a server never masks
_PING = b"\x89\x00"  # final fragment, ping opcode, no payload
_HEADER_7 = struct.Struct("!BB").pack
_HEADER_16 = struct.Struct("!BBH").pack
_HEADER_64 = struct.Struct("!BBQ").pack
_FRAMES = DELTAS | {FrameType.KEYFRAME}
_PENDING = bytes(bytearray(b"pending"))
"""Queue entry standing for the one waiting latest-wins message of its type (``_pending``);
made at run time so that no received frame can be this very object."""


class Peer:
    def __init__(
        self,
        ws: web.WebSocketResponse,
        kind: PeerKind,
        participant: str,
        slot: int,
        limits: FlowLimits,
        *,
        display_name: str = "",
        level: str | None = None,
        role: str = "",
        transport: asyncio.BaseTransport | None = None,
        credential: Credential | None = None,
    ) -> None:
        self.ws = ws
        # The socket whose write buffer decides between writing now and queueing; without
        # one (tests that build a Peer by hand) every message goes through the queue.
        self._transport: asyncio.WriteTransport | None = None
        self._low_water = self._direct_limit = 0
        # uvloop's transports have the same methods without subclassing asyncio's classes.
        if transport is not None and hasattr(transport, "get_write_buffer_size"):
            transport = cast(asyncio.WriteTransport, transport)
            transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH, low=WRITE_BUFFER_LOW)
            self._transport = transport
            self._low_water, high_water = transport.get_write_buffer_limits()
            self._direct_limit = high_water - _WS_HEADER
        self.kind = kind
        self.participant = participant
        self.slot = slot
        self.display_name = display_name
        self.level = level
        self.role = role or kind
        self.credential = credential
        """The token this connection was opened with: what can end it early (``Hub.watch``)."""
        self.awaiting_keyframe = False
        self.request_keyframe: Callable[[], None] | None = None
        """How this viewer asks the agent for a keyframe (set by the viewer's endpoint)."""
        self._stale_since_keyframe = False
        self.acked = 0
        self.dropped = 0
        self.owes_pong = False
        """Pinged by the heartbeat and not yet answered (see ``Hub.ping_all``)."""
        self._limits = limits
        self._queue: deque[tuple[bytes | str | None, FrameType | None]] = deque()
        self._pending: dict[FrameType, bytes] = {}
        self._frames = 0
        self._bytes = 0
        self._control = 0
        self._wake = asyncio.Event()
        self._closing: tuple[int, str] | None = None
        self.closing = False
        """The broker decided to close this peer (``close_soon``, ``stop``): a plain attribute,
        read for every message the peer sends, so that nothing it still sends is relayed."""
        self._stopped = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._send_loop(), name=f"send-{self.kind}-{self.slot}")

    @property
    def closed(self) -> bool:
        return self._closing is not None or self.ws.closed

    @property
    def closing_code(self) -> int | None:
        """The code ``close_soon`` was asked to close with, if it was."""
        return self._closing[0] if self._closing is not None else None

    def offer(self, data: bytes, frame_type: FrameType) -> bool:
        """Queue a binary message without waiting.

        Returns:
            True when deltas were dropped and the agent should be asked for a keyframe.
        """
        if self._closing is not None:
            return False
        if self.awaiting_keyframe and frame_type in DELTAS:
            # What decide() answers for every delta until the keyframe is out, without the
            # call: a stalled viewer is offered every frame of the session (docs/benchmarks.md).
            self.dropped += 1
            if frame_type is FrameType.SCREEN_UPDATE:
                self._stale_since_keyframe = True
            return False
        size = len(data)
        transport = self._transport
        if transport is not None and not self._queue and not self.awaiting_keyframe:
            # At or below the low-water mark the transport is not paused (it resumes its
            # protocol there), and at or below the high-water mark after this write it stays
            # so: the frame is written whole, here, and nothing has to wait.
            buffered = transport.get_write_buffer_size()
            if buffered <= self._low_water and buffered + size <= self._direct_limit:
                if not transport.is_closing() and not self.ws.closed:
                    # A closing socket is left to the endpoint's receive loop, which sees it.
                    transport.writelines((binary_frame_header(size), data))
                return False
        verdict = decide(
            frame_type,
            size,
            queued_frames=self._frames,
            queued_bytes=self._bytes,
            queued_control=self._control,
            awaiting_keyframe=self.awaiting_keyframe,
            limits=self._limits,
        )
        if verdict is Offer.ENQUEUE:
            self._push(data, frame_type)
            return False
        if verdict is Offer.REPLACE_PENDING:
            if frame_type not in self._pending:
                self._push(_PENDING, frame_type)
            self._pending[frame_type] = data
            return False
        if verdict is Offer.DROP:
            self.dropped += 1
            if frame_type is FrameType.SCREEN_UPDATE:
                self._stale_since_keyframe = True
            return False
        if verdict is Offer.CLOSE:
            self.close_soon(4201, "too many undelivered control messages")
            return False
        self._drop_frames()
        if verdict is Offer.REPLACE_WITH_KEYFRAME:
            # Deltas keep being dropped until this keyframe has left the queue: on a viewer
            # that is still behind they would only refill it (see _keyframe_sent).
            self.awaiting_keyframe = True
            self._stale_since_keyframe = False
            self._push(data, frame_type)
            return False
        self.dropped += 1
        self.awaiting_keyframe = True
        return True

    def send(self, message: Message) -> None:
        """Queue a control message; never dropped (the peer is closed if even these pile up)."""
        if self._closing is not None:
            return
        if self._control >= self._limits.max_queued_control:
            self.close_soon(4201, "too many undelivered control messages")
            return
        self._push(message.to_json(), None)

    def ping(self) -> bool:
        """Send a heartbeat ping now; the peer owes a pong until ``pong_received``.

        Written to the transport like the frame path's frames, behind whatever is buffered:
        a viewer that reads nothing cannot answer, and that is how a dead one is found.
        """
        transport = self._transport
        if transport is None or transport.is_closing() or self.ws.closed:
            return False
        transport.write(_PING)
        self.owes_pong = True
        return True

    def pong_received(self) -> None:
        self.owes_pong = False

    def drop(self) -> None:
        """Cut the connection of a peer that stopped answering pings.

        No closing handshake (nobody would answer it) and no flushing of what is buffered
        (it would never drain): the client sees an abnormal closure (1006) and the endpoint's
        receive loop ends as for any lost connection.
        """
        if self._transport is not None:
            self._transport.abort()

    def close_soon(self, code: int, reason: str) -> None:
        """Send what is queued, then close with ``code``; later offers are ignored."""
        if self._closing is None:
            self._closing = (code, reason)
            self.closing = True
            self._queue.append((None, None))
            self._wake.set()

    async def wait_closed(self) -> None:
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _push(self, item: bytes | str, frame_type: FrameType | None) -> None:
        if frame_type in _FRAMES:
            self._frames += 1
            self._bytes += len(item)
        else:
            self._control += 1
        self._queue.append((item, frame_type))
        self._wake.set()

    def _drop_frames(self) -> None:
        kept = deque(entry for entry in self._queue if entry[1] not in _FRAMES)
        self.dropped += len(self._queue) - len(kept)
        self._queue = kept
        self._frames = 0
        self._bytes = 0

    async def _send_loop(self) -> None:
        ws = self.ws
        try:
            while True:
                if not self._queue:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                item, frame_type = self._queue.popleft()
                if item is None:
                    break
                if frame_type in _FRAMES:
                    self._frames -= 1
                    self._bytes -= len(item)
                else:
                    self._control -= 1
                if item is _PENDING and frame_type is not None:
                    item = self._pending.pop(frame_type)
                if isinstance(item, str):
                    await ws.send_str(item)
                else:
                    await ws.send_bytes(item)
                    if frame_type is FrameType.KEYFRAME and self.awaiting_keyframe:
                        self._keyframe_sent()
        except (OSError, RuntimeError) as exc:  # aiohttp: ConnectionError("Connection lost")
            log.debug("peer %s/%s send failed: %s", self.kind, self.slot, exc)
        finally:
            # Close only when asked (close_soon); otherwise the endpoint's error mapping owns
            # the close code and must not be pre-empted by a generic one.
            if self._closing is not None and not self._stopped:
                code, reason = self._closing
                with contextlib.suppress(Exception):
                    await ws.close(code=code, message=close_reason(reason))

    def _keyframe_sent(self) -> None:
        """The keyframe that replaced a slow viewer's queue is out: let deltas through again.

        A viewer that stays stalled keeps that keyframe queued and costs one request in all,
        rather than one per refill of its queue. Deltas dropped while it waited are missing
        on top of it, so one more keyframe is asked for before deltas resume.
        """
        if self._frames:
            return  # another keyframe replaced it meanwhile and is still queued
        if self._stale_since_keyframe:
            self._stale_since_keyframe = False
            if self.request_keyframe is not None:
                self.request_keyframe()
            return
        self.awaiting_keyframe = False

    async def stop(self) -> None:
        """Stop the sender at once; the endpoint closes the socket itself."""
        self._stopped = True
        if self._closing is None:
            self._closing = (1001, "going away")
            self.closing = True
        if self._task is not None:
            self._task.cancel()
            await self.wait_closed()


def binary_frame_header(size: int) -> bytes:
    """The header of an unfragmented, unmasked binary WebSocket frame (RFC 6455 section 5.2).

    The frame path writes frames itself rather than through ``WebSocketResponse.send_bytes``:
    that is a coroutine, and driving one by hand for every frame cost about a tenth of the
    broker's CPU at 200 live sessions (0.60 core before, 0.54 after, same load). Frames are
    never compressed (``compress=False``), so the header is all there is to add. aiohttp
    writes each of its own frames (control messages, pings, close) without an ``await``
    between header and payload, so nothing interleaves with ours.
    """
    if size < 126:
        return _HEADER_7(_FIN_BINARY, size)
    if size < 1 << 16:
        return _HEADER_16(_FIN_BINARY, 126, size)
    return _HEADER_64(_FIN_BINARY, 127, size)
