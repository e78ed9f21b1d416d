"""The console's read-back word list is the Python reference's, word for word and in order.

A difference would make the engineer (browser) and the customer's agent (Python) read different
words for the same keys, and a real session would look like a man in the middle.
"""

from __future__ import annotations

import re

from rsb_protocol.readback import WORDS
from tests.conftest import REPO

WORDS_JS = REPO / "web" / "js" / "words.js"


def test_words_js_lists_the_reference_words_in_order() -> None:
    source = WORDS_JS.read_text(encoding="utf-8")
    body = source[source.index("Object.freeze([") : source.index("]);")]
    assert tuple(re.findall(r'"([a-z]+)"', body)) == WORDS
    assert len(WORDS) == 256
