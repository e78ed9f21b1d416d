"""The screen loop: capture, encode, seal and queue updates, paced by credits and frame rate.

Nothing is captured while consent does not allow frames: the loop asks its `FrameSink`
(the session) before every capture and again before sealing, so a pause or revocation that
lands while a frame is being encoded throws that frame away. Capture and encoding run in one
worker thread (mss and the X connection stay on the thread that made them, and the event loop
stays free for input and revocation); sealing happens back on the event loop, next to the
consent check, so no frame is sealed after consent went away.

Pacing has two parts:

- credits (`Credits`): at most `window` updates in flight beyond the highest sequence the
  broker acknowledged for the current epoch; the broker acknowledges for the fastest viewer
  and drops deltas for slower ones (docs/protocol.md, "Session flow over the relay", step 7);
- frame rate: at most `max_fps`, and slower when capture plus encoding is slow, so that the
  agent never spends more than about half a core on it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from concurrent.futures import Executor
from typing import Protocol

from agent_client.capture import FrameSource
from agent_client.encoder import Encoder
from agent_client.pointer import PointerProbe
from rsb_codec.wire import encode_cursor, serialize_update
from rsb_protocol.framing import FrameType

__all__ = ["Credits", "FrameSink", "ScreenLoop"]

log = logging.getLogger(__name__)

_Captured = tuple[FrameType | None, bytes | None, tuple[int, int] | None]
"""(frame type, serialized update, pointer position) from one capture."""


class Credits:
    """Counts updates sent but not yet acknowledged in the current epoch (pure)."""

    def __init__(self, window: int) -> None:
        """Allow `window` unacknowledged updates.

        Raises:
            ValueError: `window` is below 1.
        """
        if window < 1:
            raise ValueError(f"credit window must be at least 1, got {window}")
        self.window = window
        self._epoch = 0
        self._unacked: deque[int] = deque()

    @property
    def in_flight(self) -> int:
        """Updates sent in this epoch and not acknowledged."""
        return len(self._unacked)

    @property
    def available(self) -> bool:
        """True if another update may be sent now."""
        return len(self._unacked) < self.window

    def new_epoch(self, epoch: int) -> None:
        """A new epoch started: updates of the old one will never be acknowledged usefully."""
        self._epoch = epoch
        self._unacked.clear()

    def sent(self, epoch: int, seq: int) -> None:
        """Record one update sent as (epoch, seq)."""
        if epoch != self._epoch:
            self.new_epoch(epoch)
        self._unacked.append(seq)

    def acked(self, epoch: int, seq: int) -> bool:
        """Apply an ACK; returns True if it freed a credit. Stale epochs are ignored."""
        if epoch != self._epoch:
            return False
        before = len(self._unacked)
        while self._unacked and self._unacked[0] <= seq:
            self._unacked.popleft()
        return len(self._unacked) < before

    def forget(self) -> None:
        """Give up on every outstanding ACK (none came for too long)."""
        self._unacked.clear()


class FrameSink(Protocol):
    """Where the screen loop's output goes: the session, which knows consent and keys."""

    def frames_allowed(self) -> bool:
        """Whether any frame may be captured and sent now."""
        ...

    def send_frame(self, frame_type: FrameType, payload: bytes) -> tuple[int, int]:
        """Seal `payload` under the group key and queue it; returns its (epoch, seq)."""
        ...


