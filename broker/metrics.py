"""Prometheus metrics, one registry per app so tests and multiple apps never collide."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


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
        self.http_connections = Gauge(
            "rsb_http_connections",
            "Open client connections (HTTP and WebSocket), counted by the server of rsb serve",
            registry=r,
        )
        self.live_sessions = Gauge(
            "rsb_live_sessions", "Sessions with a live room on the relay", registry=r
        )
        self.loop_lag = Gauge(
            "rsb_event_loop_lag_seconds",
            "How late the event loop ran a timer at its last check (broker/loop_lag.py)",
            registry=r,
        )
        self.loop_lag_max = Gauge(
            "rsb_event_loop_lag_max_seconds",
            "Largest event loop lag measured in the last minute",
            registry=r,
        )
        self.loop_lag_histogram = Histogram(
            "rsb_event_loop_lag_observed_seconds",
            "Event loop lag, one observation per check",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r,
        )
        self.kdf_jobs = Gauge(
            "rsb_kdf_jobs", "Password hashing jobs running or waiting in the KDF pool", registry=r
        )
        self.kdf_overloaded = Counter(
            "rsb_kdf_overloaded",
            "Logins and password changes refused with 503 because the KDF queue was full",
            registry=r,
        )

        self.sla_open_breaches = Gauge(
            "rsb_sla_open_breaches",
            "Cases being worked on whose first-response deadline passed without a response "
            "(as of the sweeper's last pass)",
            registry=r,
        )
        self.sla_breaches = Counter(
            "rsb_sla_breaches",
            "First-response SLA breaches, each counted once when the sweeper first sees it",
            ["plan", "severity"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
