"""Request and response shapes of the HTTP API (pydantic; unknown fields are rejected).

Strict mode: a number sent as a string is a type error, not silently coerced; this is what
"wrong types get a clear 4xx" means in practice. Every string has a length bound, every
number and time a range that the code below them (SQLite's 64-bit integers, time zone
arithmetic) can hold, and each bound is in the OpenAPI document built from these models.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from broker.sessions.cases import CaseStatus
from broker.types import Level, Role

MAX_INT64 = 2**63 - 1
"""SQLite's largest integer: a sequence number above it cannot even be compared in a query."""

FIRST_YEAR, LAST_YEAR = 1970, 2999
"""Times are accepted in these years (as written, before any offset is applied): far enough
from year 1 and 9999 that moving them to UTC or to any plan's zone, or adding a response time,
can never overflow."""

SESSION_STATES = ("waiting", "active", "ended")
"""The states of the session queue (``broker.sessions.session_service``; a test keeps them equal;
imported from there, this module would be part of an import cycle)."""

REPORTED_AT_MAX_AGE = timedelta(days=30)
"""A case imported from a ticketing system may have been reported at most this long ago."""

# RFC 3339 date-time, what the document's "format: date-time" means, in the accepted years: a
# number (a Unix time to pydantic, even in strict mode) or a date without a time is not one.
_RFC3339 = re.compile(
    r"(19[7-9][0-9]|2[0-9]{3})-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})"
)


def _rfc3339_text(value: Any) -> Any:
    if not isinstance(value, str):
        return value  # a datetime object (from code, not a client), checked by the type
    if not _RFC3339.fullmatch(value):
        raise ValueError(
            "must be an RFC 3339 date-time with an offset, e.g. 2026-11-23T10:00:00Z, "
            f"in the years {FIRST_YEAR}-{LAST_YEAR}"
        )
    # Parsed here: strict mode takes no text from a validator, and the text is already checked.
    return datetime.fromisoformat(value)


def _in_range(value: datetime) -> datetime:
    if not FIRST_YEAR <= value.year <= LAST_YEAR:  # a datetime object that bypassed the text
        raise ValueError(f"must be in the years {FIRST_YEAR}-{LAST_YEAR}")
    return value


Instant = Annotated[
    AwareDatetime,
    BeforeValidator(_rfc3339_text),
    AfterValidator(_in_range),
    Field(
        json_schema_extra={"pattern": "^" + _RFC3339.pattern + "$"},
        description=f"RFC 3339 date-time with an offset, in the years {FIRST_YEAR}-{LAST_YEAR}",
    ),
]
"""A point in time as clients send it: text with an offset, in years the broker can compute
with."""


