"""``create_app(settings)``: the one constructor of the broker's aiohttp application.

Used by ``rsb serve`` and by every test. Resources (store, services, background sweeper) are
opened in ``cleanup_ctx`` and closed in reverse order; nothing lives at module level.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version

from aiohttp import web

from broker import loop_lag
from broker.api import audit_routes, auth_routes, download_routes, session_routes
from broker.api.middleware import count_requests, error_middleware, security_headers
from broker.api.openapi import build_openapi
from broker.api.routing import ApiRoute, add_routes, json_response
from broker.api.server import http_handler_args
from broker.appkeys import CLOCK_KEY, SERVICES_KEY, SETTINGS_KEY
from broker.audit.log import Actor
from broker.clock import Clock
from broker.relay.handlers import HUB_KEY, add_relay_routes
from broker.relay.hub import Hub, ticking
from broker.services import open_services
from broker.settings import Settings
from broker.web import add_web_routes

log = logging.getLogger(__name__)

SWEEP_INTERVAL_SECONDS = 30.0
AGENT_LOST_AFTER_RESTART = "agent_lost_after_restart"
"""End reason of a session whose agent did not come back within the resume window of a restart."""
AGENT_NEVER_CONNECTED = "agent_never_connected"
"""End reason of a session whose code was used but whose agent never connected in time."""
STARTED_KEY: web.AppKey[datetime] = web.AppKey("started", datetime)


def broker_version() -> str:
    try:
        return version("remote-support-broker")
    except PackageNotFoundError:  # running from a source tree without an install
        return "0.0.0+source"


def utc_now() -> datetime:
    return datetime.now(UTC)


API_ROUTES: list[ApiRoute] = [
    *auth_routes.ROUTES,
    *session_routes.ROUTES,
    *audit_routes.ROUTES,
    *download_routes.ROUTES,
]


async def healthz(request: web.Request) -> web.Response:
    services = request.app[SERVICES_KEY]
    await services.store.audit_head()  # proves the database answers
    return json_response({"status": "ok", "version": broker_version()})


async def metrics(request: web.Request) -> web.Response:
    body = request.app[SERVICES_KEY].metrics.render()
    return web.Response(body=body, content_type="text/plain", charset="utf-8")


async def openapi(request: web.Request) -> web.Response:
    plans = sorted(request.app[SERVICES_KEY].cases.plans)
    return json_response(build_openapi(API_ROUTES, version=broker_version(), plans=plans))


async def _services_ctx(app: web.Application) -> AsyncIterator[None]:
    services = await open_services(app[SETTINGS_KEY], app[CLOCK_KEY])
    app[SERVICES_KEY] = services
    yield
    await services.close()


async def _loop_lag_ctx(app: web.Application) -> AsyncIterator[None]:
    async with loop_lag.monitoring(app[SERVICES_KEY].metrics):
        yield


async def _relay_ctx(app: web.Application) -> AsyncIterator[None]:
    hub = Hub(app[SERVICES_KEY], app[CLOCK_KEY], organisation=app[SETTINGS_KEY].organisation)
    app[HUB_KEY] = hub
    async with ticking(hub):
        yield
    await hub.wait_cleanups()  # before _services_ctx closes the database they write to


async def _going_away(app: web.Application) -> None:
    """Tell every peer the broker is going away (1001) while their sockets are still open.

    This runs in ``on_shutdown``: by the time ``cleanup_ctx`` unwinds, aiohttp has already
    dropped the connections without a close frame, which clients saw as an abnormal closure
    (1006) instead of the documented "reconnect and resume".
    """
    await app[HUB_KEY].close_all()


async def end_sessions_lost_in_restart(app: web.Application) -> int:
    """End sessions left ``active`` by an earlier broker process whose agent never came back.

    The resume window of a lost agent runs in its live room (``Hub.tick``), and rooms live in
    memory: after a restart an ``active`` session has no room until someone connects, and a
    room opened by an engineer's console has no agent to lose, so neither would ever end.
    Within one process a session only becomes ``active`` when its agent connects to its room,
    so an ``active`` session whose agent has not connected since this process started has
    been without one at least that long: once that exceeds the resume window, it is over.

    Returns:
        How many sessions were ended.
    """
    services = app[SERVICES_KEY]
    hub = app[HUB_KEY]
    if app[CLOCK_KEY]() - app[STARTED_KEY] <= services.settings.resume_window:
        return 0
    lost = []
    for entry in await services.store.queue(["active"]):
        room = hub.room(entry.session.id)
        if room is not None and (
            room.state.agent_connected or room.state.agent_disconnected_at is not None
        ):
            continue  # its agent came back: the room's own resume window applies
        lost.append(entry.session.id)
    return await _end_each(hub, lost, AGENT_LOST_AFTER_RESTART)


async def end_sessions_without_agent(app: web.Application) -> int:
    """End sessions whose code was used ``agent_connect_timeout`` ago and still have no agent.

    The customer joined, then never ran the agent (or it could not reach the broker): the
    session would wait in the queue until an engineer ended it by hand. A session that is
    still ``waiting`` has never had its agent connected (the first connection makes it
    ``active``); one whose agent is connecting right now is left alone.

    Returns:
        How many sessions were ended.
    """
    services = app[SERVICES_KEY]
    hub = app[HUB_KEY]
    deadline = app[CLOCK_KEY]() - services.settings.agent_connect_timeout
    overdue = []
    for entry in await services.store.queue(["waiting"]):
        used = entry.session.code_used_at
        if used is None or used > deadline:
            continue
        room = hub.room(entry.session.id)
        if room is not None and (room.agent is not None or room.state.agent_connected):
            continue
        overdue.append(entry.session.id)
    return await _end_each(hub, overdue, AGENT_NEVER_CONNECTED)


async def _end_each(hub: Hub, session_ids: list[str], reason: str) -> int:
    """End the sessions as the system; returns how many ended."""
    ended = 0
    for session_id in session_ids:
        try:
            await hub.end(session_id, Actor.system(), reason)
        except Exception:  # one bad session must not keep the others going
            log.exception("could not end session %s (%s)", session_id, reason)
            continue
        ended += 1
    return ended


async def sweep(app: web.Application) -> None:
    """One pass of the background sweeper (the tests run it directly)."""
    services = app[SERVICES_KEY]
    await services.sessions.expire_codes()
    await end_sessions_without_agent(app)
    await end_sessions_lost_in_restart(app)
    # Picks up `rsb keys rotate` run by another process: new tokens use the new key.
    await services.auth.load_keyring()
    services.metrics.live_sessions.set(len(app[HUB_KEY].rooms))
    await services.cases.observe_breaches()  # SLA: record new breaches, gauge the open ones
    await services.audit.checkpoint(app[CLOCK_KEY]())  # sign the head if it moved since the last


async def _sweeper_ctx(app: web.Application) -> AsyncIterator[None]:
    app[STARTED_KEY] = app[CLOCK_KEY]()

    async def run() -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_SECONDS)
            try:
                await sweep(app)
            except Exception:
                log.exception("session sweeper failed; will retry")

    task = asyncio.create_task(run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def create_app(settings: Settings, *, clock: Clock = utc_now) -> web.Application:
    """Build the broker application; nothing is opened until the app starts."""
    app = web.Application(
        middlewares=[security_headers, count_requests, error_middleware],
        client_max_size=settings.max_body_bytes,
        # Any runner of this app logs paths without query strings and times out request heads.
        handler_args=http_handler_args(settings),
    )
    app[SETTINGS_KEY] = settings
    app[CLOCK_KEY] = clock
    app.cleanup_ctx.append(download_routes.catalogue_ctx)  # a bad release key stops start-up
    app.cleanup_ctx.append(_services_ctx)
    app.cleanup_ctx.append(_loop_lag_ctx)
    app.cleanup_ctx.append(_relay_ctx)
    app.cleanup_ctx.append(_sweeper_ctx)
    app.on_shutdown.append(_going_away)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/openapi.json", openapi)
    add_routes(app, API_ROUTES)
    add_relay_routes(app)
    add_web_routes(app)
    return app
