"""End-to-end key schedule: ephemeral ECDH keys, one group key per epoch, pairwise viewer keys.

The broker routes what this module produces and never holds a content key (DESIGN.md,
"Security model"). Only primitives WebCrypto also has are used, so the engineer's browser does
the same arithmetic: X25519 or P-256 ECDH, HKDF-SHA256, AES-256-GCM (12-byte nonce, 16-byte
tag). The salt of every HKDF is the session id (UTF-8), so keys never carry across sessions.

- Group key: 32 random bytes and a 4-byte random nonce prefix per epoch, wrapped by the agent
  to each admitted viewer under HKDF(ECDH, info = "rsb v1 wrap" || epoch u32 || slot u16).
  A screen frame is sealed once, nonce = prefix || seq u64, header as associated data.
- Pairwise keys: HKDF(ECDH, info = direction label || epoch u32 || slot u16), one key per
  direction, viewer and epoch, so the agent knows which viewer sent an INPUT or CHAT frame.
- Receivers accept only the current epoch and strictly increasing sequence numbers, and
  advance their counter only after the tag verified (a forged frame cannot skip it ahead).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from rsb_protocol.errors import (
    DecryptFailed,
    InvalidPublicKey,
    ReplayDetected,
    SequenceExhausted,
    UnexpectedFrame,
    UnknownEpoch,
    UnsupportedAlgorithm,
)
from rsb_protocol.framing import (
    AGENT_SLOT,
    BROADCAST_SLOT,
    DEFAULT_MAX_FRAME_SIZE,
    MAX_VIEWER_SLOT,
    NO_FLAGS,
    RECORDING_SLOT,
    Envelope,
    Flags,
    FrameType,
    pack_header,
)
from rsb_protocol.messages import PUBLIC_KEY_SIZES, KeyAlgorithm, PublicKeyAnnounce

__all__ = [
    "GROUP_TYPES",
    "GroupReceiver",
    "GroupSender",
    "KeyAlgorithm",
    "KeyPair",
    "PairwiseChannel",
    "PublicKey",
    "Side",
    "negotiate",
]

WRAP_INFO = b"rsb v1 wrap"
VIEWER_TO_AGENT_INFO = b"rsb v1 viewer->agent"
AGENT_TO_VIEWER_INFO = b"rsb v1 agent->viewer"
_PAIRWISE_PREFIX = bytes(4)  # each pairwise key has one sender and one epoch: seq is enough
_U32_MAX = 0xFFFF_FFFF
_U64_MAX = 0xFFFF_FFFF_FFFF_FFFF
_PREFERENCE = (KeyAlgorithm.X25519, KeyAlgorithm.P256)

GROUP_TYPES = frozenset(
    {FrameType.SCREEN_UPDATE, FrameType.KEYFRAME, FrameType.CURSOR, FrameType.CHAT}
)
"""Frame types the agent seals under the group key."""


class Side(StrEnum):
    """Which end of a pairwise channel this object is."""

    AGENT = "agent"
    VIEWER = "viewer"


_PAIRWISE_TYPES = {
    Side.VIEWER: frozenset({FrameType.INPUT, FrameType.CHAT}),
    Side.AGENT: frozenset({FrameType.CHAT}),
}
"""Pairwise frame types each side may send."""


def negotiate(ours: Iterable[KeyAlgorithm], theirs: Iterable[KeyAlgorithm]) -> KeyAlgorithm:
    """Pick the key algorithm for a viewer: X25519 if both sides have it, else P-256.

    Args:
        ours: Algorithms this side can use.
        theirs: Algorithms the peer announced in its ``hello``.

    Returns:
        The preferred common algorithm.

    Raises:
        UnsupportedAlgorithm: No algorithm in common.
    """
    common = set(ours) & set(theirs)
    for algorithm in _PREFERENCE:
        if algorithm in common:
            return algorithm
    raise UnsupportedAlgorithm("no key algorithm in common")


_AnyPublic = x25519.X25519PublicKey | ec.EllipticCurvePublicKey
_AnyPrivate = x25519.X25519PrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class PublicKey:
    """A participant's ephemeral public key, tagged with its algorithm; checked on creation.

    Attributes:
        algorithm: X25519 or P-256.
        raw: 32 bytes (X25519) or 65 bytes uncompressed X9.62 (P-256), as WebCrypto exports.
    """

    algorithm: KeyAlgorithm
    raw: bytes
    _key: _AnyPublic = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.raw) != PUBLIC_KEY_SIZES[self.algorithm]:
            raise InvalidPublicKey(f"{self.algorithm} public key of {len(self.raw)} bytes")
        try:
            key: _AnyPublic
            if self.algorithm is KeyAlgorithm.X25519:
                key = x25519.X25519PublicKey.from_public_bytes(self.raw)
            else:
                # Compressed points are not accepted by every browser; require 0x04 || x || y.
                if self.raw[0] != 0x04:
                    raise ValueError("compressed")
                key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), self.raw)
        except ValueError:
            raise InvalidPublicKey(f"not a valid {self.algorithm} public key") from None
        object.__setattr__(self, "_key", key)

    @classmethod
    def from_announce(cls, message: PublicKeyAnnounce) -> PublicKey:
        """Build from a ``public_key`` control message.

        Raises:
            InvalidPublicKey: The bytes are not a valid point for the algorithm.
        """
        return cls(message.algorithm, message.key_bytes)

    def announce(self, slot: int) -> PublicKeyAnnounce:
        """The ``public_key`` control message that tells the others this key holds ``slot``."""
        return PublicKeyAnnounce(slot, self.algorithm, base64.b64encode(self.raw).decode("ascii"))


class KeyPair:
    """An ephemeral key pair: one per participant per session, kept in memory only."""

    __slots__ = ("_private", "public")

    def __init__(self, private: _AnyPrivate) -> None:
        self._private = private
        if isinstance(private, x25519.X25519PrivateKey):
            raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            self.public = PublicKey(KeyAlgorithm.X25519, raw)
        else:
            if not isinstance(private.curve, ec.SECP256R1):
                raise UnsupportedAlgorithm(f"curve {private.curve.name} is not P-256")
            point = private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
            self.public = PublicKey(KeyAlgorithm.P256, point)

    @classmethod
    def generate(cls, algorithm: KeyAlgorithm = KeyAlgorithm.X25519) -> KeyPair:
        """Make a fresh key pair from the operating system's random source."""
        if algorithm is KeyAlgorithm.X25519:
            return cls(x25519.X25519PrivateKey.generate())
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_private_bytes(cls, algorithm: KeyAlgorithm, secret: bytes) -> KeyPair:
        """Rebuild a key pair from 32 private bytes: for test vectors, never for live sessions.

        Raises:
            ValueError: ``secret`` is not a valid private key for the algorithm.
        """
        if algorithm is KeyAlgorithm.X25519:
            return cls(x25519.X25519PrivateKey.from_private_bytes(secret))
        return cls(ec.derive_private_key(int.from_bytes(secret, "big"), ec.SECP256R1()))

    @property
    def algorithm(self) -> KeyAlgorithm:
        """The algorithm of both halves."""
        return self.public.algorithm

    def exchange(self, peer: PublicKey) -> bytes:
        """ECDH with a peer's public key: the 32-byte shared secret (WebCrypto ``deriveBits``).

        Raises:
            UnsupportedAlgorithm: The peer's key is of another algorithm.
            InvalidPublicKey: The agreement failed (a low-order X25519 point gives all zeros).
        """
        private, public = self._private, peer._key
        try:
            if isinstance(private, x25519.X25519PrivateKey):
                if isinstance(public, x25519.X25519PublicKey):
                    return private.exchange(public)
            elif isinstance(public, ec.EllipticCurvePublicKey):
                return private.exchange(ec.ECDH(), public)
        except ValueError:
            raise InvalidPublicKey("key agreement failed (low-order or invalid point)") from None
        raise UnsupportedAlgorithm(f"cannot combine {self.algorithm} with {peer.algorithm}")


