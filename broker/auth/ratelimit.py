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
class Refused:
    """``reserve``'s answer when the budget is used up: try again in ``retry_after`` seconds."""

    retry_after: float


@dataclass(eq=False)
class Reservation:
    """One unit of a key's budget, taken by ``SlidingWindowLimiter.reserve``.

    It counts from the moment it is taken. ``refund`` gives it back (the attempt succeeded);
    ``settle`` keeps it counted until it leaves the window (the attempt failed). Compared by
    identity: two attempts in the same instant are still two units.
    """

    key: str
    at: float
    settled: bool = False


class SlidingWindowLimiter:
    """Allow each key at most ``limit`` counted attempts in any ``window`` seconds.

    An attempt takes a unit with ``reserve`` *before* it awaits anything, and returns it with
    ``refund`` if it succeeded, so only failures (a wrong join code, a wrong password) stay
    counted. Checking the budget first and recording the failure after the await, as this
    module once offered, let N parallel requests all pass the check before the first one was
    recorded (docs/security.md, "Guessing session codes"). Taking the unit synchronously
    means at most ``limit`` attempts per key are ever in flight or failed within a window,
    however many are sent at once. Refused attempts take no unit, so a client that waits
    ``retry_after`` gets through.

    Memory is bounded by ``max_keys`` keys of at most ``limit`` units each. Past that, the
    least recently reserved key is forgotten. That key is almost always one whose window has
    already passed, which loses nothing; it loses a live count only when more than
    ``max_keys`` addresses are active within one window. An attacker with that many addresses
    could then outrun the per-address limit by cycling through them, which is the traffic
    ``GlobalRateAlarm`` exists to report; the alternative, unbounded memory, would let the same
    attacker exhaust the server instead.

    Times are seconds on one clock (monotonic or epoch); a clock that steps back is treated as
    standing still.
    """

    def __init__(
        self, limit: int, window: float, max_keys: int = 10_000, in_flight_retry: float = 1.0
    ) -> None:
        """Configure the limiter.

        Args:
            limit: Units per key in any window.
            window: Window length in seconds.
            max_keys: Keys remembered at most.
            in_flight_retry: The ``retry_after`` advised when the budget is exhausted only
                because some attempts are still in flight (they may yet be refunded).

        Raises:
            ValueError: A parameter is not positive.
        """
        if limit < 1 or window <= 0 or max_keys < 1 or in_flight_retry <= 0:
            raise ValueError("limit, window, max_keys and in_flight_retry must be positive")
        self._limit = limit
        self._window = window
        self._max_keys = max_keys
        self._in_flight_retry = in_flight_retry
        self._units: OrderedDict[str, deque[Reservation]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._units)

    def in_use(self, key: str, now: float) -> int:
        """How many units of ``key`` are counted at ``now`` (in flight or failed).

        Args:
            key: As given to ``reserve``.
            now: Current time in seconds.

        Returns:
            A number from 0 to ``limit``.
        """
        units = self._units.get(key)
        if not units:
            return 0
        self._expire(units, now)
        return len(units)

    def reserve(self, key: str, now: float) -> Reservation | Refused:
        """Take one unit of ``key``'s budget, if there is one left.

        Call it before the attempt awaits anything: the unit is counted from this moment.

        Args:
            key: Usually the client address from ``client_address``.
            now: Current time in seconds.

        Returns:
            A ``Reservation`` to ``refund`` or ``settle``; or, with the budget used up,
            ``Refused(seconds)``: the wait until the oldest unit leaves the window, or
            ``in_flight_retry`` if sooner and some units are still in flight.
        """
        units = self._units.get(key)
        if units is None:
            units = self._units[key] = deque()
            while len(self._units) > self._max_keys:
                self._units.popitem(last=False)
        else:
            self._units.move_to_end(key)
            now = self._expire(units, now)
        if len(units) >= self._limit:
            wait = units[0].at + self._window - now
            if not all(unit.settled for unit in units):
                wait = min(wait, self._in_flight_retry)
            return Refused(wait)
        reservation = Reservation(key, now)
        units.append(reservation)
        return reservation

    def refund(self, reservation: Reservation) -> None:
        """Give a unit back: the attempt succeeded and must not count against the key.

        Refunding twice, or a unit whose key was since forgotten, does nothing.

        Args:
            reservation: What ``reserve`` returned.
        """
        units = self._units.get(reservation.key)
        if units is not None:
            try:
                units.remove(reservation)
            except ValueError:
                pass

    def settle(self, reservation: Reservation) -> None:
        """Keep a unit counted: the attempt failed. It leaves the window ``window`` after it
        was reserved. A unit neither refunded nor settled counts the same way; settling only
        tells ``reserve`` that it will not come back early.

        Args:
            reservation: What ``reserve`` returned.
        """
        reservation.settled = True

    def _expire(self, units: deque[Reservation], now: float) -> float:
        """Drop units that left the window; returns ``now``, never earlier than the newest."""
        if units:
            now = max(now, units[-1].at)
        horizon = now - self._window
        while units and units[0].at <= horizon:
            units.popleft()
        return now


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
