"""All broker settings in one frozen object, read once at start-up.

Precedence, lowest to highest: built-in defaults, the TOML file (``--config`` or
``RSB_CONFIG``), environment variables, command-line flags. A bad value stops start-up with an
error naming the setting; nothing is silently replaced by a default. Every field is listed in
``docs/configuration.md`` (a test keeps the two in step).
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from broker.event_loop import EVENT_LOOPS, EventLoopChoice

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class SettingsError(ValueError):
    """A setting has a value the broker cannot run with."""


def _seconds(value: Any) -> timedelta:
    seconds = float(value)
    if seconds <= 0:
        raise ValueError("must be a positive number of seconds")
    return timedelta(seconds=seconds)


def _token_ttl(value: Any) -> timedelta:
    ttl = _seconds(value)
    if ttl > timedelta(hours=12):
        raise ValueError("must be at most 43200 seconds (12 h): tokens are short-lived")
    return ttl


def _positive_int(value: Any) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError("must be a positive integer")
    return number


def _non_negative_int(value: Any) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("must be an integer of 0 or more")
    return number


def _port(value: Any) -> int:
    number = int(value)
    if not 0 <= number <= 65535:
        raise ValueError("must be a port number 0-65535")
    return number


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("must be true or false")


def _str_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    if isinstance(value, list | tuple):
        return tuple(str(item) for item in value)
    raise ValueError("must be a comma-separated string or a list")


def _networks(value: Any) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in _str_list(value))


def _event_loop(value: Any) -> EventLoopChoice:
    text = str(value).strip().lower()
    for choice in EVENT_LOOPS:
        if text == choice:
            return choice
    raise ValueError(f"must be one of {', '.join(EVENT_LOOPS)}")


def _heartbeat(value: Any) -> timedelta:
    interval = _seconds(value)
    if not timedelta(seconds=1) <= interval <= timedelta(hours=1):
        raise ValueError("must be between 1 and 3600 seconds")
    return interval


def _code_digits(value: Any) -> int:
    number = int(value)
    if not 6 <= number <= 16:
        raise ValueError("must be between 6 and 16 digits")
    return number


def _optional_version(value: Any) -> tuple[int, ...] | None:
    """``"0.2.0"`` -> ``(0, 2, 0)``; empty means no minimum."""
    text = str(value or "").strip()
    if not text:
        return None
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(p.isdigit() and len(p) <= 6 for p in parts):
        raise ValueError("must be a version such as 0.2.0 (or empty for no minimum)")
    return tuple(int(p) for p in parts)


def _optional_path(value: Any) -> Path | None:
    return Path(value) if value not in (None, "") else None


def _path(value: Any) -> Path:
    if value in (None, ""):
        raise ValueError("must be a path")
    return Path(value)


_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")  # as they appear in an Origin


@dataclass(frozen=True)
class Settings:
    """Everything the broker can be configured with; see ``docs/configuration.md``."""

    host: str = "127.0.0.1"
    port: int = 8080
    db: str = "./var/rsb.db"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    public_url: str = ""
    organisation: str = "Remote Support"
    allowed_origins: tuple[str, ...] = ()
    trusted_proxies: tuple[Network, ...] = ()
    event_loop: EventLoopChoice = "auto"
    demo_users: bool = False
    code_digits: int = 10
    code_ttl: timedelta = timedelta(minutes=10)
    resume_window: timedelta = timedelta(minutes=2)
    relay_heartbeat: timedelta = timedelta(seconds=20)
    agent_connect_timeout: timedelta = timedelta(minutes=30)
    min_agent_version: tuple[int, ...] | None = None
    staff_token_ttl: timedelta = timedelta(hours=1)
    session_token_ttl: timedelta = timedelta(hours=12)
    customer_confirm_window: timedelta = timedelta(hours=1)
    join_attempts_per_address: int = 10
    join_attempt_window: timedelta = timedelta(minutes=10)
    join_global_alarm_per_minute: int = 600
    login_attempts_per_address: int = 20
    login_attempt_window: timedelta = timedelta(minutes=5)
    max_body_bytes: int = 64 * 1024
    request_header_timeout: timedelta = timedelta(seconds=20)
    request_body_timeout: timedelta = timedelta(seconds=30)
    plans_file: Path | None = None
    downloads_dir: Path = Path("dist/agent")
    release_public_key: Path | None = None
    permissions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    plans: Mapping[str, Any] = field(default_factory=dict)
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    kdf_workers: int = 2
    kdf_queue_limit: int = 16

    @property
    def base_url(self) -> str:
        """Where customers and engineers reach the broker (used in join links)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        scheme = "https" if self.tls_cert else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def origins(self) -> frozenset[str]:
        """Origins allowed to open WebSockets: the configured list plus the broker's own.

        A broker on a loopback address without a public URL is reached as ``localhost`` as
        often as by its number, so both spellings of the loopback origin count as its own.
        """
        own = {self.base_url}
        if not self.public_url and self.host in _LOOPBACK_HOSTS:
            scheme = "https" if self.tls_cert else "http"
            own |= {f"{scheme}://{name}:{self.port}" for name in _LOOPBACK_NAMES}
        return frozenset(self.allowed_origins) | own

    @classmethod
    def load(
        cls,
        environ: Mapping[str, str],
        *,
        config_file: str | Path | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Build settings from a TOML file, the environment and explicit overrides.

        Raises:
            SettingsError: naming the first setting whose value is unusable.
        """
        raw: dict[str, Any] = {}
        path = config_file or environ.get("RSB_CONFIG")
        if path:
            try:
                with open(path, "rb") as handle:
                    raw.update(tomllib.load(handle))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise SettingsError(f"cannot read config file {path}: {exc}") from exc
        for name in _FIELD_CASTS:
            env_name = f"RSB_{name.upper()}"
            if env_name in environ:
                raw[name] = environ[env_name]
        raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return cls.from_mapping(raw)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> Settings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise SettingsError(f"unknown setting(s): {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, value in raw.items():
            if name == "plans":
                if not isinstance(value, Mapping):
                    raise SettingsError("setting plans: must be a table of [plans.NAME]")
                values[name] = dict(value)
                continue
            if name == "permissions":
                values[name] = _permissions(value)
                continue
            try:
                values[name] = _FIELD_CASTS[name](value)
            except (TypeError, ValueError) as exc:
                raise SettingsError(f"setting {name}={value!r}: {exc}") from exc
        settings = replace(cls(), **values)
        if (settings.tls_cert is None) != (settings.tls_key is None):
            raise SettingsError("tls_cert and tls_key must be given together")
        return settings


def _permissions(value: Any) -> Mapping[str, tuple[str, ...]]:
    if not isinstance(value, Mapping):
        raise SettingsError("setting permissions: must be a table of action = [roles]")
    return {str(k): _str_list(v) for k, v in value.items()}


_FIELD_CASTS: dict[str, Callable[[Any], Any]] = {
    "host": str,
    "port": _port,
    "db": str,
    "tls_cert": _optional_path,
    "tls_key": _optional_path,
    "public_url": str,
    "organisation": str,
    "allowed_origins": _str_list,
    "trusted_proxies": _networks,
    "event_loop": _event_loop,
    "demo_users": _bool,
    "code_digits": _code_digits,
    "code_ttl": _seconds,
    "resume_window": _seconds,
    "relay_heartbeat": _heartbeat,
    "agent_connect_timeout": _seconds,
    "min_agent_version": _optional_version,
    "staff_token_ttl": _token_ttl,
    "session_token_ttl": _token_ttl,
    "customer_confirm_window": _seconds,
    "join_attempts_per_address": _positive_int,
    "join_attempt_window": _seconds,
    "join_global_alarm_per_minute": _positive_int,
    "login_attempts_per_address": _positive_int,
    "login_attempt_window": _seconds,
    "max_body_bytes": _positive_int,
    "request_header_timeout": _seconds,
    "request_body_timeout": _seconds,
    "plans_file": _optional_path,
    "downloads_dir": _path,
    "release_public_key": _optional_path,
    "argon2_time_cost": _positive_int,
    "argon2_memory_kib": _positive_int,
    "kdf_workers": _non_negative_int,
    "kdf_queue_limit": _non_negative_int,
}
