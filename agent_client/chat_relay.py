"""The customer side's end of chat: the agent opens each chat frame, shows it, and passes it on.

The customer's web page seals its chat to the agent on a pairwise channel (slot
`CUSTOMER_SLOT`); the agent shows it and re-seals it under the group key to the engineers who
may see the screen. An engineer's chat is shown and sealed again to the page's channel with the
engineer's name. The broker relays only ciphertext (docs/protocol.md).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from agent_client.consent import AgentConsent
from agent_client.keyring import Keyring
from agent_client.transport import Kind, Outbox
from rsb_protocol.errors import ProtocolError
from rsb_protocol.framing import CUSTOMER_SLOT, FrameType

log = logging.getLogger(__name__)

MAX_CHAT_CHARS = 4000
"""Longest chat text the agent shows or passes on; the console and the page send less."""


class ChatRelay:
    """Chat between the customer's page and the engineers, through the agent's keys.

    It keeps no state of its own: the channels are the keyring's, the names the consent
    record's, and whether engineers can read group frames is the session's to say.
    """

    def __init__(
        self,
        keyring: Keyring,
        consent: AgentConsent,
        outbox: Outbox,
        *,
        notice: Callable[[str], None],
        frames_allowed: Callable[[], bool],
        max_message: int,
    ) -> None:
        """Wire the relay to the session's keys, consent record and outbox.

        Args:
            keyring: Holds the admitted viewers' channels, the page's and the group sender.
            consent: Names the engineer in each slot.
            outbox: Where sealed chat frames are queued.
            notice: Shows a line to the customer (the consent prompt).
            frames_allowed: Whether an admitted viewer holds the current group key now.
            max_message: Largest frame accepted from the broker.
        """
        self._keyring = keyring
        self._consent = consent
        self._outbox = outbox
        self._notice = notice
        self._frames_allowed = frames_allowed
        self._max_message = max_message

    def receive_frame(self, slot: int, data: bytes) -> None:
        """A CHAT frame from the broker, from the page (`CUSTOMER_SLOT`) or a viewer's slot."""
        if slot == CUSTOMER_SLOT:
            self._from_customer_page(data)
            return
        channel = self._keyring.channel(slot)  # only admitted viewers have one
        if channel is None:
            return
        try:
            _, plaintext = channel.open(data, self._max_message)
        except ProtocolError as exc:
            log.warning("chat from slot %d dropped: %s", slot, exc)
            return
        name = self._consent.display_name(slot) or f"slot {slot}"
        text = plaintext.decode("utf-8", "replace")[:MAX_CHAT_CHARS]
        self._notice(f"{name}: {text}")
        self._to_customer_page(name, text)

    def _from_customer_page(self, data: bytes) -> None:
        """Chat from the customer's web page: show it, pass it on to the engineers."""
        channel = self._keyring.customer_channel()
        if channel is None:
            return
        try:
            _, plaintext = channel.open(data, self._max_message)
        except ProtocolError as exc:
            log.warning("chat from the customer page dropped: %s", exc)
            return
        text = plaintext.decode("utf-8", "replace")[:MAX_CHAT_CHARS]
        self._notice(f"You (web page): {text}")
        if not self._frames_allowed():
            # Only engineers who may see the screen hold the group key (and the broker relays
            # group frames only to them): nobody could read it now. The page says so too.
            self._notice("(No engineer can read chat right now.)")
            return
        # Under the group key, as screen frames: every group CHAT comes from the customer.
        frame = self._keyring.sender.seal_update(FrameType.CHAT, text.encode("utf-8"))
        self._outbox.put(frame, Kind.FRAME)

    def _to_customer_page(self, name: str, text: str) -> None:
        channel = self._keyring.customer_channel()
        if channel is None:
            return  # no page open: the customer reads it in this prompt
        payload = json.dumps({"from": name, "text": text}, ensure_ascii=False)
        # The page's channel outlives reconnects (one fixed epoch), so the frame may wait.
        self._outbox.put(channel.seal(FrameType.CHAT, payload.encode("utf-8")), Kind.CONTROL)
