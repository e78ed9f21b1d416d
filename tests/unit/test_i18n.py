"""The customer page's strings: both languages complete, and every key the page uses exists.

``web/js/i18n.js`` keeps one quoted key per line, four spaces in (its header says so), which is
what lets this test read it without a JavaScript engine. The browser tests then show the
strings in use (``tests/e2e/test_customer_page.py``).
"""

from __future__ import annotations

import re
from pathlib import Path

WEB = Path(__file__).resolve().parents[2] / "web"
ENTRY = re.compile(r'^ {4}"([a-z_]+\.[a-z0-9_]+)": "(.*)",$')
LANGUAGE = re.compile(r"^  ([a-z]{2}): \{$")
KEY_LITERAL = re.compile(r'"([a-z_]+\.[a-z0-9_]+)"')
PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def _tables() -> dict[str, dict[str, str]]:
    tables: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in (WEB / "js" / "i18n.js").read_text(encoding="utf-8").splitlines():
        if match := LANGUAGE.match(line):
            current = tables.setdefault(match.group(1), {})
        elif (match := ENTRY.match(line)) and current is not None:
            key, text = match.groups()
            assert key not in current, f"{key} twice"
            current[key] = text
    return tables


def test_english_and_spanish_have_the_same_keys_and_placeholders() -> None:
    tables = _tables()
    assert set(tables) == {"en", "es"}
    en, es = tables["en"], tables["es"]
    assert len(en) > 90
    assert set(en) == set(es), set(en) ^ set(es)
    for key, text in en.items():
        assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(es[key])), key
        assert es[key] != "" and text != "", key


def test_every_key_the_customer_page_uses_exists() -> None:
    en = _tables()["en"]
    prefixes = {key.split(".")[0] for key in en}
    html = (WEB / "customer.html").read_text(encoding="utf-8")
    # The page's modules: customer.js and the customer-*.js parts it wires together.
    modules = sorted((WEB / "js").glob("customer*.js"))
    assert len(modules) > 5, modules
    script = "\n".join(path.read_text(encoding="utf-8") for path in modules)
    used = set(re.findall(r'data-i18n(?:-[a-z-]+)?="([^"]+)"', html))
    used |= {key for key in KEY_LITERAL.findall(script) if key.split(".")[0] in prefixes}
    assert len(used) > 60
    assert used - set(en) == set()
