"""Bench of the agent's screen pipeline on Xvfb: capture, tile diff, encode, bytes per update.

Run from the repository root: `python -m bench.agent_pipeline [--frames N]`. For each screen
size it starts its own Xvfb and an xterm full of text, then measures three scenes:

- keyframe: the whole text screen as one JPEG (what a joining viewer receives);
- typed line: 40 characters typed into the terminal (one text row changes);
- typed line + Return: the same plus Return, which scrolls the terminal;
- moved window: the terminal moved by (+48, +32) pixels.

Timings are medians in milliseconds on this machine and vary by about 30 % between runs;
they are printed, never asserted (tests hold behaviour, not speed).
"""

from __future__ import annotations

import argparse
import os
import select
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from agent_client.capture import ScreenSource
from agent_client.encoder import Encoder, Update, serialize_update
from agent_client.inject_x11 import XTestInjector
from agent_client.tiles import changed_tiles

SIZES = [(1280, 800), (1920, 1080)]


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm caches and page in buffers
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e3


@contextmanager
def xvfb(width: int, height: int) -> Iterator[str]:
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{width}x{height}x24"]
        + ["-nolisten", "tcp", "-noreset"],
        pass_fds=(write_fd,),
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        data = b""
        while not data.endswith(b"\n"):
            if not select.select([read_fd], [], [], 10)[0]:
                raise RuntimeError("Xvfb did not start")
            data += os.read(read_fd, 64)
        yield f":{int(data)}"
    finally:
        os.close(read_fd)
        proc.terminate()
        proc.wait()


@contextmanager
def text_terminal(display: str, width: int, height: int) -> Iterator[str]:
    """An xterm covering most of the screen, filled with a directory listing, echoing input."""
    # DejaVu Sans Mono 10 pt cells are 8x17 px on Xvfb; the cursor row must stay on screen.
    cols, rows = width * 9 // 10 // 8, height * 9 // 10 // 17
    listing = "ls -la /usr/lib/x86_64-linux-gnu /usr/share/doc | head -400"
    proc = subprocess.Popen(
        ["xterm", "-fa", "DejaVu Sans Mono", "-fs", "10", "-geometry", f"{cols}x{rows}+20+20"]
        + ["-T", "bench-term", "-e", "sh", "-c", f"{listing}; exec cat > /dev/null"],
        env={**os.environ, "DISPLAY": display, "LC_ALL": "C.UTF-8"},
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        window = ""
        while not window and time.monotonic() < deadline:
            window = subprocess.run(
                ["xdotool", "search", "--onlyvisible", "--name", "^bench-term$"],
                env={**os.environ, "DISPLAY": display},
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip()
            time.sleep(0.05)
        if not window:
            raise RuntimeError("xterm did not map")
        yield window.split()[0]
    finally:
        proc.terminate()
        proc.wait()


def describe(update: Update | None) -> str:
    if update is None:
        return "no update"
    size = len(serialize_update(update))
    return f"{update.kind:8s} {len(update.regions):3d} regions {size / 1024:8.1f} KB"


def time_delta(before: np.ndarray, after: np.ndarray, repeat: int, merge_rows: bool) -> float:
    """Median ms of encoding `after` on top of `before` (the keyframe is not timed)."""
    samples = []
    encoder = Encoder(merge_rows=merge_rows)
    for _ in range(repeat + 1):
        encoder.reset()
        encoder.encode(before)
        start = time.perf_counter()
        encoder.encode(after)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples[1:]) * 1e3


def measure_scene(name: str, before: np.ndarray, after: np.ndarray, repeat: int) -> None:
    changed = changed_tiles(before, after)
    diff_ms = median_ms(lambda: changed_tiles(before, after), repeat)
    for merge_rows in (True, False):
        encoder = Encoder(merge_rows=merge_rows)
        encoder.encode(before)
        update = encoder.encode(after)
        encode_ms = time_delta(before, after, repeat, merge_rows=merge_rows)
        label = "rows merged" if merge_rows else "runs only"
        print(
            f"  {name:20s} {int(changed.sum()):4d}/{changed.size} tiles  diff {diff_ms:5.2f} ms  "
            f"diff+encode {encode_ms:6.2f} ms  {describe(update)}  ({label})"
        )
    refresh_encoder = Encoder(refresh_after=1)
    refresh_encoder.encode(before)
    refresh_encoder.encode(after)
    start = time.perf_counter()
    refresh = refresh_encoder.encode(after)
    refresh_ms = (time.perf_counter() - start) * 1e3
    print(f"  {'':20s} idle refresh after it: {refresh_ms:6.1f} ms  {describe(refresh)}")


def grab_settled(source: ScreenSource, reference: np.ndarray) -> np.ndarray:
    """Wait until the screen differs from `reference` and then holds still for 100 ms."""
    deadline = time.monotonic() + 10
    frame = source.grab().copy()
    while np.array_equal(frame, reference) and time.monotonic() < deadline:
        time.sleep(0.02)
        frame = source.grab().copy()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        latest = source.grab()
        if np.array_equal(latest, frame):
            return frame
        frame = latest.copy()
    raise RuntimeError("the screen did not settle")


def run_size(width: int, height: int, repeat: int) -> None:
    print(f"\n== {width}x{height} ==")
    with xvfb(width, height) as display, text_terminal(display, width, height) as window:
        source = ScreenSource(display)
        injector = XTestInjector(display)
        env = {**os.environ, "DISPLAY": display}
        try:
            grab_ms = median_ms(source.grab, repeat)
            print(f"  capture (mss XShm into reused buffer): {grab_ms:.2f} ms/frame")
            base = grab_settled(source, np.zeros_like(source.grab()))
            key_ms = median_ms(lambda: Encoder().encode(base), repeat)
            print(f"  {'keyframe':20s} encode {key_ms:6.2f} ms  {describe(Encoder().encode(base))}")
            refresh = Encoder(refresh_after=1)
            refresh.encode(base)
            start = time.perf_counter()
            update = refresh.encode(base)
            refresh_ms = (time.perf_counter() - start) * 1e3
            print(f"  {'':20s} idle refresh after it: {refresh_ms:6.1f} ms  {describe(update)}")

            injector.pointer_move(width // 2, height // 2)
            line = "the quick brown fox jumps over 13 lazy dogs"[:40]
            start = time.perf_counter()
            injector.type_text(line)
            type_ms = (time.perf_counter() - start) * 1e3
            typed = grab_settled(source, base)
            print(f"  XTEST typing: {type_ms / len(line):.3f} ms/char")
            measure_scene("typed line", base, typed, repeat)

            injector.type_text("\n")
            scrolled = grab_settled(source, typed)
            measure_scene("typed line + Return", typed, scrolled, repeat)

            subprocess.run(["xdotool", "windowmove", window, "68", "52"], env=env, check=True)
            moved = grab_settled(source, scrolled)
            measure_scene("moved window", scrolled, moved, repeat)
        finally:
            injector.close()
            source.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30, help="repetitions per median")
    args = parser.parse_args()
    for width, height in SIZES:
        run_size(width, height, args.frames)


if __name__ == "__main__":
    main()
