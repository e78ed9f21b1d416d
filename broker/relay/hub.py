"""All live sessions of this broker process, keyed by session id.

Rooms are created when the first participant connects and dropped when the session ends. A
ticker applies ``Tick`` so the state machine can expire participants (and a lost agent) whose
resume window has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Coroutine, Mapping
from typing import Any

from broker.appkeys import Clock
from broker.audit.log import Actor
from broker.errors import CloseCode, Conflict
from broker.relay.flow import FlowLimits
from broker.relay.peer import Peer
from broker.relay.room import Room
from broker.services import Services
from broker.sessions import machine as m

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0
CLEANUP_GRACE_SECONDS = 10.0
"""How long shutdown waits for connections' cleanups (audit rows) before closing the database."""


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

        async def sink(actor: Actor, action: str, details: Mapping[str, Any]) -> None:
            async with services.store.transaction():
                await services.audit.record(
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

    async def tick(self) -> None:
        now = self._clock()
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
    """Run the hub's two timers: the state machine's tick and the relay heartbeat."""

    async def tick() -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            await hub.tick()

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
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
