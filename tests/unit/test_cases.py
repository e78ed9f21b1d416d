"""Case lifecycle: the transition table, the two resolve routes, and case numbers."""

from __future__ import annotations

import itertools
import string
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.errors import ConfirmWindowClosed, Conflict, InvalidTransition, ValidationFailed
from broker.sessions.cases import (
    ACTIVE,
    CUSTOMER_ONLY,
    NO_ANSWER_ATTEMPTS,
    NO_ANSWER_PERIOD,
    TRANSITIONS,
    CaseStatus,
    ResolveRoute,
    allowed_moves,
    cancel,
    check_confirm_window,
    check_resolve,
    check_terms_change,
    check_transition,
    customer_feedback,
    generate_case_number,
    is_generated,
    resolve,
    validate_case_number,
    validate_external_case_number,
)

S = CaseStatus
NOW = datetime(2026, 5, 20, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)

ALLOWED = {
    (S.OPEN, S.IN_PROGRESS),
    (S.OPEN, S.AWAITING_CUSTOMER),
    (S.IN_PROGRESS, S.AWAITING_CUSTOMER),
    (S.IN_PROGRESS, S.RESOLVED),
    (S.AWAITING_CUSTOMER, S.IN_PROGRESS),
    (S.AWAITING_CUSTOMER, S.RESOLVED),
    (S.RESOLVED, S.CLOSED),
    (S.RESOLVED, S.IN_PROGRESS),
    (S.OPEN, S.CANCELLED),
    (S.IN_PROGRESS, S.CANCELLED),
    (S.AWAITING_CUSTOMER, S.CANCELLED),
    (S.CANCELLED, S.RESOLVED),
    (S.CANCELLED, S.IN_PROGRESS),
}
CUSTOMER_MOVES = {(S.CANCELLED, S.RESOLVED), (S.CANCELLED, S.IN_PROGRESS)}
"""Out of a cancellation only by the customer's word."""
GUARDED = {S.RESOLVED, S.CANCELLED}
"""Targets the generic status move never reaches: each has its own action."""
PAIRS = list(itertools.product(CaseStatus, repeat=2))


def test_table_is_exactly_the_documented_moves() -> None:
    assert {(a, b) for a, targets in TRANSITIONS.items() for b in targets} == ALLOWED
    assert allowed_moves(S.CLOSED) == frozenset()
    assert CUSTOMER_ONLY == CUSTOMER_MOVES
    assert ACTIVE == {S.OPEN, S.IN_PROGRESS, S.AWAITING_CUSTOMER}


@pytest.mark.parametrize("current", list(CaseStatus))
def test_allowed_moves_are_staff_moves(current: CaseStatus) -> None:
    expected = {b for a, b in ALLOWED - CUSTOMER_MOVES if a is current}
    assert allowed_moves(current) == expected
    # A cancelled case offers staff nothing: "reopen it first" would be a lie.
    assert allowed_moves(S.CANCELLED) == frozenset()


@pytest.mark.parametrize(("current", "target"), PAIRS)
def test_check_transition(current: CaseStatus, target: CaseStatus) -> None:
    if (current, target) in ALLOWED - CUSTOMER_MOVES and target not in GUARDED:
        check_transition(current, target)
        return
    with pytest.raises(InvalidTransition) as info:
        check_transition(current, target)
    assert info.value.details == {"current": current.value, "target": target.value}
    if (current, target) in CUSTOMER_MOVES:
        assert "only by the customer's own answer" in info.value.message
    elif (current, target) in ALLOWED and target is S.RESOLVED:
        assert "use the resolve action" in info.value.message
    elif (current, target) in ALLOWED:
        assert "use the cancel action" in info.value.message
    else:
        assert f"cannot move from {current.value} to {target.value}" in info.value.message


@pytest.mark.parametrize("current", list(CaseStatus))
def test_cancel_only_while_worked_on(current: CaseStatus) -> None:
    if current in ACTIVE:
        assert cancel(current) is S.CANCELLED
        return
    with pytest.raises(InvalidTransition) as info:
        cancel(current)
    assert info.value.details == {"current": current.value, "target": "cancelled"}


@pytest.mark.parametrize("current", list(CaseStatus))
@pytest.mark.parametrize("solved", [True, False])
def test_customer_feedback_moves(current: CaseStatus, solved: bool) -> None:
    expected = {
        (S.IN_PROGRESS, True): S.RESOLVED,
        (S.AWAITING_CUSTOMER, True): S.RESOLVED,
        (S.CANCELLED, True): S.RESOLVED,  # the customer's word rules resolution
        (S.OPEN, False): S.IN_PROGRESS,
        (S.IN_PROGRESS, False): S.IN_PROGRESS,
        (S.AWAITING_CUSTOMER, False): S.IN_PROGRESS,
        (S.RESOLVED, False): S.IN_PROGRESS,
        (S.CANCELLED, False): S.IN_PROGRESS,
    }
    if (current, solved) in expected:
        assert customer_feedback(current, solved) is expected[(current, solved)]
    else:
        with pytest.raises(InvalidTransition):
            customer_feedback(current, solved)


