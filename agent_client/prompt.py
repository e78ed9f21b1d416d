"""The customer's side of consent: questions, answers and the always-available commands.

Every UI sits behind `ConsentPrompt`. `TerminalPrompt` always works: it prints each question
(engineer name and level, case, view or control, recorded or not, and the read-back words) and
reads answers and single-letter commands from stdin in a reader thread, so the event loop never
blocks on the keyboard. `TkPrompt` (agent_client/prompt_tk.py) is a small window for customers
who started the agent without a terminal.

Questions are asked one at a time, in arrival order. The commands work at any moment, even
while a question is open: pausing, revoking or ending must never wait for anything.

The question itself is worded in English or Spanish (``QUESTION_TEXTS``, chosen with
``rsb-agent --lang`` or from the locale: ``language_from``), the same words in every UI, and so
is everything else the customer reads (``agent_client.texts``). The read-back words come from
the word list of the customer's language; the digits are the same in every language, and are
what customer and engineer compare when their words differ.

A prompt that can also show who is watching right now implements ``ActivityDisplay``: the
session tells it after every change of consent (``AgentSession._show_activity``).
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Protocol, TextIO, runtime_checkable

from agent_client.consent import PendingRequest
from agent_client.texts import LANGUAGES, Language, notice_in, text
from rsb_protocol.messages import CONSENT_REASON_MAX, Level, Permission, clean_text
from rsb_protocol.readback import ReadbackString

__all__ = [
    "COMMAND_HELP",
    "LANGUAGES",
    "Activity",
    "ActivityDisplay",
    "Banner",
    "Command",
    "ConsentPrompt",
    "Language",
    "Watcher",
    "PromptUnavailable",
    "Question",
    "QuestionQueue",
    "TerminalPrompt",
    "describe",
    "language_from",
]

QUESTION_TEXTS: Mapping[Language, Mapping[str, str]] = {
    "en": {
        "asks": "{organisation} asks for permission to {action}.",
        "view": "SEE your screen (view only, no control)",
        "control": "CONTROL your mouse and keyboard",
        "engineer": "  Engineer:  {name} ({level})",
        "case": "  Case:      {case}",
        "reason": "  Reason:    {reason}",
        "no_reason": "(none given)",
        "recorded": "  Recorded:  {recorded}",
        "recorded_yes": "YES: this session is recorded for later review",
        "recorded_no": "no, this session is not recorded",
        "readback": "  Read-back: {words}  ({digits})",
        "readback_help": (
            "  Ask the engineer to read these words to you. If they differ, answer no."
        ),
        "readback_digits": (
            "  If the engineer's words are in another language, compare the digits instead."
        ),
        "allow": "Allow? Type y or n, then Enter:",
        "L1": "support desk",
        "L2": "remote support engineer",
        "L3": "design engineering",
    },
    "es": {
        "asks": "{organisation} pide permiso para {action}.",
        "view": "VER su pantalla (solo ver, sin control)",
        "control": "CONTROLAR su ratón y su teclado",
        "engineer": "  Técnico:   {name} ({level})",
        "case": "  Caso:      {case}",
        "reason": "  Motivo:    {reason}",
        "no_reason": "(no se ha indicado)",
        "recorded": "  Grabación: {recorded}",
        "recorded_yes": "SÍ: esta sesión se graba para revisarla después",
        "recorded_no": "no, esta sesión no se graba",
        "readback": "  Palabras:  {words}  ({digits})",
        "readback_help": (
            "  Pida al técnico que le lea estas palabras. Si no coinciden, responda no."
        ),
        "readback_digits": (
            "  Si las palabras del técnico están en otro idioma, compare las cifras."
        ),
        "allow": "¿Lo permite? Escriba s o n y pulse Intro:",
        "L1": "asistencia de primer nivel",
        "L2": "técnico de asistencia remota",
        "L3": "ingeniería de diseño",
    },
}
"""The consent question's words, per language; every language has every key."""

LEVEL_TITLES = {level: QUESTION_TEXTS["en"][level.value] for level in Level}


def language_from(environ: Mapping[str, str]) -> Language:
    """The prompt's language from the locale variables (``LANGUAGE``, ``LC_ALL``,
    ``LC_MESSAGES``, ``LANG``, first set one wins): Spanish for ``es*``, else English."""
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name, "")
        if value:
            return "es" if value.lower().startswith("es") else "en"
    return "en"


class PromptUnavailable(RuntimeError):
    """The UI cannot start (no display, no Tk); raised by `start` before anything happens."""


