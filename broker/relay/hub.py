"""All live sessions of this broker process, keyed by session id.

Rooms are created when the first participant connects and dropped when the session ends. A
ticker applies ``Tick`` so the state machine can expire participants (and a lost agent) whose
resume window has passed.

The hub also keeps what each live peer authenticated with (``Credential``) and ends a
connection whose access is gone: at once when this process disables its user or revokes its
key (``revoke``), at its token's expiry (``tick``), and within ``RECONCILE_SECONDS`` when
another process did it (``reconcile``). Docs: docs/security.md, "Ending live connections".
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import deque
from collections.abc import AsyncIterator, Collection, Coroutine, Iterable, Mapping
from datetime import datetime
from typing import Any

from broker.audit.actions import AuditAction
from broker.audit.log import Actor
from broker.auth.revocation import Credential, ExpiryQueue, Revocation, stale
from broker.clock import Clock
from broker.errors import AccessRevoked, CloseCode, Conflict, InvalidTransition, TokenExpired
from broker.relay.flow import FlowLimits
from broker.relay.peer import Peer
from broker.relay.room import Close, Room, Write
from broker.services import Services
from broker.sessions import machine as m

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0
CLEANUP_GRACE_SECONDS = 10.0
"""How long shutdown waits for connections' cleanups (audit rows) before closing the database."""
RECONCILE_SECONDS = 2.0
"""How often live connections are checked against the store, to notice a user disabled or a
key revoked by another process (``rsb users disable``, ``rsb keys revoke``)."""
_RECENT_REVOCATIONS = 256

_CLOSE_MESSAGES = {
    "user_disabled": "access revoked: user disabled",
    "key_revoked": "access revoked: signing key revoked",
    "token_expired": "token expired",
}


class SessionEnded(Conflict):
    close_code = CloseCode.SESSION_ENDED
    code = "session_ended"