def _session_salt(session_id: str | bytes) -> bytes:
    salt = session_id.encode("utf-8") if isinstance(session_id, str) else bytes(session_id)
    if not salt:
        raise ValueError("session id must not be empty")
    return salt


def _derive(secret: bytes, salt: bytes, label: bytes, epoch: int, slot: int) -> bytes:
    info = label + epoch.to_bytes(4, "big") + slot.to_bytes(2, "big")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(secret)


def _decrypt(aead: AESGCM, nonce: bytes, sealed: bytes, envelope: Envelope) -> bytes:
    try:
        return aead.decrypt(nonce, sealed, envelope.header_bytes)
    except InvalidTag:
        raise DecryptFailed(
            f"{envelope.frame_type.name} slot {envelope.slot} epoch {envelope.epoch} "
            f"seq {envelope.seq}: authentication tag does not verify"
        ) from None


def _check_fresh(envelope: Envelope, epoch: int, last_seq: int) -> None:
    if epoch == 0 or envelope.epoch != epoch:
        raise UnknownEpoch(f"frame for epoch {envelope.epoch}; the current epoch is {epoch}")
    if envelope.seq <= last_seq:
        raise ReplayDetected(f"sequence {envelope.seq} is not above {last_seq}")


class GroupSender:
    """Agent side of the group: a key per epoch, wrapped per viewer, one encryption per frame.

    Start a new epoch when a viewer leaves, is removed or loses control, and wrap the new key
    only to the viewers who remain: a removed viewer then holds no key for what follows. Doing
    the same when a viewer is admitted keeps a newcomer out of anything the broker kept from
    before the customer's consent.
    """

    def __init__(self, session_id: str | bytes, key_pairs: Sequence[KeyPair]) -> None:
        """Start epoch 1.

        Args:
            session_id: The session id; its UTF-8 bytes salt every key derivation.
            key_pairs: The agent's ephemeral key pairs, at most one per algorithm offered.

        Raises:
            ValueError: Empty session id, or no key pair.
        """
        self._salt = _session_salt(session_id)
        self._key_pairs = {pair.algorithm: pair for pair in key_pairs}
        if not self._key_pairs:
            raise ValueError("the agent needs at least one key pair")
        self._epoch = 0
        self.new_epoch()

    @property
    def epoch(self) -> int:
        """The current epoch, from 1."""
        return self._epoch

    @property
    def public_keys(self) -> tuple[PublicKey, ...]:
        """The agent's public keys, one per algorithm, to announce to viewers."""
        return tuple(pair.public for pair in self._key_pairs.values())

    def new_epoch(self) -> int:
        """Draw a new group key and nonce prefix and restart the sequence.

        Returns:
            The new epoch number; wrap it to every viewer who stays.

        Raises:
            SequenceExhausted: All 2**32-1 epochs were used.
        """
        if self._epoch == _U32_MAX:
            raise SequenceExhausted("no epoch numbers left in this session")
        self._epoch += 1
        self._group_key = os.urandom(32)
        self._prefix = os.urandom(4)
        self._aead = AESGCM(self._group_key)
        self._seq = 0
        return self._epoch

    def wrap_for(self, recipient: PublicKey, slot: int) -> bytes:
        """Wrap the current group key to one viewer (or to the recording key) as a KEY_WRAP frame.

        Recording uses this very function: pass the organisation's recording public key and
        ``RECORDING_SLOT``. The broker stores that frame with the ciphertext it already relays;
        a reviewer later opens both offline with ``GroupReceiver(session_id, recording_pair,
        RECORDING_SLOT, agent_public_key)`` and never needs the broker to hold a key.

        Args:
            recipient: The viewer's (or recorder's) public key.
            slot: The recipient's slot, 1..``RECORDING_SLOT``.

        Returns:
            The whole KEY_WRAP frame: header, 12-byte random nonce, sealed key and prefix.

        Raises:
            ValueError: ``slot`` is the agent's or the broadcast slot.
            UnsupportedAlgorithm: The agent has no key pair of the recipient's algorithm.
            InvalidPublicKey: Key agreement with ``recipient`` failed.
        """
        if not AGENT_SLOT < slot <= RECORDING_SLOT:
            raise ValueError(f"cannot wrap a key to slot {slot}")
        own = self._key_pairs.get(recipient.algorithm)
        if own is None:
            raise UnsupportedAlgorithm(f"the agent has no {recipient.algorithm} key")
        wrap_key = _derive(own.exchange(recipient), self._salt, WRAP_INFO, self._epoch, slot)
        header = pack_header(FrameType.KEY_WRAP, slot, self._epoch, 0, NO_FLAGS)
        nonce = os.urandom(12)
        sealed = AESGCM(wrap_key).encrypt(nonce, self._group_key + self._prefix, header)
        return header + nonce + sealed

    def seal_update(
        self,
        frame_type: FrameType,
        payload: bytes,
        *,
        slot: int = BROADCAST_SLOT,
        flags: Flags = NO_FLAGS,
    ) -> bytes:
        """Seal one frame under the group key, once for every viewer.

        Args:
            frame_type: One of ``GROUP_TYPES``.
            payload: The plaintext (encoded tiles, cursor, chat text).
            slot: ``BROADCAST_SLOT``, or one viewer's slot (a keyframe it asked for).
            flags: ``Flags.MORE`` if more frames of the same update follow.

        Returns:
            The whole frame, header and ciphertext with tag.

        Raises:
            ValueError: A type, slot or flag the group key is not for.
            SequenceExhausted: 2**64-1 frames in this epoch; start a new one.
        """
        if frame_type not in GROUP_TYPES or flags & Flags.PAIRWISE or slot == AGENT_SLOT:
            raise ValueError(f"{frame_type!r} to slot {slot} with {flags!r} is not a group frame")
        if self._seq == _U64_MAX:
            raise SequenceExhausted("sequence numbers of this epoch used up; start a new epoch")
        self._seq += 1
        header = pack_header(frame_type, slot, self._epoch, self._seq, flags)
        nonce = self._prefix + self._seq.to_bytes(8, "big")
        return header + self._aead.encrypt(nonce, payload, header)


