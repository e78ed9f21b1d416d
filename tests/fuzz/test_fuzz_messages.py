"""Fuzz the control-message parser: accepted, or refused with an error its docstring lists.

Anything accepted must also survive ``to_json`` and parse back equal: what the parser lets in,
the serialiser can say again (no message that exists is invalid).
"""

from __future__ import annotations

import functools
import inspect
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rsb_protocol import errors
from rsb_protocol.messages import MESSAGE_TYPES, Message, parse_message
from tests.unit.test_messages import EXAMPLES

FUZZ = settings(deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow])
SHAPED = settings(FUZZ, max_examples=60)
LIMIT = 4096


@functools.cache
def documented_raises(func: Any) -> tuple[type[Exception], ...]:
    """The exception classes named in a Google-style ``Raises:`` section."""
    doc = inspect.getdoc(func) or ""
    names: list[str] = []
    for line in doc.split("Raises:", 1)[1].splitlines()[1:]:
        if line.startswith("    ") and not line.startswith("     "):
            names += [name.strip() for name in line.split(":", 1)[0].split(",")]
    classes = tuple(getattr(errors, name) for name in names)
    assert classes and all(issubclass(cls, errors.ProtocolError) for cls in classes)
    return classes


def accepted_or_documented(text: str | bytes, cls: type[Message] | None = None) -> None:
    func = parse_message if cls is None else cls.parse.__func__  # type: ignore[attr-defined]
    try:
        message = parse_message(text, LIMIT) if cls is None else cls.parse(text, LIMIT)
    except documented_raises(func):
        return
    assert parse_message(message.to_json(), 1 << 20) == message


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["x25519", "p256", "viewer", "control", "L1", "AAAA", "req-1"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=6,
)


@FUZZ
@given(st.text(max_size=300))
def test_arbitrary_text(text: str) -> None:
    accepted_or_documented(text)


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes(data: bytes) -> None:
    accepted_or_documented(data)


@FUZZ
@given(json_values)
def test_arbitrary_json(value: Any) -> None:
    accepted_or_documented(json.dumps(value))


FIELD_NAMES = sorted({name for example in EXAMPLES for name in example.to_dict()} - {"v", "type"})


@SHAPED
@given(
    st.sampled_from([1, 1, 1, 2, "1", None]),
    st.sampled_from(sorted(MESSAGE_TYPES)) | st.text(max_size=12),
    st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=6), json_values, max_size=8),
)
def test_shaped_like_a_message(version: Any, kind: str, fields: dict[str, Any]) -> None:
    accepted_or_documented(json.dumps({"v": version, "type": kind, **fields}))


@SHAPED
@given(
    st.sampled_from(EXAMPLES),
    st.data(),
    json_values,
    st.booleans(),
    st.sampled_from([None, *MESSAGE_TYPES.values()]),
)
def test_one_field_of_a_valid_message_changed(
    example: Message, data: st.DataObject, value: Any, drop: bool, cls: type[Message] | None
) -> None:
    fields = example.to_dict()
    name = data.draw(st.sampled_from(sorted(fields)))
    if drop:
        del fields[name]
    else:
        fields[name] = value
    accepted_or_documented(json.dumps(fields, ensure_ascii=data.draw(st.booleans())), cls)
