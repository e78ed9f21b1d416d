"""The agent's end-to-end keys: its ephemeral pairs, the viewers' public keys, epochs, channels.

A thin holder around `rsb_protocol.e2e` (no crypto of its own). It keeps one `GroupSender` for
the whole run, across reconnects, so epoch numbers only grow: a viewer accepts a KEY_WRAP only
for an epoch newer than the one it holds, so restarting at 1 would lock everyone out. Which
slots get the key is not decided here: `rekey` is handed the consent machine's
`admitted_viewers()`, and a slot without consent never gets a wrap or a pairwise channel, so
it has no key to read frames with and none to send input under (docs/protocol.md, "Epochs").

The customer's web page (slot `CUSTOMER_SLOT`) gets a pairwise channel too, for chat only. It
never receives the group key and never leaves the session the way an engineer does, so its
channel stays at epoch 1 for as long as the page keeps its key; the channel is kept even while
the page is away, because rebuilding it for the same key would restart its counters and reuse
nonces (docs/protocol.md, "The customer page's chat channel").
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from rsb_protocol.e2e import GroupSender, KeyPair, PairwiseChannel, PublicKey, Side
from rsb_protocol.errors import UnsupportedAlgorithm
from rsb_protocol.framing import AGENT_SLOT, CUSTOMER_SLOT, MAX_VIEWER_SLOT
from rsb_protocol.messages import KeyAlgorithm, PublicKeyAnnounce
from rsb_protocol.readback import ReadbackString, readback

__all__ = ["CUSTOMER_CHANNEL_EPOCH", "DEFAULT_ALGORITHMS", "MAX_CUSTOMER_KEYS", "Keyring"]

DEFAULT_ALGORITHMS = (KeyAlgorithm.X25519, KeyAlgorithm.P256)
"""One pair each, so a console whose browser lacks X25519 can still use P-256."""

CUSTOMER_CHANNEL_EPOCH = 1
"""The customer page holds no group key and never learns the epoch: its channel stays at 1."""

MAX_CUSTOMER_KEYS = 32
"""Page keys one run keeps a channel for (one per page load); more are refused, not evicted."""


class Keyring:
    """Key material of one agent run; lives as long as the session, in memory only."""

    def __init__(
        self, session_id: str, algorithms: Sequence[KeyAlgorithm] = DEFAULT_ALGORITHMS
    ) -> None:
        """Generate the agent's ephemeral key pairs and start epoch 1.

        Args:
            session_id: The session id from the join response (salt of every derivation).
            algorithms: Key algorithms to hold one pair for, in order of announcement.

        Raises:
            ValueError: Empty session id or no algorithm.
        """
        self._session_id = session_id
        self._pairs = {alg: KeyPair.generate(alg) for alg in algorithms}
        self._sender = GroupSender(session_id, list(self._pairs.values()))
        self._peers: dict[int, PublicKey] = {}
        self._channels: dict[int, tuple[PublicKey, PairwiseChannel]] = {}
        self._recording: PublicKey | None = None
        # Page key (raw bytes) -> its channel, for the whole run; `_customer` is the page
        # connected now, whose key the read-back covers.
        self._customer_channels: dict[tuple[KeyAlgorithm, bytes], PairwiseChannel] = {}
        self._customer: PublicKey | None = None

    @property
    def sender(self) -> GroupSender:
        """Seals frames under the current epoch's group key."""
        return self._sender

    @property
    def epoch(self) -> int:
        """The current epoch."""
        return self._sender.epoch

    @property
    def algorithms(self) -> tuple[KeyAlgorithm, ...]:
        """The algorithms the agent holds a pair for (for `hello`)."""
        return tuple(self._pairs)

    def announcements(self) -> list[PublicKeyAnnounce]:
        """The `public_key` messages for slot 0, one per key pair."""
        return [pair.public.announce(AGENT_SLOT) for pair in self._pairs.values()]

    def learn(self, slot: int, key: PublicKey) -> bool:
        """Remember a viewer's public key.

        Args:
            slot: The viewer's slot.
            key: Its announced key.

        Returns:
            True if the slot had no key or another one (the caller re-keys if it is admitted).

        Raises:
            E2EError: No pair of that algorithm, or key agreement fails (e.g. a low-order
                point); the key is not stored.
            ValueError: Not a viewer slot.
        """
        if not AGENT_SLOT < slot <= MAX_VIEWER_SLOT:
            raise ValueError(f"slot {slot} is not a viewer slot")
        self._own(key).exchange(key)  # refuse a key that cannot be used, now rather than later
        if self._peers.get(slot) == key:
            return False
        self._peers[slot] = key
        return True

    def learn_recording_key(self, key: PublicKey) -> None:
        """Remember the organisation's recording key, only so the read-back covers it.

        The agent does not wrap epoch keys to a recording key it got from the broker: a broker
        that supplied its own key could then read everything (see docs/agent.md).
        """
        self._recording = key

    def forget(self, slot: int) -> None:
        """Drop a viewer's key and channel (it left, or another participant took the slot).

        For the customer page only its key leaves the read-back: the channel is kept in case
        the same page (same key) comes back.
        """
        if slot == CUSTOMER_SLOT:
            self._customer = None
            return
        self._peers.pop(slot, None)
        self._channels.pop(slot, None)

    def learn_customer_key(self, key: PublicKey) -> bool:
        """Remember the customer page's key and open (or reopen) its chat channel.

        Args:
            key: The key the page announced for `CUSTOMER_SLOT`.

        Returns:
            True if the read-back changes (no page key before, or another one).

        Raises:
            E2EError: No pair of that algorithm, or key agreement fails; nothing is stored.
            ValueError: This run already opened `MAX_CUSTOMER_KEYS` page channels.
        """
        index = (key.algorithm, key.raw)
        if index not in self._customer_channels:
            if len(self._customer_channels) >= MAX_CUSTOMER_KEYS:
                raise ValueError("too many customer page keys in this run")
            self._customer_channels[index] = PairwiseChannel(
                self._session_id,
                self._own(key),
                key,
                CUSTOMER_SLOT,
                Side.AGENT,
                CUSTOMER_CHANNEL_EPOCH,
            )
        changed = self._customer != key
        self._customer = key
        return changed

    def customer_channel(self) -> PairwiseChannel | None:
        """The chat channel of the customer page connected now, or None."""
        key = self._customer
        return None if key is None else self._customer_channels[(key.algorithm, key.raw)]

    def has_key(self, slot: int) -> bool:
        """True once the viewer in `slot` announced a usable key."""
        return slot in self._peers

    def rekey(self, admitted: Collection[int]) -> list[bytes]:
        """Start a new epoch and wrap it to every admitted viewer whose key is known.

        Pairwise channels follow: advanced for viewers who stay with the same key, rebuilt for
        a changed key, dropped for everyone else, so input from a viewer who lost consent no
        longer opens.

        Args:
            admitted: The slots consent allows to see frames now.

        Returns:
            The KEY_WRAP frames to send, one per admitted viewer with a key.
        """
        epoch = self._sender.new_epoch()
        wraps: list[bytes] = []
        channels: dict[int, tuple[PublicKey, PairwiseChannel]] = {}
        for slot in sorted(admitted):
            key = self._peers.get(slot)
            if key is None:
                continue  # wrapped when its public_key arrives
            wraps.append(self._sender.wrap_for(key, slot))
            kept = self._channels.get(slot)
            if kept is not None and kept[0] == key:
                kept[1].advance_epoch(epoch)
                channels[slot] = kept
            else:
                channel = PairwiseChannel(
                    self._session_id, self._own(key), key, slot, Side.AGENT, epoch
                )
                channels[slot] = (key, channel)
        self._channels = channels
        return wraps

    def channel(self, slot: int) -> PairwiseChannel | None:
        """The pairwise channel of an admitted viewer, or None."""
        kept = self._channels.get(slot)
        return kept[1] if kept else None

    def readback(self) -> ReadbackString:
        """The read-back string over every public key this agent knows."""
        keys = [pair.public for pair in self._pairs.values()] + list(self._peers.values())
        if self._recording is not None:
            keys.append(self._recording)
        if self._customer is not None:
            keys.append(self._customer)
        return readback(self._session_id, keys)

    def _own(self, key: PublicKey) -> KeyPair:
        pair = self._pairs.get(key.algorithm)
        if pair is None:
            raise UnsupportedAlgorithm(f"the agent holds no {key.algorithm} key")
        return pair
