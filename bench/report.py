"""Collect the figures of a run and write them out: terminal table, Markdown page, JSON, chart.

Figures are keyed by dotted names (``relay.64k.broker.mb_s``); ``targets`` reads the goals of
issue 5 from those names, so the page says which targets are met with the very numbers it
shows. Everything here but ``write_chart`` is pure.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.stats import Figure, Target, fmt, markdown_table, ratio, text_table


@dataclass
class Section:
    """One table of the report."""

    key: str
    title: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    image: str = ""
    """A chart shown under the table in the Markdown page (path relative to docs/)."""


@dataclass
class Report:
    meta: dict[str, str] = field(default_factory=dict)
    sections: list[Section] = field(default_factory=list)
    figures: dict[str, Figure] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    """Figures that could not be measured here, with the reason."""
    chart: dict[str, Any] = field(default_factory=dict)
    """Latency against concurrent sessions: ``{relay: {sessions: {p50, p99}}}``."""

    def figure(self, key: str, unit: str = "") -> Figure:
        if key not in self.figures:
            self.figures[key] = Figure(unit=unit)
        return self.figures[key]

    def get(self, key: str) -> Figure:
        return self.figures.get(key) or Figure()

    def ratio(self, numerator: str, denominator: str) -> float | None:
        return ratio(self.get(numerator), self.get(denominator))

    def section(self, key: str, title: str, header: list[str]) -> Section:
        section = Section(key, title, header)
        self.sections.append(section)
        return section

    def to_json(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "figures": {k: {"values": f.values, "unit": f.unit} for k, f in self.figures.items()},
            "unavailable": self.unavailable,
            "chart": self.chart,
        }


def load_figures(data: Mapping[str, Any]) -> dict[str, Figure]:
    """Figures from ``Report.to_json`` output (a run saved earlier, for before/after)."""
    return {
        key: Figure(values=[float(v) for v in item["values"]], unit=item.get("unit", ""))
        for key, item in data.get("figures", {}).items()
    }


def ratio_text(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


# (goal, numerator, denominator or None for an absolute figure, comparison, limit)
GOALS: list[tuple[str, str, str | None, str, float]] = [
    (
        "64 KiB throughput vs minimal relay (same event loop)",
        "relay.64k.broker.mb_s",
        "relay.64k.minimal-uvloop.mb_s",
        ">=",
        0.8,
    ),
    (
        "64 KiB throughput vs websockify",
        "relay.64k.broker.mb_s",
        "relay.64k.websockify.mb_s",
        ">=",
        2.0,
    ),
    (
        "64 KiB throughput vs MeshCentral",
        "relay.64k.broker.mb_s",
        "relay.64k.meshcentral.mb_s",
        ">=",
        2.0,
    ),
    (
        "1 KiB message rate vs websockify",
        "relay.1k.broker.msgs_s",
        "relay.1k.websockify.msgs_s",
        ">=",
        4.0,
    ),
    (
        "1 KiB message rate vs MeshCentral",
        "relay.1k.broker.msgs_s",
        "relay.1k.meshcentral.msgs_s",
        ">=",
        1.0,
    ),
    (
        "p99 at 1,000 msg/s vs minimal relay (same event loop)",
        "latency.rate1000.broker.p99",
        "latency.rate1000.minimal-uvloop.p99",
        "<=",
        1.5,
    ),
    (
        "p99 at 200 sessions vs minimal relay (same event loop)",
        "latency.s200.broker.p99",
        "latency.s200.minimal-uvloop.p99",
        "<=",
        1.5,
    ),
    (
        "p99 at 200 sessions vs MeshCentral",
        "latency.s200.broker.p99",
        "latency.s200.meshcentral.p99",
        "<=",
        0.5,
    ),
    (
        "stalled viewer: others' throughput capacity, with stall / without (20 viewers)",
        "fanout.v20.capacity_ratio",
        None,
        ">=",
        0.95,
    ),
    ("broker memory per idle session, 5,000 (KiB)", "idle.s5000.broker.kib", None, "<", 64.0),
    (
        "keyframe 1280x800 capture+encode+encrypt (ms)",
        "pipeline.1280x800.keyframe.total_ms",
        None,
        "<",
        15.0,
    ),
    ("typed line 1280x800 (ms)", "pipeline.1280x800.typed.total_ms", None, "<", 10.0),
    ("typed line 1280x800 (KB)", "pipeline.1280x800.typed.kb", None, "<", 20.0),
    ("setup, join to first decrypted frame (ms)", "setup.ms", None, "<", 500.0),
    (
        "login burst, KDF pool: worst event loop lag (ms)",
        "login.after.loop_lag_ms",
        None,
        "<",
        100.0,
    ),
    (
        "login burst: longest frame gap, KDF on the loop / in the pool",
        "login.before.frame_gap_ms",
        "login.after.frame_gap_ms",
        ">=",
        10.0,
    ),
]


def targets(report: Report) -> list[Target]:
    """The goals of issue 5, evaluated on this run's figures (ratios from the same run)."""
    goals = []
    for name, numerator, denominator, op, limit in GOALS:
        if denominator is None:
            figure = report.get(numerator)
            value = figure.median if figure else None
        else:
            value = report.ratio(numerator, denominator)
        goals.append(Target(name, value, op, limit))
    return goals


