"""HTTP routes for cases, sessions, the customer's join and the public status check."""

from __future__ import annotations

from aiohttp import web

from broker.api import models
from broker.api.principals import client_addr, session_party, staff
from broker.api.qr import qr_data_url
from broker.api.routing import ApiRoute, json_response, read_model, read_query
from broker.appkeys import CLOCK_KEY, SERVICES_KEY
from broker.auth.roles import Action
from broker.auth.service import StaffPrincipal
from broker.errors import Conflict, NotFound
from broker.relay.handlers import HUB_KEY
from broker.sessions import sla
from broker.sessions.case_service import NewCase
from broker.sessions.codes import format_code
from broker.sessions.session_service import NewHandoff
from broker.store.records import Invitation, iso


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


async def create_case(request: web.Request) -> web.Response:
    principal = await staff(request, Action.CREATE_CASE)
    body = await read_model(request, models.CaseIn)
    service = request.app[SERVICES_KEY].cases
    new = NewCase(
        customer_name=body.customer_name,
        company=body.company,
        contact=body.contact,
        product=body.product,
        serial_number=body.serial_number,
        plan=body.plan,
        description=body.description,
        severity=body.severity,
        number=body.number,
        reported_at=body.reported_at,
    )
    case = await service.create(new, principal.actor(client_addr(request)))
    return json_response(service.to_json(case), status=201)


async def list_cases(request: web.Request) -> web.Response:
    await staff(request, Action.VIEW_QUEUE)
    query = read_query(request, models.CaseListQuery)
    service = request.app[SERVICES_KEY].cases
    found = await service.find(_split(query.status) or None)
    now = request.app[CLOCK_KEY]()  # one instant for the whole list
    return json_response({"cases": [service.to_json(case, now) for case in found]})


async def get_case(request: web.Request) -> web.Response:
    await staff(request, Action.VIEW_QUEUE)
    services = request.app[SERVICES_KEY]
    case = await services.cases.get(request.match_info["number"])
    sessions = await services.store.list_sessions_for_case(case.number)
    attempts = await services.store.list_contact_attempts(case.number)
    feedback = await services.cases.feedback(case.number)
    return json_response(
        {
            **services.cases.to_json(case),
            "sessions": [s.to_json() for s in sessions],
            "contact_attempts": [
                {"at": iso(a.at), "by": a.by_user, "channel": a.channel, "note": a.note}
                for a in attempts
            ],
            "customer_feedback": [f.to_json() for f in feedback],
        }
    )


async def set_case_status(request: web.Request) -> web.Response:
    principal = await staff(request, Action.UPDATE_CASE)
    body = await read_model(request, models.CaseStatusIn)
    service = request.app[SERVICES_KEY].cases
    case = await service.change_status(
        request.match_info["number"], body.status, principal.actor(client_addr(request))
    )
    return json_response(service.to_json(case))


async def cancel_case(request: web.Request) -> web.Response:
    """Cancel a case opened by mistake, then end its live sessions: nothing goes on under it."""
    principal = await staff(request, Action.CANCEL_CASE)
    body = await read_model(request, models.CaseCancelIn)
    services = request.app[SERVICES_KEY]
    actor = principal.actor(client_addr(request))
    case = await services.cases.cancel(request.match_info["number"], body.reason, actor)
    for session in await services.store.list_sessions_for_case(case.number):
        if session.state != "ended":
            await request.app[HUB_KEY].end(session.id, actor, f"case cancelled: {body.reason}")
    return json_response(services.cases.to_json(case))


async def change_case_terms(request: web.Request) -> web.Response:
    principal = await staff(request, Action.UPDATE_CASE)
    body = await read_model(request, models.CaseTermsIn)
    service = request.app[SERVICES_KEY].cases
    case = await service.change_terms(
        request.match_info["number"],
        body.severity,
        body.plan,
        body.reason,
        principal.actor(client_addr(request)),
    )
    return json_response(service.to_json(case))


async def list_plans(request: web.Request) -> web.Response:
    """The configured support plans and the severities, for forms and labels."""
    await staff(request)
    plans = request.app[SERVICES_KEY].cases.plans
    return json_response(
        {
            "severities": sla.describe_severities(),
            "default_severity": sla.DEFAULT_SEVERITY,
            "plans": [sla.describe_plan(plans[name]) for name in sorted(plans)],
        }
    )


