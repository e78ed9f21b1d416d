"""SLA deadlines: the plan documents' worked examples, DST weeks, config errors, properties."""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.errors import ValidationFailed
from broker.sessions.sla import (
    DEFAULT_SEVERITY,
    SEVERITY_NAMES,
    BusinessHours,
    Plan,
    ResponseState,
    business_time_between,
    describe_plan,
    describe_severities,
    first_response,
    load_default_plans,
    load_plans,
    response_due,
    response_state,
    validate_severity,
)

PLANS = load_default_plans()
PREMIUM = PLANS["premium"]
PRO = PLANS["professional"]
MADRID = ZoneInfo("Europe/Madrid")
HOURS = {s: timedelta(hours=h) for s, h in {1: 3, 2: 4, 3: 9, 4: 10}.items()}


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=MADRID)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_default_plans_match_the_plan_documents() -> None:
    assert {s: t / timedelta(hours=1) for s, t in PREMIUM.targets.items()} == {
        1: 1,
        2: 2,
        3: 6,
        4: 10,
    }
    assert PREMIUM.business is None
    assert PRO.targets == HOURS
    assert PRO.timezone == MADRID
    assert PRO.business == BusinessHours(frozenset(range(5)), time(9), time(17))


def test_acceptance_friday_1630_sev3_is_due_tuesday_0930() -> None:
    # 30 min on Friday + 8 h on Monday + 30 min on Tuesday = 9 business hours.
    created = local(2026, 3, 6, 16, 30)  # Friday, CET (UTC+1)
    due = response_due(PRO, 3, created)
    assert due == utc(2026, 3, 10, 8, 30)
    assert due.tzinfo is UTC
    assert due.astimezone(MADRID) == local(2026, 3, 10, 9, 30)
    assert business_time_between(PRO, created, due) == timedelta(hours=9)


@pytest.mark.parametrize(
    "created",
    [utc(2026, 3, 29, 0, 30), local(2026, 3, 29, 1, 30), local(2026, 10, 25, 2, 30)],
    ids=["utc", "before-spring-gap", "autumn-fold"],
)
@pytest.mark.parametrize("severity", [1, 2, 3, 4])
def test_premium_is_elapsed_time_even_across_dst(created: datetime, severity: int) -> None:
    due = response_due(PREMIUM, severity, created)
    assert due - created.astimezone(UTC) == PREMIUM.targets[severity]
    assert due.tzinfo is UTC


def test_created_on_saturday_starts_monday_at_opening() -> None:
    due = response_due(PRO, 1, local(2026, 3, 7, 11, 0))
    assert due.astimezone(MADRID) == local(2026, 3, 9, 12, 0)


def test_created_at_closing_time_starts_at_next_opening() -> None:
    due = response_due(PRO, 2, local(2026, 3, 4, 17, 0))  # Wednesday 17:00
    assert due.astimezone(MADRID) == local(2026, 3, 5, 13, 0)


def test_created_before_opening_starts_at_opening() -> None:
    due = response_due(PRO, 1, local(2026, 3, 4, 6, 15))
    assert due.astimezone(MADRID) == local(2026, 3, 4, 12, 0)


def test_deadline_may_fall_exactly_at_closing() -> None:
    due = response_due(PRO, 2, local(2026, 3, 4, 13, 0))
    assert due.astimezone(MADRID) == local(2026, 3, 4, 17, 0)


def test_holidays_are_skipped() -> None:
    plan = _plan(holidays=["2026-03-09", date(2026, 3, 10)])
    due = response_due(plan, 3, local(2026, 3, 6, 16, 30))
    assert due.astimezone(MADRID) == local(2026, 3, 12, 9, 30)


@pytest.mark.parametrize(
    ("created", "due"),
    [
        # Spring forward on Sunday 29 March: CET (UTC+1) on Friday, CEST (UTC+2) on Tuesday.
        (local(2026, 3, 27, 16, 30), utc(2026, 3, 31, 7, 30)),
        # Fall back on Sunday 25 October: CEST on Friday, CET on Tuesday.
        (local(2026, 10, 23, 16, 30), utc(2026, 10, 27, 8, 30)),
    ],
    ids=["spring", "autumn"],
)
def test_dst_weeks_keep_local_business_hours(created: datetime, due: datetime) -> None:
    assert response_due(PRO, 3, created) == due
    assert due.astimezone(MADRID).time() == time(9, 30)


def test_business_day_containing_a_dst_change_counts_wall_time() -> None:
    # A plan whose window spans the spring gap: 00:00-23:00 wall time is 23 business hours,
    # although only 22 hours elapse.
    plan = _plan(days=["sun"], opens="00:00", closes="23:00")
    start, end = local(2026, 3, 29, 0, 0), local(2026, 3, 29, 23, 0)
    assert end - start.astimezone(UTC) == timedelta(hours=22)
    assert business_time_between(plan, start, end) == timedelta(hours=23)
    assert response_due(plan, 2, start) == local(2026, 3, 29, 4, 0).astimezone(UTC)


