"""Prometheus metrics, one registry per app so tests and multiple apps never collide."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.http_requests = Counter(
            "rsb_http_requests",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=r,
        )
        self.join_failures = Counter(
            "rsb_join_failures", "Rejected session-code attempts", ["reason"], registry=r
        )
        self.join_guess_alarms = Counter(
            "rsb_join_guess_alarms",
            "Times the global rate of failed join attempts crossed the alarm threshold",
            registry=r,
        )
        self.login_failures = Counter("rsb_login_failures", "Failed staff logins", registry=r)
        self.live_sessions = Gauge(
            "rsb_live_sessions", "Sessions with a live room on the relay", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