def targets_table(report: Report) -> tuple[list[str], list[list[str]]]:
    header = ["target", "measured", "goal", "verdict"]
    rows = []
    for goal in targets(report):
        measured = "n/a" if goal.value is None else fmt(goal.value)
        rows.append([goal.name, measured, f"{goal.op} {fmt(goal.limit)}", goal.verdict()])
    return header, rows


def to_text(report: Report) -> str:
    parts = []
    for section in report.sections:
        parts.append(f"== {section.title} ==")
        parts.append(text_table(section.header, section.rows))
        parts.extend(f"  note: {note}" for note in section.notes)
        parts.append("")
    header, rows = targets_table(report)
    parts.append("== Targets ==")
    parts.append(text_table(header, rows))
    for key, reason in sorted(report.unavailable.items()):
        parts.append(f"  unavailable: {key}: {reason}")
    return "\n".join(parts)


def to_markdown(report: Report, preamble: str = "") -> str:
    meta = report.meta
    lines = ["# Benchmarks", ""]
    if preamble:
        lines += [preamble.strip(), ""]
    lines += ["## This run", ""]
    lines += [f"- **{key}**: {value}" for key, value in meta.items()]
    lines.append("")
    header, rows = targets_table(report)
    lines += ["## Targets", "", markdown_table(header, rows), ""]
    for section in report.sections:
        lines += section_markdown(section, with_image=bool(report.chart))
    if report.unavailable:
        lines += ["## Not measured here", ""]
        lines += [f"- `{key}`: {reason}" for key, reason in sorted(report.unavailable.items())]
        lines.append("")
    return "\n".join(lines)


def section_markdown(section: Section, *, with_image: bool = False) -> list[str]:
    """One section of the Markdown page: heading, table, chart if any, notes."""
    lines = [f"## {section.title}", "", markdown_table(section.header, section.rows), ""]
    if section.image and with_image:
        lines += [f"![{section.title}]({section.image})", ""]
    lines += [f"- {note}" for note in section.notes]
    if section.notes:
        lines.append("")
    return lines


def splice_section(page: str, section: Section) -> str:
    """``page`` with ``section`` in place of the section of the same title, the others kept.

    A part that can run alone (and says its own date and machine in its notes) updates its
    section this way without a full run rewriting the page. A new section goes before "Not
    measured here", or at the end.
    """
    lines = page.splitlines()
    new = section_markdown(section)
    heading = f"## {section.title}"
    if heading in lines:
        start = lines.index(heading)
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
    elif "## Not measured here" in lines:
        start = end = lines.index("## Not measured here")
    else:
        while lines and not lines[-1].strip():
            lines.pop()
        lines.append("")
        start = end = len(lines)
    return "\n".join(lines[:start] + new + lines[end:]).rstrip("\n") + "\n"


def write_chart(report: Report, path: Path) -> bool:
    """p50 and p99 latency against concurrent sessions (log scale), one colour per relay.

    Relays measured at several loads are lines; those measured at one load only (the peers
    and variants at the comparison point) are markers.
    """
    if not report.chart:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=110)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, (relay, points) in enumerate(sorted(report.chart.items())):
        colour = colours[index % len(colours)]
        sessions = sorted(points, key=int)
        xs = [int(s) for s in sessions]
        for pct, style, marker in (("p50", "-", "o"), ("p99", "--", "^")):
            ys = [points[s][pct] for s in sessions]
            line = style if len(xs) > 1 else "none"
            ax.plot(xs, ys, linestyle=line, marker=marker, color=colour, label=f"{relay} {pct}")
    ax.set_xlabel("concurrent sessions (each 30 updates/s of 16 KiB)")
    ax.set_ylabel("one-way latency through the relay (ms)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title(f"Relay latency on loopback, median of rounds ({report.meta.get('date', '')})")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def save_json(report: Report, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_json(), indent=1))