def test_business_time_between() -> None:
    friday = local(2026, 3, 6, 12, 0)
    assert business_time_between(PRO, friday, local(2026, 3, 8, 23, 0)) == timedelta(hours=5)
    assert business_time_between(PRO, local(2026, 3, 7), local(2026, 3, 8)) == timedelta(0)
    assert business_time_between(PRO, friday, friday - timedelta(hours=1)) == timedelta(0)
    assert business_time_between(PREMIUM, friday, friday + timedelta(days=2)) == timedelta(2)
    # Two weeks, ten business days.
    assert business_time_between(PRO, friday, friday + timedelta(14)) == timedelta(hours=80)


def test_first_response() -> None:
    due = utc(2026, 3, 10, 8, 30)
    assert first_response(due, due)
    assert first_response(due, local(2026, 3, 10, 9, 29))
    assert not first_response(due, due + timedelta(microseconds=1))


def test_naive_datetimes_are_rejected() -> None:
    naive = datetime(2026, 3, 6, 16, 30)
    with pytest.raises(ValueError, match="created_at must be timezone-aware"):
        response_due(PRO, 3, naive)
    with pytest.raises(ValueError, match="end must be timezone-aware"):
        business_time_between(PRO, utc(2026, 1, 1), naive)
    with pytest.raises(ValueError, match="responded_at"):
        first_response(utc(2026, 1, 1), naive)


@pytest.mark.parametrize(("value", "expected"), [(None, 3), (1, 1), (4, 4), ("2", 2)])
def test_validate_severity_accepts(value: object, expected: int) -> None:
    assert validate_severity(value) == expected
    assert DEFAULT_SEVERITY == 3


@pytest.mark.parametrize("value", [0, 5, -1, True, 2.0, "", "one", "3 ", "٣", [1]])
def test_validate_severity_rejects(value: object) -> None:
    with pytest.raises(ValidationFailed, match="severity must be one of 1, 2, 3, 4") as info:
        validate_severity(value)
    assert info.value.details == {"field": "severity"}


def test_load_plans_accepts_the_documented_example() -> None:
    doc = tomllib.loads(
        """
        [server]
        ignored = true
        [plans.gold]
        coverage = "24x7"
        response_hours = {1 = 0.5, 2 = 2, 3 = 6, 4 = 10}
        [plans.office]
        coverage = "business"
        timezone = "America/New_York"
        days = ["mon", "wed"]
        opens = "08:30"
        closes = "12:15"
        holidays = [2026-12-25, "2026-12-31"]
        response_hours = {1 = 3, 2 = 4, 3 = 9, 4 = 10}
        """
    )
    plans = load_plans(doc)
    assert plans["gold"].timezone == ZoneInfo("UTC")
    assert plans["gold"].targets[1] == timedelta(minutes=30)
    office = plans["office"]
    assert office.business == BusinessHours(frozenset({0, 2}), time(8, 30), time(12, 15))
    assert office.holidays == {date(2026, 12, 25), date(2026, 12, 31)}


def _pro_table(**changes: Any) -> dict[str, Any]:
    table: dict[str, Any] = {
        "coverage": "business",
        "timezone": "Europe/Madrid",
        "days": ["mon", "tue", "wed", "thu", "fri"],
        "opens": "09:00",
        "closes": "17:00",
        "response_hours": {"1": 3, "2": 4, "3": 9, "4": 10},
    }
    table.update(changes)
    return {k: v for k, v in table.items() if v is not None}


