"""Request and response shapes of the HTTP API (pydantic; unknown fields are rejected).

Strict mode: a number sent as a string is a type error, not silently coerced; this is what
"wrong types get a clear 4xx" means in practice. Every string has a length bound.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from broker.types import Level, Role

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
    plan: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    reported_at: AwareDatetime | None = Field(
        default=None,
        description="When the customer reported the problem (imports from a ticketing "
        "system); the SLA counts from here. Defaults to now; never in the future.",
    )


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
    status: Annotated[str, StringConstraints(max_length=100)] | None = None


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
    code: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class EngineerOut(Model):
    display_name: str
    level: Level | None


class JoinOut(Model):
    session_id: str
    case_number: str
    engineer: EngineerOut
    customer_token: str
    agent_token: str
    tokens_expire_at: datetime


class QueueQuery(QueryModel):
    state: Annotated[str, StringConstraints(max_length=100)] = "waiting,active"


class InviteIn(Model):
    user: UserNameField | None = None
    level: Level | None = None
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500)]


class EndIn(Model):
    reason: Annotated[str, StringConstraints(max_length=500)] = "ended by engineer"


# --- audit ----------------------------------------------------------------------------------


class AuditQueryIn(QueryModel):
    case: Annotated[str, StringConstraints(max_length=40)] | None = None
    session: Annotated[str, StringConstraints(max_length=64)] | None = None
    actor: Annotated[str, StringConstraints(max_length=100)] | None = None
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    after_seq: Annotated[int, Field(ge=0)] = 0
    limit: Annotated[int, Field(ge=1, le=5000)] = 1000


class VerifyOut(Model):
    ok: bool
    checked: int
    first_bad_seq: int | None
    reason: str | None
    head_hash: str