def _comma_list(values: tuple[str, ...]) -> str:
    choice = "|".join(re.escape(value) for value in values)
    return f"^ *({choice}) *( *, *({choice}) *)*$"


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(max_length=8000)]
UserNameField = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9._-]{1,39}$")]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class QueryModel(BaseModel):
    """Query strings are text by nature, so these models coerce (``?limit=10``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --- auth -----------------------------------------------------------------------------------


class LoginIn(Model):
    username: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class UserOut(Model):
    name: str
    display_name: str
    role: Role
    level: Level | None = None


class LoginOut(Model):
    token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_at: datetime
    user: UserOut


class TokenOut(Model):
    token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_at: datetime


class UserIn(Model):
    name: UserNameField
    display_name: Text
    role: Role
    password: Annotated[str, StringConstraints(min_length=12, max_length=1024)]


# --- cases ----------------------------------------------------------------------------------


class CaseIn(Model):
    number: Annotated[str, StringConstraints(min_length=1, max_length=40)] | None = Field(
        default=None, description="Keep the external ticketing system's number; else generated"
    )
    customer_name: Text
    company: Text
    contact: Text
    product: Text
    serial_number: Text
    description: LongText = ""
    severity: Annotated[int, Field(ge=1, le=4)] = 3
    plan: Annotated[str, StringConstraints(min_length=1, max_length=40)] = Field(
        description="One of the broker's configured support plans (the document served by "
        "a broker lists them)"
    )
    reported_at: Instant | None = Field(
        default=None,
        description="When the customer reported the problem (imports from a ticketing "
        "system); the SLA counts from here. Defaults to now; never in the future and at most "
        f"{REPORTED_AT_MAX_AGE.days} days in the past.",
    )

    @field_validator("reported_at")
    @classmethod
    def _recent(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        # The broker's clock comes as context (read_model); without one, the range applies.
        now = (info.context or {}).get("now")
        if value is not None and isinstance(now, datetime):
            if value < now - REPORTED_AT_MAX_AGE:
                raise ValueError(f"must be at most {REPORTED_AT_MAX_AGE.days} days in the past")
            if value > now:
                raise ValueError("must not be in the future")
        return value


class CaseOut(Model):
    number: str
    customer_name: str
    company: str
    contact: str
    product: str
    serial_number: str
    description: str
    severity: int
    plan: str
    status: str
    created_by: str
    created_at: datetime
    updated_at: datetime
    response_due: datetime
    first_response_at: datetime | None
    first_response_met: bool | None


class CaseStatusIn(Model):
    status: Literal["in_progress", "awaiting_customer", "closed"]


class ContactAttemptIn(Model):
    channel: Literal["phone", "email", "sms", "other"]
    note: LongText = ""


class CaseListQuery(QueryModel):
    status: (
        Annotated[
            str,
            StringConstraints(max_length=100, pattern=_comma_list(tuple(CaseStatus))),
            Field(description="Comma-separated case statuses; all cases when absent"),
        ]
        | None
    ) = None


class PublicStatusIn(Model):
    case_number: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    serial_number: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class ConfirmIn(Model):
    solved: bool
    comment: LongText = ""


# --- sessions -------------------------------------------------------------------------------


class SessionCreatedOut(Model):
    id: str
    case_number: str
    code: str
    code_display: str
    code_expires_at: datetime
    join_link: str


class JoinIn(Model):
    code: Annotated[
        str,
        StringConstraints(min_length=1, max_length=64, pattern=r"^\s*[0-9]([ .-]*[0-9])*\s*$"),
        Field(
            description="The code the customer was given (a session code, or a handoff code "
            "a phone showed): its digits (as many as the broker's code_digits), optionally "
            "separated by spaces, dashes or dots"
        ),
    ]
    part: Literal["both", "customer"] = Field(
        default="both",
        description="customer: this page cannot run the agent (a phone); spend a session "
        "code for the customer part only and get a handoff code for the agent part",
    )


class EngineerOut(Model):
    display_name: str
    level: Level | None


class HandoffOut(Model):
    """A one-time code that hands a session's agent part to another device (single use,
    valid until ``expires_at``); the link carries it in its fragment, as a join link does."""

    code: str
    code_display: str
    expires_at: datetime
    expires_in: int = Field(description="Seconds from now until the code expires")
    link: str
    qr_image: str = Field(description="The link as a QR code: an SVG image in a data: URL")


class JoinOut(Model):
    session_id: str
    case_number: str
    engineer: EngineerOut
    part: Literal["both", "customer", "agent"] = Field(
        description="both: a session code; customer: a session code with the agent part "
        "handed off (see handoff); agent: a handoff code redeemed"
    )
    customer_token: str | None
    agent_token: str | None
    tokens_expire_at: datetime
    handoff: HandoffOut | None = None


class QueueQuery(QueryModel):
    state: Annotated[
        str,
        StringConstraints(max_length=100, pattern=_comma_list(SESSION_STATES)),
        Field(description="Comma-separated session states"),
    ] = "waiting,active"


class InviteIn(Model):
    """Invite one engineer by name, or everyone of a level: exactly one of the two."""

    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": ["user"]}, {"required": ["level"]}]}
    )

    user: UserNameField | None = None
    level: Level | None = None
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500)]

    @model_validator(mode="after")
    def _one_target(self) -> InviteIn:
        if (self.user is None) == (self.level is None):
            raise ValueError("give exactly one of user or level")
        return self


class EndIn(Model):
    reason: Annotated[str, StringConstraints(max_length=500)] = "ended by engineer"


# --- audit ----------------------------------------------------------------------------------


class AuditQueryIn(QueryModel):
    case: Annotated[str, StringConstraints(max_length=40)] | None = None
    session: Annotated[str, StringConstraints(max_length=64)] | None = None
    actor: Annotated[str, StringConstraints(max_length=100)] | None = None
    since: Instant | None = None
    until: Instant | None = None
    after_seq: Annotated[int, Field(ge=0, le=MAX_INT64)] = 0
    limit: Annotated[int, Field(ge=1, le=5000)] = 1000


class VerifyOut(Model):
    ok: bool
    checked: int
    first_bad_seq: int | None
    reason: str | None
    head_hash: str
    checkpoint_seq: int | None
    """The newest signed checkpoint the chain was checked against (None before the first)."""


class AnchorOut(Model):
    """A signed head anchor: what ``rsb audit verify --anchor FILE`` reads."""

    format: Literal["rsb-audit-anchor/1"]
    seq: int
    hash: str
    at: str
    kid: str
    public_key: str
    signature: str


# --- case cancellation, terms, SLA view and plans (issue 11) --------------------------------

Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500)]


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # "absent" is not a value a client could send


class CaseCancelIn(Model):
    """Withdraw a case opened by mistake (duplicate, wrong customer); the reason is audited."""

    reason: Reason


class CaseTermsIn(Model):
    """Change a case's severity, plan or both; the response deadline is recomputed."""

    model_config = ConfigDict(
        json_schema_extra={"anyOf": [{"required": ["severity"]}, {"required": ["plan"]}]}
    )

    # Absent means "unchanged"; an explicit null is refused (the document says so: no null).
    severity: Annotated[int, Field(ge=1, le=4)] | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra=_no_default
    )
    plan: Annotated[str, StringConstraints(min_length=1, max_length=40)] | SkipJsonSchema[None] = (
        Field(
            default=None,
            description="One of the broker's configured support plans",
            json_schema_extra=_no_default,
        )
    )
    reason: Reason

    @field_validator("severity", "plan", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("leave the field out to keep it; null is not a value")
        return value

    @model_validator(mode="after")
    def _something(self) -> CaseTermsIn:
        if self.severity is None and self.plan is None:
            raise ValueError("give severity, plan or both")
        return self


class CancellationOut(Model):
    at: datetime
    by: str
    reason: str


class CaseStateOut(CaseOut):
    """A case with the broker's SLA view: the console shows this, it computes nothing itself."""

    breached: bool = Field(
        description="The first response came late, or none came and the deadline passed while "
        "the case was worked on"
    )
    response_seconds_left: int | None = Field(
        description="While waiting for the first response: seconds until response_due, "
        "negative once overdue; null once a response came or the case stopped being worked on"
    )
    sla_as_of: datetime = Field(description="The broker's time these SLA fields are computed at")
    cancellation: CancellationOut | None


class CustomerFeedbackOut(Model):
    at: datetime
    session_id: str
    solved: bool
    comment: str


class CaseDetailOut(CaseStateOut):
    sessions: list[dict[str, Any]]
    contact_attempts: list[dict[str, Any]]
    customer_feedback: list[CustomerFeedbackOut]


class SeverityOut(Model):
    severity: int
    name: str = Field(description="One word: catastrophic, severe, moderate, low")
    description: str


class BusinessHoursOut(Model):
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]]
    opens: str = Field(description="HH:MM, the plan's local time")
    closes: str = Field(description="HH:MM, the plan's local time")
    holidays: list[str] = Field(description="ISO dates on which the clock does not run")


class PlanOut(Model):
    name: str
    coverage: Literal["24x7", "business"]
    timezone: str
    response_hours: dict[str, float] = Field(
        description="First-response target in hours, per severity ('1' ... '4')"
    )
    business_hours: BusinessHoursOut | None


class PlansOut(Model):
    severities: list[SeverityOut]
    default_severity: int
    plans: list[PlanOut]
