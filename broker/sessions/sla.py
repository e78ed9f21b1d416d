"""Support-plan SLA arithmetic: when a case's first response is due, and how much plan time passed.

Pure: no clock, no I/O (``load_default_plans`` only reads a file shipped inside the package).
Plans are configuration, one TOML table per plan under ``[plans]``::

    [plans.premium]
    coverage = "24x7"                  # the clock always runs
    timezone = "UTC"                   # optional for 24x7 (display only), default "UTC"
    response_hours = {1 = 1, 2 = 2, 3 = 6, 4 = 10}

    [plans.professional]
    coverage = "business"              # the clock runs only inside business hours
    timezone = "Europe/Madrid"         # required: an IANA zone name
    days = ["mon", "tue", "wed", "thu", "fri"]
    opens = "09:00"                    # "HH:MM", local wall time
    closes = "17:00"                   # "HH:MM", later than opens (no overnight windows)
    holidays = [2026-12-25]            # optional: TOML dates or "YYYY-MM-DD" strings
    response_hours = {1 = 3, 2 = 4, 3 = 9, 4 = 10}

``response_hours`` maps every severity to a positive number of hours (fractions allowed). TOML
reads the bare keys ``1`` ... ``4`` as the strings ``"1"`` ... ``"4"``; the loader accepts
exactly those. Unknown keys are errors, so a typo cannot silently change a deadline.

Business time is counted in the plan's local wall-clock time: a business day from 09:00 to
17:00 holds eight business hours even on a day when the clocks change, and deadlines are
converted to UTC only at the end, so they are exact across DST changes. A request logged
outside business hours starts counting at the next opening.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from importlib import resources
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from broker.errors import ValidationFailed
from broker.types import SEVERITY_LABELS

DEFAULT_SEVERITY = 3
SEVERITIES: tuple[int, ...] = tuple(sorted(SEVERITY_LABELS))
SEVERITY_NAMES: Mapping[int, str] = MappingProxyType(
    {severity: label.split(":", 1)[0] for severity, label in SEVERITY_LABELS.items()}
)
"""The support plans' one-word names (``1`` catastrophic ... ``4`` low), for labels."""
DAY_NAMES: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# A year of hours; keeps a mistyped target from walking the calendar for centuries.
_MAX_TARGET_HOURS = 24 * 366
_PLAN_NAME = re.compile(r"[A-Za-z0-9_-]{1,40}")
_CLOCK = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
_COMMON_KEYS = frozenset({"coverage", "timezone", "response_hours"})
_BUSINESS_KEYS = _COMMON_KEYS | {"days", "opens", "closes", "holidays"}


@dataclass(frozen=True)
class BusinessHours:
    """When a business-hours plan's clock runs: ``opens``-``closes`` local time on ``days``."""

    days: frozenset[int]  # date.weekday() numbers, Monday = 0
    opens: time
    closes: time

    def __post_init__(self) -> None:
        # Both guarantee that the search for the next business window terminates.
        if not self.days or not self.days <= set(range(7)):
            raise ValueError(f"days must be a non-empty subset of 0..6, got {sorted(self.days)}")
        if self.opens >= self.closes:
            raise ValueError(f"closes ({self.closes}) must be later than opens ({self.opens})")


@dataclass(frozen=True)
class Plan:
    """A support plan: first-response targets per severity, and when the clock runs."""

    name: str
    timezone: ZoneInfo
    targets: Mapping[int, timedelta]
    business: BusinessHours | None = None  # None: 24x7
    holidays: frozenset[date] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if sorted(self.targets) != list(SEVERITIES):
            raise ValueError(f"plan {self.name}: targets must cover severities {SEVERITIES}")
        if any(target <= timedelta(0) for target in self.targets.values()):
            raise ValueError(f"plan {self.name}: targets must be positive")
        object.__setattr__(self, "targets", MappingProxyType(dict(self.targets)))


def validate_severity(value: object = None) -> int:
    """Check a severity given by a client; ``None`` (not given) means ``DEFAULT_SEVERITY``.

    Raises:
        ValidationFailed: not an integer 1-4 (a string of digits is accepted, a bool is not).
    """
    if value is None:
        return DEFAULT_SEVERITY
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value in SEVERITY_LABELS:
        return value
    raise ValidationFailed(
        f"severity must be one of {', '.join(map(str, SEVERITIES))}, got {value!r}",
        field="severity",
    )


