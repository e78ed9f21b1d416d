"""Cases: opening with an SLA deadline, first response, status moves, cancellation, changes of
severity and plan, the customer's answer, and observing SLA breaches.

Rules live in the pure modules (``sla``, ``cases``); this service loads, applies, stores and
audits, each operation in one store transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from broker.audit.actions import AuditAction
from broker.audit.log import Actor, AuditLog
from broker.clock import Clock
from broker.errors import NotFound, ValidationFailed
from broker.metrics import Metrics
from broker.sessions import cases, sla
from broker.storage import transaction
from broker.store.base import Store
from broker.store.records import CaseRecord, ContactAttempt, CustomerFeedback, iso

ENGINEER_ROLES = frozenset({"desk", "rse", "engineering"})


@dataclass(frozen=True)
class NewCase:
    """What opening a case needs, as the caller validated it (the HTTP layer's ``CaseIn``).

    ``number`` keeps an external ticketing system's number (else one is generated);
    ``reported_at`` is when the customer reported the problem (default: now).
    """

    customer_name: str
    company: str
    contact: str
    product: str
    serial_number: str
    plan: str
    description: str = ""
    severity: int = 3
    number: str | None = None
    reported_at: datetime | None = None


@dataclass(frozen=True)
class BreachReport:
    """One pass of ``observe_breaches``: breaches open now, and those seen for the first time."""

    open: int
    new: list[CaseRecord]


class CaseService:
    def __init__(
        self,
        store: Store,
        audit: AuditLog,
        plans: dict[str, sla.Plan],
        clock: Clock,
        *,
        confirm_window: timedelta,
        metrics: Metrics,
    ) -> None:
        self._store = store
        self._audit = audit
        self._plans = plans
        self._clock = clock
        self._confirm_window = confirm_window
        self._metrics = metrics

    @property
    def plans(self) -> dict[str, sla.Plan]:
        return self._plans

    async def get(self, number: str) -> CaseRecord:
        case = await self._store.get_case(number)
        if case is None:
            raise NotFound(f"no case {number!r}")
        return case

    async def find(self, statuses: list[str] | None) -> list[CaseRecord]:
        for status in statuses or []:
            if status not in cases.CaseStatus.__members__.values():
                raise ValidationFailed(f"unknown case status {status!r}")
        return await self._store.list_cases(statuses)

    # --- what staff see ------------------------------------------------------------------

    def response_state(self, case: CaseRecord, now: datetime | None = None) -> sla.ResponseState:
        """The case's first-response SLA at ``now`` (default: the broker's clock)."""
        return sla.response_state(
            case.response_due, case.first_response_met, now or self._clock(), _stopped_at(case)
        )

    def sla_json(self, case: CaseRecord, now: datetime | None = None) -> dict[str, Any]:
        """The broker's SLA view of a case, for every JSON that shows a case to staff."""
        now = now or self._clock()
        state = self.response_state(case, now)
        return {
            "response_due": iso(case.response_due),
            "first_response_met": state.first_response_met,
            "breached": state.breached,
            "response_seconds_left": state.seconds_left,
            "sla_as_of": iso(now),
        }

    def to_json(self, case: CaseRecord, now: datetime | None = None) -> dict[str, Any]:
        """A case as staff see it: its record plus the broker's SLA view."""
        return {**case.to_json(), **self.sla_json(case, now)}

    async def feedback(self, number: str) -> list[CustomerFeedback]:
        return await self._store.list_customer_feedback(number)

    # --- opening and working ---------------------------------------------------------------

    def _plan(self, name: str) -> sla.Plan:
        plan = self._plans.get(name)
        if plan is None:
            raise ValidationFailed(
                f"unknown plan {name!r}; known plans: {', '.join(sorted(self._plans))}",
                field="plan",
            )
        return plan

    async def create(self, data: NewCase, actor: Actor) -> CaseRecord:
        """Open a case; its response deadline follows from plan, severity and report time.

        Raises:
            ValidationFailed: unknown plan, bad external number, report time in the future.
            Conflict: the external number is already taken.
        """
        now = self._clock()
        plan = self._plan(data.plan)
        reported = data.reported_at or now
        if reported > now:
            raise ValidationFailed("reported_at is in the future")
        async with transaction(self._store):
            number: str
            if data.number is not None:
                number = cases.validate_external_case_number(data.number)
            else:
                number = await self._generate_number()
            case = CaseRecord(
                number=number,
                customer_name=data.customer_name,
                company=data.company,
                contact=data.contact,
                product=data.product,
                serial_number=data.serial_number,
                description=data.description,
                severity=data.severity,
                plan=plan.name,
                status=cases.CaseStatus.OPEN.value,
                created_by=actor.name,
                created_at=reported,
                updated_at=now,
                response_due=sla.response_due(plan, data.severity, reported),
            )
            await self._store.insert_case(case)
            await self._audit.record(
                actor,
                AuditAction.CASE_CREATED,
                at=now,
                case_number=number,
                details={
                    "severity": case.severity,
                    "plan": case.plan,
                    "response_due": case.response_due.isoformat(),
                    "external_number": data.number is not None,
                },
            )
        return case

    async def _generate_number(self) -> str:
        # An external system may already have used the next generated number: skip it.
        while True:
            number = cases.generate_case_number(await self._store.next_counter("case"))
            if await self._store.get_case(number) is None:
                return number

    async def note_engineer_action(self, case: CaseRecord, actor: Actor, at: datetime) -> None:
        """Record the first response the first time an engineer acts on the case.

        Runs inside the caller's transaction. A late response is counted as a breach by the
        next ``observe_breaches`` (its counter must not move for a transaction that rolls back).
        """
        if case.first_response_at is not None or actor.role not in ENGINEER_ROLES:
            return
        met = sla.first_response(case.response_due, at)
        await self._store.update_case(
            case.number, first_response_at=at, first_response_met=met, updated_at=at
        )
        await self._audit.record(
            actor,
            AuditAction.CASE_FIRST_RESPONSE,
            at=at,
            case_number=case.number,
            details={"met": met, "due": case.response_due.isoformat()},
        )

    async def _move(
        self, case: CaseRecord, new: cases.CaseStatus, actor: Actor, at: datetime, **details: str
    ) -> None:
        """A staff move by the generic status action (checked by ``cases.check_transition``)."""
        cases.check_transition(cases.CaseStatus(case.status), new)
        await self._set_status(case, new, actor, at, **details)

    async def _set_status(
        self, case: CaseRecord, new: cases.CaseStatus, actor: Actor, at: datetime, **details: Any
    ) -> None:
        """Store and audit a status move that a rule of ``cases`` has already allowed."""
        await self._store.update_case(case.number, status=new.value, updated_at=at)
        await self._audit.record(
            actor,
            AuditAction.CASE_STATUS_CHANGED,
            at=at,
            case_number=case.number,
            details={"from": case.status, "to": new.value, **details},
        )

    async def _resolve(
        self,
        case: CaseRecord,
        route: cases.ResolveRoute,
        attempts: list[datetime],
        actor: Actor,
        at: datetime,
    ) -> None:
        status = cases.resolve(
            cases.CaseStatus(case.status), route, attempts, case.last_customer_response_at, at
        )
        await self._set_status(case, status, actor, at, route=route.value)

    async def change_status(self, number: str, status: str, actor: Actor) -> CaseRecord:
        now = self._clock()
        async with transaction(self._store):
            case = await self.get(number)
            await self._move(case, cases.CaseStatus(status), actor, now)
            await self.note_engineer_action(case, actor, now)
        return await self.get(number)

    async def start_work(self, case: CaseRecord, actor: Actor, at: datetime) -> None:
        """An engineer starts a session on an open case: it is now in progress."""
        if case.status == cases.CaseStatus.OPEN.value:
            await self._move(case, cases.CaseStatus.IN_PROGRESS, actor, at)
        await self.note_engineer_action(case, actor, at)

    async def add_contact_attempt(
        self, number: str, channel: str, note: str, actor: Actor
    ) -> list[ContactAttempt]:
        now = self._clock()
        async with transaction(self._store):
            case = await self.get(number)
            await self._store.add_contact_attempt(
                ContactAttempt(number, now, actor.name, channel, note)
            )
            await self._audit.record(
                actor,
                AuditAction.CASE_CONTACT_ATTEMPT,
                at=now,
                case_number=number,
                details={"channel": channel},
            )
            await self.note_engineer_action(case, actor, now)
        return await self._store.list_contact_attempts(number)

    async def resolve_no_answer(self, number: str, actor: Actor) -> CaseRecord:
        """Resolve without the customer: only after the documented unanswered attempts."""
        now = self._clock()
        async with transaction(self._store):
            case = await self.get(number)
            attempts = [a.at for a in await self._store.list_contact_attempts(number)]
            await self._resolve(case, cases.ResolveRoute.NO_ANSWER, attempts, actor, now)
        return await self.get(number)

    # --- cancelling and changing terms -----------------------------------------------------

    async def cancel(self, number: str, reason: str, actor: Actor) -> CaseRecord:
        """Withdraw a case opened by mistake. It is not resolved; see ``cases.cancel``.

        The caller ends the case's live sessions afterwards (they run in the relay's rooms).

        Raises:
            NotFound: no such case.
            InvalidTransition: the case is resolved, closed or already cancelled.
        """
        now = self._clock()
        async with transaction(self._store):
            case = await self.get(number)
            status = cases.cancel(cases.CaseStatus(case.status))
            await self._store.update_case(
                number,
                status=status.value,
                cancelled_at=now,
                cancelled_by=actor.name,
                cancel_reason=reason,
                updated_at=now,
            )
            await self._audit.record(
                actor,
                AuditAction.CASE_CANCELLED,
                at=now,
                case_number=number,
                details={"from": case.status, "reason": reason},
            )
            cancelled = await self.get(number)
            # The clock stops now: a breach that happened before is settled here, at once.
            new = await self._record_breaches([cancelled], now)
        self._count(new)
        return await self.get(number)

    async def change_terms(
        self, number: str, severity: int | None, plan: str | None, reason: str, actor: Actor
    ) -> CaseRecord:
        """Change a case's severity and/or plan; the deadline is recomputed from the report time.

        A first response already recorded keeps its verdict: it was judged by the deadline in
        force when it came.

        Raises:
            NotFound: no such case.
            ValidationFailed: unknown plan.
            InvalidTransition: the case is not being worked on (``cases.check_terms_change``).
        """
        now = self._clock()
        async with transaction(self._store):
            case = await self.get(number)
            cases.check_terms_change(cases.CaseStatus(case.status))
            new_plan = self._plan(plan if plan is not None else case.plan)
            new_severity = severity if severity is not None else case.severity
            due = sla.response_due(new_plan, new_severity, case.created_at)
            await self._store.update_case(
                number,
                severity=new_severity,
                plan=new_plan.name,
                response_due=due,
                updated_at=now,
            )
            await self._audit.record(
                actor,
                AuditAction.CASE_TERMS_CHANGED,
                at=now,
                case_number=number,
                details={
                    "from": {
                        "severity": case.severity,
                        "plan": case.plan,
                        "response_due": case.response_due.isoformat(),
                    },
                    "to": {
                        "severity": new_severity,
                        "plan": new_plan.name,
                        "response_due": due.isoformat(),
                    },
                    "reason": reason,
                },
            )
            await self.note_engineer_action(case, actor, now)
        return await self.get(number)

    # --- the customer's answer -------------------------------------------------------------

    async def customer_feedback(
        self, session_id: str, number: str, solved: bool, comment: str, actor: Actor
    ) -> CaseRecord:
        """The customer says the problem is solved (resolves) or not (back in progress).

        Taken from a session's customer token during the session and for the confirm window
        after it ended (``cases.check_confirm_window``); the comment is stored and audited.

        Raises:
            NotFound: the token's session or case is gone.
            ConfirmWindowClosed: the session ended longer ago than the window.
            InvalidTransition: the case cannot move that way (e.g. it is closed).
        """
        now = self._clock()
        async with transaction(self._store):
            session = await self._store.get_session(session_id)
            if session is None or session.case_number != number:
                raise NotFound("the session of this token no longer exists")
            ended_at = session.ended_at if session.state == "ended" else None
            cases.check_confirm_window(ended_at, now, self._confirm_window)
            case = await self.get(number)
            current = cases.CaseStatus(case.status)
            target = cases.customer_feedback(current, solved)
            await self._store.update_case(number, last_customer_response_at=now, updated_at=now)
            await self._store.add_customer_feedback(
                CustomerFeedback(number, session_id, now, solved, comment)
            )
            await self._audit.record(
                actor,
                AuditAction.CASE_CUSTOMER_ANSWERED,
                at=now,
                case_number=number,
                session_id=session_id,
                details={"solved": solved, "comment": comment},
            )
            if target is cases.CaseStatus.RESOLVED:
                await self._resolve(case, cases.ResolveRoute.CUSTOMER_CONFIRMED, [], actor, now)
            elif target is not current:
                await self._set_status(case, target, actor, now, route="customer_not_solved")
        return await self.get(number)

    async def note_customer_response(self, number: str, at: datetime) -> None:
        """Inside the caller's transaction: the customer answered (e.g. joined a session)."""
        await self._store.update_case(number, last_customer_response_at=at, updated_at=at)

    # --- SLA breaches ----------------------------------------------------------------------

    async def observe_breaches(self) -> BreachReport:
        """Record breaches seen for the first time (audited, counted once) and count open ones.

        Run by the sweeper. The store marks each recorded breach inside the same transaction
        as its audit event, so a breach is counted once even across restarts; the counter
        moves only after that transaction committed.
        """
        now = self._clock()
        async with transaction(self._store):
            candidates = await self._store.breach_candidates(
                now, sorted(status.value for status in cases.ACTIVE)
            )
            open_now = sum(
                1
                for case in candidates
                if case.first_response_at is None and self.response_state(case, now).breached
            )
            new = await self._record_breaches(candidates, now)
        self._count(new)
        self._metrics.sla_open_breaches.set(open_now)
        return BreachReport(open_now, new)

    async def _record_breaches(
        self, candidates: list[CaseRecord], now: datetime
    ) -> list[CaseRecord]:
        """Inside the caller's transaction: mark and audit the breaches not recorded yet."""
        new = []
        for case in candidates:
            if case.breach_recorded_at is not None or not self.response_state(case, now).breached:
                continue
            await self._store.update_case(case.number, breach_recorded_at=now)
            await self._audit.record(
                Actor.system(),
                AuditAction.CASE_SLA_BREACHED,
                at=now,
                case_number=case.number,
                details={
                    "plan": case.plan,
                    "severity": case.severity,
                    "response_due": case.response_due.isoformat(),
                    "first_response_at": (
                        case.first_response_at.isoformat() if case.first_response_at else None
                    ),
                },
            )
            new.append(case)
        return new

    def _count(self, breaches: list[CaseRecord]) -> None:
        for case in breaches:
            self._metrics.sla_breaches.labels(plan=case.plan, severity=str(case.severity)).inc()


def _stopped_at(case: CaseRecord) -> datetime | None:
    """When a case without a first response stopped being worked on (its SLA clock stopped).

    None while it is worked on. A cancelled case stopped when it was cancelled; a resolved or
    closed one (only possible without an engineer's action, e.g. data from an older broker) at
    its last change.
    """
    status = cases.CaseStatus(case.status)
    if status in cases.ACTIVE:
        return None
    if status is cases.CaseStatus.CANCELLED and case.cancelled_at is not None:
        return case.cancelled_at
    return case.updated_at
