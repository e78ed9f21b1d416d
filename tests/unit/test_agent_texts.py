"""Everything the agent shows the customer exists in English and Spanish, and notices translate.

The notices are worded in English by the consent record and the session; ``notice_in`` must
recognise each of them, so these tests produce them with the real `AgentConsent` rather than
copying the sentences (a reworded notice that no template matches fails here).
"""

from __future__ import annotations

import re

import pytest

from agent_client import session as session_module
from agent_client.consent import AgentConsent, Origin
from agent_client.prompt import ENGINEER_UNNAMED, Banner
from agent_client.texts import (
    CLOSE_EXPLANATIONS_ES,
    LANGUAGES,
    TEXTS,
    close_explanation,
    notice_in,
    other_language,
    text,
    words_in,
)
from rsb_protocol.close_codes import CLOSE_CODE_EXPLANATIONS, CloseCode
from rsb_protocol.messages import ConsentRequest, Level, Permission
from rsb_protocol.readback import WORDS, WORDS_ES

FIELD = re.compile(r"\{(\w+)\}")


def test_both_languages_have_the_same_keys() -> None:
    assert set(TEXTS) == set(LANGUAGES)
    assert set(TEXTS["en"]) == set(TEXTS["es"])


@pytest.mark.parametrize("key", sorted(TEXTS["en"]))
def test_each_text_has_the_same_fields_and_is_translated(key: str) -> None:
    english, spanish = TEXTS["en"][key], TEXTS["es"][key]
    assert sorted(FIELD.findall(english)) == sorted(FIELD.findall(spanish))
    assert english != spanish, f"{key} is not translated"


def test_every_close_code_has_a_spanish_explanation() -> None:
    assert set(CLOSE_EXPLANATIONS_ES) == set(CLOSE_CODE_EXPLANATIONS)
    outdated = CLOSE_CODE_EXPLANATIONS[CloseCode.AGENT_OUTDATED]
    assert "descárguelo de nuevo" in close_explanation(outdated, "es")
    assert close_explanation(outdated, "en") == outdated


def test_the_switch_goes_back_and_forth() -> None:
    assert other_language("en") == "es" and other_language("es") == "en"


def _consent_notices() -> list[str]:
    """Every notice the consent record writes, from a real walk through it."""
    consent = AgentConsent()
    notices: list[str] = []
    notices += consent.revoke_control().notices + consent.revoke_all_viewing().notices
    consent.joined(3, "ana", "Ana Ruiz", Level.L2)
    view = ConsentRequest("r1", 3, Permission.VIEW, "Ana Ruiz", Level.L2, "C-1", "Acme", False)
    asked = consent.request(view).ask
    assert asked is not None
    notices += consent.answer(asked, True).notices
    control = ConsentRequest(
        "r2", 3, Permission.CONTROL, "Ana Ruiz", Level.L2, "C-1", "Acme", False, "printer"
    )
    asked = consent.request(control).ask
    assert asked is not None
    notices += consent.answer(asked, True).notices
    notices += consent.revoke_control().notices
    asked = consent.request(
        ConsentRequest("r3", 3, Permission.CONTROL, "Ana Ruiz", Level.L2, "C-1", "Acme", False)
    ).ask
    assert asked is not None
    notices += consent.answer(asked, False, "declined by the customer").notices
    notices += consent.pause(Origin.REMOTE).notices
    consent.pause(Origin.LOCAL)
    notices += consent.resume(Origin.REMOTE).notices + consent.resume(Origin.LOCAL).notices
    notices += consent.revoke_all_viewing().notices
    notices += consent.end(Origin.LOCAL).notices
    return notices


def test_every_consent_notice_has_a_spanish_text() -> None:
    notices = _consent_notices()
    assert len(notices) == 11
    for notice in notices:
        spanish = notice_in(notice, "es")
        assert spanish != notice, f"no Spanish for {notice!r}"
        assert notice_in(notice, "en") == notice
    assert notice_in(notices[2], "es") == (
        "Permitido: Ana Ruiz ya puede ver su pantalla (escriba v para dejar de compartir, "
        "p para pausar)."
    )
    assert notice_in(notices[5], "es") == (
        "Rechazado: Ana Ruiz no obtiene permiso para controlar el ordenador "
        "(usted lo ha rechazado)."
    )


def test_session_notices_translate_their_reasons_and_words() -> None:
    outdated = CLOSE_CODE_EXPLANATIONS[CloseCode.AGENT_OUTDATED]
    assert notice_in(f"Disconnected for good: {outdated}.", "es") == (
        "Desconectado definitivamente: este programa es más antiguo de lo que admite el "
        "servidor; descárguelo de nuevo."
    )
    assert notice_in("Connection lost (the network connection dropped); reconnecting...", "es") == (
        "Se ha perdido la conexión (se cortó la conexión de red); reconectando..."
    )
    words = f"{WORDS[0]} {WORDS[1]} {WORDS[254]} {WORDS[255]}"
    spanish = f"{WORDS_ES[0]} {WORDS_ES[1]} {WORDS_ES[254]} {WORDS_ES[255]}"
    assert notice_in(f"Ana Ruiz is back; read-back words now: {words}", "es") == (
        f"Ana Ruiz ha vuelto; palabras de verificación ahora: {spanish}"
    )
    assert notice_in("Connected to Acme. Waiting for the engineer.", "es") == (
        "Conectado con Acme. Esperando al técnico."
    )
    # What the session says when the broker closes with 4105 is one of the texts.
    assert notice_in(session_module._OUTDATED, "es") == TEXTS["es"]["n_outdated"]


def test_a_sentence_that_is_no_template_is_shown_as_it_came() -> None:
    assert notice_in("Ana Ruiz: hola, ¿me oye?", "es") == "Ana Ruiz: hola, ¿me oye?"


def test_read_back_words_change_language_by_index() -> None:
    assert words_in(f"{WORDS[7]} {WORDS[200]}", "es") == f"{WORDS_ES[7]} {WORDS_ES[200]}"
    assert words_in("notaword", "es") == "notaword"


def test_an_attach_banner_names_nobody_in_either_language() -> None:
    banner = Banner("C-1", ENGINEER_UNNAMED, "https://support.example")
    assert banner.engineer_in("es") == "se indica en cada petición"
    assert Banner("C-1", "Ana Ruiz (L2)", "x").engineer_in("es") == "Ana Ruiz (L2)"
    assert text("banner", "es", case="C-1", engineer="Ana").startswith("Asistencia remota")
