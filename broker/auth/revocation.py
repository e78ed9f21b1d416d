"""What may end a live connection before its owner closes it (pure: no I/O, no clock).

A WebSocket is authenticated once, at the upgrade; afterwards only the broker can take that
access back. Three things do: the staff user is disabled, the key that signed the token is
revoked, or the token expires. ``Credential`` is what a connection keeps of its token to
notice any of them, ``Revocation`` names what was withdrawn, and ``ExpiryQueue`` orders
connections by deadline so the hub's ticker finds the expired ones without a scan
(docs/security.md, "Ending live connections").
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Collection, Hashable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, Literal, TypeVar

from broker.auth.keys import LEEWAY

RevocationReason = Literal["user_disabled", "key_revoked"]

T = TypeVar("T", bound=Hashable)


@dataclass(frozen=True)
class Credential:
    """The token a live connection was opened with, as far as ending it early needs.

    Attributes:
        kid: The signing key's id (the token header's ``kid``).
        expires_at: The token's ``exp``.
        user: The staff user name for a staff token; None for agent and customer tokens,
            which belong to a session rather than a person.
    """

    kid: str
    expires_at: datetime
    user: str | None = None

    def deadline(self, leeway: timedelta = LEEWAY) -> datetime:
        """When the connection must be closed: the instant the broker stops accepting the
        token (``tokens.verify`` tolerates ``leeway`` of clock skew past ``exp``), so no
        connection outlives what a new one with the same token could get."""
        return self.expires_at + leeway


@dataclass(frozen=True)
class Revocation:
    """Access withdrawn while connections may be open.

    Attributes:
        reason: ``user_disabled`` (``user`` is set) or ``key_revoked`` (``kid`` is set).
        user: The disabled staff user.
        kid: The revoked signing key.
    """

    reason: RevocationReason
    user: str | None = None
    kid: str | None = None

    def __post_init__(self) -> None:
        if (self.reason == "user_disabled") != (self.user is not None) or (
            self.reason == "key_revoked"
        ) != (self.kid is not None):
            raise ValueError("user_disabled names a user, key_revoked a kid, and nothing else")

    def matches(self, credential: Credential | None) -> bool:
        """Whether a connection opened with ``credential`` must close."""
        if credential is None:
            return False
        if self.user is not None:
            return credential.user == self.user
        return credential.kid == self.kid


def stale(
    credential: Credential | None, live_kids: Collection[str], enabled_users: Collection[str]
) -> RevocationReason | None:
    """Why a connection must close, judged against the store as it is now.

    This is how a broker notices what another process did (``rsb users disable``, ``rsb keys
    revoke``): it cannot be told, so it compares.

    Args:
        credential: The connection's credential; None (a peer built by hand) never goes stale.
        live_kids: Every signing key id still in the store (revoked keys are deleted).
        enabled_users: The staff users, among those asked about, that exist and are enabled.

    Returns:
        The reason, or None if the connection may stay.
    """
    if credential is None:
        return None
    if credential.kid not in live_kids:
        return "key_revoked"
    if credential.user is not None and credential.user not in enabled_users:
        return "user_disabled"
    return None


class ExpiryQueue(Generic[T]):
    """Items by deadline: add and discard in O(log n), and the due ones popped in order.

    A heap with lazy deletion: ``discard`` forgets an item at once but leaves its heap entry
    until it surfaces (or until stale entries outnumber live ones, when the heap is rebuilt),
    so a connection that closes costs no search.
    """

    _COMPACT_SLACK = 32

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, T]] = []
        self._entries: dict[T, int] = {}
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, item: object) -> bool:
        return item in self._entries

    def add(self, item: T, deadline: datetime) -> None:
        """Schedule ``item`` (again: a later ``add`` replaces its deadline)."""
        seq = next(self._seq)
        self._entries[item] = seq
        heapq.heappush(self._heap, (deadline.timestamp(), seq, item))

    def discard(self, item: T) -> None:
        """Forget ``item`` if it is scheduled."""
        if self._entries.pop(item, None) is None:
            return
        if len(self._heap) > 2 * len(self._entries) + self._COMPACT_SLACK:
            self._heap = [e for e in self._heap if self._entries.get(e[2]) == e[1]]
            heapq.heapify(self._heap)

    def next_deadline(self) -> float | None:
        """The earliest live deadline (a POSIX timestamp), or None when nothing is scheduled."""
        while self._heap and self._entries.get(self._heap[0][2]) != self._heap[0][1]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: datetime) -> list[T]:
        """Remove and return every item whose deadline is at or before ``now``, earliest first."""
        due: list[T] = []
        limit = now.timestamp()
        heap = self._heap
        while heap and heap[0][0] <= limit:
            _, seq, item = heapq.heappop(heap)
            if self._entries.get(item) == seq:
                del self._entries[item]
                due.append(item)
        return due
