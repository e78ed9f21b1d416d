"""Cases: opening with an SLA deadline, first response, status moves and resolution.

Rules live in the pure modules (``sla``, ``cases``); this service loads, applies, stores and
audits, each operation in one store transaction.
"""

from __future__ import annotations

from datetime import datetime

from broker.api.models import CaseIn
from broker.appkeys import Clock
from broker.audit.log import Actor, AuditLog
from broker.errors import NotFound, ValidationFailed
from broker.sessions import cases, sla
from broker.store.records import CaseRecord, ContactAttempt
from broker.store.sqlite import SQLiteStore

ENGINEER_ROLES = frozenset({"desk", "rse", "engineering"})


class CaseService:
    def __init__(
        self, store: SQLiteStore, audit: AuditLog, plans: dict[str, sla.Plan], clock: Clock
    ) -> None:
        self._store = store
        self._audit = audit
        self._plans = plans
        self._clock = clock

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

    async def create(self, data: CaseIn, actor: Actor) -> CaseRecord:
        """Open a case; its response deadline follows from plan, severity and report time.

        Raises:
            ValidationFailed: unknown plan, bad external number, report time in the future.
            Conflict: the external number is already taken.
        """
        now = self._clock()
        plan = self._plans.get(data.plan)
        if plan is None:
            raise ValidationFailed(
                f"unknown plan {data.plan!r}; known plans: {', '.join(sorted(self._plans))}"
            )
        reported = data.reported_at or now
        if reported > now:
            raise ValidationFailed("reported_at is in the future")
        async with self._store.transaction():
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
                "case.created",
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

        Runs inside the caller's transaction.
        """
        if case.first_response_at is not None or actor.role not in ENGINEER_ROLES:
            return
        met = sla.first_response(case.response_due, at)
        await self._store.update_case(
            case.number, first_response_at=at, first_response_met=met, updated_at=at
        )
        await self._audit.record(
            actor,
            "case.first_response",
            at=at,
            case_number=case.number,
            details={"met": met, "due": case.response_due.isoformat()},
        )

    async def _move(
        self, case: CaseRecord, new: cases.CaseStatus, actor: Actor, at: datetime, **details: str
    ) -> None:
        cases.check_transition(cases.CaseStatus(case.status), new)
        await self._store.update_case(case.number, status=new.value, updated_at=at)
        await self._audit.record(
            actor,
            "case.status_changed",
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
        await self._store.update_case(case.number, status=status.value, updated_at=at)
        await self._audit.record(
            actor,
            "case.status_changed",
            at=at,
            case_number=case.number,
            details={"from": case.status, "to": status.value, "route": route.value},
        )

    async def change_status(self, number: str, status: str, actor: Actor) -> CaseRecord:
        now = self._clock()
        async with self._store.transaction():
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
        async with self._store.transaction():
            case = await self.get(number)
            await self._store.add_contact_attempt(
                ContactAttempt(number, now, actor.name, channel, note)
            )
            await self._audit.record(
                actor,
                "case.contact_attempt",
                at=now,
                case_number=number,
                details={"channel": channel},
            )
            await self.note_engineer_action(case, actor, now)
        return await self._store.list_contact_attempts(number)

    async def resolve_no_answer(self, number: str, actor: Actor) -> CaseRecord:
        """Resolve without the customer: only after the documented unanswered attempts."""
        now = self._clock()
        async with self._store.transaction():
            case = await self.get(number)
            attempts = [a.at for a in await self._store.list_contact_attempts(number)]
            await self._resolve(case, cases.ResolveRoute.NO_ANSWER, attempts, actor, now)
        return await self.get(number)

    async def customer_feedback(self, number: str, solved: bool, actor: Actor) -> CaseRecord:
        """The customer says the problem is solved (resolves) or not (back in progress)."""
        now = self._clock()
        async with self._store.transaction():
            case = await self.get(number)
            await self._store.update_case(number, last_customer_response_at=now, updated_at=now)
            if solved:
                await self._resolve(case, cases.ResolveRoute.CUSTOMER_CONFIRMED, [], actor, now)
            else:
                if case.status != cases.CaseStatus.IN_PROGRESS.value:
                    await self._move(case, cases.CaseStatus.IN_PROGRESS, actor, now)
                await self._audit.record(
                    actor, "case.customer_not_solved", at=now, case_number=number
                )
        return await self.get(number)

    async def note_customer_response(self, number: str, at: datetime) -> None:
        """Inside the caller's transaction: the customer answered (e.g. joined a session)."""
        await self._store.update_case(number, last_customer_response_at=at, updated_at=at)
