"""Statistics and targets for the benchmark figures (pure: no I/O, no clock).

Every figure is a ``Figure``: the values of repeated rounds, reported as their median with the
spread (lowest and highest round). A ratio is taken between two figures of the same run, so a
noisy, shared machine moves both sides together.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile of ascending values, linearly interpolated between ranks.

    Args:
        sorted_values: Samples in ascending order (not checked, for speed on large lists).
        q: Percentile in 0..100.

    Returns:
        The interpolated value; for ``q=50`` the median.

    Raises:
        ValueError: No samples, or ``q`` outside 0..100.
    """
    if not sorted_values:
        raise ValueError("percentile of no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    position = (len(sorted_values) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    fraction = position - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction


def latency_summary(samples_ns: Iterable[int]) -> dict[str, float]:
    """p50, p99 and p99.9 in milliseconds, and the sample count, of latencies in ns."""
    ordered = sorted(samples_ns)
    if not ordered:
        raise ValueError("no latency samples")
    return {
        "p50": percentile(ordered, 50) / 1e6,
        "p99": percentile(ordered, 99) / 1e6,
        "p99.9": percentile(ordered, 99.9) / 1e6,
        "count": float(len(ordered)),
    }


@dataclass
class Figure:
    """One measured quantity over repeated rounds."""

    values: list[float] = field(default_factory=list)
    unit: str = ""

    def add(self, value: float) -> None:
        self.values.append(float(value))

    @property
    def median(self) -> float:
        if not self.values:
            raise ValueError("no rounds measured")
        return float(statistics.median(self.values))

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def __bool__(self) -> bool:
        return bool(self.values)

    def text(self) -> str:
        """``median (low-high) unit``; a single round has no spread to show."""
        if not self.values:
            return "n/a"
        unit = f" {self.unit}" if self.unit else ""
        if len(self.values) == 1:
            return f"{fmt(self.median)}{unit}"
        return f"{fmt(self.median)}{unit} ({fmt(self.low)}-{fmt(self.high)}, n={len(self.values)})"


def fmt(value: float) -> str:
    """Three significant digits for small numbers, thousands separators for large ones."""
    if math.isnan(value) or math.isinf(value):
        return str(value)
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    if magnitude == 0:
        return "0"
    return f"{value:.3g}"


def ratio(numerator: Figure, denominator: Figure) -> float | None:
    """The median over rounds of the ratio within a round; None when a side is missing.

    Rounds interleave the relays (round 1 of each, then round 2), so figures of one run with
    as many values as each other are paired by round, and a pause of the machine that spoils
    one window spoils one ratio; the median sets it aside. The ratio of the two medians would
    instead pair one relay's quiet round with another's noisy one. Figures with different
    counts (or a zero in a pair) fall back to median over median.
    """
    if not numerator or not denominator:
        return None
    pairs = list(zip(numerator.values, denominator.values, strict=False))
    if len(numerator.values) == len(denominator.values) and all(d != 0 for _, d in pairs):
        return float(statistics.median(n / d for n, d in pairs))
    if denominator.median == 0:
        return None
    return numerator.median / denominator.median


@dataclass(frozen=True)
class Target:
    """A goal of the issue: ``value <op> limit``, with the words to print."""

    name: str
    value: float | None
    op: str
    limit: float
    detail: str = ""

    @property
    def met(self) -> bool | None:
        """True or False; None when the figure could not be measured."""
        if self.value is None:
            return None
        if self.op == ">=":
            return self.value >= self.limit
        if self.op == "<=":
            return self.value <= self.limit
        if self.op == "<":
            return self.value < self.limit
        if self.op == ">":
            return self.value > self.limit
        raise ValueError(f"unknown comparison {self.op!r}")

    def verdict(self) -> str:
        met = self.met
        return "not measured" if met is None else ("met" if met else "NOT met")


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table; cells are escaped for ``|``."""
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"row has {len(row)} cells, header {len(header)}")
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return "\n".join(lines)


def text_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """The same table in aligned columns, for the terminal."""
    body = [list(header), *[list(row) for row in rows]]
    widths = [max(len(row[i]) for row in body) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in body
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)