async def add_contact_attempt(request: web.Request) -> web.Response:
    principal = await staff(request, Action.UPDATE_CASE)
    body = await read_model(request, models.ContactAttemptIn)
    attempts = await request.app[SERVICES_KEY].cases.add_contact_attempt(
        request.match_info["number"], body.channel, body.note, principal.actor(client_addr(request))
    )
    return json_response({"attempts": len(attempts)}, status=201)


async def resolve_no_answer(request: web.Request) -> web.Response:
    principal = await staff(request, Action.UPDATE_CASE)
    service = request.app[SERVICES_KEY].cases
    case = await service.resolve_no_answer(
        request.match_info["number"], principal.actor(client_addr(request))
    )
    return json_response(service.to_json(case))


async def customer_confirm(request: web.Request) -> web.Response:
    party = await session_party(request, "customer")
    body = await read_model(request, models.ConfirmIn)
    case = await request.app[SERVICES_KEY].cases.customer_feedback(
        party.session_id,
        party.case_number,
        body.solved,
        body.comment,
        party.actor(client_addr(request)),
    )
    return json_response({"case_number": case.number, "status": case.status})


async def public_status(request: web.Request) -> web.Response:
    """Case status for a customer who knows both the case number and the serial number."""
    body = await read_model(request, models.PublicStatusIn)
    services = request.app[SERVICES_KEY]
    # Reserved before the await: parallel look-ups from one address share one budget.
    reservation = services.sessions.reserve_lookup(client_addr(request))
    case = await services.store.get_case(body.case_number)
    if case is None or case.serial_number != body.serial_number:
        services.sessions.fail_lookup(reservation)
        raise NotFound("no case with that number and serial number")
    services.sessions.refund_lookup(reservation)
    sessions = await services.store.list_sessions_for_case(case.number)
    return json_response(
        {
            "case_number": case.number,
            "product": case.product,
            "status": case.status,
            "severity": case.severity,
            "updated_at": iso(case.updated_at),
            "sessions": [
                {
                    "created_at": iso(s.created_at),
                    "state": s.state,
                    # Who has it in hand now (or had it at the end), never one who left it.
                    "engineer": s.holder_display,
                    "ended_at": iso(s.ended_at) if s.ended_at else None,
                }
                for s in sessions
            ],
        }
    )


async def create_session(request: web.Request) -> web.Response:
    principal = await staff(request, Action.CREATE_SESSION)
    created = await request.app[SERVICES_KEY].sessions.create(
        request.match_info["number"], principal, client_addr(request)
    )
    return json_response(
        {
            "id": created.session.id,
            "case_number": created.session.case_number,
            "code": created.code,
            "code_display": format_code(created.code),
            "code_expires_at": iso(created.session.code_expires_at),
            "join_link": created.join_link,
        },
        status=201,
    )


def _handoff_json(handoff: NewHandoff) -> dict[str, str | int]:
    return {
        "code": handoff.code,
        "code_display": format_code(handoff.code),
        "expires_at": iso(handoff.expires_at),
        # A page counts down from its own clock, which may not agree with the broker's.
        "expires_in": int(handoff.lifetime.total_seconds()),
        "link": handoff.link,
        "qr_image": qr_data_url(handoff.link),
    }


async def join(request: web.Request) -> web.Response:
    """A session code gives both parts (or, from a phone, the customer part and a handoff
    code); a handoff code gives the agent part."""
    body = await read_model(request, models.JoinIn)
    joined = await request.app[SERVICES_KEY].sessions.join(
        body.code, client_addr(request), hand_off=body.part == "customer"
    )
    session = joined.session
    # The engineer who has the session in hand (its creator unless it was handed over).
    named = session.holder_user is not None
    return json_response(
        {
            "session_id": session.id,
            "case_number": session.case_number,
            "engineer": {
                "display_name": session.holder_display if named else session.engineer_display,
                "level": session.holder_level if named else session.engineer_level,
            },
            "part": joined.part,
            "customer_token": joined.customer_token,
            "agent_token": joined.agent_token,
            "tokens_expire_at": iso(joined.tokens_expire_at),
            "handoff": _handoff_json(joined.handoff) if joined.handoff else None,
        }
    )


