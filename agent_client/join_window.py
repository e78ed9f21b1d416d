"""The way in for a customer with no terminal: a window that asks for the session code.

`rsb-agent` with no sub-command (or `rsb-agent join` without a code) opens this window when
tkinter and a display are there, and asks on the terminal otherwise (`ask_on_terminal`). The
code is checked here first (`read_entry`, pure), because the broker counts wrong guesses;
only a well-formed code is sent, exactly as `rsb-agent join CODE` sends it. A refusal (code
used or unknown, too many tries, broker unreachable) is shown in the customer's language and
they may try again; an agent too old for the broker (HTTP 426) is told to download it again,
and there is no retry. Once the code is accepted, the consent dialog (agent_client/prompt_tk.py)
takes the same window over, in the language chosen here with the EN/ES switch.

The window runs on the agent's one Tk thread (`TkThread`); `JoinWindow.run` blocks the calling
thread (the agent's main thread, before its event loop starts) until a code was accepted or
the customer gave up.
"""

from __future__ import annotations

import functools
import logging
import queue
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO, TypeVar

from agent_client.join_target import EntryError, read_entry
from agent_client.prompt_tk import TkThread, focus_language, language_switch, show_text
from agent_client.texts import Language, text

__all__ = [
    "EntryError",
    "JoinFailed",
    "JoinWindow",
    "ask_on_terminal",
    "failure_for",
    "read_entry",
]

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class JoinFailed(Exception):
    """The broker refused the code, or could not be reached.

    Attributes:
        key: The text to show (``agent_client.texts``).
        values: Its fields.
        final: Trying again cannot help (this agent is outdated).
    """

    key: str
    values: dict[str, object] = field(default_factory=dict)
    final: bool = False

    def text_in(self, language: Language) -> str:
        return text(self.key, language, **self.values)


def failure_for(status: int, message: str) -> JoinFailed:
    """What to tell the customer about an HTTP refusal of `POST /api/v1/join`.

    Args:
        status: The HTTP status (4xx).
        message: The broker's own message (shown only when no better text exists).
    """
    if status == 426:
        return JoinFailed("outdated", final=True)
    if status == 410:
        return JoinFailed("refused_used")
    if status in (400, 404, 422):
        return JoinFailed("refused_unknown")
    if status == 429:
        return JoinFailed("refused_busy")
    return JoinFailed("refused_other", {"message": message[:200]})


