"""The protocol's exception tree: every parser and every end-to-end check raises only these.

The broker and the agent each translate them into their own errors (close codes, HTTP statuses,
prompts) in one place; nothing in this package knows about either. Messages never contain key
material or plaintext, and quote at most a short, truncated piece of the offending input.

Tree::

    ProtocolError                   any rejection of wire input          code
    ├── MessageTooLarge             longer than the caller's max_size    too_large
    ├── VersionMismatch             magic right, version not ours        version
    ├── MalformedFrame              binary envelope cannot be parsed     malformed_frame
    ├── InvalidMessage              JSON control message has bad shape   invalid_message
    │   └── UnknownMessageType      "type" not in the dispatch table     unknown_type
    └── E2EError                    the end-to-end layer refused it      e2e
        ├── InvalidPublicKey        wrong size, not a point, low order   invalid_key
        ├── UnsupportedAlgorithm    no common key algorithm, or mixed    unsupported_algorithm
        ├── UnexpectedFrame         well formed, but not for this peer   unexpected_frame
        ├── UnknownEpoch            epoch never installed or rotated     unknown_epoch
        ├── ReplayDetected          sequence not above the last one      replay
        ├── DecryptFailed           AEAD tag did not verify              decrypt_failed
        └── SequenceExhausted       sending on would repeat a nonce      sequence_exhausted
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "DecryptFailed",
    "E2EError",
    "InvalidMessage",
    "InvalidPublicKey",
    "MalformedFrame",
    "MessageTooLarge",
    "ProtocolError",
    "ReplayDetected",
    "SequenceExhausted",
    "UnexpectedFrame",
    "UnknownEpoch",
    "UnknownMessageType",
    "UnsupportedAlgorithm",
    "VersionMismatch",
]


class ProtocolError(Exception):
    """Base class: the input was refused, and the reason is in the subclass and the message."""

    code: ClassVar[str] = "protocol_error"


class MessageTooLarge(ProtocolError):
    """The frame or message is longer than the limit the caller passed as ``max_size``."""

    code = "too_large"


class VersionMismatch(ProtocolError):
    """The peer speaks another version of this protocol.

    Attributes:
        received: The version the peer announced.
        supported: The version this package speaks.
    """

    code = "version"

    def __init__(self, received: int, supported: int) -> None:
        super().__init__(
            f"protocol version {received} not supported (this side speaks {supported})"
        )
        self.received = received
        self.supported = supported


class MalformedFrame(ProtocolError):
    """A binary frame is too short, has a bad magic, an unknown type or flag, or a bad payload."""

    code = "malformed_frame"


class InvalidMessage(ProtocolError):
    """A JSON control message is not JSON, not an object, or a field is missing, extra or wrong."""

    code = "invalid_message"


class UnknownMessageType(InvalidMessage):
    """A JSON control message names a ``type`` this side does not know."""

    code = "unknown_type"


class E2EError(ProtocolError):
    """The end-to-end layer refused a key or a frame."""

    code = "e2e"


class InvalidPublicKey(E2EError):
    """A public key has the wrong size, is not a valid point, or yields an all-zero secret."""

    code = "invalid_key"


class UnsupportedAlgorithm(E2EError):
    """No key algorithm in common, or an exchange between keys of two different algorithms."""

    code = "unsupported_algorithm"


class UnexpectedFrame(E2EError):
    """A well-formed frame this receiver must not accept: wrong type, slot or key family."""

    code = "unexpected_frame"


class UnknownEpoch(E2EError):
    """The frame belongs to an epoch whose key this receiver does not hold (or no longer holds)."""

    code = "unknown_epoch"


class ReplayDetected(E2EError):
    """The sequence number is not above the last one accepted from this sender in this epoch."""

    code = "replay"


class DecryptFailed(E2EError):
    """The AES-GCM tag did not verify: forged or altered header or payload, or the wrong key."""

    code = "decrypt_failed"


class SequenceExhausted(E2EError):
    """The sender's counter (or epoch number) is used up; going on would repeat a nonce."""

    code = "sequence_exhausted"
