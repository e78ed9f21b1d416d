"""The browser's wire constants are the Python ones: ``web/js/wire.js`` is generated, not copied.

A stale ``wire.js`` would make the pages read a close code or a slot differently from the
broker and the agent; a number copied into another module would drift the same way, so the
other modules are checked for copies of the close codes and of the handshake strings too.
"""

from __future__ import annotations

import re
from pathlib import Path

from rsb_protocol.close_codes import CloseCode
from rsb_protocol.handshake import SUBPROTOCOL, TOKEN_PREFIX
from rsb_protocol.wire_js import main, render
from tests.conftest import REPO

JS = REPO / "web" / "js"
WIRE_JS = JS / "wire.js"


def test_wire_js_is_what_the_generator_writes() -> None:
    assert WIRE_JS.read_text(encoding="utf-8") == render(), (
        "web/js/wire.js is stale: run `.venv/bin/python -m rsb_protocol.wire_js`"
    )


def test_wire_js_carries_each_close_code_and_its_explanation() -> None:
    text = render()
    for code in CloseCode:
        assert f"  {code.name}: {code.value}," in text
        assert re.search(rf'^  {code.value}: "[^"]+",$', text, re.MULTILINE), code


def test_the_generator_writes_the_file_it_is_given(tmp_path: Path) -> None:
    target = tmp_path / "wire.js"
    assert main([str(target)]) == 0
    assert target.read_text(encoding="utf-8") == render()


def test_no_other_module_copies_a_close_code_or_the_subprotocol() -> None:
    codes = re.compile(r"\b(" + "|".join(str(int(code)) for code in CloseCode) + r")\b")
    for path in sorted(JS.glob("*.js")):
        if path == WIRE_JS:
            continue
        source = path.read_text(encoding="utf-8")
        assert not codes.search(source), f"{path.name}: a close code by number; use wire.js"
        for literal in (SUBPROTOCOL, TOKEN_PREFIX):
            quoted = re.compile("[\"'`]" + re.escape(literal))
            assert not quoted.search(source), f"{path.name}: {literal!r}; use wire.js"
