"""HTTP routes for the security team: search, verify and export the audit log."""

from __future__ import annotations

from aiohttp import web

from broker.api import models
from broker.api.principals import client_addr, staff
from broker.api.routing import ApiRoute, json_response, read_query
from broker.appkeys import CLOCK_KEY, SERVICES_KEY
from broker.audit.actions import AuditAction
from broker.audit.log import row_to_json
from broker.auth.roles import Action
from broker.store.records import AuditQuery


async def search_audit(request: web.Request) -> web.Response:
    principal = await staff(request, Action.READ_AUDIT)
    q = read_query(request, models.AuditQueryIn)
    services = request.app[SERVICES_KEY]
    # Who looked at which session's record is itself a security event.
    filters = {k: v for k, v in q.model_dump(mode="json").items() if v not in (None, 0, 1000)}
    await services.audit.append(
        principal.actor(client_addr(request)),
        AuditAction.AUDIT_SEARCHED,
        at=request.app[CLOCK_KEY](),
        details=filters,
    )
    rows = await services.audit.search(
        AuditQuery(
            case_number=q.case,
            session_id=q.session,
            actor=q.actor,
            since=q.since,
            until=q.until,
            limit=q.limit,
            after_seq=q.after_seq,
        )
    )
    return json_response({"events": [row_to_json(row) for row in rows]})


async def verify_audit(request: web.Request) -> web.Response:
    await staff(request, Action.READ_AUDIT)
    verification = await request.app[SERVICES_KEY].audit.verify()
    result = verification.result
    return json_response(
        {
            "ok": result.ok,
            "checked": result.checked,
            "first_bad_seq": result.first_bad_seq,
            "reason": result.reason,
            "head_hash": result.head_hash,
            "checkpoint_seq": verification.checkpoint_seq,
        }
    )


async def export_head(request: web.Request) -> web.Response:
    """A signed anchor of the current head, to be kept where the database's owner cannot write."""
    principal = await staff(request, Action.READ_AUDIT)
    anchor = await request.app[SERVICES_KEY].audit.export_anchor(
        principal.actor(client_addr(request)), request.app[CLOCK_KEY]()
    )
    return json_response(anchor.to_json())


async def export_audit(request: web.Request) -> web.StreamResponse:
    principal = await staff(request, Action.READ_AUDIT)
    services = request.app[SERVICES_KEY]
    await services.audit.begin_export(
        principal.actor(client_addr(request)), request.app[CLOCK_KEY]()
    )
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/x-ndjson",
            "Content-Disposition": 'attachment; filename="audit.jsonl"',
        }
    )
    await response.prepare(request)
    async for line in services.audit.export_lines():
        await response.write(line.encode() + b"\n")
    await response.write_eof()
    return response


ROUTES = [
    ApiRoute(
        "GET",
        "/api/v1/audit",
        search_audit,
        "Search audit events by case, session, actor and time",
        query=models.AuditQueryIn,
        errors=(401, 403, 422),
        tags=("audit",),
    ),
    ApiRoute(
        "GET",
        "/api/v1/audit/verify",
        verify_audit,
        "Verify the audit hash chain",
        response=models.VerifyOut,
        errors=(401, 403),
        tags=("audit",),
    ),
    ApiRoute(
        "GET",
        "/api/v1/audit/head",
        export_head,
        "The chain's head, signed by the broker's audit key, as an anchor file to keep elsewhere",
        response=models.AnchorOut,
        errors=(401, 403, 409),
        tags=("audit",),
    ),
    ApiRoute(
        "GET",
        "/api/v1/audit/export",
        export_audit,
        "All audit events as JSON lines",
        errors=(401, 403),
        tags=("audit",),
    ),
]
