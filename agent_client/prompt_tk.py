"""A small tkinter window for the consent prompt, for customers without a terminal.

Tk is not thread-safe, so it lives in a thread of its own (`TkThread`) and only that thread
touches a widget: the other threads post closures, which the Tk thread polls; button presses
travel back to the event loop with `loop.call_soon_threadsafe`. One `TkThread` serves the whole
run: the join window (agent_client/join_window.py) asks for the code in it, then this dialog
takes its place, with the always-on-top indicator (agent_client/indicator.py) beside it.

The dialog speaks the customer's language with an EN/ES switch that re-words everything at
once, questions and indicator included. With ``RSB_AGENT_LOG=debug`` every text it shows is
also logged ("shown NAME: ..."), which is how tests read the window. Tested on X11 (Xvfb)
with the real agent, driven by keyboard (tests/integration/test_agent_e2e.py,
tests/integration/test_agent_window.py); on macOS Tk must own the main thread, so `--ui auto`
picks the terminal there.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import queue
import sys
import threading
from collections.abc import Callable
from typing import Any

from agent_client.consent import PendingRequest
from agent_client.indicator import Indicator
from agent_client.prompt import (
    Activity,
    Banner,
    Command,
    PromptUnavailable,
    Question,
    QuestionQueue,
    describe,
)
from agent_client.texts import LANGUAGES, Language, notice_in, text

__all__ = [
    "TkPrompt",
    "TkThread",
    "focus_language",
    "language_switch",
    "show_text",
    "tk_available",
]

log = logging.getLogger(__name__)

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


def show_text(widget: Any, name: str, value: str) -> None:
    """Set a label's text (Tk thread), and log it for tests at debug level."""
    widget.config(text=value)
    log.debug("shown %s: %s", name, value.replace("\n", " | "))


class TkThread:
    """The one thread that owns the Tk interpreter for the agent's whole run."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._ready = threading.Event()
        self._done = threading.Event()
        self._error: BaseException | None = None
        self._root: Any = None
        self._at_exit: list[Callable[[], None]] = []
        self._stopping = False

    @property
    def root(self) -> Any:
        """The Tk root; touch it only from closures run by `post`."""
        return self._root

    @property
    def alive(self) -> bool:
        """True from a successful `start` until the window is gone."""
        return self._ready.is_set() and not self._done.is_set() and self._error is None

    def start(self, timeout: float = 10.0) -> None:
        """Start the thread and open the (empty) root window.

        Raises:
            PromptUnavailable: Tk cannot start (no display, no tkinter).
        """
        threading.Thread(target=self._run, name="rsb-tk", daemon=True).start()
        self._ready.wait(timeout)
        if self._error is not None or not self._ready.is_set():
            raise PromptUnavailable(f"cannot open a window: {self._error}")

    def post(self, call: Callable[[], None]) -> None:
        """Run `call` on the Tk thread soon."""
        self._calls.put(call)

    def at_exit(self, call: Callable[[], None]) -> None:
        """Run `call` on the Tk thread once the window is gone (to drop widget references)."""
        self._at_exit.append(call)

    def stop(self, wait: float = 5.0) -> None:
        """Close the window and end the thread; waits up to `wait` seconds for it."""
        if not self._ready.is_set() or self._error is not None:
            return
        self.post(self.destroy)
        self._done.wait(wait)

    def wait_done(self, timeout: float | None = None) -> bool:
        """Block until the window is gone; True if it is."""
        return self._done.wait(timeout)

    def destroy(self) -> None:
        """On the Tk thread: close the window now; the thread ends."""
        if not self._stopping:
            self._stopping = True
            self._root.destroy()

    def _run(self) -> None:
        try:
            import tkinter as tk

            root = tk.Tk()
        except Exception as exc:  # TclError (no display) and ImportError alike: report it
            self._error = exc
            self._ready.set()
            return
        self._root = root
        root.after(_POLL_MS, self._poll)
        self._ready.set()
        try:
            root.mainloop()
        finally:
            for call in self._at_exit:
                call()
            # Tk objects must die on the thread that made them, or Tcl aborts the process.
            self._root = None
            del root
            gc.collect()
            self._done.set()

    def _poll(self) -> None:
        while True:
            try:
                call = self._calls.get_nowait()
            except queue.Empty:
                break
            try:
                call()
            except Exception:  # one broken update must not freeze the window
                log.exception("window update failed")
            if self._stopping:
                return
        if not self._stopping:
            self._root.after(_POLL_MS, self._poll)


def language_switch(parent: Any, current: Language, choose: Callable[[Language], None]) -> Any:
    """An "EN | ES" pair of buttons (Tk thread); the current language's button is sunken.

    They come last in the keyboard order (Tab), after every other button of the window.
    """
    import tkinter as tk

    frame = tk.Frame(parent)
    for language in LANGUAGES:
        tk.Button(
            frame,
            text=language.upper(),
            relief="sunken" if language == current else "raised",
            command=_chooser(choose, language),
        ).pack(side="left")
    return frame


def focus_language(switch: Any, language: Language) -> None:
    """Give the keyboard back to the switch's button for `language`, after a re-render."""
    for button in switch.winfo_children():
        if button.cget("text") == language.upper():
            button.focus_set()