class JoinWindow:
    """The code window on the agent's Tk thread."""

    def __init__(self, thread: TkThread, broker: str, language: Language) -> None:
        """Prepare the window; it opens in `run`.

        Args:
            thread: The running Tk thread.
            broker: The address to prefill (``--broker``, ``$RSB_BROKER`` or the built-in one).
            language: The language to start in; the customer can switch.
        """
        self._thread = thread
        self._broker = broker
        self.language: Language = language
        self._entries: queue.SimpleQueue[tuple[str, str] | None] = queue.SimpleQueue()
        self._message: tuple[str, dict[str, object], bool] | None = None
        self._busy = False
        self._final = False
        self._w: dict[str, Any] = {}

    def run(self, attempt: Callable[[str, str], T]) -> T | None:
        """Show the window until a code is accepted (its join is returned) or the customer
        gives up (None). Blocks; call it off the Tk thread.

        Args:
            attempt: Sends one well-formed code; raises `JoinFailed` on a refusal.
        """
        self._thread.at_exit(self._w.clear)
        self._thread.post(self._build)
        while True:
            entry = self._entries.get()
            if entry is None:
                return None
            broker, digits = entry
            try:
                joined = attempt(broker, digits)
            except JoinFailed as exc:
                self._thread.post(functools.partial(self._failed, exc))
                continue
            self._thread.post(self._joined)
            return joined

    # On the Tk thread from here on.

    def _build(self) -> None:
        import tkinter as tk

        root = self._thread.root
        root.protocol("WM_DELETE_WINDOW", self._cancel)
        frame = tk.Frame(root, padx=14, pady=12)
        frame.pack(fill="both", expand=True)
        heading = tk.Label(frame, justify="left", wraplength=440)
        heading.grid(row=0, column=0, columnspan=2, sticky="w", pady=(0, 10))
        code_label = tk.Label(frame)
        code_label.grid(row=1, column=0, sticky="w")
        code = tk.Entry(frame, width=22, font=("TkFixedFont", 16))
        code.grid(row=1, column=1, sticky="w", pady=4)
        broker_label = tk.Label(frame)
        broker_label.grid(row=2, column=0, sticky="w")
        broker = tk.Entry(frame, width=36)
        broker.insert(0, self._broker)
        broker.grid(row=2, column=1, sticky="w", pady=4)
        message = tk.Label(frame, justify="left", wraplength=440)
        message.grid(row=3, column=0, columnspan=2, sticky="w", pady=(8, 4))
        buttons = tk.Frame(frame)
        buttons.grid(row=4, column=0, columnspan=2, sticky="we", pady=(6, 0))
        connect = tk.Button(buttons, command=self._submit, default="active")
        connect.pack(side="left")
        cancel = tk.Button(buttons, command=self._cancel)
        cancel.pack(side="left", padx=6)
        for entry in (code, broker):
            entry.bind("<Return>", lambda event: self._submit())
        self._w.update(
            root=root,
            frame=frame,
            heading=heading,
            code_label=code_label,
            code=code,
            broker_label=broker_label,
            broker=broker,
            message=message,
            buttons=buttons,
            connect=connect,
            cancel=cancel,
        )
        self._render()
        code.focus_set()

    def _render(self) -> None:
        w, language = self._w, self.language
        w["root"].title(text("window_title", language))
        log.debug("shown title: %s", text("window_title", language))
        show_text(w["heading"], "join", text("join_heading", language))
        w["code_label"].config(text=text("code_label", language))
        w["broker_label"].config(text=text("broker_label", language))
        w["connect"].config(text=text("connect", language))
        w["cancel"].config(text=text("close" if self._final else "cancel", language))
        if "switch" in w:
            w["switch"].destroy()
        w["switch"] = language_switch(w["buttons"], language, self._switch)
        w["switch"].pack(side="right")
        self._show_message()

    def _switch(self, language: Language) -> None:
        if language != self.language:
            self.language = language
            self._render()
            focus_language(self._w["switch"], language)

    def _show_message(self) -> None:
        if self._message is None:
            show_text(self._w["message"], "join message", "")
            return
        key, values, error = self._message
        self._w["message"].config(fg="#b00020" if error else "gray25")
        show_text(self._w["message"], "join message", text(key, self.language, **values))

    def _say(self, key: str, values: dict[str, object] | None = None, *, error: bool) -> None:
        self._message = (key, values or {}, error)
        self._show_message()

    def _submit(self) -> None:
        if self._busy or self._final:
            return
        try:
            broker, digits = read_entry(self._w["code"].get(), self._w["broker"].get())
        except EntryError as exc:
            self._say(exc.key, exc.values, error=True)
            return
        self._busy = True
        self._w["connect"].config(state="disabled")
        self._say("connecting", {"broker": broker}, error=False)
        self._entries.put((broker, digits))

    def _failed(self, exc: JoinFailed) -> None:
        self._busy = False
        self._final = exc.final
        self._say(exc.key, exc.values, error=True)
        if exc.final:
            self._w["connect"].config(state="disabled")
            self._w["code"].config(state="disabled")
            self._w["cancel"].config(text=text("close", self.language))
        else:
            self._w["connect"].config(state="normal")
            self._w["code"].focus_set()
            self._w["code"].select_range(0, "end")

    def _joined(self) -> None:
        self._w["frame"].destroy()
        self._w.clear()

    def _cancel(self) -> None:
        if not self._busy:
            self._entries.put(None)
            self._thread.destroy()


def ask_on_terminal(
    broker: str,
    language: Language,
    attempt: Callable[[str, str], T],
    *,
    input: TextIO | None = None,
    output: TextIO | None = None,
) -> T | None:
    """The window's questions on a terminal: read codes until one is accepted.

    Args:
        broker: The support server's address ("" if unknown: a join link names it).
        language: The customer's language.
        attempt: Sends one well-formed code; raises `JoinFailed` on a refusal.
        input: Where the customer types (stdin).
        output: Where they read (stdout).

    Returns:
        The accepted join, or None at end of input or when trying again cannot help.
    """
    stdin = input if input is not None else sys.stdin
    stdout = output if output is not None else sys.stdout
    while True:
        stdout.write(text("ask_code", language))
        stdout.flush()
        line = stdin.readline()
        if not line:
            stdout.write("\n" + text("no_code", language) + "\n")
            return None
        try:
            entry = read_entry(line, broker)
        except EntryError as exc:
            stdout.write(exc.text_in(language) + "\n")
            continue
        stdout.write(text("connecting", language, broker=entry[0]) + "\n")
        stdout.flush()
        try:
            return attempt(*entry)
        except JoinFailed as exc:
            stdout.write(exc.text_in(language) + "\n")
            if exc.final:
                return None
