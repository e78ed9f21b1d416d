"""Every word the agent shows the customer, in English and Spanish (pure: no I/O).

One table, ``TEXTS``, holds each text under one key in every language, so a translation can
never be half done without a test noticing (tests/unit/test_agent_texts.py). The consent
question's own lines stay in ``agent_client.prompt.QUESTION_TEXTS``.

The consent record (``agent_client.consent``) and the session shell word their notices in
English, with names and reasons filled in. ``notice_in`` recognises each of those sentences by
its English template (the ``n_*`` keys, whose English text is exactly what those modules
write) and fills the other language's template with the same values, translating the known
phrases inside them (reasons, close-code explanations, read-back words) too. A sentence it does
not know (a chat line, an engineer's words) is shown as it came.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Literal

from rsb_protocol.close_codes import CLOSE_CODE_EXPLANATIONS, CloseCode, StandardCloseCode
from rsb_protocol.readback import WORD_LISTS, WORDS

__all__ = [
    "LANGUAGES",
    "TEXTS",
    "Language",
    "close_explanation",
    "notice_in",
    "other_language",
    "text",
    "words_in",
]

Language = Literal["en", "es"]
LANGUAGES: tuple[Language, ...] = ("en", "es")

TEXTS: Mapping[Language, Mapping[str, str]] = {
    "en": {
        # The join window.
        "window_title": "Remote support",
        "join_heading": "Type the session code the engineer gave you on the phone.",
        "code_label": "Session code:",
        "broker_label": "Support server:",
        "connect": "Connect",
        "cancel": "Cancel",
        "close": "Close",
        "connecting": "Connecting to {broker}...",
        "code_empty": "Type the session code first.",
        "code_not_digits": "The session code has only digits, like 123 456 7890.",
        "code_length": "This code has {count} digits; the engineer's code has 10 (6 to 16).",
        "link_bad": "A join link looks like https://support.example/j#1234567890.",
        "broker_missing": "Type the support server's address, like https://support.example.",
        "broker_bad": "The support server's address starts with https://, like "
        "https://support.example.",
        "broker_http": "Plain http:// is only allowed to this computer; use https://.",
        "refused_used": "This code was already used or has expired. Ask the engineer for a new "
        "code.",
        "refused_unknown": "This code is not known. Check the digits, or ask the engineer for a "
        "new code.",
        "refused_busy": "Too many tries. Wait a minute, then try again.",
        "refused_other": "The support server refused the code: {message}",
        "unreachable": "Cannot reach the support server ({broker}). Check the address and the "
        "internet connection, then try again.",
        "outdated": "This agent is too old for the support server. Download it again from the "
        "support page, then start the new one.",
        "ask_code": "Session code (the digits the engineer gave you): ",
        "no_code": "No session code was typed; nothing was shared.",
        # The consent dialog.
        "banner": "Remote support for case {case}\nEngineer: {engineer}\n"
        "Nothing is shared until you allow it.",
        "named_in_each_request": "named in each request",
        "no_question": "No question is waiting.",
        "allow_button": "Allow",
        "deny_button": "Deny",
        "pause_button": "Pause / resume",
        "take_back_button": "Take back control",
        "stop_viewing_button": "Stop all viewing",
        "end_button": "End session",
        "buttons_hint": "These buttons work at any time.",
        "finished": "You can close this window.",
        # The terminal.
        "term_banner": "rsb-agent: remote support for case {case}",
        "term_engineer": "  engineer {engineer}, via {broker}",
        "term_nothing": "Nothing on this computer is shared until you answer yes to a question "
        "below.",
        "command_help": "Commands (type the letter, then Enter): p = pause/resume,  r = take "
        "back control,  v = stop all viewing,  e = end the session",
        "withdrawn": "(That request was withdrawn.)",
        "no_question_now": "* There is no question to answer right now.",
        "input_closed": "* Input closed: every request will be refused.",
        "unknown_command": "* Unknown command {word}. {help}",
        # The always-on-top indicator.
        "indicator_title": "Your screen is shared",
        "watched_by": "Being watched by {names}",
        "controlling": "{name} is controlling your computer",
        "indicator_paused": "Paused: nothing is shared right now",
        "stop_control_button": "Stop control",
        "stop_sharing_button": "Stop sharing",
        # Notices: the English text is exactly what agent_client.consent and .session write.
        "n_allowed_view": "Allowed: {name} can now see your screen (type v to stop, p to pause).",
        "n_allowed_control": "Allowed: {name} now controls your mouse and keyboard (type r to "
        "take it back).",
        "n_refused": "Refused: {name} gets no {permission} ({reason}).",
        "n_nobody_controls": "Nobody has control.",
        "n_nobody_views": "Nobody is viewing.",
        "n_paused": "Paused: nothing is shared and no input is accepted.",
        "n_remote_resume": "The support side asked to resume; press p to resume.",
        "n_resumed": "Resumed.",
        "n_ended": "The session has ended.",
        "n_lost_view": "{name} can no longer see your screen.",
        "n_lost_control": "{name} no longer has control.",
        "n_cannot_connect": "Cannot connect: {reason}",
        "n_give_up": "The support server cannot be reached; giving up.",
        "n_not_welcome": "The broker's first message is not a welcome.",
        "n_not_welcome_why": "The broker's first message is not a welcome: {reason}",
        "n_other_session": "The broker's welcome is for another session; disconnecting.",
        "n_connected": "Connected to {organisation}. Waiting for the engineer.",
        "n_reconnected": "Reconnected; your earlier answers still apply.",
        "n_update": "{reason}: please update the agent.",
        "n_outdated": "This agent is too old for the support server: download it again from the "
        "support page.",
        "n_failed": "Disconnected for good: {reason}.",
        "n_lost": "Connection lost ({reason}); reconnecting...",
        "n_injection": "{reason}; control is taken back.",
        "n_back": "{name} is back; read-back words now: {words}",
        "n_no_answer": "No answer in time: the request was refused.",
        "n_chat_open_words": "Chat from the web page is open. Read-back words now: {words}",
        "n_chat_open": "Chat from the web page is open.",
        "n_chat_own": "You (web page): {text}",
        "n_chat_nobody": "(No engineer can read chat right now.)",
        # Phrases inside notices.
        "p_view": "view",
        "p_control": "control",
        "p_your_answer": "your answer",
        "p_declined": "declined by the customer",
        "p_no_answer": "no answer",
        "p_no_answer_in_time": "no answer in time",
        "p_view_withdrawn": "viewing was withdrawn",
        "p_dropped": "the network connection dropped",
    },
    "es": {
        "window_title": "Asistencia remota",
        "join_heading": "Escriba el código de sesión que le ha dado el técnico por teléfono.",
        "code_label": "Código de sesión:",
        "broker_label": "Servidor de asistencia:",
        "connect": "Conectar",
        "cancel": "Cancelar",
        "close": "Cerrar",
        "connecting": "Conectando con {broker}...",
        "code_empty": "Escriba primero el código de sesión.",
        "code_not_digits": "El código de sesión solo tiene cifras, como 123 456 7890.",
        "code_length": "Este código tiene {count} cifras; el del técnico tiene 10 (de 6 a 16).",
        "link_bad": "Un enlace de acceso es como https://support.example/j#1234567890.",
        "broker_missing": "Escriba la dirección del servidor de asistencia, como "
        "https://support.example.",
        "broker_bad": "La dirección del servidor de asistencia empieza por https://, como "
        "https://support.example.",
        "broker_http": "http:// sin cifrar solo se admite hacia este ordenador; use https://.",
        "refused_used": "Este código ya se ha usado o ha caducado. Pida al técnico un código "
        "nuevo.",
        "refused_unknown": "Este código no existe. Revise las cifras o pida al técnico un código "
        "nuevo.",
        "refused_busy": "Demasiados intentos. Espere un minuto y vuelva a intentarlo.",
        "refused_other": "El servidor de asistencia ha rechazado el código: {message}",
        "unreachable": "No se puede conectar con el servidor de asistencia ({broker}). Revise "
        "la dirección y la conexión a internet y vuelva a intentarlo.",
        "outdated": "Este programa es demasiado antiguo para el servidor de asistencia. "
        "Descárguelo de nuevo desde la página de asistencia y abra el nuevo.",
        "ask_code": "Código de sesión (las cifras que le ha dado el técnico): ",
        "no_code": "No se ha escrito ningún código de sesión; no se ha compartido nada.",
        "banner": "Asistencia remota para el caso {case}\nTécnico: {engineer}\n"
        "No se comparte nada hasta que usted lo permita.",
        "named_in_each_request": "se indica en cada petición",
        "no_question": "No hay ninguna pregunta pendiente.",
        "allow_button": "Permitir",
        "deny_button": "Denegar",
        "pause_button": "Pausar / reanudar",
        "take_back_button": "Recuperar el control",
        "stop_viewing_button": "Dejar de compartir",
        "end_button": "Terminar la sesión",
        "buttons_hint": "Estos botones funcionan en todo momento.",
        "finished": "Ya puede cerrar esta ventana.",
        "term_banner": "rsb-agent: asistencia remota para el caso {case}",
        "term_engineer": "  técnico {engineer}, a través de {broker}",
        "term_nothing": "No se comparte nada de este ordenador hasta que responda sí a una de "
        "las preguntas.",
        "command_help": "Órdenes (escriba la letra y pulse Intro): p = pausar/reanudar,  r = "
        "recuperar el control,  v = dejar de compartir,  e = terminar la sesión",
        "withdrawn": "(Esa petición se ha retirado.)",
        "no_question_now": "* Ahora no hay ninguna pregunta que responder.",
        "input_closed": "* La entrada se ha cerrado: se rechazarán todas las peticiones.",
        "unknown_command": "* Orden desconocida {word}. {help}",
        "indicator_title": "Su pantalla se está compartiendo",
        "watched_by": "Viendo su pantalla: {names}",
        "controlling": "{name} está controlando su ordenador",
        "indicator_paused": "En pausa: ahora no se comparte nada",
        "stop_control_button": "Quitar el control",
        "stop_sharing_button": "Dejar de compartir",
        "n_allowed_view": "Permitido: {name} ya puede ver su pantalla (escriba v para dejar de "
        "compartir, p para pausar).",
        "n_allowed_control": "Permitido: {name} ya controla su ratón y su teclado (escriba r "
        "para recuperarlo).",
        "n_refused": "Rechazado: {name} no obtiene permiso para {permission} ({reason}).",
        "n_nobody_controls": "Nadie tiene el control.",
        "n_nobody_views": "Nadie está viendo la pantalla.",
        "n_paused": "En pausa: no se comparte nada y no se acepta ninguna entrada.",
        "n_remote_resume": "El equipo de asistencia pide reanudar; pulse p para reanudar.",
        "n_resumed": "Reanudado.",
        "n_ended": "La sesión ha terminado.",
        "n_lost_view": "{name} ya no puede ver su pantalla.",
        "n_lost_control": "{name} ya no tiene el control.",
        "n_cannot_connect": "No se puede conectar: {reason}",
        "n_give_up": "No se puede contactar con el servidor de asistencia; se abandona.",
        "n_not_welcome": "El primer mensaje del servidor no es un saludo.",
        "n_not_welcome_why": "El primer mensaje del servidor no es un saludo: {reason}",
        "n_other_session": "El saludo del servidor es para otra sesión; se desconecta.",
        "n_connected": "Conectado con {organisation}. Esperando al técnico.",
        "n_reconnected": "Reconectado; sus respuestas anteriores siguen valiendo.",
        "n_update": "{reason}: actualice el programa.",
        "n_outdated": "Este programa es demasiado antiguo para el servidor de asistencia: "
        "descárguelo de nuevo desde la página de asistencia.",
        "n_failed": "Desconectado definitivamente: {reason}.",
        "n_lost": "Se ha perdido la conexión ({reason}); reconectando...",
        "n_injection": "{reason}; se recupera el control.",
        "n_back": "{name} ha vuelto; palabras de verificación ahora: {words}",
        "n_no_answer": "Sin respuesta a tiempo: se ha rechazado la petición.",
        "n_chat_open_words": "El chat de la página web está abierto. Palabras de verificación "
        "ahora: {words}",
        "n_chat_open": "El chat de la página web está abierto.",
        "n_chat_own": "Usted (página web): {text}",
        "n_chat_nobody": "(Ahora ningún técnico puede leer el chat.)",
        "p_view": "ver la pantalla",
        "p_control": "controlar el ordenador",
        "p_your_answer": "su respuesta",
        "p_declined": "usted lo ha rechazado",
        "p_no_answer": "sin respuesta",
        "p_no_answer_in_time": "sin respuesta a tiempo",
        "p_view_withdrawn": "se retiró el permiso para ver",
        "p_dropped": "se cortó la conexión de red",
    },
}
"""Each customer-facing text, per language; every language has every key."""

CLOSE_EXPLANATIONS_ES: Mapping[int, str] = {
    CloseCode.AUTH_FAILED: "la autenticación ha fallado",
    CloseCode.UNSUPPORTED_VERSION: "versión del protocolo no admitida",
    CloseCode.INVALID_TOKEN: "credencial ausente, mal formada, caducada o de otra sesión",
    CloseCode.FORBIDDEN: "su función o su consentimiento no lo permiten",
    CloseCode.ORIGIN_REJECTED: "origen no permitido",
    CloseCode.ACCESS_REVOKED: "acceso retirado",
    CloseCode.TOKEN_EXPIRED: "la credencial de la conexión ha caducado; vuelva a entrar",
    CloseCode.MESSAGE_TOO_BIG: "mensaje demasiado grande",
    CloseCode.RATE_LIMITED: "demasiados mensajes",
    CloseCode.BAD_MESSAGE: "mensaje mal formado",
    CloseCode.NOT_FOUND: "la sesión no existe",
    CloseCode.CONFLICT: "no es compatible con el estado actual de la sesión",
    CloseCode.VALIDATION_FAILED: "los campos del mensaje no son válidos",
    CloseCode.INVALID_TRANSITION: "no se permite en el estado actual de la sesión",
    CloseCode.CONSENT_REQUIRED: "el cliente no lo ha consentido",
    CloseCode.CODE_REJECTED: "código de sesión usado, caducado o desconocido",
    CloseCode.SESSION_ENDED: "la sesión ha terminado",
    CloseCode.REPLACED: "una conexión más reciente ha ocupado este lugar",
    CloseCode.AGENT_OUTDATED: "este programa es más antiguo de lo que admite el servidor; "
    "descárguelo de nuevo",
    CloseCode.RELAY_UNAVAILABLE: "el servicio de retransmisión no está disponible",
    CloseCode.FLOW_CONTROL: "el otro extremo es demasiado lento; reconectando",
    StandardCloseCode.NORMAL_CLOSURE: "cerrada con normalidad",
    StandardCloseCode.GOING_AWAY: "el servidor se está deteniendo",
    StandardCloseCode.PROTOCOL_ERROR: "error del protocolo WebSocket",
    StandardCloseCode.UNSUPPORTED_DATA: "datos no admitidos",
    StandardCloseCode.ABNORMAL_CLOSURE: "conexión perdida",
    StandardCloseCode.INVALID_PAYLOAD: "datos de mensaje no válidos",
    StandardCloseCode.POLICY_VIOLATION: "incumplimiento de las normas",
    StandardCloseCode.MESSAGE_TOO_BIG: "mensaje demasiado grande",
    StandardCloseCode.MANDATORY_EXTENSION: "falta una extensión obligatoria",
    StandardCloseCode.INTERNAL_ERROR: "error interno del servidor",
    StandardCloseCode.TRY_AGAIN_LATER: "el servidor está sobrecargado; inténtelo más tarde",
}
"""``CLOSE_CODE_EXPLANATIONS`` in Spanish, code by code."""

_FIELD = re.compile(r"\{(\w+)\}")


def text(key: str, language: Language, **values: object) -> str:
    """The text under `key` in `language`, with `values` filled in.

    Raises:
        KeyError: No such key.
    """
    template = TEXTS[language][key]
    return template.format(**values) if values else template


def other_language(language: Language) -> Language:
    """The language the EN/ES switch changes to."""
    return "es" if language == "en" else "en"


def close_explanation(english: str, language: Language) -> str:
    """A close-code explanation (``CLOSE_CODE_EXPLANATIONS`` value) in `language`."""
    if language == "en":
        return english
    for code, explanation in CLOSE_CODE_EXPLANATIONS.items():
        if explanation == english:
            return CLOSE_EXPLANATIONS_ES.get(code, english)
    return english


def words_in(words: str, language: Language) -> str:
    """Read-back words written with spaces (English, as the session writes them) in `language`."""
    index = {word: i for i, word in enumerate(WORDS)}
    target = WORD_LISTS[language]
    return " ".join(target[index[w]] if w in index else w for w in words.split())


@cache
def _notice_patterns() -> tuple[tuple[re.Pattern[str], str], ...]:
    """(regex of the English template, key), most specific first: fewest free fields."""
    patterns = []
    for key, template in TEXTS["en"].items():
        if not key.startswith("n_"):
            continue
        parts = _FIELD.split(template)
        regex = "".join(
            f"(?P<{part}>.+?)" if i % 2 else re.escape(part) for i, part in enumerate(parts)
        )
        patterns.append((len(parts) // 2, -len(template), re.compile(f"^{regex}$", re.S), key))
    patterns.sort(key=lambda p: (p[0], p[1]))
    return tuple((regex, key) for _, _, regex, key in patterns)


def _phrase(value: str, language: Language) -> str:
    """A value inside a notice, translated if it is a phrase this module knows."""
    for key, english in TEXTS["en"].items():
        if key.startswith("p_") and english == value:
            return TEXTS[language][key]
    return close_explanation(value, language)


def notice_in(notice: str, language: Language) -> str:
    """One notice of the consent record or the session, in `language`.

    Args:
        notice: The notice as written, in English.
        language: The customer's language.

    Returns:
        The same sentence in `language` with the same names and values (reasons, close-code
        explanations and read-back words translated too), or `notice` unchanged if it is not
        one of the ``n_*`` templates (chat lines, for one).
    """
    if language == "en":
        return notice
    for regex, key in _notice_patterns():
        found = regex.match(notice)
        if found is None:
            continue
        values = found.groupdict()
        for name, value in values.items():
            if name == "words":
                values[name] = words_in(value, language)
            elif name in ("reason", "permission"):
                values[name] = _phrase(value, language)
        return TEXTS[language][key].format(**values)
    return notice
