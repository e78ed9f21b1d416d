"""The pure parts of the benchmark: percentiles, figures, ratios, targets and the page."""

from __future__ import annotations

import json

import pytest

from bench.report import GOALS, Report, load_figures, targets, to_markdown, to_text
from bench.stats import (
    Figure,
    Target,
    fmt,
    latency_summary,
    markdown_table,
    percentile,
    ratio,
    text_table,
)


def test_percentile_interpolates_between_ranks() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == 2.5
    assert percentile(values, 25) == pytest.approx(1.75)
    assert percentile([7.0], 99.9) == 7.0


def test_percentile_of_1000_samples_picks_the_tail() -> None:
    values = [float(i) for i in range(1, 1001)]
    assert percentile(values, 99) == pytest.approx(990.01)
    assert percentile(values, 99.9) == pytest.approx(999.001)


@pytest.mark.parametrize("q", [-1, 100.5])
def test_percentile_rejects_out_of_range(q: float) -> None:
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], q)


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 50)


def test_latency_summary_is_in_milliseconds_and_sorts_its_input() -> None:
    summary = latency_summary([3_000_000, 1_000_000, 2_000_000])
    assert summary == {
        "p50": 2.0,
        "p99": pytest.approx(2.98),
        "p99.9": pytest.approx(2.998),
        "count": 3.0,
    }


def test_figure_reports_median_and_spread() -> None:
    figure = Figure(values=[3.0, 1.0, 2.0, 10.0], unit="MB/s")
    assert figure.median == 2.5
    assert (figure.low, figure.high) == (1.0, 10.0)
    assert figure.text() == "2.50 MB/s (1.00-10.0, n=4)"
    assert Figure(values=[1234.0]).text() == "1,234"
    assert Figure().text() == "n/a"
    assert not Figure()


def test_figure_without_rounds_has_no_median() -> None:
    with pytest.raises(ValueError, match="no rounds"):
        _ = Figure().median


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (0.01234, "0.0123"),
        (1.5, "1.50"),
        (12.34, "12.3"),
        (123.4, "123"),
        (98765.4, "98,765"),
    ],
)
def test_fmt_keeps_three_significant_digits(value: float, text: str) -> None:
    assert fmt(value) == text


def test_ratio_pairs_rounds_and_sets_aside_one_spoilt_window() -> None:
    # Round 2 of the first relay was hit by a pause; round 3 was noisy for both.
    broker = Figure(values=[0.54, 7.89, 1.32])
    minimal = Figure(values=[0.51, 0.55, 1.65])
    assert ratio(broker, minimal) == pytest.approx(0.54 / 0.51)
    assert broker.median / minimal.median == pytest.approx(2.4, abs=0.01)  # what pairing avoids


def test_ratio_is_median_over_median_when_rounds_differ_and_none_when_missing() -> None:
    assert ratio(Figure(values=[4.0, 6.0]), Figure(values=[2.0])) == 2.5
    assert ratio(Figure(values=[4.0, 6.0]), Figure(values=[2.0, 0.0])) == 5.0 / 1.0
    assert ratio(Figure(values=[4.0]), Figure()) is None
    assert ratio(Figure(), Figure(values=[1.0])) is None
    assert ratio(Figure(values=[4.0]), Figure(values=[0.0])) is None


@pytest.mark.parametrize(
    ("value", "op", "limit", "verdict"),
    [
        (0.9, ">=", 0.8, "met"),
        (0.7, ">=", 0.8, "NOT met"),
        (1.5, "<=", 1.5, "met"),
        (64.0, "<", 64.0, "NOT met"),
        (2.0, ">", 1.0, "met"),
        (None, "<", 1.0, "not measured"),
    ],
)
def test_target_verdicts(value: float | None, op: str, limit: float, verdict: str) -> None:
    assert Target("t", value, op, limit).verdict() == verdict


def test_target_with_an_unknown_comparison_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown comparison"):
        _ = Target("t", 1.0, "==", 1.0).met


