"""Tile diff and rectangle merging (agent_client.tiles)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from agent_client.tiles import Rect, changed_tiles, coverage, grid_shape, merge_runs


def blank(width: int, height: int) -> np.ndarray:
    return np.zeros((height, width, 4), dtype=np.uint8)


@pytest.mark.parametrize(
    ("width", "height", "shape"),
    [(1280, 800, (13, 20)), (1920, 1080, (17, 30)), (1366, 768, (12, 22)), (64, 64, (1, 1))],
)
def test_grid_shape_covers_ragged_edges(width: int, height: int, shape: tuple[int, int]) -> None:
    assert grid_shape(width, height) == shape
    assert changed_tiles(blank(width, height), blank(width, height)).shape == shape


def test_grid_shape_rejects_non_positive_tile() -> None:
    with pytest.raises(ValueError, match="tile size"):
        grid_shape(10, 10, 0)


def test_identical_frames_have_no_changed_tiles() -> None:
    frame = np.random.default_rng(1).integers(0, 256, (800, 1280, 4), dtype=np.uint8)
    assert not changed_tiles(frame, frame.copy()).any()


@pytest.mark.parametrize(
    ("y", "x", "tile"),
    [
        (0, 0, (0, 0)),
        (63, 64, (0, 1)),
        (64, 63, (1, 0)),
        (767, 1365, (11, 21)),
        (700, 1300, (10, 20)),
    ],
)
def test_one_pixel_marks_exactly_its_tile(y: int, x: int, tile: tuple[int, int]) -> None:
    prev = blank(1366, 768)
    cur = prev.copy()
    cur[y, x, 1] = 7  # one channel of one pixel, including the ragged last row and column
    changed = changed_tiles(prev, cur)
    assert changed.sum() == 1
    assert changed[tile]


def test_changed_tiles_rejects_mismatched_frames() -> None:
    with pytest.raises(ValueError, match="shape"):
        changed_tiles(blank(64, 64), blank(128, 64))
    with pytest.raises(ValueError, match="uint8"):
        changed_tiles(blank(64, 64).astype(np.uint16), blank(64, 64).astype(np.uint16))


def test_runs_in_one_row_merge_horizontally() -> None:
    mask = np.zeros((2, 6), dtype=np.bool_)
    mask[0, 1:4] = True
    mask[0, 5] = True
    assert merge_runs(mask, 6 * 64, 2 * 64) == [Rect(64, 0, 192, 64), Rect(320, 0, 64, 64)]


def test_identical_runs_stack_vertically_and_clip_to_frame() -> None:
    # A typed line in a scrolled terminal: the same full-width run on consecutive rows.
    mask = np.zeros((13, 20), dtype=np.bool_)
    mask[10:13, :] = True
    mask[5, 2:4] = True
    rects = merge_runs(mask, 1280, 800)
    assert rects == [Rect(128, 320, 128, 64), Rect(0, 640, 1280, 160)]
    assert len(merge_runs(mask, 1280, 800, merge_rows=False)) == 4


def test_different_runs_on_consecutive_rows_stay_separate() -> None:
    mask = np.array([[True, True, False], [True, False, False]])
    assert merge_runs(mask, 150, 100) == [Rect(0, 0, 128, 64), Rect(0, 64, 64, 36)]


def test_merge_runs_rejects_wrong_mask_shape() -> None:
    with pytest.raises(ValueError, match="does not match"):
        merge_runs(np.zeros((2, 2), dtype=np.bool_), 1280, 800)


masks = st.tuples(st.integers(1, 12), st.integers(1, 12)).flatmap(
    lambda shape: arrays(np.bool_, shape)
)


@given(mask=masks, ragged_w=st.integers(1, 64), ragged_h=st.integers(1, 64), stack=st.booleans())
def test_merged_rects_cover_exactly_the_changed_tiles(
    mask: np.ndarray, ragged_w: int, ragged_h: int, stack: bool
) -> None:
    rows, cols = mask.shape
    width, height = (cols - 1) * 64 + ragged_w, (rows - 1) * 64 + ragged_h
    rects = merge_runs(mask, width, height, merge_rows=stack)
    assert np.array_equal(coverage(rects, width, height), mask)
    # Disjoint: the tiles of all rectangles add up to the number of changed tiles.
    tiles = sum(-(-r.w // 64) * -(-r.h // 64) for r in rects)
    assert tiles == int(mask.sum())
    for r in rects:
        assert r.w > 0 and r.h > 0
        assert r.x + r.w <= width and r.y + r.h <= height
    assert len(rects) <= len(merge_runs(mask, width, height, merge_rows=False))


@given(seed=st.integers(0, 2**32 - 1), y=st.integers(0, 99), x=st.integers(0, 149))
def test_changed_tiles_finds_any_single_change(seed: int, y: int, x: int) -> None:
    frame = np.random.default_rng(seed).integers(0, 256, (100, 150, 4), dtype=np.uint8)
    cur = frame.copy()
    cur[y, x, 0] ^= 0xFF
    changed = changed_tiles(frame, cur)
    expected = np.zeros((2, 3), dtype=np.bool_)
    expected[y // 64, x // 64] = True
    assert np.array_equal(changed, expected)