def response_due(plan: Plan, severity: int, created_at: datetime) -> datetime:
    """When the first response to a case is due, as an aware UTC datetime.

    Raises:
        ValueError: ``created_at`` is naive.
        KeyError: ``severity`` was not checked with ``validate_severity``.
    """
    _require_aware("created_at", created_at)
    target = plan.targets[severity]
    if plan.business is None:
        # Convert first: adding to a ZoneInfo datetime would add wall time, not elapsed time.
        return created_at.astimezone(UTC) + target
    remaining = target
    for begin, end in _windows(plan, plan.business, _wall(plan, created_at)):
        if remaining <= end - begin:
            return _instant(plan, begin + remaining)
        remaining -= end - begin
    raise AssertionError("business windows never run out")  # pragma: no cover


def business_time_between(plan: Plan, start: datetime, end: datetime) -> timedelta:
    """Plan time elapsed from ``start`` to ``end`` (zero if ``end`` is not later).

    For a 24x7 plan this is the elapsed time; otherwise the business time in between.

    Raises:
        ValueError: ``start`` or ``end`` is naive.
    """
    _require_aware("start", start)
    _require_aware("end", end)
    # Compare in UTC: aware datetimes sharing a tzinfo compare and subtract as wall times.
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        return timedelta(0)
    if plan.business is None:
        return end - start
    total = timedelta(0)
    end_wall = _wall(plan, end)
    for begin, close in _windows(plan, plan.business, _wall(plan, start)):
        if begin >= end_wall:
            break
        total += min(close, end_wall) - begin
    return total


def first_response(due: datetime, responded_at: datetime) -> bool:
    """Whether a first response at ``responded_at`` met the deadline ``due`` (on time counts).

    Raises:
        ValueError: either datetime is naive.
    """
    _require_aware("due", due)
    _require_aware("responded_at", responded_at)
    return responded_at.astimezone(UTC) <= due.astimezone(UTC)


@dataclass(frozen=True)
class ResponseState:
    """The first-response SLA of one case at one instant, as the broker reports it."""

    first_response_met: bool | None
    """True or False once an engineer responded; None while nobody has."""
    breached: bool
    """The response came late, or none came and the deadline passed while the clock ran."""
    seconds_left: int | None
    """While the clock runs: whole seconds until the deadline, negative once overdue. None once
    it stopped (a response was recorded, or the case left work without one)."""


def response_state(
    due: datetime,
    first_response_met: bool | None,
    now: datetime,
    stopped_at: datetime | None = None,
) -> ResponseState:
    """The first-response state of a case: met, breached, and the time left.

    A recorded response settles the verdict (``first_response_met``, judged against the
    deadline in force when it came, see ``first_response``). Without one, the clock runs until
    ``stopped_at`` (when the case stopped being worked on, e.g. cancelled) or else ``now``.

    Raises:
        ValueError: a naive datetime.
    """
    _require_aware("due", due)
    _require_aware("now", now)
    if first_response_met is not None:
        return ResponseState(first_response_met, not first_response_met, None)
    if stopped_at is not None:
        _require_aware("stopped_at", stopped_at)
        return ResponseState(None, stopped_at.astimezone(UTC) > due.astimezone(UTC), None)
    left = due.astimezone(UTC) - now.astimezone(UTC)
    # Floor, so that "0 s left" is never shown for an instant that is already past the deadline.
    seconds = left // timedelta(seconds=1)
    return ResponseState(None, left < timedelta(0), seconds)


def describe_plan(plan: Plan) -> dict[str, Any]:
    """A plan as the API lists it (``GET /api/v1/plans``): what staff choose between."""
    hours = plan.business
    return {
        "name": plan.name,
        "coverage": "24x7" if hours is None else "business",
        "timezone": plan.timezone.key,
        "response_hours": {
            str(severity): target / timedelta(hours=1) for severity, target in plan.targets.items()
        },
        "business_hours": None
        if hours is None
        else {
            "days": [DAY_NAMES[day] for day in sorted(hours.days)],
            "opens": f"{hours.opens:%H:%M}",
            "closes": f"{hours.closes:%H:%M}",
            "holidays": [day.isoformat() for day in sorted(plan.holidays)],
        },
    }


def describe_severities() -> list[dict[str, Any]]:
    """The severities with their one-word names and descriptions, most severe first."""
    return [
        {
            "severity": severity,
            "name": SEVERITY_NAMES[severity],
            "description": SEVERITY_LABELS[severity].split(":", 1)[1].strip(),
        }
        for severity in SEVERITIES
    ]


def load_plans(data: Mapping[str, Any]) -> dict[str, Plan]:
    """Build plans from a parsed TOML document holding a ``[plans]`` table (see module doc).

    Keys outside ``plans`` are ignored, so the table can live in a larger settings file.

    Raises:
        ValueError: bad configuration; the message starts with the offending key.
    """
    plans = data.get("plans")
    if not isinstance(plans, Mapping) or not plans:
        raise ValueError("plans: expected a table holding at least one plan")
    return {name: _load_plan(name, table) for name, table in plans.items()}