def test_a_cancelled_case_is_resolved_only_by_the_customer() -> None:
    done = [NOW - 10 * DAY, NOW - 5 * DAY, NOW - DAY]
    with pytest.raises(InvalidTransition, match="only by the customer's confirmation"):
        resolve(S.CANCELLED, ResolveRoute.NO_ANSWER, done, None, NOW)
    assert resolve(S.CANCELLED, ResolveRoute.CUSTOMER_CONFIRMED, [], None, NOW) is S.RESOLVED


@pytest.mark.parametrize("current", list(CaseStatus))
def test_terms_change_only_while_worked_on(current: CaseStatus) -> None:
    if current in ACTIVE:
        check_terms_change(current)
        return
    with pytest.raises(InvalidTransition, match=f"of a {current.value} case cannot change"):
        check_terms_change(current)


WINDOW = timedelta(hours=1)


def test_confirm_window_open_during_the_session() -> None:
    check_confirm_window(None, NOW, WINDOW)


def test_confirm_window_open_until_its_last_instant() -> None:
    check_confirm_window(NOW - WINDOW, NOW, WINDOW)


def test_confirm_window_closed_after_it() -> None:
    ended = NOW - WINDOW - timedelta(microseconds=1)
    with pytest.raises(ConfirmWindowClosed, match="more than 60 minutes ago") as info:
        check_confirm_window(ended, NOW, WINDOW)
    assert info.value.http_status == 403
    assert info.value.details == {"closed_at": (ended + WINDOW).isoformat()}


def test_confirm_window_compares_instants() -> None:
    madrid = ZoneInfo("Europe/Madrid")
    ended = datetime(2026, 10, 25, 2, 30, tzinfo=madrid)  # CEST, the first 02:30
    # The second 02:30 (CET) is an hour later in time though equal on the wall clock.
    with pytest.raises(ConfirmWindowClosed):
        check_confirm_window(ended, ended.replace(fold=1), timedelta(minutes=30))
    with pytest.raises(ValueError, match="naive"):
        check_confirm_window(NOW.replace(tzinfo=None), NOW, WINDOW)


def test_closed_is_final_and_says_so() -> None:
    with pytest.raises(InvalidTransition, match=r"nothing \(final status\)"):
        check_transition(S.CLOSED, S.IN_PROGRESS)


@pytest.mark.parametrize("current", list(CaseStatus))
def test_resolve_only_from_in_progress_awaiting_or_cancelled(current: CaseStatus) -> None:
    def attempt() -> CaseStatus:
        return resolve(current, ResolveRoute.CUSTOMER_CONFIRMED, [], None, NOW)

    if current in (S.IN_PROGRESS, S.AWAITING_CUSTOMER, S.CANCELLED):
        assert attempt() is S.RESOLVED
    else:
        with pytest.raises(InvalidTransition):
            attempt()


def test_resolve_no_answer_runs_the_route_check() -> None:
    with pytest.raises(Conflict):
        resolve(S.AWAITING_CUSTOMER, ResolveRoute.NO_ANSWER, [NOW], None, NOW)
    done = [NOW - 10 * DAY, NOW - 5 * DAY, NOW - DAY]
    assert resolve(S.AWAITING_CUSTOMER, ResolveRoute.NO_ANSWER, done, None, NOW) is S.RESOLVED


def missing(
    attempts: list[datetime], last_response: datetime | None = None
) -> tuple[int, int] | None:
    """(attempts, days) still missing for the no-answer route, or None if it passes."""
    try:
        check_resolve(ResolveRoute.NO_ANSWER, attempts, last_response, NOW)
    except Conflict as exc:
        assert not isinstance(exc, InvalidTransition)
        return exc.details["attempts_missing"], exc.details["days_missing"]
    return None


def test_no_answer_exactly_three_attempts_first_exactly_ten_days_ago() -> None:
    assert missing([NOW - 10 * DAY, NOW - 10 * DAY, NOW]) is None


def test_no_answer_with_no_attempts_misses_everything() -> None:
    with pytest.raises(Conflict, match="still missing 3 attempt\\(s\\) and 10 day\\(s\\)"):
        check_resolve(ResolveRoute.NO_ANSWER, [], None, NOW)


def test_no_answer_counts_days_missing_rounded_up() -> None:
    assert missing([NOW - 9 * DAY, NOW - 2 * DAY, NOW - DAY]) == (0, 1)
    assert missing([NOW - 9 * DAY + timedelta(seconds=1), NOW, NOW]) == (0, 2)
    assert missing([NOW - 12 * DAY, NOW - 11 * DAY]) == (1, 0)


def test_no_answer_ignores_attempts_before_the_last_response() -> None:
    old = [NOW - 30 * DAY, NOW - 25 * DAY, NOW - 20 * DAY]
    assert missing(old) is None
    assert missing(old, last_response=NOW - 20 * DAY) == (3, 10)
    assert missing([*old, NOW - 11 * DAY, NOW - 3 * DAY], NOW - 15 * DAY) == (1, 0)


