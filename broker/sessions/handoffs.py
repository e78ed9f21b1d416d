"""Handoff codes: a phone that joined a session hands its agent part to the customer's computer.

A customer who opens the join link on a phone cannot run the agent there. The phone spends the
session code for the customer part only (status, chat, the buttons) and gets a second short
code, a *handoff code*, which the computer's page or agent exchanges at ``POST /api/v1/join``
for the session's agent token. A handoff code is a join code like the first: digits drawn by
``codes.generate_code``, kept only as ``codes.hash_code`` under the same pepper, single use,
short-lived, and looked up under the same per-address budget as session codes (so the guessing
bound of ``docs/security.md`` counts it as one more live code).

This module is the pure table of live handoff codes: no I/O, no clock (``now`` is passed in),
no aiohttp. A session has at most one live handoff code: issuing a new one withdraws the old,
so a code shown on a phone and forgotten stops working as soon as the phone asks again. The
table lives in the broker's process like the rate-limit counters (``docs/deployment.md``: one
process per database); a restart forgets it and the phone simply asks for a new code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

MAX_LIVE = 10_000
"""Live handoff codes kept at most; past that the one closest to expiry is dropped first."""

ISSUES_PER_WINDOW = 6
"""Handoff codes one session may be issued per ``join_attempt_window``: each live code is one
more code a guesser could hit, so a customer token cannot mint them without bound."""


class Miss(StrEnum):
    """Why a handoff code was not redeemed: written to the audit log, never to the client."""

    UNKNOWN = "unknown"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Handoff:
    """One live handoff code, known by its hash only."""

    code_hash: str
    session_id: str
    case_number: str
    issued_at: datetime
    expires_at: datetime


class HandoffCodes:
    """The live handoff codes of one broker process, by code hash and by session."""

    def __init__(self, ttl: timedelta, max_live: int = MAX_LIVE) -> None:
        """Configure the table.

        Args:
            ttl: How long a handoff code stays valid after it is issued.
            max_live: Codes kept at most.

        Raises:
            ValueError: ``ttl`` or ``max_live`` is not positive.
        """
        if ttl <= timedelta(0) or max_live < 1:
            raise ValueError("ttl and max_live must be positive")
        self._ttl = ttl
        self._max_live = max_live
        self._by_hash: dict[str, Handoff] = {}
        self._by_session: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._by_hash)

    def holds(self, code_hash: str) -> bool:
        """Whether ``code_hash`` is a handoff code in the table (live or expired, not swept)."""
        return code_hash in self._by_hash

    def issue(self, code_hash: str, session_id: str, case_number: str, now: datetime) -> Handoff:
        """Make ``code_hash`` the session's one handoff code, withdrawing any earlier one.

        Args:
            code_hash: ``codes.hash_code`` of a freshly drawn code that no session and no live
                handoff uses (the caller checks both).
            session_id: The session whose agent part the code hands over.
            case_number: That session's case.
            now: The current time.

        Returns:
            The new handoff, valid until ``now + ttl``.

        Raises:
            ValueError: ``code_hash`` is already in the table.
        """
        if code_hash in self._by_hash:
            raise ValueError("that handoff code is taken")
        self.sweep(now)
        self.withdraw(session_id)
        while len(self._by_hash) >= self._max_live:
            oldest = min(self._by_hash.values(), key=lambda h: h.expires_at)
            self._drop(oldest)
        handoff = Handoff(code_hash, session_id, case_number, now, now + self._ttl)
        self._by_hash[code_hash] = handoff
        self._by_session[session_id] = code_hash
        return handoff

    def take(self, code_hash: str, now: datetime) -> Handoff | Miss:
        """Redeem a handoff code: it leaves the table whether or not it was still valid.

        Args:
            code_hash: ``codes.hash_code`` of what the computer's page or agent sent.
            now: The current time.

        Returns:
            The handoff if it was live at ``now``; otherwise why not.
        """
        handoff = self._by_hash.get(code_hash)
        if handoff is None:
            return Miss.UNKNOWN
        self._drop(handoff)
        if handoff.expires_at <= now:
            return Miss.EXPIRED
        return handoff

    def live_for(self, session_id: str, now: datetime) -> Handoff | None:
        """The session's live handoff code, if it has one at ``now``."""
        code_hash = self._by_session.get(session_id)
        if code_hash is None:
            return None
        handoff = self._by_hash[code_hash]
        return handoff if handoff.expires_at > now else None

    def withdraw(self, session_id: str) -> bool:
        """Drop the session's handoff code (a new one was issued, or the session ended).

        Returns:
            True if the session had one.
        """
        code_hash = self._by_session.get(session_id)
        if code_hash is None:
            return False
        self._drop(self._by_hash[code_hash])
        return True

    def sweep(self, now: datetime) -> int:
        """Forget codes that expired by ``now``.

        Returns:
            How many were forgotten.
        """
        stale = [h for h in self._by_hash.values() if h.expires_at <= now]
        for handoff in stale:
            self._drop(handoff)
        return len(stale)

    def _drop(self, handoff: Handoff) -> None:
        del self._by_hash[handoff.code_hash]
        if self._by_session.get(handoff.session_id) == handoff.code_hash:
            del self._by_session[handoff.session_id]