class Hub:
    def __init__(self, services: Services, clock: Clock, organisation: str) -> None:
        self._services = services
        self._clock = clock
        self._organisation = organisation
        self._rooms: dict[str, Room] = {}
        self._creating = asyncio.Lock()
        self._cleanups: set[asyncio.Task[None]] = set()
        self.limits = FlowLimits(heartbeat=services.settings.relay_heartbeat.total_seconds())
        # Every live peer that has a credential, with its room; and the same peers by deadline.
        self._live: dict[Peer, Room] = {}
        self._expiry: ExpiryQueue[Peer] = ExpiryQueue()
        # This process's latest revocations, numbered, for connections being opened meanwhile.
        self._revocations: deque[tuple[int, Revocation]] = deque(maxlen=_RECENT_REVOCATIONS)
        self._revocation_count = 0
        services.auth.on_revocation(self.revoke)

    def room(self, session_id: str) -> Room | None:
        return self._rooms.get(session_id)

    @property
    def rooms(self) -> Mapping[str, Room]:
        return self._rooms

    async def room_for(self, session_id: str) -> Room:
        """The live room of a session that has not ended, created on first use.

        Raises:
            NotFound: no such session.
            SessionEnded: the session has ended.
        """
        room = self._rooms.get(session_id)
        if room is not None and not room.ended:
            return room
        async with self._creating:
            session = await self._services.sessions.get(session_id)
            if session.state == "ended" or (room is not None and room.ended):
                raise SessionEnded("the session has ended")
            room = self._rooms.get(session_id)
            if room is None:
                room = Room(
                    session.id,
                    session.case_number,
                    organisation=self._organisation,
                    resume_window=self._services.settings.resume_window,
                    clock=self._clock,
                    audit=self._audit_sink(session.id, session.case_number),
                    holder=functools.partial(self._services.sessions.set_holder, session.id),
                )
                self._rooms[session_id] = room
            return room

    def _audit_sink(self, session_id: str, case_number: str) -> Any:
        services = self._services

        async def sink(actor: Actor, action: AuditAction, details: Mapping[str, Any]) -> None:
            await services.audit.append(
                actor,
                action,
                at=self._clock(),
                case_number=case_number,
                session_id=session_id,
                details=details,
            )

        return sink

    async def apply(self, room: Room, event: m.Event, actor: Actor) -> m.Transition:
        """Apply an event to a room and finish the session if it ended."""
        was_ended = room.ended
        transition = await room.apply(event, actor)
        if room.ended and not was_ended:
            await self._finish(room)
        return transition

    async def end(self, session_id: str, actor: Actor, reason: str) -> None:
        """End a session from the API: through its live room if there is one."""
        room = self._rooms.get(session_id)
        if room is None or room.ended:
            await self._services.sessions.end(session_id, actor, reason)
            return
        await self.apply(room, m.Ended(at=self._clock(), by=actor.role, reason=reason), actor)

    async def _finish(self, room: Room) -> None:
        reason = room.state.end_reason or "ended"
        await self._services.sessions.set_live_state(room.session_id, "ended", reason)
        for peer in room.everyone():
            peer.close_soon(CloseCode.SESSION_ENDED, f"session ended: {reason}"[:100])
        self._rooms.pop(room.session_id, None)

    # --- who may stay connected -----------------------------------------------------------

    def revocation_mark(self) -> int:
        """Taken by an endpoint before it authenticates, and handed to ``watch`` afterwards."""
        return self._revocation_count

    def watch(self, room: Room, peer: Peer, mark: int) -> None:
        """Track a new peer's credential until ``forget``: its expiry and what revokes it.

        Call it before the peer joins the room. A user disabled (or key revoked) between the
        endpoint's token check and here was not seen by that check, and ``revoke`` did not
        see this peer yet: the revocations since ``mark`` close that gap.

        Raises:
            AccessRevoked: a revocation made since ``mark`` covers the peer's credential.
            TokenExpired: the token's deadline has passed.
        """
        credential = peer.credential
        if credential is None:
            return
        for number, revocation in self._revocations:
            if number > mark and revocation.matches(credential):
                raise AccessRevoked(_CLOSE_MESSAGES[revocation.reason])
        if self._clock() >= credential.deadline():
            raise TokenExpired(_CLOSE_MESSAGES["token_expired"])
        self._live[peer] = room
        self._expiry.add(peer, credential.deadline())

    def renew(self, peer: Peer, credential: Credential) -> None:
        """A live peer presented a renewed token (``renew``): it now ends at that one's expiry,
        and the revocations that cover the new token are the ones that close it."""
        if peer in self._live and not peer.closed:
            peer.credential = credential
            self._expiry.add(peer, credential.deadline())

    def forget(self, peer: Peer) -> None:
        """The peer's connection is over: stop tracking it (its endpoint's cleanup calls this)."""
        self._live.pop(peer, None)
        self._expiry.discard(peer)

    async def revoke(self, revocation: Revocation, actor: Actor) -> int:
        """Close every live connection a revocation covers, with 4006 ``access_revoked``.

        Every such peer is marked closed and taken off its room's routes before the first
        await, so not one more frame of it is relayed: its endpoint drops whatever it still
        reads (``Peer.closed``), and its departure releases its grants (``EngineerLeft``, not
        a resumable disconnect). A disabled engineer who is away within a resume window is
        removed from the session too, so enabling the account again brings nothing back.

        Returns:
            How many connections were closed; each is audited (``relay.closed``) in its
            session.
        """
        self._revocation_count += 1
        self._revocations.append((self._revocation_count, revocation))
        matched = [
            (room, peer) for peer, room in self._live.items() if revocation.matches(peer.credential)
        ]
        closed = self._close(matched, CloseCode.ACCESS_REVOKED, revocation.reason)
        await self._audit_closed(closed, actor)
        if revocation.user is not None:
            await self._remove_absent({revocation.user}, actor)
        return len(closed)

    async def reconcile(self) -> int:
        """Close connections whose key or user another process withdrew (``RECONCILE_SECONDS``).

        Two small queries: the signing key ids (always, which also drops a keyring holding
        a revoked key), and, only while staff are connected or away within a resume window,
        which of their names are still enabled users.

        Returns:
            How many connections were closed.
        """
        auth = self._services.auth
        kids = await auth.live_signing_keys()
        absent = {
            p.pid
            for room in self._rooms.values()
            for p in room.state.participants
            if not p.connected
        }
        names = {c.user for peer in self._live if (c := peer.credential) and c.user} | absent
        if not self._live and not absent:
            return 0
        enabled = await auth.enabled_users(names)
        closed = 0
        for reason in ("key_revoked", "user_disabled"):
            matched = [
                (room, peer)
                for peer, room in self._live.items()
                if stale(peer.credential, kids, enabled) == reason
            ]
            cut = self._close(matched, CloseCode.ACCESS_REVOKED, reason)
            await self._audit_closed(cut, Actor.system())
            closed += len(cut)
        await self._remove_absent(absent - enabled, Actor.system())
        return closed

    def _close(
        self, peers: Iterable[tuple[Room, Peer]], code: CloseCode, reason: str
    ) -> list[tuple[Room, list[Write]]]:
        """Cut peers (``Room.cut``) and close them, with no await: each cut peer's room comes
        back with the audit rows still to write."""
        closed = []
        for room, peer in list(peers):
            self.forget(peer)
            if peer.closed:
                continue  # already on its way out for another reason
            effects = room.cut(peer, code, _CLOSE_MESSAGES[reason], reason)
            for effect in effects:
                if isinstance(effect, Close):
                    effect.peer.close_soon(effect.code, effect.message)
            closed.append((room, [e for e in effects if isinstance(e, Write)]))
        return closed

    async def _audit_closed(self, closed: list[tuple[Room, list[Write]]], actor: Actor) -> None:
        for room, rows in closed:
            for row in rows:
                action = row.action  # a Write of the room's: an AuditAction member
                try:
                    await room.audit(actor, action, row.details)
                except Exception:  # the socket is closed either way; the others get their rows
                    log.exception("could not audit relay.closed in session %s", room.session_id)

    async def _remove_absent(self, names: Collection[str], actor: Actor) -> None:
        """Take users who are away (within a resume window) out of their sessions."""
        if not names:
            return
        for room in list(self._rooms.values()):
            for participant in room.state.participants:
                if participant.pid in names and not participant.connected and not room.ended:
                    with contextlib.suppress(InvalidTransition):  # they came or went meanwhile
                        await self.apply(
                            room, m.EngineerLeft(at=self._clock(), pid=participant.pid), actor
                        )

    def _expire(self, now: datetime) -> list[tuple[Room, list[Write]]]:
        due = [(self._live[peer], peer) for peer in self._expiry.pop_due(now) if peer in self._live]
        return self._close(due, CloseCode.TOKEN_EXPIRED, "token_expired")

    async def tick(self) -> None:
        now = self._clock()
        expired = self._expire(now)
        await self._audit_closed(expired, Actor.system())
        for room in list(self._rooms.values()):
            # Applying Tick to every live room every second blocks the event loop for
            # O(rooms), delaying every session's frames; only a running window can expire.
            if not room.resume_window_running:
                continue
            try:
                await self.apply(room, m.Tick(at=now), Actor.system())
            except Exception:
                log.exception("tick failed for session %s", room.session_id)

    def ping_all(self) -> list[Peer]:
        """One heartbeat round: ping every connected peer, return those that now owe a pong."""
        return [peer for room in self._rooms.values() for peer in room.everyone() if peer.ping()]

    @staticmethod
    def drop_silent(pinged: list[Peer]) -> None:
        """Drop the peers of a round that have not answered its ping."""
        for peer in pinged:
            if peer.owes_pong and not peer.closed:
                log.info("peer %s/%s did not answer the heartbeat ping", peer.kind, peer.slot)
                peer.drop()

    async def run_to_end(self, cleanup: Coroutine[Any, Any, None]) -> None:
        """Run a connection's cleanup to the end even if its handler is being cancelled.

        A server that cancels handlers when the client goes away (aiohttp can, and does at
        shutdown) would otherwise cut the cleanup at its first await: the state would say
        "disconnected" without the audit row, or a departed viewer would stay in the room.
        """
        task = asyncio.create_task(cleanup)
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)
        await asyncio.shield(task)

    async def wait_cleanups(self) -> None:
        """Shutdown: let the cleanups of closed connections finish before the database closes
        (they write audit rows; cut off, they fail on a closed connection)."""
        if self._cleanups:
            await asyncio.wait(set(self._cleanups), timeout=CLEANUP_GRACE_SECONDS)

    async def close_all(self) -> None:
        """Server shutdown: tell every peer we are going away (1001), keep sessions resumable."""
        for room in list(self._rooms.values()):
            for peer in room.everyone():
                peer.close_soon(1001, "broker shutting down")
            for peer in room.everyone():
                await peer.wait_closed()


