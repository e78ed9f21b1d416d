"""Docs a newcomer can follow: every relative link and image in the Markdown files resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = sorted([REPO / "README.md", REPO / "certs" / "README.md", *(REPO / "docs").glob("*.md")])
# [text](target) and ![alt](target); the target stops at whitespace or ')'.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def relative_targets(markdown: str) -> list[str]:
    """Targets that point into the repository (no scheme, no pure #anchor)."""
    targets = []
    for target in LINK.findall(markdown):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue
        targets.append(target.split("#", 1)[0])
    return targets


def test_the_link_pattern_finds_links_and_images() -> None:
    text = "see [a](docs/a.md#x), ![shot](img.png), [web](https://x.org) and [top](#top)"
    assert relative_targets(text) == ["docs/a.md", "img.png"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(doc: Path) -> None:
    missing = [
        target
        for target in relative_targets(doc.read_text(encoding="utf-8"))
        if not (doc.parent / target).exists()
    ]
    assert missing == [], f"{doc.relative_to(REPO)} links to missing files: {missing}"