class GroupReceiver:
    """Viewer (or recording reviewer) side of the group: installs wrapped keys, opens frames."""

    def __init__(self, session_id: str | bytes, own: KeyPair, slot: int, agent: PublicKey) -> None:
        """Prepare to receive as ``slot``; no epoch is installed yet.

        Args:
            session_id: The session id, as the agent used it.
            own: This viewer's (or the recorder's) key pair.
            slot: This viewer's slot, or ``RECORDING_SLOT`` to read a whole recording.
            agent: The agent's public key of the same algorithm.

        Raises:
            ValueError: Empty session id.
            UnsupportedAlgorithm: ``own`` and ``agent`` are of different algorithms.
            InvalidPublicKey: Key agreement with ``agent`` failed.
        """
        self._salt = _session_salt(session_id)
        self._secret = own.exchange(agent)
        self._slot = slot
        self._epoch = 0
        self._aead: AESGCM | None = None
        self._prefix = b""
        self._last_seq = 0

    @property
    def epoch(self) -> int:
        """The installed epoch; 0 before the first key arrives."""
        return self._epoch

    def install_wrapped_key(
        self, data: bytes | memoryview, max_size: int = DEFAULT_MAX_FRAME_SIZE
    ) -> int:
        """Unwrap a KEY_WRAP frame and make its epoch the current one.

        Args:
            data: The KEY_WRAP frame (binary, or ``GroupKey.wrapped_bytes``).
            max_size: Largest accepted frame.

        Returns:
            The epoch now installed; frames of older epochs are refused from here on.

        Raises:
            MessageTooLarge, MalformedFrame, VersionMismatch: As ``Envelope.parse``.
            UnexpectedFrame: Not a KEY_WRAP frame, or addressed to another slot.
            ReplayDetected: The epoch is not newer than the installed one.
            DecryptFailed: The wrap does not verify (altered, or not made for this key).
        """
        envelope = Envelope.parse(data, max_size)
        if envelope.frame_type is not FrameType.KEY_WRAP or envelope.slot != self._slot:
            raise UnexpectedFrame(f"{envelope.frame_type.name} to slot {envelope.slot}")
        if envelope.epoch <= self._epoch:
            raise ReplayDetected(f"epoch {envelope.epoch} is not newer than {self._epoch}")
        wrap_key = _derive(self._secret, self._salt, WRAP_INFO, envelope.epoch, self._slot)
        nonce, sealed = envelope.payload[:12], envelope.payload[12:]
        unwrapped = _decrypt(AESGCM(wrap_key), nonce, sealed, envelope)
        self._epoch = envelope.epoch
        self._aead = AESGCM(unwrapped[:32])
        self._prefix = unwrapped[32:]
        self._last_seq = 0
        return self._epoch

    def open(
        self, data: bytes | memoryview, max_size: int = DEFAULT_MAX_FRAME_SIZE
    ) -> tuple[Envelope, bytes]:
        """Check and decrypt one group frame.

        Args:
            data: The frame as received.
            max_size: Largest accepted frame.

        Returns:
            The envelope and the plaintext payload.

        Raises:
            MessageTooLarge, MalformedFrame, VersionMismatch: As ``Envelope.parse``.
            UnexpectedFrame: Not a group frame type, pairwise, or for another viewer.
            UnknownEpoch: No key installed, or the frame is of another epoch.
            ReplayDetected: Sequence not above the last accepted one of this epoch.
            DecryptFailed: Header or payload altered, or not sealed with this epoch's key.
        """
        envelope = Envelope.parse(data, max_size)
        if envelope.frame_type not in GROUP_TYPES or envelope.flags & Flags.PAIRWISE:
            raise UnexpectedFrame(f"{envelope.frame_type.name} is not a group frame")
        # The recorder reads every frame the agent sent; a viewer only its own and broadcasts.
        if self._slot != RECORDING_SLOT and envelope.slot not in (BROADCAST_SLOT, self._slot):
            raise UnexpectedFrame(f"frame for slot {envelope.slot}, not {self._slot}")
        _check_fresh(envelope, self._epoch, self._last_seq)
        assert self._aead is not None  # _check_fresh refused epoch 0
        nonce = self._prefix + envelope.seq.to_bytes(8, "big")
        plaintext = _decrypt(self._aead, nonce, envelope.payload, envelope)
        self._last_seq = envelope.seq
        return envelope, plaintext


