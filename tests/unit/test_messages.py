"""JSON control messages: one example per type round-trips; each kind of bad input is named."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

from rsb_protocol.errors import (
    InvalidMessage,
    MessageTooLarge,
    UnknownMessageType,
    VersionMismatch,
)
from rsb_protocol.framing import WRAP_PAYLOAD_SIZE, Envelope, FrameType
from rsb_protocol.messages import (
    CONSENT_REASON_MAX,
    MESSAGE_TYPES,
    Ack,
    ChatMeta,
    ConsentGrant,
    ConsentRefuse,
    ConsentRequest,
    ConsentRevoke,
    ControlRelease,
    ControlRequest,
    End,
    ErrorMessage,
    GroupKey,
    Hello,
    Join,
    KeyAlgorithm,
    Leave,
    Level,
    Message,
    Pause,
    Permission,
    PublicKeyAnnounce,
    Renew,
    Resume,
    Role,
    State,
    Welcome,
    clean_text,
    parse_message,
)

LIMIT = 64 * 1024
KEY32 = base64.b64encode(bytes(range(1, 33))).decode()
WRAP_FRAME = Envelope(FrameType.KEY_WRAP, 3, 2, 0, bytes(WRAP_PAYLOAD_SIZE)).serialize()
WRAPPED = base64.b64encode(WRAP_FRAME).decode()

EXAMPLES: list[Message] = [
    Hello(Role.VIEWER, (KeyAlgorithm.X25519, KeyAlgorithm.P256), "rsb-console/0.1"),
    Join(3, "alice", "Alice Martin", Role.VIEWER, Level.L2),
    Leave(3, "alice", "removed by the customer"),
    ConsentRequest(
        "req-7", 3, Permission.CONTROL, "Alice Martin", Level.L2, "C-000123", "Acme Support", True
    ),
    ConsentGrant("req-7", 3, Permission.CONTROL),
    ConsentRefuse("req-7", 3, Permission.CONTROL, "not now"),
    ConsentRevoke(3, Permission.CONTROL),
    ControlRequest("req-8", 3, "need to open the settings"),
    ControlRelease(3),
    PublicKeyAnnounce(3, KeyAlgorithm.X25519, KEY32),
    GroupKey(3, 2, WRAPPED),
    Ack("req-7"),
    ErrorMessage("consent_required", "the customer has not agreed to that", "req-8"),
    Pause(Role.CUSTOMER, "phone call"),
    Resume(Role.CUSTOMER),
    End(Role.AGENT, "customer closed the window"),
    ChatMeta(3, 2, 17, 42),
    Renew("eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"),
    Welcome(
        slot=3,
        participant="alice",
        session_id="s-1",
        case_number="C-000123",
        organisation="Acme Support",
    ),
    State(phase="controlling", viewing_slots=(3, 4), controller_slot=3),
]
"""One valid instance of every message type (the fuzz tests mutate these)."""


def wire(message: Message, **changes: Any) -> str:
    data = message.to_dict()
    data.update(changes)
    return json.dumps({k: v for k, v in data.items() if v is not _DROP})


_DROP: Any = object()


def test_every_registered_type_has_an_example() -> None:
    assert {type(example) for example in EXAMPLES} == set(MESSAGE_TYPES.values())
    assert len(MESSAGE_TYPES) == 20


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: m.TYPE)
def test_round_trip(message: Message) -> None:
    text = message.to_json()
    assert json.loads(text)["v"] == 1
    assert list(json.loads(text))[:2] == ["v", "type"]
    assert parse_message(text, LIMIT) == message
    assert type(message).parse(text, LIMIT) == message
    assert Message.parse(text.encode("utf-8"), LIMIT) == message


def test_class_parse_refuses_another_type() -> None:
    with pytest.raises(InvalidMessage, match="expected a hello message, got ack"):
        Hello.parse(Ack("x").to_json(), LIMIT)


def test_fields_with_defaults_may_be_left_out() -> None:
    assert parse_message('{"v":1,"type":"end","by":"customer"}', LIMIT) == End(Role.CUSTOMER)
    assert Join.parse(wire(EXAMPLES[1], level=_DROP), LIMIT).level is None
    assert Join.parse(wire(EXAMPLES[1], level=None), LIMIT).level is None


def test_parsed_values_are_enums_and_tuples() -> None:
    hello = Hello.parse(EXAMPLES[0].to_json(), LIMIT)
    assert hello.algorithms == (KeyAlgorithm.X25519, KeyAlgorithm.P256)
    assert isinstance(hello.role, Role)


def test_match_narrows_on_the_class() -> None:
    match parse_message(ControlRelease(5).to_json(), LIMIT):
        case ControlRelease(slot=slot):
            assert slot == 5
        case _:
            pytest.fail("did not match")


def test_oversize_text_is_refused_before_parsing() -> None:
    text = Ack("x").to_json()
    with pytest.raises(MessageTooLarge):
        parse_message(text, len(text) - 1)


@pytest.mark.parametrize("version", [0, 2, 255])
def test_other_version_raises_version_mismatch(version: int) -> None:
    with pytest.raises(VersionMismatch) as caught:
        parse_message(wire(Ack("x"), v=version), LIMIT)
    assert caught.value.received == version


@pytest.mark.parametrize("version", ["1", 1.0, True, None, -1, 10**6])
def test_malformed_version_is_invalid(version: object) -> None:
    with pytest.raises(InvalidMessage, match="^v"):
        parse_message(wire(Ack("x"), v=version), LIMIT)


def test_unknown_type_is_named() -> None:
    with pytest.raises(UnknownMessageType, match="'launch_missiles'"):
        parse_message(wire(Ack("x"), type="launch_missiles"), LIMIT)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "not valid JSON"),
        ("{", "not valid JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('"hello"', "expected a JSON object"),
        ('{"type": "ack", "ref": "x"}', "missing field 'v'"),
        ('{"v": 1, "ref": "x"}', "missing field 'v' or 'type'"),
        ('{"v": 1, "type": 5}', "type: expected a string"),
        ('{"v": 1, "type": "ack", "ref": "x", "ref": "y"}', "duplicate key"),
        ('{"v": 1, "type": "ack", "ref": NaN}', "NaN is not valid JSON"),
        ('{"v": 1, "type": "ack", "ref": "\\ud800"}', "not valid Unicode"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"v": 1, "type": "ack", "ref": ' + "9" * 5000 + "}", "not valid JSON text"),
    ],
)
def test_bad_json_is_invalid_with_a_clear_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidMessage, match=reason.replace("(", r"\(")):
        parse_message(text, 10**6)


def test_undecodable_bytes_are_invalid() -> None:
    with pytest.raises(InvalidMessage):
        parse_message(b'{"v":1,"type":"ack","ref":"\xff"}', LIMIT)


def test_missing_and_extra_fields_are_named() -> None:
    with pytest.raises(InvalidMessage, match="join: missing field.*participant"):
        parse_message(wire(EXAMPLES[1], participant=_DROP), LIMIT)
    with pytest.raises(InvalidMessage, match="ack: unexpected field.*'admin'"):
        parse_message(wire(Ack("x"), admin=True), LIMIT)


@pytest.mark.parametrize(
    ("example", "field", "value", "reason"),
    [
        (ControlRelease(1), "slot", "1", "control_release.slot: expected an integer, got str"),
        (ControlRelease(1), "slot", True, "expected an integer, got bool"),
        (ControlRelease(1), "slot", 1.5, "expected an integer, got float"),
        (ControlRelease(1), "slot", 65536, "outside 0..65535"),
        (ControlRelease(1), "slot", -1, "outside 0..65535"),
        (EXAMPLES[3], "recorded", 1, "expected true or false, got int"),
        (EXAMPLES[3], "permission", "root", "'root' is not one of view, control"),
        (EXAMPLES[3], "request_id", "has space", "does not match"),
        (EXAMPLES[3], "engineer_name", "", "length 0 is outside 1..200"),
        (EXAMPLES[3], "engineer_name", "x" * 201, "length 201"),
        (EXAMPLES[0], "algorithms", [], "length 0 is outside 1..4"),
        (EXAMPLES[0], "algorithms", "x25519", "expected a list, got str"),
        (EXAMPLES[0], "algorithms", ["x448"], r"hello.algorithms\[0\]: 'x448' is not one of"),
        (EXAMPLES[1], "level", "L9", "is not one of L1, L2, L3"),
        (EXAMPLES[9], "key", "not base64!", "not valid base64"),
        (EXAMPLES[9], "key", KEY32.rstrip("="), "not valid base64"),
        (EXAMPLES[9], "key", KEY32[:-2] + "F=", "not in canonical form"),
        (EXAMPLES[9], "key", "é" * 20, "not valid base64"),
        (EXAMPLES[9], "key", "A" * 400, "base64 text longer"),
        (EXAMPLES[9], "algorithm", "p256", "p256 keys are 65 bytes"),
        (EXAMPLES[10], "wrapped", KEY32, "32 bytes, expected 82..82"),
        (EXAMPLES[10], "epoch", 3, "not a KEY_WRAP frame for this slot and epoch"),
        (EXAMPLES[10], "slot", 4, "not a KEY_WRAP frame for this slot and epoch"),
        (EXAMPLES[10], "wrapped", base64.b64encode(b"\xb2" * 82).decode(), "version 2"),
        (EXAMPLES[16], "seq", 2**64, "outside"),
    ],
)
def test_wrong_field_values_name_the_field_and_the_rule(
    example: Message, field: str, value: object, reason: str
) -> None:
    with pytest.raises(InvalidMessage, match=reason):
        parse_message(wire(example, **{field: value}), LIMIT)


def test_construction_validates_like_parsing() -> None:
    with pytest.raises(InvalidMessage, match="join.slot"):
        Join(70000, "alice", "Alice", Role.VIEWER)
    with pytest.raises(InvalidMessage, match="not one of"):
        Pause("nobody", "")  # type: ignore[arg-type]


def test_public_key_announce_decodes_its_key() -> None:
    announce = PublicKeyAnnounce(1, KeyAlgorithm.X25519, KEY32)
    assert announce.key_bytes == bytes(range(1, 33))
    assert GroupKey.parse(EXAMPLES[10].to_json(), LIMIT).wrapped_bytes[0] == 0xB1


def test_non_ascii_text_survives_the_round_trip() -> None:
    message = Leave(2, "zoë", "départ — 終了")
    assert "終了" in message.to_json()
    assert parse_message(message.to_json().encode("utf-8"), LIMIT) == message


def test_every_example_in_the_protocol_doc_parses_and_covers_every_type() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```json\n(.*?)\n```", doc, flags=re.DOTALL)
    parsed = [parse_message(block, LIMIT) for block in blocks]
    assert {message.TYPE for message in parsed} == set(MESSAGE_TYPES)
    assert all(message.to_json() == block for message, block in zip(parsed, blocks, strict=True))


# consent_request.reason: sparse on the wire, one printable line, bounded


def test_a_consent_request_carries_a_reason_only_when_it_has_one() -> None:
    plain = EXAMPLES[3]
    assert isinstance(plain, ConsentRequest) and plain.reason == ""
    assert "reason" not in json.loads(plain.to_json())  # what an older strict agent accepts
    asked = ConsentRequest(
        "req-7", 3, Permission.CONTROL, "Alice Martin", Level.L2, "C-1", "Acme", False, "fix it"
    )
    assert json.loads(asked.to_json())["reason"] == "fix it"
    assert parse_message(asked.to_json(), LIMIT) == asked
    assert ConsentRequest.parse(wire(plain, reason="why"), LIMIT).reason == "why"


@pytest.mark.parametrize(
    ("reason", "problem"),
    [
        ("x" * 201, "length 201 is outside 0..200"),
        ("two\nlines", "control or format characters"),
        ("tab\there", "control or format characters"),
        ("esc \x1b[2J", "control or format characters"),
        ("bidi \u202e", "control or format characters"),
        ("zero\u200bwidth", "control or format characters"),
        ("nbsp\u00a0", "control or format characters"),
    ],
)
def test_a_consent_request_reason_must_be_one_printable_line(reason: str, problem: str) -> None:
    with pytest.raises(InvalidMessage, match=f"consent_request.reason: {problem}"):
        parse_message(wire(EXAMPLES[3], reason=reason), LIMIT)


@pytest.mark.parametrize(
    ("typed", "cleaned"),
    [
        ("  open   the\tsettings\n", "open the settings"),
        ("esc\x1b[2J and\u202e bidi\u200b", "esc[2J and bidi"),
        ("non\u00a0breaking\u2028line", "non breaking line"),
        ("lone \ud800 surrogate", "lone surrogate"),
        ("é ñ 中文 🙂", "é ñ 中文 🙂"),
        ("", ""),
    ],
)
def test_clean_text_leaves_one_printable_line(typed: str, cleaned: str) -> None:
    assert clean_text(typed, 200) == cleaned


def test_clean_text_cuts_at_the_limit_without_a_trailing_space() -> None:
    assert clean_text("word " * 100, 10) == "word word"  # not "word word "
    assert len(clean_text("x" * 500, CONSENT_REASON_MAX)) == CONSENT_REASON_MAX
