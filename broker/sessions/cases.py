"""Case lifecycle rules and case numbers: which status moves are allowed, and when a case resolves.

Pure: no clock, no I/O; the caller passes ``now`` and the recorded contact attempts. Every rule
that changes a case's status lives here, as the ``TRANSITIONS`` table plus the actions that
guard some of its moves; the store only persists the result.

Statuses and moves::

    open               -> in_progress, awaiting_customer, cancelled+
    in_progress        -> awaiting_customer, resolved*, cancelled+
    awaiting_customer  -> in_progress (the customer answered), resolved*, cancelled+
    resolved           -> closed, in_progress (reopened: "still not solved")
    closed             -> nothing (final)
    cancelled          -> resolved (customer says solved)c, in_progress (customer says not solved)c

    *  only through ``resolve()``, by one of the two ``ResolveRoute``s
    +  only through ``cancel()``: staff, with a reason (a case opened by mistake)
    c  only by the customer's word (``customer_feedback``); staff cannot move a cancelled case

``open -> awaiting_customer`` exists because a case can wait for the customer (logs, a call-back
time) before anyone starts work on it. A closed case stays closed; a new problem is a new case.

Cancelling is not resolving: a cancelled case counts as neither solved nor closed, takes no new
sessions, and stops its SLA clock; only the customer's own confirmation can make it
``resolved`` (or reopen it), because whether the problem is solved is the customer's word.
Severity and plan may change only while the case is ``ACTIVE`` (``check_terms_change``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from broker.errors import ConfirmWindowClosed, Conflict, InvalidTransition, ValidationFailed
from broker.types import CaseNumber


class CaseStatus(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    AWAITING_CUSTOMER = "awaiting_customer"
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class ResolveRoute(StrEnum):
    """The only two ways a case may become resolved."""

    CUSTOMER_CONFIRMED = "customer_confirmed"
    """The customer confirmed the problem is solved."""
    NO_ANSWER = "no_answer"
    """An engineer resolves after enough unanswered contact attempts (see ``check_resolve``)."""


TRANSITIONS: dict[CaseStatus, frozenset[CaseStatus]] = {
    CaseStatus.OPEN: frozenset(
        {CaseStatus.IN_PROGRESS, CaseStatus.AWAITING_CUSTOMER, CaseStatus.CANCELLED}
    ),
    CaseStatus.IN_PROGRESS: frozenset(
        {CaseStatus.AWAITING_CUSTOMER, CaseStatus.RESOLVED, CaseStatus.CANCELLED}
    ),
    CaseStatus.AWAITING_CUSTOMER: frozenset(
        {CaseStatus.IN_PROGRESS, CaseStatus.RESOLVED, CaseStatus.CANCELLED}
    ),
    CaseStatus.RESOLVED: frozenset({CaseStatus.CLOSED, CaseStatus.IN_PROGRESS}),
    CaseStatus.CLOSED: frozenset(),
    CaseStatus.CANCELLED: frozenset({CaseStatus.RESOLVED, CaseStatus.IN_PROGRESS}),
}
"""Allowed status moves. Moves into ``RESOLVED`` additionally need a route (``resolve``), into
``CANCELLED`` the cancel action (``cancel``), and out of ``CANCELLED`` the customer's word
(``CUSTOMER_ONLY``)."""

CUSTOMER_ONLY: frozenset[tuple[CaseStatus, CaseStatus]] = frozenset(
    {
        (CaseStatus.CANCELLED, CaseStatus.RESOLVED),
        (CaseStatus.CANCELLED, CaseStatus.IN_PROGRESS),
    }
)
"""Moves only ``customer_feedback`` makes: staff who cancelled a case cannot also decide that the
customer's problem is solved, or take the cancellation back behind the customer's back."""

ACTIVE: frozenset[CaseStatus] = frozenset(
    {CaseStatus.OPEN, CaseStatus.IN_PROGRESS, CaseStatus.AWAITING_CUSTOMER}
)
"""Statuses in which the case is being worked on: its SLA clock runs, and its severity and plan
may change."""

NO_ANSWER_ATTEMPTS = 3
NO_ANSWER_PERIOD = timedelta(days=10)

_GENERATED = re.compile(r"C-[0-9]{6,}")
# Our own namespace, reserved whatever the letter case: an external "c-000123" next to our
# "C-000123" is a different case that sounds the same when read over the phone.
_RESERVED = re.compile(r"[Cc]-[0-9]+")
# Starting with a letter or digit rules out ".", ".." and "-x": case numbers end up in export
# file names and command lines, where those would mean path traversal or option injection.
_EXTERNAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")


def check_transition(current: CaseStatus, target: CaseStatus) -> None:
    """Check a status move other than resolving (for that, see ``resolve``).

    Refusing ``RESOLVED``, ``CANCELLED`` and the customer's own moves here means a generic
    "set status" action can never skip the routes, the reason, or the customer.

    Raises:
        InvalidTransition: the table has no such move, ``target`` is ``RESOLVED`` or
            ``CANCELLED``, or the move is the customer's alone (out of ``CANCELLED``).
    """
    if (current, target) in CUSTOMER_ONLY:
        raise InvalidTransition(
            f"a cancelled case moves to {target.value} only by the customer's own answer "
            "(solved or not solved); to work on the problem again, open a new case",
            current=current.value,
            target=target.value,
        )
    _check_table(current, target)
    if target is CaseStatus.RESOLVED:
        raise InvalidTransition(
            "a case is resolved only by the customer's confirmation or after unanswered "
            "contact attempts; use the resolve action",
            current=current.value,
            target=target.value,
        )
    if target is CaseStatus.CANCELLED:
        raise InvalidTransition(
            "a case is cancelled only with a reason; use the cancel action",
            current=current.value,
            target=target.value,
        )


def cancel(current: CaseStatus) -> CaseStatus:
    """Check that staff may cancel a case now (opened by mistake), and return ``CANCELLED``.

    Raises:
        InvalidTransition: the case is resolved, closed or already cancelled.
    """
    _check_table(current, CaseStatus.CANCELLED)
    return CaseStatus.CANCELLED


def customer_feedback(current: CaseStatus, solved: bool) -> CaseStatus:
    """The status after the customer says the problem is solved or not.

    "Solved" resolves (``ResolveRoute.CUSTOMER_CONFIRMED``), also a cancelled case; "not solved"
    puts the case (back) in progress, also a resolved or cancelled one. An open case cannot be
    confirmed solved: nobody has worked on it yet.

    Raises:
        InvalidTransition: the table has no such move (e.g. the case is closed, or already
            resolved and "solved" again).
    """
    target = CaseStatus.RESOLVED if solved else CaseStatus.IN_PROGRESS
    if current is CaseStatus.IN_PROGRESS and not solved:
        return current  # still being worked on: nothing moves
    _check_table(current, target)
    return target


def check_confirm_window(
    session_ended_at: datetime | None, now: datetime, window: timedelta
) -> None:
    """Check that a customer's session token may still confirm (solved / not solved) now.

    During the session and for ``window`` after it ended; session tokens live for hours, and a
    token that leaked after the session (a shared screen, a browser history) must not keep
    changing the case.

    Raises:
        ConfirmWindowClosed: the session ended more than ``window`` before ``now``.
        ValueError: a naive datetime.
    """
    now = _utc("now", now)
    if session_ended_at is None:
        return
    closes = _utc("session_ended_at", session_ended_at) + window
    if now > closes:
        minutes = window / timedelta(minutes=1)
        raise ConfirmWindowClosed(
            f"the session ended more than {minutes:g} minutes ago; the customer's answer "
            "is taken during a session and for that long after it. Please contact support "
            "(or use the case status page) instead",
            closed_at=closes.isoformat(),
        )


def check_terms_change(current: CaseStatus) -> None:
    """Check that a case's severity and plan may change now: only while it is ``ACTIVE``.

    A resolved, closed or cancelled case keeps the terms its SLA was judged by.

    Raises:
        InvalidTransition: the case is not active.
    """
    if current not in ACTIVE:
        active = ", ".join(sorted(ACTIVE))
        raise InvalidTransition(
            f"the severity and plan of a {current.value} case cannot change; "
            f"only of a case that is {active}",
            current=current.value,
        )


def resolve(
    current: CaseStatus,
    route: ResolveRoute,
    attempts: Sequence[datetime],
    last_customer_response: datetime | None,
    now: datetime,
) -> CaseStatus:
    """Check that a case may be resolved by ``route`` now, and return ``RESOLVED``.

    Raises:
        InvalidTransition: the case is not in progress, awaiting the customer or (for the
            customer's confirmation only) cancelled.
        Conflict: the no-answer route's attempts or waiting time are not complete yet.
        ValueError: a naive datetime.
    """
    if current is CaseStatus.CANCELLED and route is not ResolveRoute.CUSTOMER_CONFIRMED:
        raise InvalidTransition(
            "a cancelled case is resolved only by the customer's confirmation",
            current=current.value,
            target=CaseStatus.RESOLVED.value,
        )
    _check_table(current, CaseStatus.RESOLVED)
    check_resolve(route, attempts, last_customer_response, now)
    return CaseStatus.RESOLVED


def check_resolve(
    route: ResolveRoute,
    attempts: Sequence[datetime],
    last_customer_response: datetime | None,
    now: datetime,
) -> None:
    """Check the resolve route's own condition, whatever the case's status.

    ``CUSTOMER_CONFIRMED`` always passes. ``NO_ANSWER`` needs at least ``NO_ANSWER_ATTEMPTS``
    contact attempts made after the customer's last response (all attempts if the customer never
    responded), not after ``now``, the first of which is at least ``NO_ANSWER_PERIOD`` before
    ``now``. An attempt at the very instant of the response does not count: it got an answer.

    Raises:
        Conflict: the no-answer condition does not hold yet; the message and details say how
            many attempts and days are still missing.
        ValueError: a naive datetime.
    """
    now = _utc("now", now)
    tried = [_utc("attempts[]", attempt) for attempt in attempts]
    if last_customer_response is not None:
        last_customer_response = _utc("last_customer_response", last_customer_response)
    if route is ResolveRoute.CUSTOMER_CONFIRMED:
        return
    answered = last_customer_response
    unanswered = sorted(t for t in tried if t <= now and (answered is None or t > answered))
    attempts_missing = max(0, NO_ANSWER_ATTEMPTS - len(unanswered))
    # Without any unanswered attempt the waiting period has not started: all of it is missing.
    waited = now - unanswered[0] if unanswered else timedelta(0)
    days_missing = math.ceil(max(timedelta(0), NO_ANSWER_PERIOD - waited) / timedelta(days=1))
    if attempts_missing == 0 and days_missing == 0:
        return
    period_days = NO_ANSWER_PERIOD.days
    raise Conflict(
        f"cannot resolve without an answer yet: that needs {NO_ANSWER_ATTEMPTS} unanswered "
        f"contact attempts, the first at least {period_days} days ago; still missing "
        f"{attempts_missing} attempt(s) and {days_missing} day(s)",
        attempts_missing=attempts_missing,
        days_missing=days_missing,
    )


def allowed_moves(current: CaseStatus) -> frozenset[CaseStatus]:
    """The statuses staff may move a case to next, by any action (``RESOLVED`` only through
    ``resolve``, ``CANCELLED`` only through ``cancel``); the customer's own moves are left out."""
    return frozenset(t for t in TRANSITIONS[current] if (current, t) not in CUSTOMER_ONLY)


