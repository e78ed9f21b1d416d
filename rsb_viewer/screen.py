"""The viewer's copy of the customer's screen, rebuilt from decrypted updates (pure, no I/O).

Updates arrive already opened and parsed (`rsb_codec.wire.parse_update`). A frame flagged
``MORE`` is one part of a larger update: parts are held, within bounds, and the whole update is
painted when the part without the flag arrives, so the picture never shows half an update. A
delta that arrives without a picture to apply it to (we joined mid-stream, or a part failed to
decode) marks the picture as missing; the session then asks the agent for one keyframe.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rsb_codec.decode import apply_update
from rsb_codec.wire import Update

__all__ = ["MAX_CANVAS_PIXELS", "MAX_PENDING_BYTES", "MAX_PENDING_PARTS", "Canvas", "Screen"]

Canvas = np.ndarray[Any, np.dtype[np.uint8]]
"""(H, W, 4) uint8 BGRA, the layout the agent captures and `apply_update` paints."""

MAX_CANVAS_PIXELS = 7680 * 4320
"""An 8K screen (about 130 MB as BGRA); a keyframe claiming more is refused, not allocated."""
MAX_PENDING_PARTS = 256
MAX_PENDING_BYTES = 64 * 1024 * 1024
"""Bounds on the parts of one ``MORE``-split update held until its last part arrives."""


class Screen:
    """Canvas plus the bookkeeping of partial updates and missing pictures.

    Attributes:
        canvas: The picture; None before the first keyframe.
        updates_applied: Updates painted, keyframes included.
        keyframes_applied: Keyframes painted.
    """

    def __init__(self) -> None:
        self.canvas: Canvas | None = None
        self.updates_applied = 0
        self.keyframes_applied = 0
        self._parts: list[Update] = []
        self._parts_bytes = 0
        self._missing = False
        self._requested = False

    def add(self, update: Update, *, more: bool) -> bool:
        """Take one part of an update; paint the whole update when it is the last part.

        Args:
            update: The parsed update payload of one frame.
            more: The frame had the ``MORE`` flag: parts of the same update follow.

        Returns:
            True when an update was completed (the session acknowledges it), even if it could
            not be painted for lack of a picture; False while parts are still expected.

        Raises:
            ValueError: The held parts exceed the bounds, a keyframe is larger than
                `MAX_CANVAS_PIXELS`, or a region does not decode. The picture is then marked
                missing, so a keyframe gets requested.
        """
        self._parts.append(update)
        self._parts_bytes += sum(len(region.data) for region in update.regions)
        if more:
            if len(self._parts) > MAX_PENDING_PARTS or self._parts_bytes > MAX_PENDING_BYTES:
                self.discard_parts()
                self.mark_missing()
                raise ValueError("an update split with MORE exceeds the viewer's bounds")
            return False
        parts = self._parts
        self.discard_parts()
        try:
            for part in parts:
                self._paint(part)
        except ValueError:
            self.mark_missing()  # part of the update may be painted: the picture is unreliable
            raise
        return True

    def _paint(self, update: Update) -> None:
        shape = (update.height, update.width, 4)
        if update.kind == "keyframe":
            if update.width * update.height > MAX_CANVAS_PIXELS:
                raise ValueError(f"keyframe of {update.width}x{update.height} is too large")
            if self.canvas is None or self.canvas.shape != shape:
                self.canvas = np.zeros(shape, dtype=np.uint8)
        elif self.canvas is None or self.canvas.shape != shape:
            self._missing = True  # a delta against a picture we do not have
            return
        apply_update(self.canvas, update)
        self.updates_applied += 1
        if update.kind == "keyframe":
            self.keyframes_applied += 1
            self._missing = self._requested = False

    def mark_missing(self) -> None:
        """The picture can no longer be trusted; only a keyframe repairs it."""
        self._missing = True

    def take_keyframe_request(self) -> bool:
        """True once per missing picture: the caller then sends one KEYFRAME_REQUEST.

        Asking again for every delta that cannot be painted would flood the agent with
        requests for the same picture.
        """
        if not self._missing or self._requested:
            return False
        self._requested = True
        return True

    def new_epoch(self) -> None:
        """A key rotation: parts of the old epoch can never complete, and the agent follows
        every new epoch with a keyframe, so a still-missing picture may be asked for again."""
        self.discard_parts()
        self._requested = False

    def discard_parts(self) -> None:
        """Forget the parts held for an incomplete update."""
        self._parts = []
        self._parts_bytes = 0
