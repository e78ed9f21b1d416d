"""The always-on-top "your screen is shared" indicator, with stop buttons.

While any engineer the customer let in can see the screen, a small window stays above every
other one (Tk ``-topmost``) and says who: "Being watched by Ana (L2)", and "Ana is controlling
your computer" while someone holds control. Its buttons send the same commands as the consent
dialog and the terminal letters (``Command.REVOKE_CONTROL``, ``REVOKE_VIEW``, ``END``), so
stopping from here is exactly stopping from anywhere else. It shows what the agent's own
consent record says (``Activity``, from ``AgentSession._show_activity``), never what the
broker claims: the record is what decides whether frames leave.

``indicator_lines`` is the pure part; ``Indicator`` is Tk code and runs on the Tk thread only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from agent_client.prompt import Activity, Command, Watcher
from agent_client.texts import Language, text

__all__ = ["Indicator", "indicator_lines"]

log = logging.getLogger(__name__)

_MARGIN = 16


def _named(watcher: Watcher) -> str:
    return f"{watcher.name} ({watcher.level})" if watcher.level else watcher.name


def indicator_lines(activity: Activity, language: Language) -> list[str]:
    """What the indicator says for `activity`; empty when nobody is let in (no indicator).

    Args:
        activity: Who can see and who controls, as the agent recorded it.
        language: The customer's language.
    """
    if not activity.viewers:
        return []
    lines = []
    if activity.controller is not None:
        lines.append(text("controlling", language, name=activity.controller.name))
    lines.append(text("watched_by", language, names=", ".join(_named(v) for v in activity.viewers)))
    if activity.paused:
        lines.append(text("indicator_paused", language))
    return lines


class Indicator:
    """The indicator window on the Tk thread: created when someone is let in, destroyed after."""

    def __init__(self, root: Any, on_command: Callable[[Command], None]) -> None:
        """Prepare; nothing shows until `show` is given an activity with a viewer.

        Args:
            root: The Tk root the window belongs to.
            on_command: Called on the Tk thread with the command of a pressed button.
        """
        self._root = root
        self._on_command = on_command
        self._activity = Activity()
        self._language: Language = "en"
        self._w: dict[str, Any] = {}

    @property
    def shown(self) -> bool:
        """True while the window exists."""
        return "top" in self._w

    def show(self, activity: Activity, language: Language) -> None:
        """Show `activity` in `language`: open, update or close the window."""
        self._activity, self._language = activity, language
        lines = indicator_lines(activity, language)
        if not lines:
            self.destroy()
            return
        if not self.shown:
            self._build()
        w = self._w
        w["top"].title(text("indicator_title", language))
        w["label"].config(text="\n".join(lines))
        w["stop_control"].config(text=text("stop_control_button", language))
        w["stop_sharing"].config(text=text("stop_sharing_button", language))
        w["end"].config(text=text("end_button", language))
        if activity.controller is not None:
            w["stop_control"].pack(side="left", padx=(0, 6), before=w["stop_sharing"])
        else:
            w["stop_control"].pack_forget()
        log.debug("shown indicator: %s", " | ".join(lines))
        self._place()

    def destroy(self) -> None:
        """Close the window if it is open."""
        top = self._w.pop("top", None)
        self._w.clear()
        if top is not None:
            top.destroy()
            log.debug("shown indicator: (closed)")

    def _build(self) -> None:
        import tkinter as tk

        top = tk.Toplevel(self._root)
        top.resizable(False, False)
        # Closing it from the title bar must not hide that someone is watching.
        top.protocol("WM_DELETE_WINDOW", lambda: None)
        top.attributes("-topmost", True)
        frame = tk.Frame(top, bg="#b00020", padx=10, pady=8)
        frame.pack(fill="both", expand=True)
        label = tk.Label(
            frame, bg="#b00020", fg="white", justify="left", font=("TkDefaultFont", 11, "bold")
        )
        label.pack(anchor="w")
        buttons = tk.Frame(frame, bg="#b00020")
        buttons.pack(anchor="w", pady=(6, 0))
        made = {}
        for name, command in (
            ("stop_control", Command.REVOKE_CONTROL),
            ("stop_sharing", Command.REVOKE_VIEW),
            ("end", Command.END),
        ):
            made[name] = tk.Button(buttons, command=self._press(command))
            made[name].pack(side="left", padx=(0, 6))
        self._w.update(top=top, label=label, **made)

    def _place(self) -> None:
        top = self._w["top"]
        top.update_idletasks()
        x = top.winfo_screenwidth() - top.winfo_reqwidth() - _MARGIN
        top.geometry(f"+{max(x, 0)}+{_MARGIN}")
        top.lift()

    def _press(self, command: Command) -> Callable[[], None]:
        return lambda: self._on_command(command)