def test_no_answer_ignores_attempts_after_now() -> None:
    assert missing([NOW - 10 * DAY, NOW - DAY, NOW + DAY]) == (1, 0)


def test_no_answer_compares_instants_not_wall_times() -> None:
    # 02:30 CEST and 02:30 CET on 25 Oct 2026 share a wall time but are an hour apart.
    madrid = ZoneInfo("Europe/Madrid")
    first_pass = datetime(2026, 10, 25, 2, 30, tzinfo=madrid)
    second_pass = first_pass.replace(fold=1)
    now = second_pass + 10 * DAY
    attempts = [second_pass, second_pass, second_pass + DAY]
    check_resolve(ResolveRoute.NO_ANSWER, attempts, first_pass, now)


def test_customer_confirmed_needs_nothing_else() -> None:
    check_resolve(ResolveRoute.CUSTOMER_CONFIRMED, [], None, NOW)


def test_naive_datetimes_are_rejected() -> None:
    naive = datetime(2026, 5, 20)
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        check_resolve(ResolveRoute.CUSTOMER_CONFIRMED, [], None, naive)
    with pytest.raises(ValueError, match="attempts"):
        check_resolve(ResolveRoute.NO_ANSWER, [naive], None, NOW)
    with pytest.raises(ValueError, match="last_customer_response"):
        check_resolve(ResolveRoute.NO_ANSWER, [], naive, NOW)


offsets = st.lists(st.integers(min_value=0, max_value=40 * 24), max_size=6)


@given(offsets, offsets, st.integers(min_value=0, max_value=20 * 24))
def test_no_answer_never_stops_passing(hours: list[int], more: list[int], wait: int) -> None:
    """More attempts or a later ``now`` cannot turn an allowed resolution into a refused one."""
    attempts = [NOW - timedelta(hours=h) for h in hours]
    if missing(attempts) is not None:
        return
    extra = [NOW - timedelta(hours=h) for h in more]
    later = NOW + timedelta(hours=wait)
    check_resolve(ResolveRoute.NO_ANSWER, attempts + extra, None, later)


@given(offsets)
def test_no_answer_matches_the_definition(hours: list[int]) -> None:
    attempts = [NOW - timedelta(hours=h) for h in hours]
    ok = len(attempts) >= NO_ANSWER_ATTEMPTS and NOW - min(attempts) >= NO_ANSWER_PERIOD
    assert (missing(attempts) is None) == ok


@pytest.mark.parametrize(
    ("seq", "number"),
    [(1, "C-000001"), (123, "C-000123"), (999_999, "C-999999"), (1_234_567, "C-1234567")],
)
def test_generate_case_number(seq: int, number: str) -> None:
    assert generate_case_number(seq) == number
    assert is_generated(generate_case_number(seq))


@pytest.mark.parametrize("seq", [0, -1, True, 1.0])
def test_generate_case_number_rejects_bad_sequence(seq: int) -> None:
    with pytest.raises(ValueError, match="start at 1"):
        generate_case_number(seq)


@pytest.mark.parametrize("text", ["INC0012345", "SR-2026.04_17", "7", "a" * 40, "C-12a", "CS-001"])
def test_external_case_numbers_are_kept_as_given(text: str) -> None:
    assert validate_external_case_number(text) == text
    assert validate_case_number(text) == text
    assert not is_generated(validate_case_number(text))


@pytest.mark.parametrize(
    "text", ["", "a" * 41, " INC1", "INC 1", "INC/1", "..", ".hidden", "-rf", "ÄBC", "a\n", 12]
)
def test_bad_case_numbers_are_rejected(text: object) -> None:
    for validate in (validate_external_case_number, validate_case_number):
        with pytest.raises(ValidationFailed, match="1-40 characters") as info:
            validate(text)
        assert info.value.details == {"field": "case_number"}


def test_rejection_message_does_not_echo_huge_input() -> None:
    with pytest.raises(ValidationFailed) as info:
        validate_case_number("x" * 10_000 + "!")
    assert len(info.value.message) < 200


@pytest.mark.parametrize("text", ["C-000123", "C-1", "c-000123", "C-12345678901"])
def test_generated_form_is_reserved_for_us(text: str) -> None:
    with pytest.raises(ValidationFailed, match="looks like a generated one"):
        validate_external_case_number(text)
    assert validate_case_number(text) == text


@given(st.integers(min_value=1, max_value=10**30))
def test_generated_numbers_never_pass_as_external(seq: int) -> None:
    number = generate_case_number(seq)
    assert validate_case_number(number) == number
    with pytest.raises(ValidationFailed):
        validate_external_case_number(number)


CHARSET = string.ascii_letters + string.digits + "._-"


@given(st.text(alphabet=CHARSET, min_size=1, max_size=45))
def test_external_validation_is_exactly_the_documented_rule(text: str) -> None:
    ok = len(text) <= 40 and text[0].isalnum()
    ok = ok and not (text[:2] in ("C-", "c-") and text[2:].isdigit())
    try:
        assert validate_external_case_number(text) == text
    except ValidationFailed:
        assert not ok
    else:
        assert ok