def _chooser(choose: Callable[[Language], None], language: Language) -> Callable[[], None]:
    return lambda: choose(language)


class TkPrompt:
    """Allow/Deny for each question; Pause/resume, Take back control, Stop viewing, End."""

    def __init__(
        self,
        title: str | None = None,
        language: Language = "en",
        *,
        tk_thread: TkThread | None = None,
        linger: bool = False,
    ) -> None:
        """Prepare the dialog; nothing shows until `start`.

        Args:
            title: Window title; None for "Remote support" in the customer's language.
            language: The language to start in (the window has a switch).
            tk_thread: A running Tk thread to build in (the join window's); None to start one.
            linger: Keep the window after `close`, until `linger_until_closed` or `stop`.
        """
        self._title = title
        self._language = language
        self._thread = tk_thread
        self._linger = linger
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_command: Callable[[Command], None] = lambda command: None
        self._questions = QuestionQueue(self._present)
        self._banner: Banner | None = None
        self._question: Question | None = None
        self._notice = ""
        self._activity = Activity()
        self._indicator: Indicator | None = None
        self._finished = False
        self._w: dict[str, Any] = {}

    @property
    def language(self) -> Language:
        """The language shown now (the customer may have switched)."""
        return self._language

    def start(self, banner: Banner, on_command: Callable[[Command], None]) -> None:
        """Open the window.

        Raises:
            PromptUnavailable: Tk cannot start (the caller falls back to the terminal).
        """
        self._loop = asyncio.get_running_loop()
        self._on_command = on_command
        self._banner = banner
        if self._thread is None or not self._thread.alive:
            self._thread = TkThread()
            self._thread.start()
        built = threading.Event()
        self._thread.at_exit(self._forget)
        self._thread.post(functools.partial(self._build, built))
        if not built.wait(10):
            raise PromptUnavailable("the window did not open")

    async def ask(self, question: Question) -> bool | None:
        return await self._questions.ask(question)

    def withdraw(self, request: PendingRequest) -> None:
        self._questions.withdraw(request)

    def notice(self, text: str) -> None:
        self._post(functools.partial(self._show_notice, text))

    def show_activity(self, activity: Activity) -> None:
        """Open, update or close the always-on-top indicator."""
        self._activity = activity
        self._post(self._show_indicator)

    def close(self) -> None:
        self._questions.close()
        self._activity = Activity()
        self._finished = True
        self._post(self._show_finished)
        if not self._linger:
            self.stop()

    def linger_until_closed(self, timeout: float | None = None) -> None:
        """Block (not on the event loop) until the customer closes the window, then stop."""
        if self._thread is not None:
            self._thread.wait_done(timeout)
        self.stop()

    def stop(self) -> None:
        """Close the window now."""
        if self._thread is not None:
            self._thread.stop()

    # On the Tk thread from here on.

    def _post(self, call: Callable[[], None]) -> None:
        if self._thread is not None:
            self._thread.post(call)

    def _forget(self) -> None:
        self._w.clear()
        self._indicator = None

    def _to_loop(self, call: Callable[[], None]) -> None:
        """From the Tk thread: run `call` on the event loop."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(call)

    def _present(self, question: Question | None) -> None:
        self._question = question

        def show() -> None:
            self._show_question()
            if question is not None:
                root = self._w["root"]
                root.deiconify()
                root.lift()
                root.attributes("-topmost", True)
                root.bell()

        self._post(show)

    def _build(self, built: threading.Event) -> None:
        import tkinter as tk

        assert self._thread is not None and self._banner is not None
        root = self._thread.root
        for child in root.winfo_children():
            child.destroy()
        root.protocol("WM_DELETE_WINDOW", self._window_closed)
        frame = tk.Frame(root)
        frame.pack(fill="both", expand=True)
        banner = tk.Label(frame, justify="left")
        banner.pack(padx=12, pady=(12, 6), anchor="w")
        question = tk.Label(frame, justify="left", wraplength=520)
        question.pack(padx=12, pady=6, anchor="w")
        answers = tk.Frame(frame)
        answers.pack(padx=12, pady=6, anchor="w")
        allow = tk.Button(answers, state="disabled", command=self._answer(True))
        deny = tk.Button(answers, state="disabled", command=self._answer(False))
        allow.pack(side="left")
        deny.pack(side="left", padx=6)
        commands = tk.Frame(frame)
        commands.pack(padx=12, pady=6, anchor="w")
        buttons = {}
        for name, command in (
            ("pause_button", Command.PAUSE),
            ("take_back_button", Command.REVOKE_CONTROL),
            ("stop_viewing_button", Command.REVOKE_VIEW),
            ("end_button", Command.END),
        ):
            buttons[name] = tk.Button(commands, command=self._command_button(command))
            buttons[name].pack(side="left", padx=(0, 6))
        bottom = tk.Frame(frame)
        bottom.pack(padx=12, pady=(6, 12), fill="x")
        status = tk.Label(bottom, fg="gray25", justify="left", wraplength=520)
        status.pack(side="left", anchor="w")
        self._w.update(
            root=root,
            frame=frame,
            banner=banner,
            question=question,
            allow=allow,
            deny=deny,
            status=status,
            bottom=bottom,
            **buttons,
        )
        self._indicator = Indicator(root, lambda command: self._command(command))
        self._render()
        built.set()

    def _render(self) -> None:
        """Word everything in the current language (after building and after a switch)."""
        w, language = self._w, self._language
        banner = self._banner
        assert banner is not None
        w["root"].title(self._title or text("window_title", language))
        log.debug("shown title: %s", self._title or text("window_title", language))
        show_text(
            w["banner"],
            "banner",
            text(
                "banner", language, case=banner.case_number, engineer=banner.engineer_in(language)
            ),
        )
        w["allow"].config(text=text("allow_button", language))
        w["deny"].config(text=text("deny_button", language))
        for name in ("pause_button", "take_back_button", "stop_viewing_button", "end_button"):
            w[name].config(text=text(name, language))
        if "switch" in w:
            w["switch"].destroy()
        w["switch"] = language_switch(w["bottom"], language, self._switch)
        w["switch"].pack(side="right")
        self._show_question()
        self._show_notice()
        self._show_indicator()
        if self._finished:
            self._show_finished()

    def _switch(self, language: Language) -> None:
        if language != self._language:
            self._language = language
            self._render()
            focus_language(self._w["switch"], language)

    def _show_question(self) -> None:
        if "question" not in self._w:
            return
        question, language = self._question, self._language
        value = (
            "\n".join(describe(question, language)) if question else text("no_question", language)
        )
        show_text(self._w["question"], "question", value)
        state = "normal" if question else "disabled"
        for name in ("allow", "deny"):
            self._w[name].config(state=state)

    def _show_notice(self, notice: str | None = None) -> None:
        if notice is not None:
            self._notice = notice
        if "status" not in self._w:
            return
        value = notice_in(self._notice, self._language) if self._notice else ""
        show_text(self._w["status"], "notice", value or text("buttons_hint", self._language))

    def _show_indicator(self) -> None:
        if self._indicator is not None:
            self._indicator.show(self._activity, self._language)

    def _show_finished(self) -> None:
        """The session is over: no more buttons but Close, the last notice stays readable."""
        import tkinter as tk

        if "root" not in self._w:
            return
        if self._indicator is not None:
            self._indicator.destroy()
        for name in ("allow", "deny", "pause_button", "take_back_button"):
            self._w[name].config(state="disabled")
        for name in ("stop_viewing_button", "end_button"):
            self._w[name].config(state="disabled")
        if "close" not in self._w:
            self._w["close"] = tk.Button(self._w["frame"], command=self._window_closed)
            self._w["close"].pack(padx=12, pady=(0, 12), anchor="e")
        self._w["close"].config(text=text("close", self._language))

    def _window_closed(self) -> None:
        if self._finished:
            assert self._thread is not None
            self._thread.destroy()
        else:
            self._command(Command.END)

    def _answer(self, allow: bool) -> Callable[[], None]:
        return lambda: self._to_loop(lambda: (self._questions.answer(allow), None)[1])

    def _command_button(self, command: Command) -> Callable[[], None]:
        return lambda: self._command(command)

    def _command(self, command: Command) -> None:
        self._to_loop(lambda: self._on_command(command))