def _plan(**changes: Any) -> Plan:
    return load_plans({"plans": {"p": _pro_table(**changes)}})["p"]


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({}, "plans:"),
        ({"plans": {}}, "plans:"),
        ({"plans": {"bad name": _pro_table()}}, "plans.bad name:"),
        ({"plans": {"p": []}}, "plans.p:"),
        ({"plans": {"p": _pro_table(coverage="weekdays")}}, "plans.p.coverage:"),
        ({"plans": {"p": _pro_table(coverage="24x7")}}, "plans.p.closes:"),
        ({"plans": {"p": _pro_table(hollidays=[])}}, "plans.p.hollidays:"),
        ({"plans": {"p": _pro_table(timezone=None)}}, "plans.p.timezone:"),
        ({"plans": {"p": _pro_table(timezone="Mars/Olympus")}}, "plans.p.timezone:"),
        ({"plans": {"p": _pro_table(timezone="../etc/passwd")}}, "plans.p.timezone:"),
        ({"plans": {"p": _pro_table(response_hours=[1, 2, 3, 4])}}, "plans.p.response_hours:"),
        ({"plans": {"p": _pro_table(response_hours={"1": 1})}}, "plans.p.response_hours.2:"),
        (
            {"plans": {"p": _pro_table(response_hours={"1": 1, "2": 2, "3": 3, "4": 4, "5": 5})}},
            "plans.p.response_hours.5:",
        ),
        (
            {"plans": {"p": _pro_table(response_hours={"1": 0, "2": 2, "3": 3, "4": 4})}},
            "plans.p.response_hours.1:",
        ),
        (
            {"plans": {"p": _pro_table(response_hours={"1": 1, "2": True, "3": 3, "4": 4})}},
            "plans.p.response_hours.2:",
        ),
        (
            {"plans": {"p": _pro_table(response_hours={"1": 1, "2": 2, "3": "3", "4": 4})}},
            "plans.p.response_hours.3:",
        ),
        (
            {"plans": {"p": _pro_table(response_hours={"1": 1, "2": 2, "3": 3, "4": 1e9})}},
            "plans.p.response_hours.4:",
        ),
        (
            {
                "plans": {
                    "p": _pro_table(response_hours={"1": float("nan"), "2": 2, "3": 3, "4": 4})
                }
            },
            "plans.p.response_hours.1:",
        ),
        ({"plans": {"p": _pro_table(days=[])}}, "plans.p.days:"),
        ({"plans": {"p": _pro_table(days="mon")}}, "plans.p.days:"),
        ({"plans": {"p": _pro_table(days=["monday"])}}, "plans.p.days:"),
        ({"plans": {"p": _pro_table(opens="9:00")}}, "plans.p.opens:"),
        ({"plans": {"p": _pro_table(opens=time(9))}}, "plans.p.opens:"),
        ({"plans": {"p": _pro_table(closes="24:00")}}, "plans.p.closes:"),
        ({"plans": {"p": _pro_table(closes="09:00")}}, "plans.p.closes:"),
        ({"plans": {"p": _pro_table(holidays="2026-12-25")}}, "plans.p.holidays:"),
        ({"plans": {"p": _pro_table(holidays=["2026-02-30"])}}, "plans.p.holidays:"),
        ({"plans": {"p": _pro_table(holidays=[datetime(2026, 12, 25)])}}, "plans.p.holidays:"),
        ({"plans": {"p": _pro_table(holidays=[20261225])}}, "plans.p.holidays:"),
    ],
)
def test_load_plans_rejects_bad_config_naming_the_key(data: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError) as info:
        load_plans(data)
    assert str(info.value).startswith(key)


def test_plan_constructor_checks_its_invariants() -> None:
    with pytest.raises(ValueError, match="cover severities"):
        Plan("p", MADRID, {1: timedelta(hours=1)})
    with pytest.raises(ValueError, match="positive"):
        Plan("p", MADRID, {**HOURS, 4: timedelta(0)})
    with pytest.raises(ValueError, match="non-empty subset"):
        BusinessHours(frozenset({7}), time(9), time(17))
    with pytest.raises(ValueError, match="later than opens"):
        BusinessHours(frozenset({0}), time(17), time(9))
    targets = dict(HOURS)
    plan = Plan("p", MADRID, targets)
    targets[1] = timedelta(days=1)
    assert plan.targets[1] == timedelta(hours=3)  # a copy, read-only
    with pytest.raises(TypeError):
        plan.targets[1] = timedelta(0)  # type: ignore[index]


# Property tests over three years (several DST changes in each zone), UTC and local inputs.
ODD_PLAN = load_plans(
    {
        "plans": {
            "odd": _pro_table(
                timezone="America/New_York",
                days=["tue", "thu", "sat"],
                opens="08:30",
                closes="12:15",
                holidays=["2026-03-10", "2026-11-03", "2026-11-05"],
                response_hours={"1": 0.75, "2": 4, "3": 9, "4": 30},
            )
        }
    }
)["odd"]
business_plans = st.sampled_from([PRO, ODD_PLAN])
instants = st.datetimes(
    min_value=datetime(2025, 6, 1),
    max_value=datetime(2027, 6, 1),
    timezones=st.sampled_from([UTC, MADRID, ZoneInfo("America/New_York")]),
)
severities = st.sampled_from([1, 2, 3, 4])


@given(business_plans, severities, instants)
def test_due_is_after_created_and_inside_business_hours(
    plan: Plan, severity: int, created: datetime
) -> None:
    due = response_due(plan, severity, created)
    assert due.tzinfo is UTC
    assert due > created
    wall = due.astimezone(plan.timezone)
    assert plan.business is not None
    assert wall.weekday() in plan.business.days
    assert wall.date() not in plan.holidays
    assert plan.business.opens < wall.time() <= plan.business.closes