@contextlib.asynccontextmanager
async def ticking(hub: Hub) -> AsyncIterator[None]:
    """Run the hub's timers: the state machine's tick (and token expiry), the relay
    heartbeat, and the check for access withdrawn by another process."""

    async def tick() -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            try:
                await hub.tick()
            except Exception:  # a failed round must not stop the ticker for good
                log.exception("relay tick failed; will retry")

    async def reconcile() -> None:
        while True:
            await asyncio.sleep(RECONCILE_SECONDS)
            try:
                await hub.reconcile()
            except Exception:
                log.exception("revocation check failed; will retry")

    async def heartbeat() -> None:
        # One task for every connection, instead of aiohttp's per-socket heartbeat: that one
        # re-arms its timer on every read (a loop callback per read, thousands a second at 200
        # live sessions), this one costs nothing between rounds (docs/benchmarks.md).
        half = hub.limits.heartbeat / 2
        while True:
            pinged = hub.ping_all()
            await asyncio.sleep(half)
            hub.drop_silent(pinged)
            await asyncio.sleep(half)

    tasks = [
        asyncio.create_task(tick(), name="relay-ticker"),
        asyncio.create_task(heartbeat(), name="relay-heartbeat"),
        asyncio.create_task(reconcile(), name="relay-revocations"),
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