async def customer_handoff(request: web.Request) -> web.Response:
    """A new handoff code for the customer's session; the previous one stops working."""
    party = await session_party(request, "customer")
    handoff = await request.app[SERVICES_KEY].sessions.hand_off(
        party.session_id, client_addr(request)
    )
    return json_response(_handoff_json(handoff), status=201)


def _for(principal: StaffPrincipal, invitation: Invitation) -> str | None:
    """Whether an invitation names the asking engineer ("user") or their level ("level")."""
    if invitation.target_user is not None:
        return "user" if invitation.target_user == principal.name else None
    return "level" if invitation.target_level == principal.level else None


async def session_queue(request: web.Request) -> web.Response:
    principal = await staff(request, Action.VIEW_QUEUE)
    query = read_query(request, models.QueueQuery)
    services = request.app[SERVICES_KEY]
    entries = await services.sessions.queue(_split(query.state))
    invited = await services.sessions.open_invitations([e.session.id for e in entries])
    now = request.app[CLOCK_KEY]()
    listed = []
    for entry in entries:
        data = entry.to_json()
        data["case"].update(services.cases.sla_json(entry.case, now))  # the broker's SLA view
        # Everyone sees who is invited; ``for_me`` says which name the asker or their level.
        data["invitations"] = [
            {**i.to_json(), "for_me": _for(principal, i)} for i in invited.get(entry.session.id, [])
        ]
        listed.append(data)
    return json_response({"sessions": listed})


async def get_session(request: web.Request) -> web.Response:
    await staff(request, Action.VIEW_QUEUE)
    sessions = request.app[SERVICES_KEY].sessions
    session = await sessions.get(request.match_info["session_id"])
    invitations = await sessions.invitations(session.id)
    return json_response({**session.to_json(), "invitations": [i.to_json() for i in invitations]})


async def invite(request: web.Request) -> web.Response:
    principal = await staff(request, Action.INVITE)
    body = await read_model(request, models.InviteIn)
    invitation = await request.app[SERVICES_KEY].sessions.invite(
        request.match_info["session_id"],
        principal,
        client_addr(request),
        target_user=body.user,
        target_level=body.level,
        reason=body.reason,
    )
    return json_response(invitation.to_json(), status=201)


async def end_session(request: web.Request) -> web.Response:
    principal = await staff(request, Action.END_SESSION)
    body = await read_model(request, models.EndIn)
    session_id = request.match_info["session_id"]
    await _ensure_live(request, session_id)
    await request.app[HUB_KEY].end(session_id, principal.actor(client_addr(request)), body.reason)
    session = await request.app[SERVICES_KEY].sessions.get(session_id)
    return json_response(session.to_json())


async def customer_end_session(request: web.Request) -> web.Response:
    party = await session_party(request, "customer")
    await _ensure_live(request, party.session_id)
    await request.app[HUB_KEY].end(
        party.session_id, party.actor(client_addr(request)), "ended by customer"
    )
    session = await request.app[SERVICES_KEY].sessions.get(party.session_id)
    return json_response(session.to_json())


async def _ensure_live(request: web.Request, session_id: str) -> None:
    session = await request.app[SERVICES_KEY].sessions.get(session_id)
    if session.state == "ended":
        raise Conflict("the session has already ended")


_NOT_FOUND = (401, 403, 404)

