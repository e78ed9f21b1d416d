"""Bad input of every kind gets a specific 4xx with a JSON body, never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from broker.types import Role
from tests.conftest import Broker

CASE = {
    "customer_name": "Ana Ruiz",
    "company": "Imprenta Sur",
    "contact": "+34 600 000 001",
    "product": "PressLine 9000",
    "serial_number": "PL9-0001",
    "plan": "premium",
}


async def _error(broker: Broker, method: str, path: str, status: int, **kw: Any) -> str:
    resp = await broker.client.request(method, path, **kw)
    body = await resp.json()
    assert resp.status == status, (resp.status, body)
    assert set(body) >= {"error", "message"} and body["message"]
    return str(body["error"])


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        (b"{not json", 400, "bad_request"),
        (b"[1, 2]", 400, "bad_request"),
        (b"\xff\xfe", 400, "bad_request"),
        (b'{"severity": "1"}', 422, "validation_failed"),
        (b'{"customer_name": 5}', 422, "validation_failed"),
    ],
)
async def test_malformed_bodies(broker: Broker, payload: bytes, status: int, code: str) -> None:
    headers = await broker.staff("rita", Role.RSE)
    got = await _error(
        broker,
        "POST",
        "/api/v1/cases",
        status,
        data=payload,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert got == code


async def test_wrong_types_unknown_fields_and_bounds(broker: Broker) -> None:
    headers = await broker.staff("rita", Role.RSE)
    for bad in (
        {**CASE, "severity": "1"},  # strings are not coerced into numbers
        {**CASE, "severity": 5},
        {**CASE, "severity": True},
        {**CASE, "is_admin": True},  # unknown field
        {**CASE, "customer_name": "x" * 201},
        {**CASE, "plan": "gold"},  # unknown plan
        {**CASE, "number": "../etc/passwd"},
        {**CASE, "number": "C-000001"},  # our own pattern is reserved
        {**CASE, "reported_at": "2999-01-01T00:00:00+00:00"},
        {**CASE, "reported_at": "2026-01-01T00:00:00"},  # naive time
        {k: v for k, v in CASE.items() if k != "company"},
    ):
        resp = await broker.client.post("/api/v1/cases", json=bad, headers=headers)
        body = await resp.json()
        assert resp.status == 422, (bad, resp.status, body)
        assert body["error"] == "validation_failed"


async def test_huge_body_is_413(broker: Broker) -> None:
    headers = await broker.staff("rita", Role.RSE)
    huge = {**CASE, "description": "x" * 200_000}
    assert (
        await _error(broker, "POST", "/api/v1/cases", 413, json=huge, headers=headers)
        == "payload_too_large"
    )


async def test_wrong_content_type(broker: Broker) -> None:
    assert (
        await _error(
            broker,
            "POST",
            "/api/v1/join",
            400,
            data="code=1",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        == "bad_request"
    )


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic abc",
        "Bearer not.a.jwt",
        "Bearer " + "a" * 5000,
        "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJyaXRhIn0.",
    ],
)
async def test_bad_tokens_are_401(broker: Broker, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    assert await _error(broker, "GET", "/api/v1/sessions", 401, headers=headers) in {
        "invalid_token",
        "unauthorized",
    }


async def test_oversized_header_is_400_not_500(broker: Broker) -> None:
    resp = await broker.client.get(
        "/api/v1/sessions", headers={"Authorization": "Bearer " + "a" * 20000}
    )
    assert resp.status == 400


async def test_token_in_url_is_ignored(broker: Broker) -> None:
    headers = await broker.staff("rita", Role.RSE)
    token = headers["Authorization"].removeprefix("Bearer ")
    for query in (f"?token={token}", f"?access_token={token}"):
        resp = await broker.client.get("/api/v1/cases" + query)
        assert resp.status == 401
    assert (await broker.client.get("/api/v1/cases", headers=headers)).status == 200


async def test_customer_token_is_not_a_staff_token(broker: Broker) -> None:
    headers = await broker.staff("rita", Role.RSE)
    case = await broker.call("POST", "/api/v1/cases", status=201, headers=headers, json=CASE)
    created = await broker.call(
        "POST", f"/api/v1/cases/{case['number']}/sessions", status=201, headers=headers
    )
    joined = await broker.call("POST", "/api/v1/join", status=200, json={"code": created["code"]})
    for token in (joined["customer_token"], joined["agent_token"]):
        resp = await broker.client.get(
            "/api/v1/sessions", headers={"Authorization": f"Bearer {token}"}
        )
        assert resp.status == 401
    # ... and a staff token is not a customer token either.
    resp = await broker.client.post(
        "/api/v1/customer/confirm", json={"solved": True}, headers=headers
    )
    assert resp.status == 401


async def test_unknown_routes_and_methods(broker: Broker) -> None:
    assert await _error(broker, "GET", "/api/v1/nope", 404) == "not_found"
    assert await _error(broker, "DELETE", "/api/v1/join", 405) == "method_not_allowed"


@pytest.mark.parametrize(
    "query",
    ["?limit=0", "?limit=abc", "?since=yesterday", "?after_seq=-1", "?case=1&case=2", "?bogus=1"],
)
async def test_bad_query_parameters(broker: Broker, query: str) -> None:
    headers = await broker.staff("sam", Role.SECURITY)
    assert await _error(broker, "GET", "/api/v1/audit" + query, 422, headers=headers) == (
        "validation_failed"
    )


async def test_bad_queue_state(broker: Broker) -> None:
    headers = await broker.staff("rita", Role.RSE)
    assert (
        await _error(broker, "GET", "/api/v1/sessions?state=everything", 422, headers=headers)
        == "validation_failed"
    )


async def test_security_headers(broker: Broker) -> None:
    resp = await broker.client.get("/healthz")
    assert resp.status == 200
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Frame-Options"] == "DENY"
