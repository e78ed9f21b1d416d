"""Rate limiting for logins and code guesses, with the clock passed in as float seconds.

``SlidingWindowLimiter`` throttles each client address; ``GlobalRateAlarm`` watches the total
and only raises an alarm, never blocks: a global lockout would let an attacker deny service to
every customer just by guessing fast. ``client_address`` decides which address a request
counts against when the broker sits behind reverse proxies.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict, deque
from collections.abc import Collection
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_FORWARDED_HOPS = 16
"""How many right-most X-Forwarded-For entries ``client_address`` examines at most."""


@dataclass(frozen=True)
class Decision:
    """Outcome of one ``check``: whether to proceed, and if not, how long to wait."""

    allowed: bool
    retry_after: float = 0.0


class SlidingWindowLimiter:
    """Allow each key at most ``limit`` events in any ``window`` seconds.

    Use ``check`` to count every attempt, or ``peek`` before and ``hit`` after to count only
    failures (a wrong join code, a wrong password). Refused attempts are not counted by
    ``check``, so a client that waits ``retry_after`` gets through.

    Memory is bounded by ``max_keys`` keys of at most ``limit`` timestamps each. Past that, the
    least recently hit key is forgotten. That key is almost always one whose window has
    already passed, which loses nothing; it loses a live count only when more than
    ``max_keys`` addresses are active within one window. An attacker with that many addresses
    could then outrun the per-address limit by cycling through them, which is the traffic
    ``GlobalRateAlarm`` exists to report; the alternative, unbounded memory, would let the same
    attacker exhaust the server instead.

    Times are seconds on one clock (monotonic or epoch); a clock that steps back is treated as
    standing still.
    """

    def __init__(self, limit: int, window: float, max_keys: int = 10_000) -> None:
        """Configure the limiter.

        Args:
            limit: Events allowed per key in any window.
            window: Window length in seconds.
            max_keys: Keys remembered at most.

        Raises:
            ValueError: A parameter is not positive.
        """
        if limit < 1 or window <= 0 or max_keys < 1:
            raise ValueError("limit, window and max_keys must be positive")
        self._limit = limit
        self._window = window
        self._max_keys = max_keys
        self._events: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._events)

    def peek(self, key: str, now: float) -> Decision:
        """Tell whether one more event for ``key`` would be allowed, without recording it.

        Args:
            key: Usually the client address from ``client_address``.
            now: Current time in seconds.

        Returns:
            ``Decision(True, 0.0)``, or ``Decision(False, seconds)`` with the wait until the
            oldest counted event leaves the window.
        """
        stamps = self._events.get(key)
        if not stamps:
            return Decision(True)
        horizon = max(now, stamps[-1]) - self._window
        while stamps and stamps[0] <= horizon:
            stamps.popleft()
        if len(stamps) >= self._limit:
            return Decision(False, stamps[0] - horizon)
        return Decision(True)

    def hit(self, key: str, now: float) -> None:
        """Record an event for ``key`` whether or not the limit allows it.

        Past the limit, the oldest timestamps make way, so continued events keep the key
        refused until the traffic stops for a whole window.

        Args:
            key: Usually the client address from ``client_address``.
            now: Current time in seconds.
        """
        stamps = self._events.get(key)
        if stamps is None:
            stamps = self._events[key] = deque(maxlen=self._limit)
            while len(self._events) > self._max_keys:
                self._events.popitem(last=False)
        else:
            self._events.move_to_end(key)
        stamps.append(max(now, stamps[-1]) if stamps else now)

    def check(self, key: str, now: float) -> Decision:
        """Record an event for ``key`` if the limit allows it.

        Args:
            key: Usually the client address from ``client_address``.
            now: Current time in seconds.

        Returns:
            As ``peek``; the event was recorded if and only if it is allowed.
        """
        decision = self.peek(key, now)
        if decision.allowed:
            self.hit(key, now)
        return decision


class GlobalRateAlarm:
    """Signal when all keys together exceed ``threshold`` events in any ``window`` seconds.

    ``record`` returns True for the event that brings the rate up to the threshold, then False
    until the rate has dropped below it again. It never blocks anything (see module docstring).
    """

    def __init__(self, threshold: int, window: float) -> None:
        """Configure the alarm.

        Args:
            threshold: Events per window that count as an attack.
            window: Window length in seconds.

        Raises:
            ValueError: A parameter is not positive.
        """
        if threshold < 1 or window <= 0:
            raise ValueError("threshold and window must be positive")
        self._threshold = threshold
        self._window = window
        self._stamps: deque[float] = deque(maxlen=threshold)  # only the newest matter

    @property
    def raised(self) -> bool:
        """Whether the rate was at or above the threshold just after the last ``record``."""
        return len(self._stamps) == self._threshold

    def record(self, now: float) -> bool:
        """Count one event.

        Args:
            now: Current time in seconds, on the same clock as every other call. A clock that
                steps back is treated as standing still.

        Returns:
            True if this event took the rate from below the threshold to it; False otherwise,
            including while the rate stays at or above it.
        """
        if self._stamps:
            now = max(now, self._stamps[-1])
        horizon = now - self._window
        while self._stamps and self._stamps[0] <= horizon:
            self._stamps.popleft()
        was_below = len(self._stamps) < self._threshold
        self._stamps.append(now)
        return was_below and len(self._stamps) == self._threshold


def _parse_ip(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d
    return address


def client_address(
    peer: str, forwarded_for: str | None, trusted_proxies: Collection[Network]
) -> str:
    """Decide which address a request comes from, for rate limiting and the audit log.

    ``X-Forwarded-For`` counts only when the direct peer is a trusted proxy; otherwise anyone
    could claim any address and escape the limiter. Each proxy appends the address it saw, so
    the list is read from the right, skipping trusted proxies, and the first other address is
    the client. Entries left of it were written by the client and are never parsed: padding
    them with garbage cannot push the answer back to the proxy's own address, which every
    client behind it shares.

    Args:
        peer: Address of the direct TCP peer.
        forwarded_for: The ``X-Forwarded-For`` header, or None.
        trusted_proxies: Networks of the reverse proxies in front of the broker.

    Returns:
        The client address, normalized (IPv4-mapped IPv6 shown as IPv4); ``peer`` unchanged
        if it is not an IP address; the peer if the header is absent, invalid within the
        trusted part of the chain, or lists only trusted proxies.
    """
    peer_ip = _parse_ip(peer)
    if peer_ip is None:
        return peer
    if not forwarded_for or not any(peer_ip in net for net in trusted_proxies):
        return str(peer_ip)
    for entry in reversed(forwarded_for.rsplit(",", MAX_FORWARDED_HOPS)[-MAX_FORWARDED_HOPS:]):
        hop = _parse_ip(entry)
        if hop is None:
            return str(peer_ip)
        if not any(hop in net for net in trusted_proxies):
            return str(hop)
    return str(peer_ip)
