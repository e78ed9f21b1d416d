"""A part run alone replaces its own section of docs/benchmarks.md and keeps every other."""

from __future__ import annotations

from bench.report import Section, splice_section

PAGE = """# Benchmarks

## 6. Session setup

| a |
| --- |
| 1 |

## Not measured here

- `x`: no npm
"""


def _section(value: str) -> Section:
    return Section("login", "7. Login burst", ["figure"], rows=[[value]], notes=["measured now"])


def test_a_new_section_goes_before_not_measured_here() -> None:
    page = splice_section(PAGE, _section("14 ms"))
    assert page.index("## 6. Session setup") < page.index("## 7. Login burst")
    assert page.index("## 7. Login burst") < page.index("## Not measured here")
    assert "| 14 ms |" in page and "- measured now" in page


def test_a_second_run_replaces_only_its_own_section() -> None:
    once = splice_section(PAGE, _section("14 ms"))
    twice = splice_section(once, _section("15 ms"))
    assert "| 14 ms |" not in twice and twice.count("## 7. Login burst") == 1
    assert twice.replace("15 ms", "14 ms") == once


def test_a_page_without_the_tail_section_gets_it_appended() -> None:
    page = splice_section("# Benchmarks\n\n## 1. Relay\n\ntext\n\n\n", _section("1 ms"))
    assert page.endswith("- measured now\n")
    assert "text\n\n## 7. Login burst" in page