class Command(Enum):
    """What the customer can do at any moment."""

    PAUSE = "p"
    """Pause, or resume if paused."""
    REVOKE_CONTROL = "r"
    """Take control back."""
    REVOKE_VIEW = "v"
    """Stop every engineer from seeing the screen."""
    END = "e"
    """End the session."""


COMMAND_HELP = text("command_help", "en")


@dataclass(frozen=True)
class Banner:
    """What the customer is told when the agent starts (from the join response)."""

    case_number: str
    engineer: str
    broker: str

    def engineer_in(self, language: Language) -> str:
        """The engineer line in `language` (``attach`` does not know the name yet)."""
        if self.engineer == ENGINEER_UNNAMED:
            return text("named_in_each_request", language)
        return self.engineer


ENGINEER_UNNAMED = text("named_in_each_request", "en")
"""What `AgentSession.run` puts in ``Banner.engineer`` when the join did not name anyone."""


@dataclass(frozen=True)
class Watcher:
    """An engineer the customer let in, as the indicator names them."""

    name: str
    level: str | None


@dataclass(frozen=True)
class Activity:
    """Who can see the screen and who controls it, right now, as the agent itself recorded.

    Attributes:
        viewers: Every engineer admitted to view (paused or not), by slot.
        controller: The one engineer holding control, if any (also among `viewers`).
        paused: Nothing is shared while paused, though the grants stay.
    """

    viewers: tuple[Watcher, ...] = ()
    controller: Watcher | None = None
    paused: bool = False


@dataclass(frozen=True)
class Question:
    """One consent question: the request and the read-back string at the time of asking."""

    request: PendingRequest
    readback: ReadbackString


def describe(question: Question, language: Language = "en") -> list[str]:
    """The lines every UI shows for a question, so the wording is the same everywhere.

    A request beyond viewing also says why the engineer asked, in the engineer's own words
    (made one printable line here too: the agent does not trust the broker to have done it).
    """
    r, words = question.request, QUESTION_TEXTS[language]
    title = words.get(r.engineer_level.value, "")
    lines = [
        words["asks"].format(
            organisation=r.organisation,
            action=words["view" if r.permission is Permission.VIEW else "control"],
        ),
        words["engineer"].format(
            name=r.engineer_name, level=f"{r.engineer_level.value}{', ' + title if title else ''}"
        ),
        words["case"].format(case=r.case_number),
    ]
    if r.permission is not Permission.VIEW:
        reason = clean_text(r.reason, CONSENT_REASON_MAX) or words["no_reason"]
        lines.append(words["reason"].format(reason=reason))
    digits = question.readback.digits
    lines += [
        words["recorded"].format(recorded=words["recorded_yes" if r.recorded else "recorded_no"]),
        words["readback"].format(
            words=" ".join(question.readback.words_in(language)),
            digits=f"{digits[:3]} {digits[3:]}",
        ),
        words["readback_help"],
        words["readback_digits"],
    ]
    return lines


class ConsentPrompt(Protocol):
    """A consent UI: asks questions, shows notices, reports the customer's commands."""

    def start(self, banner: Banner, on_command: Callable[[Command], None]) -> None:
        """Show the banner and start listening; `on_command` runs on the event loop."""
        ...

    async def ask(self, question: Question) -> bool | None:
        """Ask one question; True yes, False no, None if withdrawn or nobody can answer."""
        ...

    def withdraw(self, request: PendingRequest) -> None:
        """Close the question for `request` unanswered (its engineer left, the session ended)."""
        ...

    def notice(self, text: str) -> None:
        """Tell the customer something (one line)."""
        ...

    def close(self) -> None:
        """Stop listening; open questions resolve to None."""
        ...


@runtime_checkable
class ActivityDisplay(Protocol):
    """A consent UI that also shows, at all times, who is watching (agent_client.indicator)."""

    def show_activity(self, activity: Activity) -> None:
        """Show `activity` (called on the event loop after each change; nothing if unchanged)."""
        ...