def load_default_plans() -> dict[str, Plan]:
    """The plans in ``broker/default_plans.toml``, shipped with the package."""
    text = resources.files("broker").joinpath("default_plans.toml").read_text(encoding="utf-8")
    return load_plans(tomllib.loads(text))


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")


def _wall(plan: Plan, instant: datetime) -> datetime:
    return instant.astimezone(plan.timezone).replace(tzinfo=None)


def _instant(plan: Plan, wall: datetime) -> datetime:
    return wall.replace(tzinfo=plan.timezone).astimezone(UTC)


def _windows(
    plan: Plan, hours: BusinessHours, after: datetime
) -> Iterator[tuple[datetime, datetime]]:
    """Business windows in local wall time, clipped to start no earlier than ``after``."""
    day = after.date()
    while True:
        if day.weekday() in hours.days and day not in plan.holidays:
            close = datetime.combine(day, hours.closes)
            if close > after:
                yield max(datetime.combine(day, hours.opens), after), close
        day += timedelta(days=1)


def _load_plan(name: str, table: Any) -> Plan:
    key = f"plans.{name}"
    if not _PLAN_NAME.fullmatch(name):
        raise ValueError(f"{key}: plan names are 1-40 characters of A-Z a-z 0-9 _ -")
    if not isinstance(table, Mapping):
        raise ValueError(f"{key}: expected a table")
    coverage = table.get("coverage")
    if coverage not in ("24x7", "business"):
        raise ValueError(f'{key}.coverage: expected "24x7" or "business", got {coverage!r}')
    allowed = _BUSINESS_KEYS if coverage == "business" else _COMMON_KEYS
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ValueError(f"{key}.{unknown[0]}: unknown key for coverage {coverage!r}")
    # A 24x7 plan's zone only matters for display; a business plan must name its own.
    default_zone = "UTC" if coverage == "24x7" else None
    zone = _zone(f"{key}.timezone", table.get("timezone", default_zone))
    targets = _targets(f"{key}.response_hours", table.get("response_hours"))
    if coverage == "24x7":
        return Plan(name, zone, targets)
    opens = _clock(f"{key}.opens", table.get("opens"))
    closes = _clock(f"{key}.closes", table.get("closes"))
    if opens >= closes:
        raise ValueError(f"{key}.closes: must be later than opens ({opens:%H:%M})")
    hours = BusinessHours(_days(f"{key}.days", table.get("days")), opens, closes)
    holidays = _holidays(f"{key}.holidays", table.get("holidays", []))
    return Plan(name, zone, targets, hours, holidays)


def _zone(key: str, value: object) -> ZoneInfo:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key}: expected an IANA time zone name such as 'Europe/Madrid'")
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"{key}: unknown time zone {value!r}") from exc


def _targets(key: str, value: object) -> dict[int, timedelta]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{key}: expected a table such as {{1 = 1, 2 = 2, 3 = 6, 4 = 10}}")
    unknown = sorted(set(value) - {str(s) for s in SEVERITIES})
    if unknown:
        raise ValueError(
            f"{key}.{unknown[0]}: not a severity; use {', '.join(map(str, SEVERITIES))}"
        )
    targets = {}
    for severity in SEVERITIES:
        hours = value.get(str(severity))
        if (
            not isinstance(hours, int | float)
            or isinstance(hours, bool)
            or not 0 < hours <= _MAX_TARGET_HOURS  # also false for NaN and infinity
        ):
            raise ValueError(f"{key}.{severity}: expected hours in (0, {_MAX_TARGET_HOURS}]")
        targets[severity] = timedelta(hours=hours)
    return targets


def _clock(key: str, value: object) -> time:
    match = _CLOCK.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f'{key}: expected "HH:MM" (00:00-23:59), got {value!r}')
    return time(int(match[1]), int(match[2]))


def _days(key: str, value: object) -> frozenset[int]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{key}: expected a non-empty list such as ['mon', 'tue']")
    for day in value:
        if day not in DAY_NAMES:
            raise ValueError(f"{key}: unknown day {day!r}; use {', '.join(DAY_NAMES)}")
    return frozenset(DAY_NAMES.index(day) for day in value)


def _holidays(key: str, value: object) -> frozenset[date]:
    if not isinstance(value, list):
        raise ValueError(f"{key}: expected a list of dates")
    days = set()
    for item in value:
        # datetime is a date subclass; a timestamp here is a mistake, not a holiday.
        if isinstance(item, str):
            try:
                item = date.fromisoformat(item)
            except ValueError as exc:
                raise ValueError(f"{key}: {item!r} is not an ISO date") from exc
        if not isinstance(item, date) or isinstance(item, datetime):
            raise ValueError(f"{key}: expected dates (2026-12-25 or '2026-12-25'), got {item!r}")
        days.add(item)
    return frozenset(days)
