"""Every audit action name the broker writes: one vocabulary, not strings spread over modules.

``AuditLog.record`` refuses a name that is not here, so a new kind of event is added to this
enum first (and to the table in ``docs/architecture.md``, "Where audit happens";
``tests/unit/test_audit_actions.py`` holds both to the source). Names are ``area.event`` and
never change once written: stored events, exports and the audit page match on them. A
``StrEnum``, so a member is the plain string on the wire and compares equal to it.
"""

from __future__ import annotations

from enum import StrEnum, unique


@unique
class AuditAction(StrEnum):
    # Staff sign-in, users and token signing keys (AuthService).
    AUTH_LOGIN = "auth.login"
    AUTH_LOGIN_FAILED = "auth.login_failed"
    AUTH_TOKEN_RENEWED = "auth.token_renewed"
    USER_CREATED = "user.created"
    USER_DISABLED = "user.disabled"
    USER_ENABLED = "user.enabled"
    KEYS_ROTATED = "keys.rotated"
    KEYS_REVOKED = "keys.revoked"

    # The audit log itself (AuditLog and its handlers).
    AUDIT_SEARCHED = "audit.searched"
    AUDIT_EXPORTED = "audit.exported"
    AUDIT_HEAD_EXPORTED = "audit.head_exported"
    AUDIT_KEY_ROTATED = "audit.key_rotated"

    # Cases (CaseService).
    CASE_CREATED = "case.created"
    CASE_STATUS_CHANGED = "case.status_changed"
    CASE_FIRST_RESPONSE = "case.first_response"
    CASE_CONTACT_ATTEMPT = "case.contact_attempt"
    CASE_CUSTOMER_ANSWERED = "case.customer_answered"
    CASE_CANCELLED = "case.cancelled"
    CASE_TERMS_CHANGED = "case.terms_changed"
    CASE_SLA_BREACHED = "case.sla_breached"

    # Stored sessions (SessionService).
    SESSION_CREATED = "session.created"
    SESSION_CUSTOMER_JOINED = "session.customer_joined"
    SESSION_JOIN_REJECTED = "session.join_rejected"
    SESSION_HANDOFF_ISSUED = "session.handoff_issued"
    SESSION_HANDOFF_REDEEMED = "session.handoff_redeemed"
    SESSION_INVITATION_ACCEPTED = "session.invitation_accepted"

    # Live sessions: the state machine's effects (broker/sessions/machine.py).
    SESSION_AGENT_CONNECTED = "session.agent_connected"
    SESSION_AGENT_RESUMED = "session.agent_resumed"
    SESSION_AGENT_DISCONNECTED = "session.agent_disconnected"
    SESSION_PARTICIPANT_JOINED = "session.participant_joined"
    SESSION_PARTICIPANT_LEFT = "session.participant_left"
    SESSION_PARTICIPANT_DISCONNECTED = "session.participant_disconnected"
    SESSION_PARTICIPANT_RESUMED = "session.participant_resumed"
    SESSION_PARTICIPANT_DROPPED = "session.participant_dropped"
    SESSION_CONSENT_REQUESTED = "session.consent_requested"
    SESSION_CONSENT_GRANTED = "session.consent_granted"
    SESSION_CONSENT_REFUSED = "session.consent_refused"
    SESSION_CONSENT_REVOKED = "session.consent_revoked"
    SESSION_CONSENT_RELEASED = "session.consent_released"
    SESSION_CONTROL_GRANTED = "session.control_granted"
    SESSION_CONTROL_REVOKED = "session.control_revoked"
    SESSION_PAUSED = "session.paused"
    SESSION_RESUMED = "session.resumed"
    # Both the machine and SessionService (an invitation, or an end without a live room).
    SESSION_INVITED = "session.invited"
    SESSION_ENDED = "session.ended"

    # The relay's connections (broker/relay/).
    SESSION_CHAT = "session.chat"
    RELAY_INPUT_DROPPED = "relay.input_dropped"
    RELAY_REPLACED = "relay.replaced"
    RELAY_CLOSED = "relay.closed"