def generate_case_number(seq: int) -> CaseNumber:
    """Our case number for the store's sequence value ``seq``: ``C-000123``, growing past six.

    Raises:
        ValueError: ``seq`` is not a positive integer (a bug in the caller, not client input).
    """
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise ValueError(f"case sequence numbers start at 1, got {seq!r}")
    return CaseNumber(f"C-{seq:06d}")


def validate_external_case_number(text: object) -> CaseNumber:
    """Accept a ticketing system's case number, kept exactly as given.

    Rules: 1-40 characters of ``A-Z a-z 0-9 . _ -``, starting with a letter or digit, and not of
    the form ``C-<digits>``, which is reserved for generated numbers so the two can never collide.
    Uniqueness is the store's job.

    Raises:
        ValidationFailed: the text breaks a rule; the message says which.
    """
    number = _check_charset(text)
    if _RESERVED.fullmatch(number):
        raise ValidationFailed(
            f"case number {number!r} looks like a generated one (C-<digits>); "
            "external case numbers must use another form",
            field="case_number",
        )
    return number


def validate_case_number(text: object) -> CaseNumber:
    """Accept any case number a client may look up: generated or external.

    Raises:
        ValidationFailed: the text cannot be a case number.
    """
    return _check_charset(text)


def is_generated(number: CaseNumber) -> bool:
    """Whether ``number`` has the form ``generate_case_number`` produces."""
    return _GENERATED.fullmatch(number) is not None


def _check_table(current: CaseStatus, target: CaseStatus) -> None:
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "nothing (final status)"
        raise InvalidTransition(
            f"a case cannot move from {current.value} to {target.value}; "
            f"from {current.value} it can move to: {allowed}",
            current=current.value,
            target=target.value,
        )


def _check_charset(text: object) -> CaseNumber:
    if not isinstance(text, str) or not _EXTERNAL.fullmatch(text):
        raise ValidationFailed(
            "a case number is 1-40 characters of A-Z a-z 0-9 . _ -, starting with a letter or "
            f"digit; got {text!r:.60}",
            field="case_number",
        )
    return CaseNumber(text)


def _utc(name: str, value: datetime) -> datetime:
    # In UTC, because aware datetimes sharing a tzinfo compare as wall times (wrong in a DST fold).
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)
