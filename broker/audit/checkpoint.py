"""Signed checkpoints of the audit chain's head, and the anchor files exported from them.

Pure: no I/O and no clock; the caller passes keys, times and stored rows. The hash chain alone
cannot tell a chain that was cut short and had its head record rewritten from one that was
always that short. A checkpoint is an Ed25519 signature, by the broker's audit key, over one
``(seq, hash)`` of the chain: a chain that no longer holds that hash at that ``seq`` (cut off
before it, or rewritten) fails verification. An anchor is a checkpoint plus the public key that
signed it, written to a file to be kept away from the database (``docs/security.md``, "Audit
log", says what each one does and does not detect).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from broker.audit.chain import canonical
from broker.auth.keys import SigningKey

ANCHOR_FORMAT = "rsb-audit-anchor/1"
"""The ``format`` field of an anchor file; a reader refuses any other."""

# Domain separation: these bytes can never be mistaken for a JWT signing input (which starts
# with base64url text), so a checkpoint signature is useless as a token and vice versa.
_SIGNING_PREFIX = b"rsb audit checkpoint v1\n"
_HASH = re.compile(r"[0-9a-f]{64}")
_MAX_ANCHOR_CHARS = 4096


class AnchorError(ValueError):
    """An anchor file that cannot be read as one (not a verification failure)."""


@dataclass(frozen=True)
class Checkpoint:
    """The audit key's signature over the chain's hash at one ``seq``."""

    seq: int
    hash: str
    at: str
    kid: str
    signature: str
    """Ed25519 signature over ``signing_input``, base64url without padding."""


def signing_input(seq: int, hash: str, at: str, kid: str) -> bytes:
    """The exact bytes a checkpoint's signature covers.

    Args:
        seq: The chain position.
        hash: The chain's hash at ``seq``.
        at: When the checkpoint was made (ISO 8601).
        kid: The key that signs, so a signature cannot be passed off as another key's.

    Returns:
        A fixed prefix, then the canonical JSON of the four fields.
    """
    return _SIGNING_PREFIX + canonical({"at": at, "hash": hash, "kid": kid, "seq": seq}).encode()


def sign_checkpoint(key: SigningKey, seq: int, hash: str, at: datetime) -> Checkpoint:
    """Sign the chain's hash at ``seq``.

    Args:
        key: The active audit key.
        seq: The chain position, at least 1.
        hash: The chain's hash at ``seq``.
        at: Timezone-aware time of the checkpoint.

    Returns:
        The checkpoint.

    Raises:
        ValueError: ``seq`` below 1, a malformed hash or a naive ``at``.
    """
    if seq < 1 or not _HASH.fullmatch(hash):
        raise ValueError("a checkpoint needs a seq of at least 1 and a SHA-256 hex hash")
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    stamp = at.isoformat(timespec="microseconds")
    signature = key.private_key.sign(signing_input(seq, hash, stamp, key.kid))
    return Checkpoint(seq, hash, stamp, key.kid, _b64(signature))


def public_key_text(key: SigningKey) -> str:
    """The raw Ed25519 public key of ``key``, base64url without padding (as a JWK ``x``)."""
    raw = key.private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return _b64(raw)


def checkpoint_problem(checkpoint: Checkpoint, public_keys: Mapping[str, str]) -> str | None:
    """Why a checkpoint cannot be trusted, or None if its signature verifies.

    Args:
        checkpoint: As stored or as read from an anchor.
        public_keys: kid -> public key text (``public_key_text``) of every audit key the
            broker holds, retired ones included.

    Returns:
        None when a held key's signature verifies, else a sentence saying what is wrong.
    """
    public = public_keys.get(checkpoint.kid)
    if public is None:
        return f"signed by audit key {checkpoint.kid}, which the database does not hold"
    try:
        key = Ed25519PublicKey.from_public_bytes(_unb64(public))
        key.verify(
            _unb64(checkpoint.signature),
            signing_input(checkpoint.seq, checkpoint.hash, checkpoint.at, checkpoint.kid),
        )
    except (InvalidSignature, ValueError):
        return "its signature does not verify"
    return None


@dataclass(frozen=True)
class Anchor:
    """A checkpoint with its signer's public key, as written to an anchor file."""

    checkpoint: Checkpoint
    public_key: str

    def to_json(self) -> dict[str, Any]:
        cp = self.checkpoint
        return {
            "format": ANCHOR_FORMAT,
            "seq": cp.seq,
            "hash": cp.hash,
            "at": cp.at,
            "kid": cp.kid,
            "public_key": self.public_key,
            "signature": cp.signature,
        }

    def to_text(self) -> str:
        """The anchor file's content: indented JSON with a final newline."""
        return json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_text(cls, text: str) -> Anchor:
        """Read an anchor file written by ``to_text``.

        Args:
            text: The file's content.

        Returns:
            The anchor; its signature is not checked here (``anchor_problem`` does).

        Raises:
            AnchorError: Too long, not JSON, another format, or a field missing or ill-typed.
        """
        if len(text) > _MAX_ANCHOR_CHARS:
            raise AnchorError("not an audit anchor: the file is too long")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            raise AnchorError("not an audit anchor: the file is not JSON") from None
        if not isinstance(data, dict) or data.get("format") != ANCHOR_FORMAT:
            raise AnchorError(f"not an audit anchor: format is not {ANCHOR_FORMAT!r}")
        fields = ("at", "hash", "kid", "public_key", "signature")
        seq = data.get("seq")
        if type(seq) is not int or seq < 1:
            raise AnchorError("audit anchor: seq must be a positive integer")
        values: dict[str, str] = {}
        for name in fields:
            value = data.get(name)
            if not isinstance(value, str) or not value:
                raise AnchorError(f"audit anchor: {name} must be a non-empty string")
            values[name] = value
        if set(data) != {"format", "seq", *fields}:
            raise AnchorError("audit anchor: unexpected fields")
        if not _HASH.fullmatch(values["hash"]):
            raise AnchorError("audit anchor: hash must be 64 lower-case hex digits")
        checkpoint = Checkpoint(
            seq, values["hash"], values["at"], values["kid"], values["signature"]
        )
        return cls(checkpoint, values["public_key"])


def anchor_problem(anchor: Anchor, public_keys: Mapping[str, str]) -> str | None:
    """Why an anchor cannot be trusted, or None if the broker's own key signed it.

    The public key inside the file is not trusted on its own (anyone can make a key pair): it
    must be the one the database holds for the anchor's kid.

    Args:
        anchor: As read from its file.
        public_keys: kid -> public key text of every audit key the broker holds.

    Returns:
        None, or a sentence saying what is wrong.
    """
    held = public_keys.get(anchor.checkpoint.kid)
    if held is not None and held != anchor.public_key:
        return f"its public key is not the database's audit key {anchor.checkpoint.kid}"
    return checkpoint_problem(anchor.checkpoint, public_keys)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None
