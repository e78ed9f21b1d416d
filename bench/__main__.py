"""``python -m bench``: the benchmarks of issue 5, printed and written to docs/benchmarks.md.

    python -m bench                      # everything (about 15 minutes)
    python -m bench relay latency        # a subset: relay latency fanout idle pipeline setup login
    python -m bench login                # the login burst of issue 11 alone (about 2 minutes)
    python -m bench --quick              # fewer rounds, sessions and samples, for development
    python -m bench --before none        # skip the broker of the commit before issue 5

Everything runs on 127.0.0.1; every process the benchmark starts it stops by its PID. Only a
run of every part rewrites docs/benchmarks.md and the chart (``--docs`` forces it,
``--no-docs`` prevents it); a subset that includes ``login`` replaces only that section of the
page (it states its own date and machine). Results are always saved as JSON under the scratch
folder.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.context import Context, Options
from bench.loadgen import raise_fd_limit
from bench.report import Report, save_json, splice_section, to_markdown, to_text, write_chart
from bench.servers import PEERS_DIR, REPO

PARTS = ["relay", "latency", "fanout", "idle", "pipeline", "setup", "login"]
SPLICED_PARTS = {"login"}
"""Parts whose section a subset run updates in place on the page (see module docstring)."""
BEFORE_REV = "1c45ada"
"""The last commit before the frame-path work of issue 5: the "before" of the before/after."""

PREAMBLE = """\
Written by `make bench` (`python -m bench`, code in `bench/`); every figure on this page comes
from the run described under "This run". Everything runs on 127.0.0.1: each relay under test
in its own process, the load in another (`bench/loadgen.py`, a lean RFC 6455 client on
uvloop, so that the generator is not the first thing to saturate). The machine is small and
shared, so each figure is the median of repeated rounds with the spread (lowest-highest,
n = rounds), rounds of the different relays are interleaved, and every comparison is between
figures of the same run: the median over rounds of the ratio within a round, so that a pause
of the machine that spoils one window spoils one ratio. CPU columns show whether the relay
(1.0 = one core) or something else was the limit. Targets are those of issue 5.

