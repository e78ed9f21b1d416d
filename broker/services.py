"""Build the broker's services from settings: store, audit, auth, cases, sessions."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from broker.audit.log import Actor, AuditLog
from broker.auth import passwords
from broker.auth.service import AuthService
from broker.clock import Clock
from broker.metrics import Metrics
from broker.sessions import sla
from broker.sessions.case_service import CaseService
from broker.sessions.session_service import SessionService
from broker.settings import Settings, SettingsError
from broker.storage import transaction
from broker.store.base import Store
from broker.store.sqlite import SQLiteStore
from broker.types import Role

CODE_PEPPER = "code_pepper"


@dataclass
class Services:
    settings: Settings
    store: Store
    audit: AuditLog
    auth: AuthService
    cases: CaseService
    sessions: SessionService
    metrics: Metrics

    async def close(self) -> None:
        await self.auth.close()  # the KDF pool's threads end with the app
        await self.store.close()


def load_plans(settings: Settings) -> dict[str, sla.Plan]:
    """Plans from ``plans_file``, else a ``[plans]`` table in the config file, else defaults."""
    if settings.plans_file is None:
        if settings.plans:
            try:
                return sla.load_plans({"plans": settings.plans})
            except ValueError as exc:
                raise SettingsError(f"plans: {exc}") from exc
        return sla.load_default_plans()
    import tomllib

    try:
        with open(settings.plans_file, "rb") as handle:
            return sla.load_plans(tomllib.load(handle))
    except (OSError, ValueError) as exc:
        raise SettingsError(f"plans_file {settings.plans_file}: {exc}") from exc


async def open_services(settings: Settings, clock: Clock) -> Services:
    # The one place that picks the back end; everything else sees a Store.
    store: Store = await SQLiteStore.open(settings.db)
    try:
        audit = AuditLog(store)
        metrics = Metrics()
        hash_params = passwords.HashParams(
            time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib
        )
        auth = AuthService(store, audit, settings, clock, hash_params, metrics)
        await auth.load_keyring()
        pepper = await store.get_secret(CODE_PEPPER)
        if pepper is None:
            pepper = secrets.token_bytes(32)
            async with transaction(store):
                await store.put_secret(CODE_PEPPER, pepper)
        case_service = CaseService(
            store,
            audit,
            load_plans(settings),
            clock,
            confirm_window=settings.customer_confirm_window,
            metrics=metrics,
        )
        session_service = SessionService(
            store, audit, auth, case_service, settings, metrics, clock, pepper
        )
    except BaseException:
        await store.close()
        raise
    return Services(settings, store, audit, auth, case_service, session_service, metrics)


DEMO_USERS = (
    ("desk", "Dana Desk", Role.DESK),
    ("rse", "Riley Support", Role.RSE),
    ("eng", "Evan Engineer", Role.ENGINEERING),
    ("sec", "Sam Security", Role.SECURITY),
    ("admin", "Alex Admin", Role.ADMIN),
)


async def ensure_demo_users(services: Services, credentials_file: Path) -> list[tuple[str, str]]:
    """On an empty user table, create one demo user per role with random passwords.

    The passwords are written to ``credentials_file`` (mode 0600) so that later starts can
    print them again; they exist only for local demos (``make run``).
    """
    if await services.store.count_users() == 0:
        lines = []
        for name, display, role in DEMO_USERS:
            password = secrets.token_urlsafe(12)
            await services.auth.add_user(name, display, role, password, Actor.system())
            lines.append(f"{name}\t{role.value}\t{password}\n")
        credentials_file.parent.mkdir(parents=True, exist_ok=True)
        credentials_file.touch(mode=0o600)
        credentials_file.write_text("".join(lines))
    if not credentials_file.exists():
        return []
    rows = [line.split("\t") for line in credentials_file.read_text().splitlines() if line]
    return [(row[0], row[2]) for row in rows if len(row) == 3]
