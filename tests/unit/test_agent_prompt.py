"""The agent's consent question in English and Spanish, with the engineer's reason for control."""

from __future__ import annotations

import asyncio
import io
import os

import pytest

from agent_client.cli import build_parser
from agent_client.consent import AgentConsent, PendingRequest
from agent_client.prompt import (
    LANGUAGES,
    QUESTION_TEXTS,
    Banner,
    Question,
    TerminalPrompt,
    describe,
    language_from,
)
from rsb_protocol.messages import ConsentRequest, Level, Permission
from rsb_protocol.readback import ReadbackString

READBACK = ReadbackString("042917", ("apple", "radio", "volcano", "flute"))
REASON = "to reinstall the printer driver"


def _request(permission: Permission = Permission.CONTROL, reason: str = REASON) -> PendingRequest:
    return PendingRequest(
        "req-2", 3, "rita", permission, "Rita Reyes", Level.L2, "C-000123", "Acme Support",
        False, reason,
    )  # fmt: skip


def test_english_control_question_says_why() -> None:
    assert describe(Question(_request(), READBACK), "en") == [
        "Acme Support asks for permission to CONTROL your mouse and keyboard.",
        "  Engineer:  Rita Reyes (L2, remote support engineer)",
        "  Case:      C-000123",
        f"  Reason:    {REASON}",
        "  Recorded:  no, this session is not recorded",
        "  Read-back: apple radio volcano flute  (042 917)",
        "  Ask the engineer to read these words to you. If they differ, answer no.",
        "  If the engineer's words are in another language, compare the digits instead.",
    ]


def test_spanish_control_question_says_why() -> None:
    assert describe(Question(_request(), READBACK), "es") == [
        "Acme Support pide permiso para CONTROLAR su ratón y su teclado.",
        "  Técnico:   Rita Reyes (L2, técnico de asistencia remota)",
        "  Caso:      C-000123",
        f"  Motivo:    {REASON}",
        "  Grabación: no, esta sesión no se graba",
        "  Palabras:  ardilla puma uva flauta  (042 917)",
        "  Pida al técnico que le lea estas palabras. Si no coinciden, responda no.",
        "  Si las palabras del técnico están en otro idioma, compare las cifras.",
    ]


@pytest.mark.parametrize(
    ("language", "none"), [("en", "(none given)"), ("es", "(no se ha indicado)")]
)
def test_a_control_request_without_a_reason_says_so(language: str, none: str) -> None:
    lines = describe(Question(_request(reason=""), READBACK), language)  # type: ignore[arg-type]
    label = "Reason:" if language == "en" else "Motivo:"
    assert f"  {label}    {none}" in lines


@pytest.mark.parametrize("language", LANGUAGES)
def test_viewing_has_no_reason_line(language: str) -> None:
    lines = describe(Question(_request(Permission.VIEW, ""), READBACK), language)  # type: ignore[arg-type]
    assert not [line for line in lines if "Reason" in line or "Motivo" in line]
    assert len(lines) == 7


def test_the_agent_cleans_the_reason_itself() -> None:
    """The agent does not trust the broker: the shown reason is one line of printable text."""
    request = _request(reason="fix\n\x1b[2Jthe\u202e printer" + "x" * 400)
    (line,) = [line for line in describe(Question(request, READBACK)) if "Reason" in line]
    assert line.startswith("  Reason:    fix [2Jthe printerxxx") and line.isprintable()
    assert len(line) == len("  Reason:    ") + 200


def test_both_languages_have_every_text() -> None:
    assert set(QUESTION_TEXTS) == set(LANGUAGES)
    assert set(QUESTION_TEXTS["en"]) == set(QUESTION_TEXTS["es"])


@pytest.mark.parametrize(
    ("environ", "language"),
    [
        ({}, "en"),
        ({"LANG": "es_ES.UTF-8"}, "es"),
        ({"LANG": "es_ES.UTF-8", "LC_ALL": "C.UTF-8"}, "en"),  # LC_ALL wins over LANG
        ({"LANGUAGE": "es", "LANG": "en_GB.UTF-8"}, "es"),
        ({"LC_MESSAGES": "es_MX", "LANG": ""}, "es"),
    ],
)
def test_the_language_follows_the_locale(environ: dict[str, str], language: str) -> None:
    assert language_from(environ) == language


def test_lang_option() -> None:
    parser = build_parser()
    assert parser.parse_args(["join", "1234567890"]).lang == "auto"
    assert parser.parse_args(["join", "1234567890", "--lang", "es"]).lang == "es"
    with pytest.raises(SystemExit):
        parser.parse_args(["join", "1234567890", "--lang", "fr"])


def test_the_reason_travels_from_the_request_to_the_prompt() -> None:
    consent = AgentConsent()
    consent.joined(3, "rita", "Rita Reyes", Level.L2)
    view = ConsentRequest("req-1", 3, Permission.VIEW, "Rita Reyes", Level.L2, "C-1", "Acme", False)
    asked = consent.request(view).ask
    assert asked is not None and asked.reason == ""
    consent.answer(asked, True)
    control = ConsentRequest(
        "req-2", 3, Permission.CONTROL, "Rita Reyes", Level.L2, "C-1", "Acme", False, REASON
    )
    asked = consent.request(control).ask
    assert asked is not None and asked.reason == REASON


async def test_a_spanish_terminal_asks_and_takes_si() -> None:
    read_fd, write_fd = os.pipe()
    out = io.StringIO()
    with open(read_fd, encoding="utf-8") as stdin, open(write_fd, "w", encoding="utf-8") as keys:
        prompt = TerminalPrompt(stdin, out, language="es")
        prompt.start(Banner("C-1", "Rita Reyes (L2)", "https://x"), lambda command: None)
        keys.write("sí\n")
        keys.flush()
        answer = await asyncio.wait_for(prompt.ask(Question(_request(), READBACK)), 5)
        prompt.close()
    assert answer is True
    text = out.getvalue()
    assert f"  Motivo:    {REASON}" in text and "¿Lo permite? Escriba s o n" in text
