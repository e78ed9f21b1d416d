"""Issue and verify the broker's Ed25519-signed JWTs, with the clock passed in.

Keys and rotation live in ``broker.auth.keys`` (re-exported here). Every check that depends on
time is done here against the caller's ``now``, not by pyjwt, which would read the system clock.

Where tokens travel (never in URLs) is ``broker.auth.bearer``, also re-exported here.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import jwt

from broker.auth.bearer import COMPACT_JWS
from broker.auth.bearer import MAX_TOKEN_CHARS as MAX_TOKEN_CHARS
from broker.auth.bearer import bearer_from_header as bearer_from_header
from broker.auth.bearer import token_from_subprotocols as token_from_subprotocols
from broker.auth.keys import LEEWAY as LEEWAY
from broker.auth.keys import MAX_TTL as MAX_TTL
from broker.auth.keys import Keyring as Keyring
from broker.auth.keys import SigningKey as SigningKey
from broker.errors import InvalidToken, UnknownSigningKey
from broker.types import CaseNumber, Role, SessionId

TokenKind = Literal["staff", "customer", "agent"]
ISSUER = "rsb"
AUDIENCES: Mapping[str, str] = {k: f"rsb:{k}" for k in ("staff", "customer", "agent")}

_KIND_CLAIMS: Mapping[str, frozenset[str]] = {
    "staff": frozenset({"role"}),
    "customer": frozenset({"sid", "case"}),
    "agent": frozenset({"sid", "case"}),
}
_OPTIONAL_CLAIMS: Mapping[str, frozenset[str]] = {
    "staff": frozenset({"name"}),  # display name, shown to customers next to the level
    "customer": frozenset(),
    "agent": frozenset(),
}
_MAX_CLAIM_CHARS = 256


@dataclass(frozen=True)
class Claims:
    """A verified token's contents.

    Staff tokens set ``role`` (and ``name`` if issued with one); customer and agent tokens set
    ``session_id`` and ``case_number``.
    """

    kind: TokenKind
    subject: str
    issued_at: datetime
    expires_at: datetime
    jti: str
    kid: str
    role: Role | None = None
    name: str | None = None
    session_id: SessionId | None = None
    case_number: CaseNumber | None = None


def issue(
    keyring: Keyring,
    *,
    subject: str,
    kind: TokenKind,
    now: datetime,
    ttl: timedelta,
    claims: Mapping[str, str],
) -> str:
    """Sign a token with the ring's active key.

    Args:
        keyring: Signs with ``keyring.active``.
        subject: ``sub``: the staff user name, or the participant (``customer``/``agent``).
        kind: Which audience the token is for.
        now: Timezone-aware issue time (``iat`` and ``nbf``).
        ttl: Lifetime, at most ``MAX_TTL``.
        claims: Staff: ``role`` and optionally ``name``. Customer and agent: ``sid`` and
            ``case``. Nothing else, so tokens stay small and say only what verify() reads.

    Returns:
        The compact JWT.

    Raises:
        ValueError: Bad kind, ttl, subject or claims, naive ``now``, or no active key.
    """
    if kind not in _KIND_CLAIMS:
        raise ValueError(f"unknown token kind {kind!r}")
    required, optional = _KIND_CLAIMS[kind], _OPTIONAL_CLAIMS[kind]
    if not required <= set(claims) <= required | optional:
        raise ValueError(f"{kind} tokens carry {sorted(required)} and maybe {sorted(optional)}")
    if not timedelta(0) < ttl <= MAX_TTL:
        raise ValueError(f"ttl must be positive and at most {MAX_TTL}")
    iat = int(_timestamp(now))
    payload: dict[str, Any] = {
        **{name: str(value) for name, value in claims.items()},
        "iss": ISSUER,
        "aud": AUDIENCES[kind],
        "sub": subject,
        "iat": iat,
        "nbf": iat,
        "exp": iat + int(ttl.total_seconds()),
        "jti": secrets.token_urlsafe(16),
    }
    key = keyring.active
    token = jwt.encode(payload, key.private_key, algorithm="EdDSA", headers={"kid": key.kid})
    try:  # Never hand out a token that verify() would refuse (bad role, overlong claim...).
        verify(keyring, token, now=now, kind=kind)
    except InvalidToken as exc:
        raise ValueError(f"would issue an invalid token: {exc.message}") from None
    return token


def verify(
    keyring: Keyring, token: str, *, now: datetime, kind: TokenKind, leeway: timedelta = LEEWAY
) -> Claims:
    """Check a token's shape, algorithm, key, signature, audience, times and claims.

    Args:
        keyring: Any key in it whose kid matches the token header may verify.
        token: The compact JWT, as received.
        now: Timezone-aware current time.
        kind: The audience the caller expects; a token for another kind is refused.
        leeway: Clock skew tolerated on ``exp``, ``nbf`` and ``iat``.

    Returns:
        The verified claims.

    Raises:
        InvalidToken: Too long, malformed, alg other than EdDSA (``none`` and HS256 key
            confusion included), unknown kid, bad signature, wrong issuer or audience, missing
            or ill-typed claim, expired, not yet valid, lifetime above ``MAX_TTL``, or issued by
            a key after its retirement. The message names which.
        ValueError: ``now`` is naive or ``kind`` unknown (caller bugs, not client input).
    """
    if kind not in _KIND_CLAIMS:
        raise ValueError(f"unknown token kind {kind!r}")
    now_ts, skew = _timestamp(now), leeway.total_seconds()
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise InvalidToken("token missing or too long")
    if not COMPACT_JWS.fullmatch(token):
        raise InvalidToken("malformed token")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise InvalidToken("malformed token header") from None
    # Pin the algorithm before touching a key: blocks alg=none and HS256-with-the-public-key.
    if header.get("alg") != "EdDSA":
        raise InvalidToken("token algorithm must be EdDSA")
    kid = header.get("kid")
    public = keyring.public_key(kid) if isinstance(kid, str) else None
    signer = keyring.get(kid) if isinstance(kid, str) else None
    if public is None or signer is None:
        raise UnknownSigningKey("token signed by unknown kid")
    try:
        payload = jwt.decode(
            token,
            public,
            algorithms=["EdDSA"],
            audience=AUDIENCES[kind],
            issuer=ISSUER,
            options={
                "verify_exp": False,  # Checked below against the injected clock,
                "verify_nbf": False,  # because pyjwt reads the system clock itself.
                "verify_iat": False,
                "strict_aud": True,
                "require": ["iss", "aud", "sub", "iat", "nbf", "exp", "jti"],
            },
        )
    except jwt.InvalidSignatureError:
        raise InvalidToken("bad token signature") from None
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidToken(f"token lacks claim {exc.claim}") from None
    except jwt.InvalidAudienceError:
        raise InvalidToken(f"token is not a {kind} token") from None
    except jwt.InvalidIssuerError:
        raise InvalidToken("token issuer is not rsb") from None
    except jwt.PyJWTError:
        raise InvalidToken("malformed token payload") from None
    iat, nbf, exp = (_int_claim(payload, name) for name in ("iat", "nbf", "exp"))
    if exp <= now_ts - skew:
        raise InvalidToken("token expired")
    if nbf > now_ts + skew or iat > now_ts + skew:
        raise InvalidToken("token not yet valid")
    if exp - iat > MAX_TTL.total_seconds():
        raise InvalidToken("token lifetime exceeds the maximum")
    if signer.retired_at is not None and iat > signer.retired_at.timestamp() + skew:
        raise InvalidToken("token issued after its signing key was retired")
    base = Claims(
        kind=kind,
        subject=_str_claim(payload, "sub"),
        issued_at=datetime.fromtimestamp(iat, UTC),
        expires_at=datetime.fromtimestamp(exp, UTC),
        jti=_str_claim(payload, "jti"),
        kid=signer.kid,
    )
    if kind == "staff":
        try:
            role = Role(_str_claim(payload, "role"))
        except ValueError:
            raise InvalidToken("token has an unknown role") from None
        name = _str_claim(payload, "name") if "name" in payload else None
        return replace(base, role=role, name=name)
    sid, case = _str_claim(payload, "sid"), _str_claim(payload, "case")
    return replace(base, session_id=SessionId(sid), case_number=CaseNumber(case))


def _timestamp(now: datetime) -> float:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.timestamp()


def _int_claim(payload: Mapping[str, Any], name: str) -> int:
    value = payload[name]
    if type(value) is not int:  # bool is an int subclass; floats are not what we issue
        raise InvalidToken(f"token claim {name} must be an integer")
    return value


def _str_claim(payload: Mapping[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value or len(value) > _MAX_CLAIM_CHARS:
        raise InvalidToken(f"token claim {name} missing or not a short string")
    return value