def test_markdown_table_escapes_pipes_and_checks_widths() -> None:
    table = markdown_table(["a", "b"], [["1", "x|y"]])
    assert table.splitlines() == ["| a | b |", "| --- | --- |", "| 1 | x\\|y |"]
    with pytest.raises(ValueError, match="cells"):
        markdown_table(["a", "b"], [["1"]])


def test_text_table_aligns_columns() -> None:
    lines = text_table(["name", "v"], [["broker", "1"], ["x", "22"]]).splitlines()
    assert lines == ["name    v", "------  --", "broker  1", "x       22"]


def _report() -> Report:
    report = Report(meta={"date": "2026-11-23 12:30 UTC", "CPU count": "2"})
    report.figure("relay.64k.broker.mb_s", "MB/s").values += [900.0, 1000.0, 950.0]
    # The target's baseline is the minimal relay on the broker's own event loop (uvloop).
    report.figure("relay.64k.minimal-uvloop.mb_s", "MB/s").values += [1000.0, 1000.0, 1000.0]
    report.figure("relay.64k.minimal.mb_s", "MB/s").values += [2000.0]
    report.figure("relay.64k.websockify.mb_s", "MB/s").values += [500.0]
    report.figure("idle.s5000.broker.kib", "KiB").values += [70.0]
    report.unavailable["meshcentral"] = "npm install failed"
    section = report.section("relay", "1. Relay throughput", ["relay", "MB/s"])
    section.rows.append(["broker", report.get("relay.64k.broker.mb_s").text()])
    section.notes.append("a note")
    return report


def test_targets_are_evaluated_from_the_runs_own_figures() -> None:
    by_name = {t.name: t for t in targets(_report())}
    assert len(by_name) == len(GOALS)
    same_loop = by_name["64 KiB throughput vs minimal relay (same event loop)"]
    assert same_loop.value == pytest.approx(0.95)
    assert same_loop.verdict() == "met"
    assert by_name["64 KiB throughput vs websockify"].verdict() == "NOT met"  # 1.9x < 2x
    assert by_name["64 KiB throughput vs MeshCentral"].verdict() == "not measured"
    assert by_name["broker memory per idle session, 5,000 (KiB)"].verdict() == "NOT met"


def test_markdown_page_has_the_run_targets_tables_and_reasons() -> None:
    page = to_markdown(_report(), "Produced by make bench.")
    assert page.startswith("# Benchmarks\n\nProduced by make bench.")
    assert "- **CPU count**: 2" in page
    assert "| 64 KiB throughput vs minimal relay (same event loop) | 0.95 | >= 0.8 | met |" in page
    assert "## 1. Relay throughput" in page
    assert "| broker | 950 MB/s (900-1,000, n=3) |" in page
    assert "- a note" in page
    assert "- `meshcentral`: npm install failed" in page


def test_terminal_text_lists_targets_and_unavailable_figures() -> None:
    text = to_text(_report())
    assert "== 1. Relay throughput ==" in text
    assert "unavailable: meshcentral: npm install failed" in text
    assert "NOT met" in text


def test_saved_figures_load_back() -> None:
    report = _report()
    data = json.loads(json.dumps(report.to_json()))
    figures = load_figures(data)
    assert figures["relay.64k.broker.mb_s"].values == [900.0, 1000.0, 950.0]
    assert figures["relay.64k.broker.mb_s"].unit == "MB/s"
    assert data["unavailable"] == {"meshcentral": "npm install failed"}


def test_chart_is_shown_under_its_section_only_when_there_is_one() -> None:
    report = _report()
    report.sections[0].image = "benchmark-latency.png"
    assert "![1. Relay throughput](benchmark-latency.png)" not in to_markdown(report)
    report.chart = {"broker": {"100": {"p50": 0.4, "p99": 2.0, "p99.9": 4.0}}}
    assert "![1. Relay throughput](benchmark-latency.png)" in to_markdown(report)