ROUTES = [
    ApiRoute(
        "POST",
        "/api/v1/cases",
        create_case,
        "Open a case",
        body=models.CaseIn,
        response=models.CaseStateOut,
        status=201,
        errors=(401, 403, 409),
        tags=("cases",),
    ),
    ApiRoute(
        "GET",
        "/api/v1/cases",
        list_cases,
        "List cases, most urgent first",
        query=models.CaseListQuery,
        errors=(401, 403, 422),
        tags=("cases",),
    ),
    ApiRoute(
        "GET",
        "/api/v1/cases/{number}",
        get_case,
        "A case with its sessions, contact attempts and the customer's answers",
        response=models.CaseDetailOut,
        errors=_NOT_FOUND,
        tags=("cases",),
    ),
    ApiRoute(
        "PATCH",
        "/api/v1/cases/{number}",
        change_case_terms,
        "Change a case's severity or plan (audited; the response deadline is recomputed)",
        body=models.CaseTermsIn,
        response=models.CaseStateOut,
        errors=(*_NOT_FOUND, 409),
        tags=("cases",),
    ),
    ApiRoute(
        "POST",
        "/api/v1/cases/{number}/cancel",
        cancel_case,
        "Cancel a case opened by mistake, with a reason; ends its live sessions",
        body=models.CaseCancelIn,
        response=models.CaseStateOut,
        errors=(*_NOT_FOUND, 409),
        tags=("cases",),
    ),
    ApiRoute(
        "GET",
        "/api/v1/plans",
        list_plans,
        "The configured support plans and the severities",
        response=models.PlansOut,
        errors=(401,),
        tags=("cases",),
    ),
    ApiRoute(
        "POST",
        "/api/v1/cases/{number}/status",
        set_case_status,
        "Move a case's status",
        body=models.CaseStatusIn,
        response=models.CaseStateOut,
        errors=(*_NOT_FOUND, 409),
        tags=("cases",),
    ),
    ApiRoute(
        "POST",
        "/api/v1/cases/{number}/contact-attempts",
        add_contact_attempt,
        "Record an attempt to reach the customer",
        body=models.ContactAttemptIn,
        status=201,
        errors=_NOT_FOUND,
        tags=("cases",),
    ),
    ApiRoute(
        "POST",
        "/api/v1/cases/{number}/resolve",
        resolve_no_answer,
        "Resolve after three unanswered contact attempts over ten days",
        response=models.CaseStateOut,
        errors=(*_NOT_FOUND, 409),
        tags=("cases",),
    ),
    ApiRoute(
        "POST",
        "/api/v1/cases/{number}/sessions",
        create_session,
        "Open a session on a case and get its join code",
        response=models.SessionCreatedOut,
        status=201,
        errors=(*_NOT_FOUND, 409),
        tags=("sessions",),
    ),
    ApiRoute(
        "POST",
        "/api/v1/customer/confirm",
        customer_confirm,
        "The customer says whether the problem is solved (during the session and for "
        "customer_confirm_window after it)",
        auth="customer",
        body=models.ConfirmIn,
        errors=(401, 403, 404, 409),
        tags=("customer",),
    ),
    ApiRoute(
        "POST",
        "/api/v1/customer/end",
        customer_end_session,
        "The customer ends the session",
        auth="customer",
        errors=(401, 409),
        tags=("customer",),
    ),
    ApiRoute(
        "POST",
        "/api/v1/customer/handoff",
        customer_handoff,
        "A one-time code (and its QR) that hands the session's agent part to the customer's "
        "computer, redeemed at /api/v1/join; the session's previous handoff code stops working",
        auth="customer",
        response=models.HandoffOut,
        status=201,
        errors=(401, 409, 429),
        tags=("customer",),
    ),
    ApiRoute(
        "POST",
        "/api/v1/status",
        public_status,
        "Case status by case number and product serial number (no login)",
        auth="none",
        body=models.PublicStatusIn,
        errors=(404, 429),
        tags=("customer",),
    ),
    ApiRoute(
        "POST",
        "/api/v1/join",
        join,
        "Exchange a session code for session tokens",
        auth="none",
        body=models.JoinIn,
        response=models.JoinOut,
        errors=(410, 429),
        tags=("customer",),
    ),
    ApiRoute(
        "GET",
        "/api/v1/sessions",
        session_queue,
        "Queue of sessions by state, ordered by severity and response-due time",
        query=models.QueueQuery,
        errors=(401, 403, 422),
        tags=("sessions",),
    ),
    ApiRoute(
        "GET",
        "/api/v1/sessions/{session_id}",
        get_session,
        "A session",
        errors=_NOT_FOUND,
        tags=("sessions",),
    ),
    ApiRoute(
        "POST",
        "/api/v1/sessions/{session_id}/invite",
        invite,
        "Invite an engineer or a level (escalation), with a reason",
        body=models.InviteIn,
        status=201,
        errors=(*_NOT_FOUND, 409),
        tags=("sessions",),
    ),
    ApiRoute(
        "POST",
        "/api/v1/sessions/{session_id}/end",
        end_session,
        "End a session",
        body=models.EndIn,
        errors=(*_NOT_FOUND, 409),
        tags=("sessions",),
    ),
]
