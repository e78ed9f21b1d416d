"""Sessions on cases: creation with a join code, the customer's join, queue, invite, end.

An invitation names one engineer or a level. It shows in the invitees' queue until one of them
joins the session, which accepts it (audited) and hands the session over to them: the session's
holder, the engineer the customer's status check names, follows the relay's state machine.

Join codes are stored only as an HMAC under a per-installation pepper, so logs, exports and the
sessions table never show a usable code (the pepper lives in the same database file, so a thief
of the whole file could still search the code space offline within the code's minutes). Every
rejected join is counted per client address (429 after the configured number) and globally (an
alarm, never a lockout: see ``docs/security.md``, "Guessing session codes").

A customer on a phone joins for the customer part only and hands the agent part to their
computer with a handoff code (``broker.sessions.handoffs``): issued against the customer token,
redeemed at the same join endpoint, under the same per-address budget, once.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from broker.audit.actions import AuditAction
from broker.audit.log import Actor, AuditLog
from broker.auth.ratelimit import GlobalRateAlarm, Refused, Reservation, SlidingWindowLimiter
from broker.auth.service import AuthService, StaffPrincipal
from broker.clock import Clock
from broker.errors import CodeRejected, Conflict, NotFound, RateLimited, ValidationFailed
from broker.metrics import Metrics
from broker.sessions import cases, codes, handoffs
from broker.sessions.case_service import CaseService
from broker.sessions.machine import NewHolder
from broker.settings import Settings
from broker.storage import transaction
from broker.store.base import Store
from broker.store.records import Invitation, QueueEntry, SessionRecord
from broker.types import Level, Role

log = logging.getLogger(__name__)

SESSION_STATES = ("waiting", "active", "ended")
_CLOSED_CASE = {
    cases.CaseStatus.RESOLVED.value,
    cases.CaseStatus.CLOSED.value,
    cases.CaseStatus.CANCELLED.value,  # withdrawn: no work goes on under it
}


def _closed_case_message(number: str, status: cases.CaseStatus) -> str:
    """Why no session can start on the case, and what to do instead, from the case rules."""
    if cases.CaseStatus.IN_PROGRESS in cases.allowed_moves(status):
        return (
            f"case {number} is {status.value}; reopen it first "
            f"(POST /api/v1/cases/{number}/status with status in_progress)"
        )
    return f"case {number} is {status.value} and cannot be reopened; open a new case instead"


_ROLE_FOR_LEVEL = {Level.L1: Role.DESK, Level.L2: Role.RSE, Level.L3: Role.ENGINEERING}


@dataclass(frozen=True)
class NewSession:
    session: SessionRecord
    code: str
    join_link: str


@dataclass(frozen=True)
class NewHandoff:
    """A handoff code just issued: shown once on the phone, never stored in the clear."""

    code: str
    expires_at: datetime
    link: str
    lifetime: timedelta


@dataclass(frozen=True)
class Joined:
    """What a join hands out. A phone that keeps the customer part gets no agent token but a
    handoff code; a computer that redeems a handoff code gets the agent token only."""

    session: SessionRecord
    customer_token: str | None
    agent_token: str | None
    tokens_expire_at: datetime
    handoff: NewHandoff | None = None

    @property
    def part(self) -> str:
        """``both``, ``customer`` (agent part handed off) or ``agent`` (a handoff redeemed)."""
        if self.customer_token is None:
            return "agent"
        return "both" if self.agent_token is not None else "customer"


def customer_actor(session_id: str, client_addr: str) -> Actor:
    """The customer of a session as the audit log names them, on a phone or a computer."""
    return Actor(f"customer:{session_id}", "customer", client_addr)


def limiter_key(client_addr: str) -> str:
    """Rate-limit IPv6 clients per /64: one host usually owns the whole prefix."""
    try:
        address = ipaddress.ip_address(client_addr)
    except ValueError:
        return client_addr
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class SessionService:
    def __init__(
        self,
        store: Store,
        audit: AuditLog,
        auth: AuthService,
        case_service: CaseService,
        settings: Settings,
        metrics: Metrics,
        clock: Clock,
        pepper: bytes,
    ) -> None:
        self._store = store
        self._audit = audit
        self._auth = auth
        self._cases = case_service
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._pepper = pepper
        self._join_limiter = SlidingWindowLimiter(
            limit=settings.join_attempts_per_address,
            window=settings.join_attempt_window.total_seconds(),
        )
        self._guess_alarm = GlobalRateAlarm(
            threshold=settings.join_global_alarm_per_minute, window=60.0
        )
        self._handoffs = handoffs.HandoffCodes(ttl=settings.code_ttl)
        self._handoff_limiter = SlidingWindowLimiter(
            limit=handoffs.ISSUES_PER_WINDOW,
            window=settings.join_attempt_window.total_seconds(),
        )

    async def get(self, session_id: str) -> SessionRecord:
        session = await self._store.get_session(session_id)
        if session is None:
            raise NotFound(f"no session {session_id!r}")
        return session

    async def create(self, case_number: str, principal: StaffPrincipal, addr: str) -> NewSession:
        """Open a session on a case and issue its single-use join code.

        Raises:
            NotFound: no such case.
            Conflict: the case is resolved, closed or cancelled.
        """
        now = self._clock()
        actor = principal.actor(addr)
        async with transaction(self._store):
            case = await self._cases.get(case_number)
            if case.status in _CLOSED_CASE:
                raise Conflict(_closed_case_message(case_number, cases.CaseStatus(case.status)))
            code, code_hash = await self._unique_code("session")
            session = SessionRecord(
                id=secrets.token_urlsafe(16),
                case_number=case.number,
                created_by=principal.name,
                engineer_display=principal.display_name,
                engineer_level=principal.level,
                created_at=now,
                code_hash=code_hash,
                code_expires_at=now + self._settings.code_ttl,
                code_used_at=None,
                state="waiting",
                # Whoever opens a session has it in hand until someone else takes it over.
                holder_user=principal.name,
                holder_display=principal.display_name,
                holder_level=principal.level,
            )
            await self._store.insert_session(session)
            await self._audit.record(
                actor,
                AuditAction.SESSION_CREATED,
                at=now,
                case_number=case.number,
                session_id=session.id,
                details={"code_expires_at": session.code_expires_at.isoformat()},
            )
            await self._cases.start_work(case, actor, now)
        # The code rides in the fragment: browsers never send it to any server.
        link = f"{self._settings.base_url}/j#{code}"
        return NewSession(session, code, link)

    async def join(self, code_text: str, client_addr: str, *, hand_off: bool = False) -> Joined:
        """Exchange a session code for the customer's and the agent's session tokens, or a
        handoff code for the agent's.

        Args:
            code_text: What the customer typed or the join link carried.
            client_addr: The request's client address (rate limit, audit).
            hand_off: The page cannot run the agent (a phone): spend a session code for the
                customer part only and issue a handoff code for the agent part. A handoff
                code is never accepted this way.

        Raises:
            RateLimited: this address has failed too often recently.
            CodeRejected: unknown, expired or used code (one answer for all of them, session
                or handoff code, so a guesser learns nothing about which codes exist).
        """
        now = self._clock()
        # Taken before the first await, so parallel guesses cannot all pass one check.
        reservation = self.reserve_lookup(client_addr, guess=True)
        try:
            code = codes.parse_code(code_text, self._settings.code_digits)
        except ValidationFailed:
            await self._record_rejection(reservation, client_addr, now, "malformed")
            raise
        code_hash = codes.hash_code(code, self._pepper)
        session = await self._store.session_by_code_hash(code_hash)
        if session is None and not hand_off:
            return await self._redeem_handoff(code_hash, reservation, client_addr, now)
        claimed = False
        if session is not None:
            async with transaction(self._store):
                claimed = session.state == "waiting" and await self._store.claim_code(
                    session.id, now
                )
                if claimed:
                    await self._audit.record(
                        customer_actor(session.id, client_addr),
                        AuditAction.SESSION_CUSTOMER_JOINED,
                        at=now,
                        case_number=session.case_number,
                        session_id=session.id,
                        details={"agent_part": "handed_off"} if hand_off else None,
                    )
                    await self._cases.note_customer_response(session.case_number, now)
        if session is None or not claimed:
            reason = "unknown" if session is None else "used" if session.code_used_at else "expired"
            await self._record_rejection(reservation, client_addr, now, reason, session)
            raise CodeRejected(
                "this session code is not valid: it may be mistyped, used or expired"
            )
        self._join_limiter.refund(reservation)  # a customer's own code costs no budget
        customer, agent, expires = await self._auth.issue_session_tokens(
            session.id, session.case_number
        )
        if hand_off:
            # The phone never holds an agent token: the computer gets its own by the handoff.
            handoff = await self._issue_handoff(session, customer_actor(session.id, client_addr))
            return Joined(await self.get(session.id), customer, None, expires, handoff)
        return Joined(await self.get(session.id), customer, agent, expires)

    async def hand_off(self, session_id: str, client_addr: str) -> NewHandoff:
        """Issue a new handoff code for a session the caller holds the customer token of; the
        session's earlier handoff code, if any, stops working.

        Raises:
            NotFound: no such session.
            Conflict: the session has ended.
            RateLimited: this session was issued ``handoffs.ISSUES_PER_WINDOW`` codes within
                ``join_attempt_window``.
        """
        answer = self._handoff_limiter.reserve(session_id, self._clock().timestamp())
        if isinstance(answer, Refused):
            raise RateLimited(
                "too many handoff codes for this session; wait and try again",
                retry_after=answer.retry_after,
            )
        self._handoff_limiter.settle(answer)  # every issued code counts, used or not
        session = await self.get(session_id)
        if session.state == "ended":
            raise Conflict("the session has ended")
        return await self._issue_handoff(session, customer_actor(session.id, client_addr))

    async def _unique_code(self, what: str) -> tuple[str, str]:
        """A fresh code and its hash, equal to no live session or handoff code.

        Raises:
            Conflict: five draws collided (in a 10^10 space: never, in practice).
        """
        for _ in range(5):
            code = codes.generate_code(self._settings.code_digits)
            code_hash = codes.hash_code(code, self._pepper)
            if not await self._code_taken(code_hash):
                return code, code_hash
        raise Conflict(f"could not allocate a unique {what} code; try again")  # pragma: no cover

    async def _issue_handoff(self, session: SessionRecord, actor: Actor) -> NewHandoff:
        now = self._clock()
        code, code_hash = await self._unique_code("handoff")
        handoff = self._handoffs.issue(code_hash, session.id, session.case_number, now)
        async with transaction(self._store):
            await self._audit.record(
                actor,
                AuditAction.SESSION_HANDOFF_ISSUED,
                at=now,
                case_number=session.case_number,
                session_id=session.id,
                details={"expires_at": handoff.expires_at.isoformat()},
            )
        # Like the join link, the code rides in the fragment: it never reaches a server.
        link = f"{self._settings.base_url}/j#{code}"
        return NewHandoff(code, handoff.expires_at, link, handoff.expires_at - now)

    async def _redeem_handoff(
        self, code_hash: str, reservation: Reservation, client_addr: str, now: datetime
    ) -> Joined:
        """A code that is no session's: a handoff code gives the agent part, once."""
        taken = self._handoffs.take(code_hash, now)
        session = None
        if isinstance(taken, handoffs.Handoff):
            session = await self._store.get_session(taken.session_id)
        if session is None or session.state == "ended":
            reason = taken.value if isinstance(taken, handoffs.Miss) else "expired"
            await self._record_rejection(reservation, client_addr, now, reason, session)
            raise CodeRejected(
                "this session code is not valid: it may be mistyped, used or expired"
            )
        self._join_limiter.refund(reservation)
        async with transaction(self._store):
            await self._audit.record(
                customer_actor(session.id, client_addr),
                AuditAction.SESSION_HANDOFF_REDEEMED,
                at=now,
                case_number=session.case_number,
                session_id=session.id,
            )
        _, agent, expires = await self._auth.issue_session_tokens(session.id, session.case_number)
        return Joined(session, None, agent, expires)

    async def _code_taken(self, code_hash: str) -> bool:
        """Whether a session code (used or not) or a handoff code has this hash: a new code of
        either kind must never redeem as the other."""
        return self._handoffs.holds(code_hash) or (
            await self._store.session_by_code_hash(code_hash) is not None
        )

    def reserve_lookup(self, client_addr: str, *, guess: bool = False) -> Reservation:
        """Take one unit of the address's budget for a code or case look-up.

        Call it before the look-up awaits anything, then ``refund_lookup`` if it found what it
        looked for and ``fail_lookup`` (or ``_record_rejection`` for a join) if not. At most
        ``join_attempts_per_address`` look-ups per address are in flight or failed within
        ``join_attempt_window``, however many arrive at once (``docs/security.md``, "Guessing
        session codes").

        Args:
            client_addr: The request's client address.
            guess: A join-code attempt: a refusal also counts towards the global alarm.

        Returns:
            The reservation.

        Raises:
            RateLimited: with the seconds until a unit comes free.
        """
        answer = self._join_limiter.reserve(limiter_key(client_addr), self._clock().timestamp())
        if isinstance(answer, Refused):
            self._metrics.join_failures.labels(reason="rate_limited").inc()
            if guess:
                # A refused guess is still a guess: parallel guessing must raise the alarm too.
                self._count_guess(self._clock())
            raise RateLimited(
                "too many failed attempts from your address; wait and try again",
                retry_after=answer.retry_after,
            )
        return answer

    def refund_lookup(self, reservation: Reservation) -> None:
        """The look-up succeeded: its unit does not count against the address."""
        self._join_limiter.refund(reservation)

    def fail_lookup(self, reservation: Reservation) -> None:
        """The look-up failed: its unit stays counted for the rest of the window."""
        self._join_limiter.settle(reservation)

    def _count_guess(self, now: datetime) -> None:
        if self._guess_alarm.record(now.timestamp()):
            self._metrics.join_guess_alarms.inc()
            log.warning(
                "ALARM: more than %d failed session-code attempts in the last minute "
                "across all addresses; possible distributed guessing",
                self._settings.join_global_alarm_per_minute,
            )

    async def _record_rejection(
        self,
        reservation: Reservation,
        client_addr: str,
        now: datetime,
        reason: str,
        session: SessionRecord | None = None,
    ) -> None:
        self.fail_lookup(reservation)
        self._metrics.join_failures.labels(reason=reason).inc()
        self._count_guess(now)
        async with transaction(self._store):
            await self._audit.record(
                Actor("anonymous", "customer", client_addr),
                AuditAction.SESSION_JOIN_REJECTED,
                at=now,
                case_number=session.case_number if session else None,
                session_id=session.id if session else None,
                details={"reason": reason},
            )

    async def expire_codes(self) -> int:
        """End sessions whose code expired before any customer used it."""
        now = self._clock()
        stale = [
            e.session
            for e in await self._store.queue(["waiting"])
            if e.session.code_used_at is None and e.session.code_expires_at <= now
        ]
        for session in stale:
            await self._end(session, Actor.system(), now, "code_expired")
        return len(stale)

    async def queue(self, states: list[str]) -> list[QueueEntry]:
        for state in states:
            if state not in SESSION_STATES:
                raise ValidationFailed(
                    f"unknown session state {state!r}; use {', '.join(SESSION_STATES)}"
                )
        await self.expire_codes()
        return await self._store.queue(states)

    async def invite(
        self,
        session_id: str,
        principal: StaffPrincipal,
        addr: str,
        *,
        target_user: str | None,
        target_level: Level | None,
        reason: str,
    ) -> Invitation:
        """Escalate: ask another engineer, or anyone of a level, to join with a reason."""
        if (target_user is None) == (target_level is None):
            raise ValidationFailed("invite exactly one of: user, level")
        now = self._clock()
        session = await self.get(session_id)
        if session.state == "ended":
            raise Conflict("the session has ended")
        if target_user is not None:
            user = await self._store.get_user(target_user)
            if (
                user is None
                or user.disabled
                or user.role not in {r.value for r in _ROLE_FOR_LEVEL.values()}
            ):
                raise ValidationFailed(f"{target_user!r} is not an active engineer")
        invitation = Invitation(
            session_id=session_id,
            at=now,
            by_user=principal.name,
            target_user=target_user,
            target_level=target_level.value if target_level else None,
            reason=reason,
        )
        async with transaction(self._store):
            invitation = replace(invitation, id=await self._store.add_invitation(invitation))
            await self._audit.record(
                principal.actor(addr),
                AuditAction.SESSION_INVITED,
                at=now,
                case_number=session.case_number,
                session_id=session_id,
                details={
                    "target_user": target_user,
                    "target_level": invitation.target_level,
                    "reason": reason,
                },
            )
        return invitation

    async def invitations(self, session_id: str) -> list[Invitation]:
        return await self._store.list_invitations(session_id)

    async def open_invitations(self, session_ids: list[str]) -> dict[str, list[Invitation]]:
        """Per session, the invitations nobody has accepted yet (for the queue)."""
        found: dict[str, list[Invitation]] = {}
        for invitation in await self._store.open_invitations(session_ids):
            found.setdefault(invitation.session_id, []).append(invitation)
        return found

    async def accept_invitations(
        self, session_id: str, principal: StaffPrincipal, addr: str | None
    ) -> list[Invitation]:
        """An engineer joins the session: accept every open invitation that names them or
        their level, each audited once (two joining at once cannot both accept one).

        Returns:
            The invitations this join accepted (empty: the engineer came uninvited).
        """
        now = self._clock()
        session = await self.get(session_id)
        accepted = []
        async with transaction(self._store):
            for invitation in await self._store.open_invitations([session_id]):
                if invitation.target_user not in (None, principal.name):
                    continue
                if invitation.target_level not in (None, principal.level):
                    continue
                assert invitation.id is not None
                if not await self._store.accept_invitation(invitation.id, now, principal.name):
                    continue
                accepted.append(invitation)
                await self._audit.record(
                    principal.actor(addr),
                    AuditAction.SESSION_INVITATION_ACCEPTED,
                    at=now,
                    case_number=session.case_number,
                    session_id=session_id,
                    details={
                        "invitation": invitation.id,
                        "invited_by": invitation.by_user,
                        "target_user": invitation.target_user,
                        "target_level": invitation.target_level,
                        "reason": invitation.reason,
                    },
                )
        return accepted

    async def set_holder(self, session_id: str, change: NewHolder) -> None:
        """Record who has the session in hand, as the relay's state machine decided."""
        async with transaction(self._store):
            await self._store.set_session_holder(
                session_id,
                change.pid,
                change.display_name,
                change.level.value if change.level else None,
            )

    async def end(self, session_id: str, actor: Actor, reason: str) -> SessionRecord:
        session = await self.get(session_id)
        if session.state == "ended":
            raise Conflict("the session has already ended")
        await self._end(session, actor, self._clock(), reason)
        return await self.get(session_id)

    async def set_live_state(self, session_id: str, state: str, reason: str | None = None) -> None:
        """Record what the relay's state machine decided (it audits the event itself)."""
        now = self._clock()
        if state == "ended":
            self._handoffs.withdraw(session_id)
        async with transaction(self._store):
            await self._store.set_session_state(
                session_id, state, ended_at=now if state == "ended" else None, end_reason=reason
            )

    async def _end(self, session: SessionRecord, actor: Actor, now: datetime, reason: str) -> None:
        self._handoffs.withdraw(session.id)
        async with transaction(self._store):
            await self._store.set_session_state(
                session.id, "ended", ended_at=now, end_reason=reason
            )
            await self._audit.record(
                actor,
                AuditAction.SESSION_ENDED,
                at=now,
                case_number=session.case_number,
                session_id=session.id,
                details={"reason": reason},
            )
