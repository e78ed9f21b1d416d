"""Which parts of the screen changed: a fixed-tile diff and the rectangles to re-encode.

Pure numpy: no I/O, no clock. Frames are (H, W, 4) uint8 BGRA arrays as produced by
`agent_client.capture`. The tile grid starts at the top-left corner; the last tile row and column
are cut short when the frame size is not a multiple of the tile size.

Why rectangles rather than tiles: every separate JPEG carries about 690 bytes of headers, so 111
separate 64x64 tiles of a typed line cost more than the whole frame. Merging horizontal runs of
changed tiles per tile row, then stacking identical runs of consecutive rows, cuts both the bytes
and the per-image overhead in the viewer (measured in notes/feasibility.md, section 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rsb_codec.frame import Frame

DEFAULT_TILE = 64

TileMask = NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Rect:
    """A pixel rectangle inside a frame, already clipped to the frame's size."""

    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        """Number of pixels covered."""
        return self.w * self.h


def grid_shape(width: int, height: int, tile: int = DEFAULT_TILE) -> tuple[int, int]:
    """Return (rows, cols) of the tile grid that covers a width x height frame."""
    if tile <= 0:
        raise ValueError(f"tile size must be positive, got {tile}")
    return -(-height // tile), -(-width // tile)


def changed_tiles(prev: Frame, cur: Frame, tile: int = DEFAULT_TILE) -> TileMask:
    """Compare two frames pixel by pixel and report which tiles differ.

    Args:
        prev: The previous frame, (H, W, 4) uint8.
        cur: The current frame, same shape.
        tile: Tile edge in pixels.

    Returns:
        A (rows, cols) bool array; True where any pixel of the tile changed.

    Raises:
        ValueError: The frames differ in shape or are not (H, W, 4) uint8.
    """
    if prev.shape != cur.shape or cur.ndim != 3 or cur.shape[2] != 4:
        raise ValueError(f"frames must share one (H, W, 4) shape, got {prev.shape} / {cur.shape}")
    if prev.dtype != np.uint8 or cur.dtype != np.uint8:
        raise ValueError("frames must be uint8")
    height, width = cur.shape[:2]
    rows, cols = grid_shape(width, height, tile)
    # One uint32 compare per pixel is several times faster than comparing the 4 channels.
    ne = prev.view(np.uint32)[..., 0] != cur.view(np.uint32)[..., 0]

    # Reduce full tile rows with a reshape (no copy); the ragged last row separately. Padding the
    # mask up to a whole grid instead costs a 1 MB copy per frame.
    full_rows, full_cols = height // tile, width // tile
    per_row = np.empty((rows, width), dtype=np.bool_)
    per_row[:full_rows] = ne[: full_rows * tile].reshape(full_rows, tile, width).any(axis=1)
    if full_rows < rows:
        per_row[full_rows] = ne[full_rows * tile :].any(axis=0)

    result = np.empty((rows, cols), dtype=np.bool_)
    result[:, :full_cols] = (
        per_row[:, : full_cols * tile].reshape(rows, full_cols, tile).any(axis=2)
    )
    if full_cols < cols:
        result[:, full_cols] = per_row[:, full_cols * tile :].any(axis=1)
    return result


def _row_runs(row: TileMask) -> list[tuple[int, int]]:
    """Return [start, end) column ranges of consecutive True tiles in one tile row."""
    # Edges of runs are where the padded row flips; pairs of flips bound each run.
    padded = np.concatenate(([False], row, [False]))
    flips = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(a), int(b)) for a, b in zip(flips[0::2], flips[1::2], strict=True)]


def merge_runs(
    changed: TileMask,
    width: int,
    height: int,
    tile: int = DEFAULT_TILE,
    *,
    merge_rows: bool = True,
) -> list[Rect]:
    """Turn a tile mask into few rectangles that cover exactly the True tiles.

    Each maximal horizontal run of True tiles in a tile row becomes one rectangle. With
    `merge_rows`, a run that spans the same columns as a run in the tile row just above it extends
    that rectangle downwards instead of starting a new one (a scrolled terminal or a moved window
    gives such stacks).

    Args:
        changed: (rows, cols) bool mask from `changed_tiles`.
        width: Frame width in pixels, used to clip the last column.
        height: Frame height in pixels, used to clip the last row.
        tile: Tile edge in pixels.
        merge_rows: Also merge identical runs of consecutive tile rows.

    Returns:
        Rectangles in pixels, clipped to the frame, ordered top to bottom then left to right.

    Raises:
        ValueError: The mask does not match the grid for width x height.
    """
    if changed.shape != grid_shape(width, height, tile):
        raise ValueError(
            f"mask shape {changed.shape} does not match a {width}x{height} frame "
            f"with {tile}px tiles"
        )
    # Open rectangles keyed by their column span, in tile units: (first_row, row_count).
    open_spans: dict[tuple[int, int], tuple[int, int]] = {}
    finished: list[tuple[int, int, int, int]] = []  # (row, col_start, col_end, row_count)
    for r in range(changed.shape[0]):
        spans = _row_runs(changed[r])
        still_open: dict[tuple[int, int], tuple[int, int]] = {}
        for span in spans:
            if merge_rows and span in open_spans:
                first, count = open_spans.pop(span)
                still_open[span] = (first, count + 1)
            else:
                still_open[span] = (r, 1)
        finished.extend((first, a, b, n) for (a, b), (first, n) in open_spans.items())
        open_spans = still_open
    finished.extend((first, a, b, n) for (a, b), (first, n) in open_spans.items())
    finished.sort()

    rects = []
    for row, col_start, col_end, count in finished:
        x, y = col_start * tile, row * tile
        rects.append(
            Rect(x, y, min(col_end * tile, width) - x, min((row + count) * tile, height) - y)
        )
    return rects


def coverage(rects: list[Rect], width: int, height: int, tile: int = DEFAULT_TILE) -> TileMask:
    """Return the tile mask covered by `rects`; the inverse of `merge_runs`, used by checks."""
    mask = np.zeros(grid_shape(width, height, tile), dtype=np.bool_)
    for rect in rects:
        mask[
            rect.y // tile : -(-(rect.y + rect.h) // tile),
            rect.x // tile : -(-(rect.x + rect.w) // tile),
        ] = True
    return mask
