"""Turn captured frames into screen updates: keyframes, JPEG deltas and sharp idle refreshes.

`Encoder` is a small state machine over frames. It keeps its own copy of the last frame, so a
capture source may reuse its buffer. Each call returns at most one `Update`:

- keyframe: the first frame, a forced one, a size change, or more than `full_frame_ratio` of
  the tiles changed. One JPEG of the whole frame: a full-screen change costs about 16 ms in the
  viewer as one image, against about 0.22 s as 260 tiles (notes/feasibility.md, section 5).
- delta: the changed tiles, merged into rectangles (`tiles.merge_runs`), one JPEG each.
- refresh: after `refresh_after` unchanged frames, the areas sent as JPEG since the last
  refresh are sent once more, losslessly, because JPEG q75 blurs text and a support engineer
  reads text. WebP lossless (method 0, quality 50) was measured against PNG level 1 on a dense
  1280x800 xterm screen: 18 KB in about 35 ms against 196 KB in 68 ms, and both are exact.

The wire form of an update, and of the cursor's own tiny message, is `rsb_codec.wire`, which the
viewer shares; the serialized update is what the agent encrypts.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import simplejpeg
from PIL import Image

from agent_client import tiles
from agent_client.tiles import DEFAULT_TILE, Rect, TileMask
from rsb_codec.frame import Frame
from rsb_codec.wire import Region, Update

LosslessCodec = Literal["png", "webp"]


@dataclass(slots=True)
class _Sent:
    """What the viewer has: the last frame as captured, and which tiles it only has as JPEG."""

    prev: Frame
    lossy: TileMask


class Encoder:
    """Encodes a stream of frames into updates, remembering what the viewer already has.

    Args:
        quality: JPEG quality for keyframes and deltas.
        tile: Tile edge in pixels for change detection.
        full_frame_ratio: Above this fraction of changed tiles, send a whole-frame keyframe.
        refresh_after: Unchanged frames before the lossless refresh; 0 disables refreshes.
        lossless: Codec of the refresh.
        merge_rows: Stack identical runs of consecutive tile rows into one rectangle.
    """

    def __init__(
        self,
        *,
        quality: int = 75,
        tile: int = DEFAULT_TILE,
        full_frame_ratio: float = 0.6,
        refresh_after: int = 10,
        lossless: LosslessCodec = "webp",
        merge_rows: bool = True,
    ) -> None:
        if not 1 <= quality <= 100:
            raise ValueError(f"JPEG quality must be 1..100, got {quality}")
        if lossless not in get_args(LosslessCodec):
            raise ValueError(f"lossless codec must be png or webp, got {lossless!r}")
        self.quality = quality
        self.tile = tile
        self.full_frame_ratio = full_frame_ratio
        self.refresh_after = refresh_after
        self.lossless: LosslessCodec = lossless
        self.merge_rows = merge_rows
        self._state: _Sent | None = None
        self._idle = 0

    @property
    def idle_frames(self) -> int:
        """Consecutive frames that showed no change."""
        return self._idle

    def reset(self) -> None:
        """Forget the last frame, so the next `encode` produces a keyframe."""
        self._state = None
        self._idle = 0

    def encode(self, frame: Frame, *, force_keyframe: bool = False) -> Update | None:
        """Encode one captured frame.

        Args:
            frame: (H, W, 4) uint8 BGRA; may be the source's reused buffer.
            force_keyframe: Send the whole frame (a viewer joined or asked to resync).

        Returns:
            The update to send, or None when the screen is unchanged and nothing is owed.

        Raises:
            ValueError: The frame is not (H, W, 4) uint8.
        """
        if frame.ndim != 3 or frame.shape[2] != 4 or frame.dtype != np.uint8:
            raise ValueError(f"frame must be (H, W, 4) uint8, got {frame.shape} {frame.dtype}")
        height, width = frame.shape[:2]
        state = self._state
        if force_keyframe or state is None or state.prev.shape != frame.shape:
            return self._keyframe(frame)
        changed = tiles.changed_tiles(state.prev, frame, self.tile)
        n_changed = int(np.count_nonzero(changed))
        if n_changed == 0:
            self._idle += 1
            if self._idle == self.refresh_after and state.lossy.any():
                rects = tiles.merge_runs(
                    state.lossy, width, height, self.tile, merge_rows=self.merge_rows
                )
                state.lossy[:] = False
                return Update("refresh", width, height, [self._lossless(frame, r) for r in rects])
            return None
        self._idle = 0
        if n_changed > self.full_frame_ratio * changed.size:
            return self._keyframe(frame)
        rects = tiles.merge_runs(changed, width, height, self.tile, merge_rows=self.merge_rows)
        regions = [self._jpeg(frame, r) for r in rects]
        for r in rects:
            state.prev[r.y : r.y + r.h, r.x : r.x + r.w] = frame[r.y : r.y + r.h, r.x : r.x + r.w]
        state.lossy |= changed
        return Update("delta", width, height, regions)

    def _keyframe(self, frame: Frame) -> Update:
        height, width = frame.shape[:2]
        if self._state is None or self._state.prev.shape != frame.shape:
            # Allocated once per screen size: a fresh 4 MB array per frame page-faults.
            self._state = _Sent(
                np.empty_like(frame),
                np.empty(tiles.grid_shape(width, height, self.tile), dtype=np.bool_),
            )
        np.copyto(self._state.prev, frame)
        self._state.lossy[:] = True
        self._idle = 0
        return Update("keyframe", width, height, [self._jpeg(frame, Rect(0, 0, width, height))])

    def _jpeg(self, frame: Frame, r: Rect) -> Region:
        # simplejpeg reads strided slices directly: no copy of the region (measured equal bytes).
        pixels = frame[r.y : r.y + r.h, r.x : r.x + r.w]
        data = simplejpeg.encode_jpeg(
            pixels, self.quality, colorspace="BGRX", colorsubsampling="420"
        )
        return Region(r.x, r.y, r.w, r.h, "jpeg", bytes(data))

    def _lossless(self, frame: Frame, r: Rect) -> Region:
        pixels = np.ascontiguousarray(frame[r.y : r.y + r.h, r.x : r.x + r.w])
        # "BGRX" raw mode drops the padding byte while Pillow unpacks, with no extra pass.
        img = Image.frombuffer("RGB", (r.w, r.h), pixels, "raw", "BGRX", 0, 1)
        out = io.BytesIO()
        if self.lossless == "webp":
            img.save(out, "WEBP", lossless=True, method=0, quality=50)
        else:
            img.save(out, "PNG", compress_level=1)
        return Region(r.x, r.y, r.w, r.h, self.lossless, out.getvalue())