class ScreenLoop:
    """Captures and sends screen updates for as long as it runs (one run per connection)."""

    def __init__(
        self,
        source: FrameSource,
        sink: FrameSink,
        *,
        executor: Executor,
        pointer: PointerProbe | None = None,
        origin: tuple[int, int] = (0, 0),
        max_fps: float = 15.0,
        window: int = 3,
        ack_timeout: float = 5.0,
        encoder: Encoder | None = None,
        retry_after: float = 0.5,
    ) -> None:
        """Prepare the loop; nothing is captured until `run` and consent allow it.

        Args:
            source: The frame source; used only from `executor`'s thread.
            sink: The session.
            executor: A single-thread executor that owns the source and the pointer probe.
            pointer: Pointer probe for CURSOR frames, or None to send none.
            origin: Screen coordinates of the source's top-left pixel.
            max_fps: Upper bound on updates per second.
            window: Credit window (updates in flight beyond the last ACK).
            ack_timeout: Seconds without any ACK, credits exhausted, before the loop assumes
                the ACKs were lost and starts over from a keyframe instead of stalling.
            encoder: The encoder (a default `Encoder` if None).
            retry_after: Seconds before the next try after a capture or encoding failed.

        Raises:
            ValueError: `max_fps` is not positive or `window` is below 1.
        """
        if max_fps <= 0:
            raise ValueError(f"max_fps must be positive, got {max_fps}")
        self._source = source
        self._sink = sink
        self._executor = executor
        self._pointer = pointer
        self._origin = origin
        self._min_interval = 1.0 / max_fps
        self._ack_timeout = ack_timeout
        self._encoder = encoder or Encoder()
        self._retry_after = retry_after
        self.credits = Credits(window)
        self._kick = asyncio.Event()
        self._force = True
        self._cursor: tuple[int, int, bool] | None = None
        self.stalled = asyncio.Event()
        """Set while the loop waits for credits (for tests and diagnostics)."""

    def kick(self) -> None:
        """Something changed (consent, ACK): look again now instead of at the next tick."""
        self._kick.set()

    def request_keyframe(self) -> None:
        """Send a whole frame next (a viewer joined or asked to resync)."""
        self._force = True
        self._kick.set()

    def new_epoch(self, epoch: int) -> None:
        """The session re-keyed: outstanding credits belong to the old epoch."""
        self.credits.new_epoch(epoch)
        self._kick.set()

    def acked(self, epoch: int, seq: int) -> None:
        """The broker acknowledged update `seq` of `epoch`."""
        if self.credits.acked(epoch, seq):
            self._kick.set()

    async def run(self) -> None:
        """Loop until cancelled."""
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            if not self._sink.frames_allowed():
                # Whoever sees the next frame must start from a whole one.
                self._force = True
                await self._wait(None)
                continue
            if not self.credits.available:
                self.stalled.set()
                if not await self._wait(self._ack_timeout) and not self.credits.available:
                    self.credits.forget()
                    self._force = True
                continue
            self.stalled.clear()
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            force, self._force = self._force, False
            started = loop.time()
            try:
                kind, payload, pointer = await loop.run_in_executor(
                    self._executor, self._capture, force
                )
            except Exception as exc:
                # One failed grab (the X server busy or reconfiguring) must not end the loop:
                # the task would die unnoticed and viewers would wait for frames forever.
                log.warning("screen capture failed, trying again: %r", exc)
                self._force = True
                next_at = loop.time() + self._retry_after
                continue
            next_at = started + max(self._min_interval, 2 * (loop.time() - started))
            if not self._sink.frames_allowed():
                self._force = True  # consent changed while encoding: this frame never leaves
                continue
            if self._force and kind is not FrameType.KEYFRAME:
                continue  # a keyframe was asked for meanwhile; a delta would be wasted
            if payload is not None and kind is not None:
                self.credits.sent(*self._sink.send_frame(kind, payload))
            self._send_cursor(pointer, resend=force)

    async def _wait(self, timeout: float | None) -> bool:
        """Wait for a kick; False if `timeout` passed first."""
        self._kick.clear()
        try:
            await asyncio.wait_for(self._kick.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def _capture(self, force: bool) -> _Captured:
        """Runs in the worker thread: grab, encode, serialize, read the pointer."""
        update = self._encoder.encode(self._source.grab(), force_keyframe=force)
        pointer = self._pointer.position() if self._pointer is not None else None
        if update is None:
            return None, None, pointer
        kind = FrameType.KEYFRAME if update.kind == "keyframe" else FrameType.SCREEN_UPDATE
        return kind, serialize_update(update), pointer

    def _send_cursor(self, pointer: tuple[int, int] | None, *, resend: bool) -> None:
        if pointer is None:
            return
        width, height = self._source.size
        x, y = pointer[0] - self._origin[0], pointer[1] - self._origin[1]
        visible = 0 <= x < width and 0 <= y < height
        cursor = (min(max(x, 0), width - 1), min(max(y, 0), height - 1), visible)
        if cursor != self._cursor or resend:
            self._cursor = cursor
            self._sink.send_frame(FrameType.CURSOR, encode_cursor(*cursor))