class PairwiseChannel:
    """One viewer <-> agent channel, both directions, each with its own key and counter.

    Both ends build one (``side`` says which end). Keys depend on the viewer's slot, the
    direction and the epoch, so a frame a viewer sealed cannot be passed off as another
    viewer's (the broker rewriting the slot breaks the tag), and a viewer removed from the
    session cannot talk in an epoch the agent has not opened to it.
    """

    def __init__(
        self,
        session_id: str | bytes,
        own: KeyPair,
        peer: PublicKey,
        viewer_slot: int,
        side: Side,
        epoch: int = 1,
    ) -> None:
        """Derive the keys of ``epoch``.

        Args:
            session_id: The session id.
            own: This end's key pair.
            peer: The other end's public key.
            viewer_slot: The viewer's slot, 1..``MAX_VIEWER_SLOT``.
            side: ``Side.AGENT`` or ``Side.VIEWER``: which end this object is.
            epoch: The group epoch to start in (the agent's current one).

        Raises:
            ValueError: Empty session id, or slot or epoch out of range.
            UnsupportedAlgorithm: ``own`` and ``peer`` are of different algorithms.
            InvalidPublicKey: Key agreement with ``peer`` failed.
        """
        if not AGENT_SLOT < viewer_slot <= MAX_VIEWER_SLOT:
            raise ValueError(f"slot {viewer_slot} is not a viewer slot")
        self._salt = _session_salt(session_id)
        self._secret = own.exchange(peer)
        self._slot = viewer_slot
        self._side = side
        viewer_sends = side is Side.VIEWER
        self._send_info = VIEWER_TO_AGENT_INFO if viewer_sends else AGENT_TO_VIEWER_INFO
        self._recv_info = AGENT_TO_VIEWER_INFO if viewer_sends else VIEWER_TO_AGENT_INFO
        self._peer_types = _PAIRWISE_TYPES[Side.AGENT if viewer_sends else Side.VIEWER]
        self._epoch = 0
        self.advance_epoch(epoch)

    @property
    def epoch(self) -> int:
        """The epoch both directions are keyed for."""
        return self._epoch

    def advance_epoch(self, epoch: int) -> None:
        """Re-key both directions for a newer epoch and restart both counters.

        Raises:
            ValueError: ``epoch`` is not newer than the current one, or out of range.
        """
        if not self._epoch < epoch <= _U32_MAX:
            raise ValueError(f"epoch {epoch} is not after {self._epoch}")
        self._epoch = epoch
        self._send = AESGCM(_derive(self._secret, self._salt, self._send_info, epoch, self._slot))
        self._recv = AESGCM(_derive(self._secret, self._salt, self._recv_info, epoch, self._slot))
        self._send_seq = 0
        self._recv_seq = 0

    def seal(self, frame_type: FrameType, payload: bytes, *, flags: Flags = NO_FLAGS) -> bytes:
        """Seal one frame to the other end.

        Args:
            frame_type: INPUT or CHAT from a viewer; CHAT from the agent.
            payload: The plaintext.
            flags: ``Flags.MORE`` if needed; ``Flags.PAIRWISE`` is always added.

        Returns:
            The whole frame.

        Raises:
            ValueError: This side may not send ``frame_type`` pairwise.
            SequenceExhausted: 2**64-1 frames in this epoch; advance the epoch.
        """
        if frame_type not in _PAIRWISE_TYPES[self._side]:
            raise ValueError(f"the {self._side} does not send {frame_type!r} pairwise")
        if self._send_seq == _U64_MAX:
            raise SequenceExhausted("sequence numbers of this epoch used up")
        self._send_seq += 1
        flags |= Flags.PAIRWISE
        header = pack_header(frame_type, self._slot, self._epoch, self._send_seq, flags)
        nonce = _PAIRWISE_PREFIX + self._send_seq.to_bytes(8, "big")
        return header + self._send.encrypt(nonce, payload, header)

    def open(
        self, data: bytes | memoryview, max_size: int = DEFAULT_MAX_FRAME_SIZE
    ) -> tuple[Envelope, bytes]:
        """Check and decrypt one frame from the other end.

        Args:
            data: The frame as received.
            max_size: Largest accepted frame.

        Returns:
            The envelope and the plaintext payload.

        Raises:
            MessageTooLarge, MalformedFrame, VersionMismatch: As ``Envelope.parse``.
            UnexpectedFrame: Not pairwise, a type the peer may not send, or another slot.
            UnknownEpoch: The frame is of another epoch.
            ReplayDetected: Sequence not above the last accepted one of this epoch.
            DecryptFailed: Header or payload altered, or sealed by someone else.
        """
        envelope = Envelope.parse(data, max_size)
        if envelope.frame_type not in self._peer_types or not envelope.flags & Flags.PAIRWISE:
            raise UnexpectedFrame(f"{envelope.frame_type.name} is not a pairwise frame from peer")
        if envelope.slot != self._slot:
            raise UnexpectedFrame(f"frame for slot {envelope.slot}, not {self._slot}")
        _check_fresh(envelope, self._epoch, self._recv_seq)
        nonce = _PAIRWISE_PREFIX + envelope.seq.to_bytes(8, "big")
        plaintext = _decrypt(self._recv, nonce, envelope.payload, envelope)
        self._recv_seq = envelope.seq
        return envelope, plaintext
