"""A small tkinter window for the consent prompt, for customers without a terminal.

Tk is not thread-safe, so it lives in a thread of its own and only that thread touches a
widget: the event loop posts closures into `_calls`, which the Tk thread polls; button presses
travel back with `loop.call_soon_threadsafe`. Tested on X11 (Xvfb) with the real agent, driven
by keyboard (`tests/integration/test_agent_e2e.py`); on macOS Tk must own the main thread, so
`--ui auto` picks the terminal there.
"""

from __future__ import annotations

import asyncio
import os
import queue
import sys
import threading
from collections.abc import Callable
from typing import Any

from agent_client.consent import PendingRequest
from agent_client.prompt import (
    Banner,
    Command,
    Language,
    PromptUnavailable,
    Question,
    QuestionQueue,
    describe,
)

__all__ = ["TkPrompt", "tk_available"]

_POLL_MS = 50


def tk_available() -> bool:
    """True if tkinter imports and there is a display to open a window on (macOS excluded)."""
    if sys.platform == "darwin":
        return False
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return False
    try:
        import tkinter  # noqa: F401
    except ImportError:
        return False
    return True


class TkPrompt:
    """Allow/Deny for each question; Pause/resume, Take back control, Stop viewing, End."""

    def __init__(self, title: str = "Remote support", language: Language = "en") -> None:
        self._title = title
        self._language = language
        self._calls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_command: Callable[[Command], None] = lambda command: None
        self._questions = QuestionQueue(self._present)
        self._w: dict[str, Any] = {}
        self._closed = False

    def start(self, banner: Banner, on_command: Callable[[Command], None]) -> None:
        """Open the window.

        Raises:
            PromptUnavailable: Tk cannot start (the caller falls back to the terminal).
        """
        self._loop = asyncio.get_running_loop()
        self._on_command = on_command
        threading.Thread(target=self._run, args=(banner,), name="rsb-tk", daemon=True).start()
        self._ready.wait(10)
        if self._error is not None or not self._ready.is_set():
            raise PromptUnavailable(f"cannot open a window: {self._error}")

    async def ask(self, question: Question) -> bool | None:
        return await self._questions.ask(question)

    def withdraw(self, request: PendingRequest) -> None:
        self._questions.withdraw(request)

    def notice(self, text: str) -> None:
        self._post(lambda: self._w["status"].config(text=text))

    def close(self) -> None:
        self._questions.close()
        self._post(self._destroy)

    def _destroy(self) -> None:
        self._closed = True
        self._w["root"].destroy()

    def _post(self, call: Callable[[], None]) -> None:
        self._calls.put(call)

    def _to_loop(self, call: Callable[[], None]) -> None:
        """From the Tk thread: run `call` on the event loop."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(call)

    def _present(self, question: Question | None) -> None:
        waiting = "No question is waiting."
        text = "\n".join(describe(question, self._language)) if question else waiting
        state = "normal" if question else "disabled"

        def show() -> None:
            self._w["question"].config(text=text)
            for name in ("allow", "deny"):
                self._w[name].config(state=state)
            if question is not None:
                root = self._w["root"]
                root.deiconify()
                root.lift()
                root.attributes("-topmost", True)
                root.bell()

        self._post(show)

    def _run(self, banner: Banner) -> None:
        try:
            import tkinter as tk

            root = tk.Tk()
        except Exception as exc:  # TclError (no display) and ImportError alike: report it
            self._error = exc
            self._ready.set()
            return
        root.title(self._title)
        root.protocol("WM_DELETE_WINDOW", lambda: self._command(Command.END))
        tk.Label(
            root,
            text=f"Remote support for case {banner.case_number}\n"
            f"Engineer: {banner.engineer}\nNothing is shared until you allow it.",
            justify="left",
        ).pack(padx=12, pady=(12, 6), anchor="w")
        question = tk.Label(root, text="No question is waiting.", justify="left", wraplength=520)
        question.pack(padx=12, pady=6, anchor="w")
        answers = tk.Frame(root)
        answers.pack(padx=12, pady=6, anchor="w")
        allow = tk.Button(answers, text="Allow", state="disabled", command=self._answer(True))
        deny = tk.Button(answers, text="Deny", state="disabled", command=self._answer(False))
        allow.pack(side="left")
        deny.pack(side="left", padx=6)
        commands = tk.Frame(root)
        commands.pack(padx=12, pady=6, anchor="w")
        for label, command in (
            ("Pause / resume", Command.PAUSE),
            ("Take back control", Command.REVOKE_CONTROL),
            ("Stop all viewing", Command.REVOKE_VIEW),
            ("End session", Command.END),
        ):
            tk.Button(commands, text=label, command=self._command_button(command)).pack(
                side="left", padx=(0, 6)
            )
        status = tk.Label(root, text="These buttons work at any time.", fg="gray25")
        status.pack(padx=12, pady=(6, 12), anchor="w")
        self._w.update(root=root, question=question, allow=allow, deny=deny, status=status)
        root.after(_POLL_MS, self._poll)
        self._ready.set()
        root.mainloop()

    def _poll(self) -> None:
        while True:
            try:
                call = self._calls.get_nowait()
            except queue.Empty:
                break
            call()
        if not self._closed:
            self._w["root"].after(_POLL_MS, self._poll)

    def _answer(self, allow: bool) -> Callable[[], None]:
        return lambda: self._to_loop(lambda: (self._questions.answer(allow), None)[1])

    def _command_button(self, command: Command) -> Callable[[], None]:
        return lambda: self._command(command)

    def _command(self, command: Command) -> None:
        self._to_loop(lambda: self._on_command(command))