@given(business_plans, severities, instants)
def test_business_time_until_due_equals_the_target(
    plan: Plan, severity: int, created: datetime
) -> None:
    due = response_due(plan, severity, created)
    assert business_time_between(plan, created, due) == plan.targets[severity]


@given(business_plans, severities, instants, st.timedeltas(timedelta(0), timedelta(days=9)))
def test_due_is_monotonic_in_created_at(
    plan: Plan, severity: int, created: datetime, later: timedelta
) -> None:
    later_created = created.astimezone(UTC) + later
    assert response_due(plan, severity, created) <= response_due(plan, severity, later_created)


@given(severities, instants)
def test_premium_due_is_exactly_the_target_later(severity: int, created: datetime) -> None:
    due = response_due(PREMIUM, severity, created)
    assert due - created.astimezone(UTC) == PREMIUM.targets[severity]
    assert business_time_between(PREMIUM, created, due) == PREMIUM.targets[severity]


# --- the broker's SLA view: met, breached, time left ---------------------------------------

DUE = utc(2026, 3, 10, 8, 30)


def test_state_while_waiting_counts_down_to_zero_on_time() -> None:
    before = response_state(DUE, None, DUE - timedelta(minutes=5, seconds=30))
    assert before == ResponseState(None, False, 330)
    assert response_state(DUE, None, DUE) == ResponseState(None, False, 0)  # on time counts


def test_state_after_the_deadline_is_breached_with_negative_time_left() -> None:
    just = response_state(DUE, None, DUE + timedelta(microseconds=1))
    assert just == ResponseState(None, True, -1)  # never "0 s left" once past
    assert response_state(DUE, None, DUE + timedelta(hours=2)).seconds_left == -7200


def test_a_response_on_time_is_never_breached_however_late_it_is_now() -> None:
    # What the console used to get wrong: a case answered on time turned red once due passed.
    later = DUE + timedelta(days=30)
    assert response_state(DUE, True, later) == ResponseState(True, False, None)
    assert response_state(DUE, False, later) == ResponseState(False, True, None)


def test_a_stopped_clock_keeps_its_verdict() -> None:
    long_after = DUE + timedelta(days=3)
    stopped_early = response_state(DUE, None, long_after, stopped_at=DUE - timedelta(hours=1))
    assert stopped_early == ResponseState(None, False, None)
    stopped_late = response_state(DUE, None, long_after, stopped_at=DUE + timedelta(seconds=1))
    assert stopped_late == ResponseState(None, True, None)


def test_state_compares_instants_not_wall_times() -> None:
    # 02:30 CEST and 02:30 CET on 25 Oct 2026: equal on the wall, an hour apart in time.
    due = datetime(2026, 10, 25, 2, 30, tzinfo=MADRID)
    now = due.replace(fold=1)
    assert response_state(due, None, now) == ResponseState(None, True, -3600)
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        response_state(DUE, None, datetime(2026, 3, 10))
    with pytest.raises(ValueError, match="stopped_at must be timezone-aware"):
        response_state(DUE, None, DUE, stopped_at=datetime(2026, 3, 10))


@given(
    offset=st.integers(min_value=-(10**7), max_value=10**7),
    met=st.sampled_from([None, True, False]),
)
def test_state_invariants(offset: int, met: bool | None) -> None:
    now = DUE + timedelta(seconds=offset)
    state = response_state(DUE, met, now)
    if met is None:
        assert state.seconds_left == -offset
        assert state.breached is (offset > 0)
    else:
        assert state.seconds_left is None and state.breached is (not met)


def test_severity_names_are_the_support_plans_words() -> None:
    assert dict(SEVERITY_NAMES) == {1: "catastrophic", 2: "severe", 3: "moderate", 4: "low"}
    assert [s["name"] for s in describe_severities()] == [
        "catastrophic",
        "severe",
        "moderate",
        "low",
    ]
    assert describe_severities()[0]["description"] == "system down, no production"


def test_describe_plan() -> None:
    assert describe_plan(PREMIUM) == {
        "name": "premium",
        "coverage": "24x7",
        "timezone": "UTC",
        "response_hours": {"1": 1.0, "2": 2.0, "3": 6.0, "4": 10.0},
        "business_hours": None,
    }
    pro = describe_plan(PRO)
    assert pro["coverage"] == "business" and pro["timezone"] == "Europe/Madrid"
    assert pro["business_hours"]["days"] == ["mon", "tue", "wed", "thu", "fri"]
    assert (pro["business_hours"]["opens"], pro["business_hours"]["closes"]) == ("09:00", "17:00")
    assert pro["response_hours"] == {"1": 3.0, "2": 4.0, "3": 9.0, "4": 10.0}
