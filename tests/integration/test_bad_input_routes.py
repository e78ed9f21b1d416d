"""Bad input on every route of the OpenAPI document: 400/413/422 with the JSON error shape.

The table is the document the real broker serves, so a route added later is covered without
editing this file. Bodies go over a raw socket: no client library sends a lying
Content-Length or a "gzip" body that is not gzip.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from broker.api.models import SESSION_STATES
from broker.sessions.session_service import SESSION_STATES as SERVICE_STATES
from broker.types import Role
from tests.conftest import Broker
from tests.raw_http import RawResponse, exchange, request_bytes

DEEP = b'{"a":' + b"[" * 1000 + b"]" * 1000 + b"}"
DEEPER = b'{"a":' + b"[" * 30000 + b"]" * 30000 + b"}"  # still under the 64 KiB limit
HUGE_INT = b'{"a":' + b"9" * 5000 + b"}"

CASE = {
    "customer_name": "Ana Ruiz",
    "company": "Imprenta Sur",
    "contact": "+34 600 000 001",
    "product": "PressLine 9000",
    "serial_number": "PL9-0001",
    "plan": "premium",
}


async def _body_routes(broker: Broker) -> list[tuple[str, str]]:
    spec = await broker.call("GET", "/api/openapi.json", status=200)
    routes = [
        (method.upper(), re.sub(r"{\w+}", "x1", path))
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if "requestBody" in op
    ]
    assert len(routes) >= 10, routes  # the table is not empty by accident
    return routes


async def _no_server_errors(broker: Broker) -> None:
    metrics = await (await broker.client.get("/metrics")).text()
    errors = re.findall(r'rsb_http_requests_total\{[^}]*status="5\d\d"[^}]*\} [1-9]', metrics)
    assert not errors, errors


async def test_every_body_route_refuses_what_breaks_the_reader(broker: Broker) -> None:
    port = broker.port
    max_body = broker.services.settings.max_body_bytes
    cases: list[tuple[str, dict[str, Any], int]] = [
        ("deep JSON", {"body": DEEP}, 400),
        ("deeper JSON", {"body": DEEPER}, 400),
        ("huge integer", {"body": HUGE_INT}, 400),
        ("fake gzip", {"body": b'{"a": 1}', "headers": {"Content-Encoding": "gzip"}}, 400),
        ("Content-Length far over the limit", {"content_length": max_body * 1000}, 413),
        (
            "100-continue far over the limit",
            {"content_length": max_body * 16384, "headers": {"Expect": "100-continue"}},
            413,
        ),
    ]
    answered = 0
    for method, path in await _body_routes(broker):
        for name, kwargs, status in cases:
            # Nothing of an oversized body is sent: the answer must come from the headers.
            resp: RawResponse = await exchange(port, request_bytes(method, path, **kwargs))
            assert resp.status == status, (method, path, name, resp)
            resp.assert_error_shape()
            answered += 1
    assert answered >= 60
    await _no_server_errors(broker)


@pytest.mark.parametrize(
    "query",
    [
        f"?after_seq={2**63}",  # SQLite's integers stop at 2**63 - 1
        "?after_seq=" + "9" * 30,
        "?since=0.5",  # not read as a Unix time
        "?since=1700000000",
        "?since=0001-01-01T00:00:00%2B05:00",  # overflows when moved to UTC
        "?until=9999-12-31T23:59:59-05:00",
        "?since=2026-01-01",  # a date is not a date-time
        "?since=2026-01-01T10:00:00",  # no offset
    ],
)
async def test_audit_query_values_that_broke_below_validation(broker: Broker, query: str) -> None:
    headers = await broker.staff("sam", Role.SECURITY)
    body = await broker.call("GET", "/api/v1/audit" + query, status=422, headers=headers)
    assert body["error"] == "validation_failed" and body["message"]


async def test_audit_query_edges_that_are_fine(broker: Broker) -> None:
    headers = await broker.staff("sam", Role.SECURITY)
    for query in (
        f"?after_seq={2**63 - 1}",
        "?since=1970-01-01T00:00:00%2B14:00&until=2999-12-31T23:59:59-12:00",
        "?since=2026-11-23T10:00:00.123Z",
    ):
        await broker.call("GET", "/api/v1/audit" + query, status=200, headers=headers)


@pytest.mark.parametrize(
    "reported_at",
    [
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-12:00",
        "1726-11-23T10:00:00Z",  # centuries ago: would sort to the top of the queue
        "0.5",
        "1700000000",
    ],
)
async def test_case_report_times_out_of_range(broker: Broker, reported_at: str) -> None:
    headers = await broker.staff("rita", Role.RSE)
    body = await broker.call(
        "POST",
        "/api/v1/cases",
        status=422,
        headers=headers,
        json={**CASE, "reported_at": reported_at},
    )
    assert "reported_at" in body["message"]


async def test_case_report_time_window_follows_the_broker_clock(broker: Broker) -> None:
    headers = await broker.staff("rita", Role.RSE)
    now = broker.clock.now
    too_old = (now - timedelta(days=30, minutes=1)).isoformat()
    await broker.call(
        "POST", "/api/v1/cases", status=422, headers=headers, json={**CASE, "reported_at": too_old}
    )
    recent = (now - timedelta(days=29)).isoformat()
    created = await broker.call(
        "POST", "/api/v1/cases", status=201, headers=headers, json={**CASE, "reported_at": recent}
    )
    fresh = await broker.call("POST", "/api/v1/cases", status=201, headers=headers, json=CASE)
    # The older report is due first, as it should be, but no earlier than its plan allows.
    assert created["response_due"] < fresh["response_due"]


async def test_invite_takes_exactly_one_target(broker: Broker) -> None:
    headers = await broker.staff("rita", Role.RSE)
    for body in (
        {"reason": "need help"},
        {"reason": "need help", "user": "eve", "level": "L3"},
    ):
        got = await broker.call(
            "POST", "/api/v1/sessions/x1/invite", status=422, headers=headers, json=body
        )
        assert "exactly one of user or level" in got["message"]


async def test_join_code_pattern_is_enforced(broker: Broker) -> None:
    for code in ("12ab34", "-123", "１２３４５６７８９０"):
        await broker.call("POST", "/api/v1/join", status=422, json={"code": code})


async def test_the_document_states_what_the_server_enforces(broker: Broker) -> None:
    spec = await broker.call("GET", "/api/openapi.json", status=200)
    schemas = spec["components"]["schemas"]
    assert schemas["CaseIn"]["properties"]["plan"]["enum"] == sorted(broker.services.cases.plans)
    assert schemas["InviteIn"]["oneOf"] == [{"required": ["user"]}, {"required": ["level"]}]
    assert "pattern" in schemas["JoinIn"]["properties"]["code"]
    params = {
        (path, p["name"]): p["schema"]
        for path, ops in spec["paths"].items()
        for op in ops.values()
        for p in op.get("parameters", [])
    }
    for state in SERVICE_STATES:
        assert state in params[("/api/v1/sessions", "state")]["pattern"]
    assert SESSION_STATES == SERVICE_STATES
    for status in ("open", "in_progress", "awaiting_customer", "resolved", "closed"):
        assert status in params[("/api/v1/cases", "status")]["pattern"]
    since = params[("/api/v1/audit", "since")]
    assert since["format"] == "date-time" and since["pattern"].startswith("^(19[7-9]")
    assert params[("/api/v1/audit", "after_seq")]["maximum"] == 2**63 - 1
    # ... and the server is no looser than the patterns: a state outside the list is refused.
    headers = await broker.staff("rita", Role.RSE)
    await broker.call("GET", "/api/v1/sessions?state=waiting,bogus", status=422, headers=headers)
    await broker.call("GET", "/api/v1/cases?status=open,bogus", status=422, headers=headers)