class QuestionQueue:
    """Asks questions one at a time; `present` shows the current one (shared by the UIs)."""

    def __init__(self, present: Callable[[Question | None], None]) -> None:
        self._present = present
        self._waiting: deque[tuple[Question, asyncio.Future[bool | None]]] = deque()
        self._current: tuple[Question, asyncio.Future[bool | None]] | None = None

    @property
    def current(self) -> Question | None:
        """The question on screen, if any."""
        return self._current[0] if self._current else None

    async def ask(self, question: Question) -> bool | None:
        future: asyncio.Future[bool | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((question, future))
        if self._current is None:
            self._next()
        try:
            return await future
        finally:
            # A cancelled ask (prompt timeout) must not leave its question on screen.
            self._resolve_matching(lambda q: q is question, None)

    def answer(self, allow: bool) -> bool:
        """Answer the current question; False if none is open."""
        if self._current is None:
            return False
        _, future = self._current
        self._current = None
        if not future.done():
            future.set_result(allow)
        self._next()
        return True

    def withdraw(self, request: PendingRequest) -> None:
        self._resolve_matching(
            lambda q: (q.request.slot, q.request.permission) == (request.slot, request.permission),
            None,
        )

    def close(self) -> None:
        self._resolve_matching(lambda q: True, None)

    def _resolve_matching(self, match: Callable[[Question], bool], result: bool | None) -> None:
        for question, future in [e for e in self._waiting if match(e[0])]:
            self._waiting.remove((question, future))
            if not future.done():
                future.set_result(result)
        if self._current is not None and match(self._current[0]):
            _, future = self._current
            self._current = None
            if not future.done():
                future.set_result(result)
            self._next()

    def _next(self) -> None:
        while self._waiting and self._waiting[0][1].done():
            self._waiting.popleft()
        self._current = self._waiting.popleft() if self._waiting else None
        self._present(self.current)


class TerminalPrompt:
    """Questions and commands on a terminal: prints to `output`, reads lines from `input`."""

    def __init__(
        self,
        input: TextIO | None = None,
        output: TextIO | None = None,
        language: Language = "en",
    ) -> None:
        self._in = input if input is not None else sys.stdin
        self._out = output if output is not None else sys.stdout
        self._language = language
        self._questions = QuestionQueue(self._present)
        self._on_command: Callable[[Command], None] = lambda command: None
        self._task: asyncio.Task[None] | None = None
        self._eof = False

    def start(self, banner: Banner, on_command: Callable[[Command], None]) -> None:
        self._on_command = on_command
        language = self._language
        self._print(
            text("term_banner", language, case=banner.case_number),
            text(
                "term_engineer",
                language,
                engineer=banner.engineer_in(language),
                broker=banner.broker,
            ),
            text("term_nothing", language),
            text("command_help", language),
        )
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        # A daemon thread, because a blocking readline cannot be cancelled and must not keep
        # the process alive after the session ended.
        threading.Thread(
            target=_read_lines, args=(self._in, loop, lines), name="rsb-stdin", daemon=True
        ).start()
        self._task = loop.create_task(self._dispatch(lines), name="rsb-terminal-prompt")

    async def ask(self, question: Question) -> bool | None:
        if self._eof:
            return None
        return await self._questions.ask(question)

    def withdraw(self, request: PendingRequest) -> None:
        if self._questions.current and self._questions.current.request == request:
            self._print(text("withdrawn", self._language))
        self._questions.withdraw(request)

    def notice(self, text: str) -> None:
        self._print(f"* {notice_in(text, self._language)}")

    def close(self) -> None:
        self._questions.close()
        if self._task is not None:
            self._task.cancel()

    def _present(self, question: Question | None) -> None:
        if question is not None:
            words = QUESTION_TEXTS[self._language]
            self._print("", *describe(question, self._language), words["allow"])

    async def _dispatch(self, lines: asyncio.Queue[str | None]) -> None:
        while True:
            line = await lines.get()
            if line is None:
                # No one can answer from here (stdin closed): no consent without a person.
                self._eof = True
                self._questions.close()
                self._print(text("input_closed", self._language))
                return
            word = line.strip().lower()
            if word in ("y", "yes", "s", "si", "sí", "n", "no"):
                if not self._questions.answer(not word.startswith("n")):
                    self._print(text("no_question_now", self._language))
            elif word in {c.value for c in Command}:
                self._on_command(Command(word))
            elif word in ("h", "?", "help", "ayuda"):
                self._print(text("command_help", self._language))
            elif word:
                help = text("command_help", self._language)
                self._print(
                    text("unknown_command", self._language, word=repr(word[:20]), help=help)
                )

    def _print(self, *lines: str) -> None:
        # Names and chat text come from the network: no escape sequence reaches the terminal.
        clean = ("".join(c if c.isprintable() else "?" for c in line) for line in lines)
        self._out.write("".join(line + "\n" for line in clean))
        self._out.flush()


def _read_lines(
    stream: TextIO, loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[str | None]
) -> None:
    """Reader thread: forward each line to the event loop; None at end of input."""
    while True:
        try:
            line: str | None = stream.readline() or None
        except (OSError, ValueError):  # closed underneath us
            line = None
        try:
            loop.call_soon_threadsafe(lines.put_nowait, line)
        except RuntimeError:  # the loop is gone: the agent is exiting
            return
        if line is None:
            return
