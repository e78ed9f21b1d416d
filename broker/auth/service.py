"""Staff identities and tokens: users, login, the signing keyring, and who a token names.

The keyring lives in the store so every broker process and the CLI share it. Rotation adds a
new signing key; older keys keep verifying the tokens they signed until those expire, so a
rotation logs nobody out. A process that meets an unknown ``kid`` reloads the keyring once,
which picks up a rotation done by ``rsb keys rotate`` while the server runs.

Disabling a user and revoking a key also end live connections: this process's listeners
(the relay hub) are told at once; a broker in another process notices within the hub's
reconcile interval by comparing with the store (``enabled_users``, ``live_signing_keys``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from broker.audit.actions import AuditAction
from broker.audit.log import Actor, AuditLog
from broker.auth import passwords, tokens
from broker.auth.kdf import KdfPool
from broker.auth.ratelimit import Refused, SlidingWindowLimiter
from broker.auth.revocation import Credential, Revocation
from broker.auth.roles import Action, Policy
from broker.clock import Clock
from broker.errors import (
    Conflict,
    InvalidCredentials,
    InvalidToken,
    NotFound,
    Overloaded,
    RateLimited,
    UnknownSigningKey,
    ValidationFailed,
)
from broker.metrics import Metrics
from broker.settings import Settings
from broker.storage import transaction
from broker.store.base import Store
from broker.store.records import SigningKeyRecord, UserRecord
from broker.types import ROLE_LEVEL, Role

NAME_PATTERN = r"^[a-z][a-z0-9._-]{1,39}$"


RevocationListener = Callable[[Revocation, Actor], Awaitable[int]]
"""Told of a revocation after it is committed; returns how many connections it closed."""


@dataclass(frozen=True)
class StaffPrincipal:
    name: str
    display_name: str
    role: Role
    credential: Credential | None = field(default=None, compare=False)
    """The token this principal came from (None at login, which has no token yet)."""

    @property
    def level(self) -> str | None:
        level = ROLE_LEVEL[self.role]
        return level.value if level else None

    def actor(self, client_addr: str | None) -> Actor:
        return Actor(self.name, self.role.value, client_addr)


@dataclass(frozen=True)
class SessionPrincipal:
    """The customer or the agent of exactly one session."""

    kind: Literal["customer", "agent"]
    session_id: str
    case_number: str
    credential: Credential | None = field(default=None, compare=False)

    def actor(self, client_addr: str | None) -> Actor:
        return Actor(f"{self.kind}:{self.session_id}", self.kind, client_addr)


class AuthService:
    def __init__(
        self,
        store: Store,
        audit: AuditLog,
        settings: Settings,
        clock: Clock,
        hash_params: passwords.HashParams,
        metrics: Metrics,
    ) -> None:
        self._metrics = metrics
        self._store = store
        self._audit = audit
        self._settings = settings
        self._clock = clock
        self._hash_params = hash_params
        self.policy = Policy.default().with_overrides(
            {k: list(v) for k, v in settings.permissions.items()}
        )
        self._keyring: tokens.Keyring | None = None
        self._revocation_listeners: list[RevocationListener] = []
        self._reload_lock = asyncio.Lock()
        self._login_limiter = SlidingWindowLimiter(
            limit=settings.login_attempts_per_address,
            window=settings.login_attempt_window.total_seconds(),
        )
        self._kdf = KdfPool(hash_params, settings.kdf_workers, settings.kdf_queue_limit)
        metrics.kdf_jobs.set_function(lambda: self._kdf.jobs)

    async def close(self) -> None:
        """Stop the KDF pool (``Services.close`` calls this when the app shuts down)."""
        await self._kdf.close()

    async def _hash(self, password: str) -> str:
        try:
            return await self._kdf.hash(password)
        except Overloaded:
            self._metrics.kdf_overloaded.inc()
            raise

    # --- keyring --------------------------------------------------------------------------

    async def load_keyring(self) -> tokens.Keyring:
        records = await self._store.list_signing_keys()
        if not any(r.retired_at is None for r in records):
            await self.rotate_keys(Actor.system())
            records = await self._store.list_signing_keys()
        self._keyring = tokens.Keyring(
            [
                tokens.SigningKey.from_pem(r.kid, r.private_pem, r.created_at, r.retired_at)
                for r in records
            ]
        )
        return self._keyring

    async def keyring(self) -> tokens.Keyring:
        return self._keyring or await self.load_keyring()

    def on_revocation(self, listener: RevocationListener) -> None:
        """Call ``listener`` after each user disable and key revocation in this process."""
        self._revocation_listeners.append(listener)

    async def _revoked(self, revocation: Revocation, actor: Actor) -> int:
        closed = 0
        for listener in self._revocation_listeners:
            closed += await listener(revocation, actor)
        return closed

    async def revoke_key(self, kid: str, actor: Actor) -> str | None:
        """Delete a signing key: tokens it signed stop verifying, and their live connections
        are closed (4006 ``access_revoked``).

        The key that signs new tokens is first rotated out, so the broker is never left
        without one. Unlike ``rotate_keys``, this logs people out: it is for a key that
        leaked, not for routine rotation.

        Returns:
            The new signing key's id when the revoked key was the signing one, else None.

        Raises:
            NotFound: no such key (never was, or already revoked).
        """
        keys = {record.kid: record for record in await self._store.list_signing_keys()}
        if kid not in keys:
            raise NotFound(f"no signing key {kid!r}")
        rotated = None
        if keys[kid].retired_at is None:
            rotated = await self.rotate_keys(actor)
        async with transaction(self._store):
            await self._store.delete_signing_key(kid)
            details = {"kid": kid, "rotated_to": rotated} if rotated else {"kid": kid}
            await self._audit.record(
                actor, AuditAction.KEYS_REVOKED, at=self._clock(), details=details
            )
        self._keyring = None
        await self._revoked(Revocation("key_revoked", kid=kid), actor)
        return rotated

    async def live_signing_keys(self) -> frozenset[str]:
        """The signing key ids in the store now; a cached keyring holding a key revoked by
        another process (``rsb keys revoke``) is dropped, so its tokens stop verifying here."""
        kids = await self._store.signing_key_ids()
        if self._keyring is not None and any(k.kid not in kids for k in self._keyring.keys):
            self._keyring = None
        return kids

    async def enabled_users(self, names: Collection[str]) -> frozenset[str]:
        """Which of ``names`` are staff users that exist and are enabled (one query)."""
        return await self._store.enabled_user_names(names) if names else frozenset()

    async def rotate_keys(self, actor: Actor) -> str:
        """Add a fresh signing key; retire keys older than the longest token lifetime."""
        now = self._clock()
        key = tokens.SigningKey.generate(now)
        keep_for = max(self._settings.staff_token_ttl, self._settings.session_token_ttl)
        async with transaction(self._store):
            for old in await self._store.list_signing_keys():
                if old.retired_at is None:
                    await self._store.retire_signing_key(old.kid, now + keep_for)
            await self._store.add_signing_key(SigningKeyRecord(key.kid, key.to_pem(), now, None))
            await self._audit.record(
                actor, AuditAction.KEYS_ROTATED, at=now, details={"kid": key.kid}
            )
        self._keyring = None
        return key.kid

    async def _verify(
        self, token: str, kind: Literal["staff", "customer", "agent"]
    ) -> tokens.Claims:
        now = self._clock()
        try:
            return tokens.verify(await self.keyring(), token, now=now, kind=kind)
        except UnknownSigningKey:
            async with self._reload_lock:
                keyring = await self.load_keyring()
            return tokens.verify(keyring, token, now=now, kind=kind)

    # --- users ----------------------------------------------------------------------------

    async def add_user(
        self, name: str, display_name: str, role: Role, password: str, actor: Actor
    ) -> UserRecord:
        password_hash = await self._hash(password)
        now = self._clock()
        user = UserRecord(
            name=name,
            display_name=display_name,
            role=role.value,
            password_hash=password_hash,
            disabled=False,
            created_at=now,
        )
        async with transaction(self._store):
            if await self._store.get_user(name) is not None:
                raise Conflict(f"a user named {name!r} already exists")
            await self._store.add_user(user)
            await self._audit.record(
                actor,
                AuditAction.USER_CREATED,
                at=now,
                details={"user": name, "role": role.value},
            )
        return user

    async def set_disabled(self, name: str, disabled: bool, actor: Actor) -> int:
        """Disable (or enable) a user; disabling closes their live connections at once.

        Returns:
            How many live connections this process closed (4006 ``access_revoked``). Enabling
            again reopens nothing: the user logs in and joins anew.
        """
        now = self._clock()
        async with transaction(self._store):
            await self._store.set_user_disabled(name, disabled)
            action = AuditAction.USER_DISABLED if disabled else AuditAction.USER_ENABLED
            await self._audit.record(actor, action, at=now, details={"user": name})
        if not disabled:
            return 0
        return await self._revoked(Revocation("user_disabled", user=name), actor)

    async def list_users(self) -> list[UserRecord]:
        return await self._store.list_users()

    # --- login and principals -------------------------------------------------------------

    async def login(
        self, name: str, password: str, client_addr: str
    ) -> tuple[str, datetime, StaffPrincipal]:
        """Check a password and issue a staff token.

        Raises:
            RateLimited: too many failed (or still unanswered) attempts from this address.
            Overloaded: too many passwords are being checked at once; retry shortly.
            ValidationFailed: the password is empty, too long or not valid Unicode.
            InvalidCredentials: unknown user, wrong password or disabled account (one message
                for all three, so the answer does not reveal which names exist).
        """
        now = self._clock()
        # Only failures count: a support centre behind one NAT address logs in all morning.
        # The unit is taken before any await and refunded on success, so N parallel guesses
        # from one address never get more than the budget checked (docs/security.md).
        reservation = self._login_limiter.reserve(client_addr, now.timestamp())
        if isinstance(reservation, Refused):
            raise RateLimited("too many login attempts", retry_after=reservation.retry_after)
        try:
            user = await self._store.get_user(name)
            ok = await self._kdf.verify(user.password_hash if user else None, password)
        except (ValidationFailed, Overloaded) as exc:
            self._login_limiter.refund(reservation)  # no password was checked
            if isinstance(exc, Overloaded):
                self._metrics.kdf_overloaded.inc()
            raise
        actor = Actor(name, user.role if user else "unknown", client_addr)
        if not ok or user is None or user.disabled:
            self._login_limiter.settle(reservation)
            self._metrics.login_failures.inc()
            await self._audit.append(actor, AuditAction.AUTH_LOGIN_FAILED, at=now)
            raise InvalidCredentials("wrong user name or password")
        self._login_limiter.refund(reservation)
        principal = StaffPrincipal(user.name, user.display_name, Role(user.role))
        token, expires = await self._issue_staff(principal, now)
        new_hash = None
        if passwords.needs_rehash(user.password_hash, self._hash_params):
            # Outside the transaction: it must not hold the database for a KDF's time.
            with contextlib.suppress(Overloaded):  # optional; the next login rehashes
                new_hash = await self._kdf.hash(password)
        async with transaction(self._store):
            if new_hash is not None:
                await self._store.set_password_hash(user.name, new_hash)
            await self._audit.record(actor, AuditAction.AUTH_LOGIN, at=now)
        return token, expires, principal

    async def renew(self, principal: StaffPrincipal, client_addr: str) -> tuple[str, datetime]:
        """A fresh staff token for a caller whose token is still valid (and user enabled).

        The console renews before its token expires, so that an engineer's live connections,
        which end at their token's expiry, carry on with the new one (``renew`` on the viewer
        socket). Disabling the user stops it: ``staff_principal`` refuses his tokens first.
        """
        now = self._clock()
        token, expires = await self._issue_staff(principal, now)
        await self._audit.append(
            principal.actor(client_addr), AuditAction.AUTH_TOKEN_RENEWED, at=now
        )
        return token, expires

    async def _issue_staff(self, principal: StaffPrincipal, now: datetime) -> tuple[str, datetime]:
        ttl = self._settings.staff_token_ttl
        token = tokens.issue(
            await self.keyring(),
            subject=principal.name,
            kind="staff",
            now=now,
            ttl=ttl,
            claims={"role": principal.role.value, "name": principal.display_name},
        )
        return token, now + ttl

    async def staff_principal(self, token: str) -> StaffPrincipal:
        """The enabled staff user a token names; a disabled account's tokens stop at once."""
        claims = await self._verify(token, "staff")
        user = await self._store.get_user(claims.subject)
        if user is None or user.disabled:
            raise InvalidToken("token's user no longer exists or is disabled")
        credential = Credential(claims.kid, claims.expires_at, user.name)
        return StaffPrincipal(user.name, user.display_name, Role(user.role), credential)

    async def session_principal(
        self, token: str, kind: Literal["customer", "agent"]
    ) -> SessionPrincipal:
        claims = await self._verify(token, kind)
        if claims.session_id is None or claims.case_number is None:
            raise InvalidToken("session token lacks its session")
        credential = Credential(claims.kid, claims.expires_at)
        return SessionPrincipal(kind, claims.session_id, claims.case_number, credential)

    async def issue_session_tokens(
        self, session_id: str, case_number: str
    ) -> tuple[str, str, datetime]:
        now = self._clock()
        ttl: timedelta = self._settings.session_token_ttl
        keyring = await self.keyring()
        claims = {"sid": session_id, "case": case_number}
        customer = tokens.issue(
            keyring,
            subject=f"customer:{session_id}",
            kind="customer",
            now=now,
            ttl=ttl,
            claims=claims,
        )
        agent = tokens.issue(
            keyring, subject=f"agent:{session_id}", kind="agent", now=now, ttl=ttl, claims=claims
        )
        return customer, agent, now + ttl

    def require(self, principal: StaffPrincipal, action: Action) -> None:
        self.policy.require(principal.role, action)

    async def get_user(self, name: str) -> UserRecord:
        user = await self._store.get_user(name)
        if user is None:
            raise NotFound(f"no user named {name!r}")
        return user
