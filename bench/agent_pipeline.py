"""Measurement 5 of issue 5: the agent's screen pipeline on Xvfb, per update.

For each screen size it starts its own Xvfb and an xterm full of text, then times the real
agent code on three scenes, each from a captured "before" to a captured "after" screen:

- keyframe: the whole text screen as one JPEG (what a joining viewer receives);
- typed line: 40 characters typed into the terminal through XTEST (one text row changes);
- moved window: the terminal moved by (+48, +32) pixels with xdotool.

Per update: capture (``ScreenSource.grab``, XShm into a reused buffer), tile diff and encode
(``Encoder.encode``, which diffs against its last frame), encrypt (``GroupSender.seal_update``,
AES-256-GCM) and the bytes on the wire. Each figure is the median of repeated runs with the
spread. Also runnable alone: ``python -m bench.agent_pipeline [--frames N]``.
"""

from __future__ import annotations

import argparse
import os
import select
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from agent_client.capture import ScreenSource
from agent_client.encoder import Encoder
from agent_client.inject_x11 import XTestInjector
from agent_client.tiles import changed_tiles
from bench.context import Context
from bench.stats import Figure, fmt
from rsb_codec.wire import serialize_update
from rsb_protocol.e2e import GroupSender, KeyPair
from rsb_protocol.framing import FrameType

SIZES = [(1280, 800), (1920, 1080)]


def timed_ms(fn: Callable[[], object], repeat: int) -> Figure:
    fn()  # warm caches and page in buffers
    figure = Figure(unit="ms")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        figure.add((time.perf_counter() - start) * 1e3)
    return figure


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


Scene = dict[str, Figure]


def measure_scene(before: np.ndarray | None, after: np.ndarray, repeat: int) -> Scene:
    """Encode ``after`` (on top of ``before``, or as a keyframe), then seal it; per run."""
    sender = GroupSender("bench-pipeline", [KeyPair.generate()])
    sender.new_epoch()
    encode = Figure(unit="ms")
    encrypt = Figure(unit="ms")
    size = Figure(unit="KB")
    regions = Figure()
    for index in range(repeat + 1):
        encoder = Encoder()
        if before is not None:
            encoder.encode(before)
        start = time.perf_counter()
        update = encoder.encode(after)
        encoded = time.perf_counter()
        if update is None:
            raise RuntimeError("the scene did not change the screen")
        kind = FrameType.KEYFRAME if update.kind == "keyframe" else FrameType.SCREEN_UPDATE
        frame = sender.seal_update(kind, serialize_update(update))
        sealed = time.perf_counter()
        if index == 0:
            continue  # warm-up
        encode.add((encoded - start) * 1e3)
        encrypt.add((sealed - encoded) * 1e3)
        size.add(len(frame) / 1000)
        regions.add(len(update.regions))
    scene = {"encode_ms": encode, "encrypt_ms": encrypt, "kb": size, "regions": regions}
    if before is not None:
        scene["diff_ms"] = timed_ms(lambda: changed_tiles(before, after), repeat)
    return scene


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


def run_size(width: int, height: int, repeat: int) -> dict[str, Scene]:
    """The three scenes at one screen size; ``capture`` holds the grab time."""
    with xvfb(width, height) as display, text_terminal(display, width, height) as window:
        source = ScreenSource(display)
        injector = XTestInjector(display)
        env = {**os.environ, "DISPLAY": display}
        try:
            scenes: dict[str, Scene] = {"capture": {"grab_ms": timed_ms(source.grab, repeat)}}
            base = grab_settled(source, np.zeros_like(source.grab()))
            scenes["keyframe"] = measure_scene(None, base, repeat)

            injector.pointer_move(width // 2, height // 2)
            injector.type_text("the quick brown fox jumps over 13 lazy dogs"[:40])
            typed = grab_settled(source, base)
            scenes["typed"] = measure_scene(base, typed, repeat)

            subprocess.run(["xdotool", "windowmove", window, "68", "52"], env=env, check=True)
            moved = grab_settled(source, typed)
            scenes["moved"] = measure_scene(typed, moved, repeat)
        finally:
            injector.close()
            source.close()
    grab = scenes["capture"]["grab_ms"]
    for name in ("keyframe", "typed", "moved"):
        scene = scenes[name]
        total = Figure(unit="ms")
        for encode, encrypt in zip(
            scene["encode_ms"].values, scene["encrypt_ms"].values, strict=True
        ):
            total.add(grab.median + encode + encrypt)
        scene["total_ms"] = total
    return scenes


SCENE_NAMES = {
    "keyframe": "full keyframe",
    "typed": "typed line (40 chars)",
    "moved": "moved window",
}


def run_pipeline(ctx: Context) -> None:
    """Section 5 of the report, both screen sizes."""
    report = ctx.report
    repeat = 8 if ctx.options.quick else 30
    section = report.section(
        "pipeline",
        "5. Agent pipeline on Xvfb (capture, tile diff, encode, encrypt)",
        ["screen", "update", "capture ms", "diff+encode ms", "encrypt ms", "total ms"]
        + ["updates/s", "regions", "bytes per update (KB)"],
    )
    for width, height in SIZES:
        label = f"{width}x{height}"
        ctx.log(f"agent pipeline {label}, {repeat} runs per figure")
        scenes = run_size(width, height, repeat)
        grab = scenes["capture"]["grab_ms"]
        report.figures[f"pipeline.{label}.capture_ms"] = grab
        for name, title in SCENE_NAMES.items():
            scene = scenes[name]
            for key, figure in scene.items():
                report.figures[f"pipeline.{label}.{name}.{key}"] = figure
            total = scene["total_ms"]
            section.rows.append(
                [
                    label,
                    title,
                    grab.text(),
                    scene["encode_ms"].text(),
                    scene["encrypt_ms"].text(),
                    total.text(),
                    f"{1000 / total.median:.0f}",
                    fmt(scene["regions"].median),
                    scene["kb"].text(),
                ]
            )
    section.notes += [
        "Real agent code on a real X server (Xvfb, 24-bit) showing an xterm full of text; the "
        "typed line goes through XTEST, the window is moved with xdotool. Encode includes the "
        "tile diff against the previous frame (the diff alone is in the JSON results).",
        "Total = median capture + encode + encrypt of each run; updates/s = 1000 / total, "
        "the ceiling of one agent core for that kind of change. Bytes per update are the "
        "sealed frame as sent (header, ciphertext, tag).",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30, help="repetitions per median")
    args = parser.parse_args()
    for width, height in SIZES:
        scenes = run_size(width, height, args.frames)
        print(f"== {width}x{height} ==")
        for name, scene in scenes.items():
            print(f"  {name:10s} " + "  ".join(f"{k} {v.text()}" for k, v in scene.items()))


if __name__ == "__main__":
    main()
