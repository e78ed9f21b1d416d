"""The input path: INPUT frames in, injected events out, and only with the agent's own consent.

A frame reaches the injector only if all of these hold, checked in this order and with no
`await` between the last check and the injection, so a revocation processed by the event loop
can never fall between them:

1. the agent's consent record grants CONTROL to the sending slot (`AgentConsent.may_inject`);
2. the frame opens under that slot's pairwise key for the current epoch, which only the viewer
   holding that slot's private key can produce (the broker cannot forge or re-slot it);
3. the JSON payload validates as input events on the captured screen
   (`agent_client.inject.InputEvent.from_json`).

The injector exists only while someone may inject: it is built at the first permitted event
and closed, which releases held keys and buttons, as soon as control or the session goes away
or the session is paused (capability by construction, DESIGN.md pattern 8).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable

from agent_client.consent import AgentConsent
from agent_client.inject import AnyInputEvent, InputEvent, InputInjector, PointerMove, deliver
from agent_client.keyring import Keyring
from rsb_protocol.errors import ProtocolError

__all__ = ["MAX_EVENTS_PER_FRAME", "InputGate", "decode_events"]

log = logging.getLogger(__name__)

MAX_EVENTS_PER_FRAME = 64
"""A frame may batch events as a JSON list; more than this is refused as a whole."""


def decode_events(payload: bytes, screen_size: tuple[int, int]) -> list[AnyInputEvent]:
    """Decode the plaintext of one INPUT frame: one event object, or a list of them.

    Raises:
        ValueError: Not UTF-8 JSON, too deeply nested, too many events, or an invalid event.
    """
    try:
        data = json.loads(payload)
    except RecursionError:
        raise ValueError("input JSON nested too deeply") from None
    items = data if isinstance(data, list) else [data]
    if len(items) > MAX_EVENTS_PER_FRAME:
        raise ValueError(f"{len(items)} events in one frame; at most {MAX_EVENTS_PER_FRAME}")
    return [InputEvent.from_json(item, screen_size=screen_size) for item in items]


class InputGate:
    """Opens, checks and injects INPUT frames for one session."""

    def __init__(
        self,
        consent: AgentConsent,
        keyring: Keyring,
        injector_factory: Callable[[], InputInjector],
        *,
        screen_size: tuple[int, int],
        origin: tuple[int, int] = (0, 0),
        max_size: int,
    ) -> None:
        """Wire the gate to the consent record and the keys.

        Args:
            consent: The agent's own consent record.
            keyring: Holds the pairwise channels of admitted viewers.
            injector_factory: Builds the platform's injector when control is first used.
            screen_size: (width, height) of the captured screen; pointer events must lie on it.
            origin: Screen coordinates of the captured area's top-left pixel.
            max_size: Largest INPUT frame accepted.
        """
        self._consent = consent
        self._keyring = keyring
        self._factory = injector_factory
        self._screen_size = screen_size
        self._origin = origin
        self._max_size = max_size
        self._injector: InputInjector | None = None
        self.stats: Counter[str] = Counter()

    def receive(self, slot: int, data: bytes) -> bool:
        """Handle one INPUT frame from `slot`; True if its events were injected.

        Raises:
            InjectionFailed: The injector could not be built or refused an event; the caller
                takes control back, since input it cannot deliver would be silently lost.
        """
        if not self._consent.may_inject(slot):
            self.stats["dropped_no_consent"] += 1
            log.info("input from slot %d dropped: no control consent here", slot)
            return False
        channel = self._keyring.channel(slot)
        if channel is None:
            self.stats["dropped_no_channel"] += 1
            return False
        try:
            _, plaintext = channel.open(data, self._max_size)
            events = decode_events(plaintext, self._screen_size)
        except (ProtocolError, ValueError) as exc:
            self.stats["dropped_invalid"] += 1
            log.warning("input from slot %d dropped: %s", slot, exc)
            return False
        if not self._consent.may_inject(slot):  # unchanged, as nothing awaited; kept explicit
            return False
        injector = self._open()
        try:
            for event in events:
                deliver(injector, self._shift(event))
        except (OSError, RuntimeError, ValueError) as exc:
            raise InjectionFailed(f"input could not be injected: {exc}") from exc
        self.stats["injected"] += len(events)
        return True

    def sync(self) -> None:
        """Close the injector if nobody may inject any more (releases held keys and buttons)."""
        controller = self._consent.controller
        if self._injector is not None and (
            controller is None or not self._consent.may_inject(controller)
        ):
            self.close()

    def close(self) -> None:
        """Release the injector, if one is open."""
        injector, self._injector = self._injector, None
        if injector is not None:
            try:
                injector.close()
            except (OSError, RuntimeError) as exc:
                log.warning("closing the input injector failed: %s", exc)

    def _open(self) -> InputInjector:
        if self._injector is None:
            try:
                self._injector = self._factory()
            except (OSError, RuntimeError, ImportError) as exc:
                raise InjectionFailed(f"no input backend: {exc}") from exc
        return self._injector

    def _shift(self, event: AnyInputEvent) -> AnyInputEvent:
        if isinstance(event, PointerMove) and self._origin != (0, 0):
            return PointerMove(event.x + self._origin[0], event.y + self._origin[1])
        return event


class InjectionFailed(Exception):
    """The input backend is missing or refused an event."""