The peers: the *minimal relay* (`bench/minimal_relay.py`: aiohttp, two routes, every binary
message of an agent sent to the viewers of its id and every one of a viewer back to its
agent, nothing else; the ceiling for our design),
*websockify* from PyPI (WebSocket in, a TCP sink out) and *MeshCentral* from npm
(`/meshrelay.ashx`, installed into `/tmp/rsb-bench-peers`); how each runs is in
`bench/servers.py`. *broker* is the broker as shipped, which runs on uvloop (setting
`event_loop`); its baseline is the minimal relay on the same loop (*minimal-uvloop*), and
*broker-asyncio* (asyncio's own loop, as on Windows) is compared with the plain *minimal*.
*broker-before* is the broker of the commit named in the before/after table, measured in the
same rounds. Subsets: `python -m bench relay latency fanout idle
pipeline setup login`; `--quick` for development (fewer rounds and sessions); `--before REV`.
"""


def _runner(name: str) -> Callable[[Context], None]:
    if name == "relay":
        from bench.relay_bench import run_throughput

        return run_throughput
    if name == "latency":
        from bench.relay_bench import run_latency

        return run_latency
    if name == "fanout":
        from bench.relay_bench import run_fanout

        return run_fanout
    if name == "idle":
        from bench.relay_bench import run_idle

        return run_idle
    if name == "pipeline":
        from bench.agent_pipeline import run_pipeline

        return run_pipeline
    if name == "setup":
        from bench.setup_bench import run_setup

        return run_setup
    if name == "login":
        from bench.login_bench import run_login

        return run_login
    raise ValueError(name)


def export_revision(rev: str, work: Path) -> Path:
    """``git archive`` the broker and protocol packages of ``rev`` into the scratch folder."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    tree = work / f"before-{commit}"
    if not (tree / "broker").is_dir():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", commit, "broker", "rsb_protocol"],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def machine_meta(options: Options, parts: list[str], note: str) -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    meta = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.node()}: {cpu}, {platform.system()} {platform.release()}",
        "CPU count": str(os.cpu_count()),
        "Python": platform.python_version(),
        "parts run": ", ".join(parts) + (" (--quick)" if options.quick else ""),
        "rounds per figure": str(options.rounds),
        "load average at start": load,
    }
    if note:
        meta["conditions"] = note
    return meta


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", metavar="PART", help=" ".join(PARTS))
    parser.add_argument("--quick", action="store_true", help="fewer rounds and sessions")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per figure")
    parser.add_argument("--window", type=float, default=None, help="seconds per window")
    parser.add_argument(
        "--before",
        metavar="REV",
        default=BEFORE_REV,
        help="also measure the broker of git revision REV, exported into the scratch folder "
        f"(default {BEFORE_REV}, the frame path before issue 5; 'none' to skip)",
    )
    parser.add_argument("--before-tree", type=Path, default=None, help="or of this source tree")
    parser.add_argument("--no-meshcentral", action="store_true")
    parser.add_argument("--docs", action="store_true", help="write docs/ even for a subset")
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--docs-dir", type=Path, default=REPO / "docs", help=argparse.SUPPRESS)
    parser.add_argument("--note", default="", help="conditions of the run, for the page")
    parser.add_argument("--work", type=Path, default=PEERS_DIR / "run")
    args = parser.parse_args(argv)
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    parts = [p for p in PARTS if p in args.parts] or list(PARTS)
    options = Options(
        quick=args.quick,
        rounds=args.rounds or (2 if args.quick else 3),
        window=args.window or (1.0 if args.quick else 1.5),
        before_tree=args.before_tree,
        meshcentral=not args.no_meshcentral,
    )
    args.work.mkdir(parents=True, exist_ok=True)
    if args.before and args.before != "none" and options.before_tree is None:
        try:
            options.before_tree = export_revision(args.before, args.work)
        except (OSError, subprocess.CalledProcessError) as exc:
            print(f"cannot export {args.before} for the before/after table: {exc}", file=sys.stderr)
    limit = raise_fd_limit()
    ctx = Context(options, args.work, Report())
    ctx.report.meta = machine_meta(options, parts, args.note)
    ctx.log(f"benchmark parts: {', '.join(parts)}; open-file limit {limit}; work in {args.work}")
    started = time.monotonic()
    failed: dict[str, str] = {}
    for part in parts:
        part_started = time.monotonic()
        try:
            _runner(part)(ctx)
        except Exception as exc:  # noqa: BLE001 - report the part as failed, run the others
            failed[part] = f"{type(exc).__name__}: {exc}"
            ctx.report.unavailable[part] = f"failed: {failed[part]}"
            ctx.log(f"{part} FAILED: {failed[part]}")
        ctx.log(f"{part} took {time.monotonic() - part_started:.0f} s")
    ctx.report.meta["duration"] = f"{time.monotonic() - started:.0f} s"
    ctx.report.meta["load average at end"] = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    if options.before_tree is not None:
        from bench.relay_bench import before_after

        label = str(options.before_tree) if args.before_tree else args.before
        before_after(ctx, label, frame_path=args.before == BEFORE_REV and not args.before_tree)
    print()
    print(to_text(ctx.report))
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    results = args.work / f"results-{stamp}.json"
    save_json(ctx.report, results)
    print(f"\nresults: {results}")
    write_docs = (args.docs or parts == PARTS) and not args.no_docs
    if write_docs:
        docs = args.docs_dir
        docs.mkdir(parents=True, exist_ok=True)
        (docs / "benchmarks.md").write_text(to_markdown(ctx.report, PREAMBLE))
        write_chart(ctx.report, docs / "benchmark-latency.png")
        print(f"wrote {docs / 'benchmarks.md'} and {docs / 'benchmark-latency.png'}")
    elif not args.no_docs:
        page_path = args.docs_dir / "benchmarks.md"
        spliced = [
            s
            for s in ctx.report.sections
            if s.rows
            and (s.key in SPLICED_PARTS or (s.key == "before-after" and args.before != BEFORE_REV))
        ]
        if spliced and page_path.exists():
            page = page_path.read_text()
            for section in spliced:
                page = splice_section(page, section)
            page_path.write_text(page)
            print(f"updated {', '.join(s.key for s in spliced)} in {page_path}")
    if failed:
        print(json.dumps(failed, indent=1), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
