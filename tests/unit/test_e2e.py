"""End-to-end key schedule: fan-out, epochs, replay, tampering, P-256, pairwise senders."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from rsb_protocol import e2e
from rsb_protocol.e2e import (
    GroupReceiver,
    GroupSender,
    KeyAlgorithm,
    KeyPair,
    PairwiseChannel,
    PublicKey,
    Side,
    negotiate,
)
from rsb_protocol.errors import (
    DecryptFailed,
    InvalidPublicKey,
    MalformedFrame,
    ReplayDetected,
    SequenceExhausted,
    UnexpectedFrame,
    UnknownEpoch,
    UnsupportedAlgorithm,
)
from rsb_protocol.framing import (
    BROADCAST_SLOT,
    HEADER_SIZE,
    RECORDING_SLOT,
    Envelope,
    Flags,
    FrameType,
)
from rsb_protocol.messages import GroupKey, PublicKeyAnnounce

SID = "k3J9xQm2TzVw8LpR4nYb6A"


@dataclass
class Viewer:
    slot: int
    keys: KeyPair
    receiver: GroupReceiver


class Session:
    """An agent and its viewers, all admitted at epoch 1 (like h11's ConnectionPair)."""

    def __init__(self, slots: tuple[int, ...] = (1, 2, 3), alg: KeyAlgorithm = KeyAlgorithm.X25519):
        self.agent_keys = KeyPair.generate(alg)
        self.sender = GroupSender(SID, [self.agent_keys])
        self.viewers = {slot: self.admit(slot, alg) for slot in slots}

    def admit(self, slot: int, alg: KeyAlgorithm = KeyAlgorithm.X25519) -> Viewer:
        keys = KeyPair.generate(alg)
        agent_public = next(k for k in self.sender.public_keys if k.algorithm is alg)
        viewer = Viewer(slot, keys, GroupReceiver(SID, keys, slot, agent_public))
        viewer.receiver.install_wrapped_key(self.sender.wrap_for(keys.public, slot))
        return viewer

    def rotate(self, *remaining: int) -> None:
        self.sender.new_epoch()
        for slot in remaining:
            viewer = self.viewers[slot]
            viewer.receiver.install_wrapped_key(self.sender.wrap_for(viewer.keys.public, slot))


def flip(data: bytes, index: int) -> bytes:
    index %= len(data)
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def test_fan_out_one_ciphertext_opens_for_three_viewers() -> None:
    session = Session()
    frame = session.sender.seal_update(FrameType.SCREEN_UPDATE, b"tiles")
    for viewer in session.viewers.values():
        envelope, plaintext = viewer.receiver.open(frame)
        assert plaintext == b"tiles"
        assert (envelope.epoch, envelope.seq, envelope.slot) == (1, 1, BROADCAST_SLOT)


def test_same_payload_twice_gives_different_ciphertext() -> None:
    sender = Session(()).sender
    first = sender.seal_update(FrameType.CURSOR, b"x")
    second = sender.seal_update(FrameType.CURSOR, b"x")
    assert first[HEADER_SIZE:] != second[HEADER_SIZE:]


def test_removed_viewer_cannot_open_the_next_epoch() -> None:
    session = Session()
    session.rotate(1, 2)
    frame = session.sender.seal_update(FrameType.KEYFRAME, b"secret")
    assert session.viewers[1].receiver.open(frame)[1] == b"secret"
    with pytest.raises(UnknownEpoch):
        session.viewers[3].receiver.open(frame)
    # Nor can it use a wrap meant for someone else, as is or relabelled to its slot.
    stolen = session.sender.wrap_for(session.viewers[1].keys.public, 1)
    with pytest.raises(UnexpectedFrame):
        session.viewers[3].receiver.install_wrapped_key(stolen)
    relabelled = stolen[:4] + (3).to_bytes(2, "big") + stolen[6:]
    with pytest.raises(DecryptFailed):
        session.viewers[3].receiver.install_wrapped_key(relabelled)


def test_wrapped_key_may_travel_as_a_group_key_message() -> None:
    session = Session((1,))
    session.sender.new_epoch()
    viewer = session.viewers[1]
    wrap = session.sender.wrap_for(viewer.keys.public, 1)
    text = GroupKey(1, 2, base64.b64encode(wrap).decode()).to_json()
    assert viewer.receiver.install_wrapped_key(GroupKey.parse(text, 4096).wrapped_bytes) == 2


def test_old_epoch_frames_are_refused_after_rotation() -> None:
    session = Session()
    old = session.sender.seal_update(FrameType.SCREEN_UPDATE, b"old")
    session.rotate(1, 2, 3)
    with pytest.raises(UnknownEpoch, match="epoch 1; the current epoch is 2"):
        session.viewers[1].receiver.open(old)


def test_no_frame_opens_before_a_key_is_installed() -> None:
    session = Session()
    keys = KeyPair.generate()
    newcomer = GroupReceiver(SID, keys, 9, session.agent_keys.public)
    with pytest.raises(UnknownEpoch):
        newcomer.open(session.sender.seal_update(FrameType.SCREEN_UPDATE, b"x"))


def test_replay_and_reorder_are_refused_but_gaps_are_fine() -> None:
    session = Session()
    receiver = session.viewers[1].receiver
    frames = [session.sender.seal_update(FrameType.SCREEN_UPDATE, bytes([i])) for i in range(4)]
    receiver.open(frames[0])
    with pytest.raises(ReplayDetected):
        receiver.open(frames[0])
    receiver.open(frames[2])  # frame 1 dropped for a slow viewer: allowed
    with pytest.raises(ReplayDetected, match="sequence 2 is not above 3"):
        receiver.open(frames[1])
    assert receiver.open(frames[3])[1] == b"\x03"


@pytest.mark.parametrize("index", [1, 2, 5, 9, 17, HEADER_SIZE, -1])
def test_tampered_header_or_payload_is_refused(index: int) -> None:
    session = Session()
    frame = session.sender.seal_update(FrameType.SCREEN_UPDATE, b"payload", slot=1)
    tampered = flip(frame, index)
    with pytest.raises(
        (DecryptFailed, UnexpectedFrame, MalformedFrame, UnknownEpoch, ReplayDetected)
    ):
        session.viewers[1].receiver.open(tampered)
    assert session.viewers[1].receiver.open(frame)[1] == b"payload"


def test_forged_frame_does_not_advance_the_counter() -> None:
    session = Session()
    genuine = session.sender.seal_update(FrameType.SCREEN_UPDATE, b"ok")
    forged = Envelope(FrameType.SCREEN_UPDATE, BROADCAST_SLOT, 1, 2**60, b"\x00" * 20)
    with pytest.raises(DecryptFailed):
        session.viewers[1].receiver.open(forged.serialize())
    assert session.viewers[1].receiver.open(genuine)[1] == b"ok"


def test_wrapped_key_replay_and_rollback_are_refused() -> None:
    session = Session()
    viewer = session.viewers[1]
    first = session.sender.wrap_for(viewer.keys.public, 1)
    with pytest.raises(ReplayDetected):
        viewer.receiver.install_wrapped_key(first)
    session.rotate(1)
    with pytest.raises(ReplayDetected, match="epoch 1 is not newer than 2"):
        viewer.receiver.install_wrapped_key(first)
    session.sender.new_epoch()
    with pytest.raises(DecryptFailed):
        viewer.receiver.install_wrapped_key(
            flip(session.sender.wrap_for(viewer.keys.public, 1), -1)
        )
    assert viewer.receiver.epoch == 2


def test_unicast_frame_is_for_its_slot_only() -> None:
    session = Session()
    frame = session.sender.seal_update(FrameType.KEYFRAME, b"for two", slot=2)
    assert session.viewers[2].receiver.open(frame)[1] == b"for two"
    with pytest.raises(UnexpectedFrame, match="slot 2, not 1"):
        session.viewers[1].receiver.open(frame)


def test_recording_key_reads_every_frame_offline() -> None:
    session = Session()
    recorder = KeyPair.generate()
    wrap = session.sender.wrap_for(recorder.public, RECORDING_SLOT)
    frames = [
        session.sender.seal_update(FrameType.SCREEN_UPDATE, b"all"),
        session.sender.seal_update(FrameType.KEYFRAME, b"just for 2", slot=2),
    ]
    reviewer = GroupReceiver(SID, recorder, RECORDING_SLOT, session.agent_keys.public)
    reviewer.install_wrapped_key(wrap)
    assert [reviewer.open(frame)[1] for frame in frames] == [b"all", b"just for 2"]


def test_p256_viewer_alongside_x25519_viewers() -> None:
    assert negotiate([KeyAlgorithm.X25519, KeyAlgorithm.P256], [KeyAlgorithm.P256]) is (
        KeyAlgorithm.P256
    )
    assert negotiate(list(KeyAlgorithm), list(KeyAlgorithm)) is KeyAlgorithm.X25519
    session = Session((1,))
    session.sender = GroupSender(SID, [session.agent_keys, KeyPair.generate(KeyAlgorithm.P256)])
    session.viewers = {1: session.admit(1), 2: session.admit(2, KeyAlgorithm.P256)}
    assert len(session.viewers[2].keys.public.raw) == 65
    frame = session.sender.seal_update(FrameType.SCREEN_UPDATE, b"both")
    assert {v.receiver.open(frame)[1] for v in session.viewers.values()} == {b"both"}


def test_algorithm_mismatches_are_unsupported() -> None:
    with pytest.raises(UnsupportedAlgorithm):
        negotiate([KeyAlgorithm.X25519], [KeyAlgorithm.P256])
    sender = GroupSender(SID, [KeyPair.generate(KeyAlgorithm.P256)])
    with pytest.raises(UnsupportedAlgorithm):
        sender.wrap_for(KeyPair.generate().public, 1)
    with pytest.raises(UnsupportedAlgorithm):
        KeyPair.generate().exchange(KeyPair.generate(KeyAlgorithm.P256).public)


@pytest.mark.parametrize(
    ("alg", "raw"),
    [
        (KeyAlgorithm.X25519, b"\x01" * 31),
        (KeyAlgorithm.P256, b"\x04" + b"\x01" * 64),  # not on the curve
        (KeyAlgorithm.P256, b"\x02" + b"\x01" * 64),  # not uncompressed
    ],
)
def test_invalid_public_keys_are_refused(alg: KeyAlgorithm, raw: bytes) -> None:
    with pytest.raises(InvalidPublicKey):
        PublicKey(alg, raw)


def test_low_order_x25519_point_fails_the_exchange() -> None:
    with pytest.raises(InvalidPublicKey):
        KeyPair.generate().exchange(PublicKey(KeyAlgorithm.X25519, bytes(32)))


def test_public_key_travels_in_a_public_key_message() -> None:
    public = KeyPair.generate(KeyAlgorithm.P256).public
    text = public.announce(4).to_json()
    assert PublicKey.from_announce(PublicKeyAnnounce.parse(text, 4096)) == public


def test_sender_refuses_what_the_group_key_is_not_for() -> None:
    sender = Session(()).sender
    with pytest.raises(ValueError):
        sender.seal_update(FrameType.INPUT, b"x")
    with pytest.raises(ValueError):
        sender.seal_update(FrameType.CHAT, b"x", flags=Flags.PAIRWISE)
    with pytest.raises(ValueError):
        sender.wrap_for(KeyPair.generate().public, BROADCAST_SLOT)


def test_exhausted_counters_refuse_to_reuse_a_nonce() -> None:
    sender = Session(()).sender
    sender._seq = 2**64 - 1
    with pytest.raises(SequenceExhausted):
        sender.seal_update(FrameType.CURSOR, b"x")
    sender._epoch = 2**32 - 1
    with pytest.raises(SequenceExhausted):
        sender.new_epoch()


def pairwise(session: Session, slot: int) -> tuple[PairwiseChannel, PairwiseChannel]:
    viewer = session.viewers[slot]
    epoch = session.sender.epoch
    at_agent = PairwiseChannel(SID, session.agent_keys, viewer.keys.public, slot, Side.AGENT, epoch)
    at_viewer = PairwiseChannel(
        SID, viewer.keys, session.agent_keys.public, slot, Side.VIEWER, epoch
    )
    return at_agent, at_viewer


def test_pairwise_both_directions_round_trip() -> None:
    session = Session()
    at_agent, at_viewer = pairwise(session, 1)
    envelope, plaintext = at_agent.open(at_viewer.seal(FrameType.INPUT, b"click 10,20"))
    assert (plaintext, envelope.slot, envelope.flags) == (b"click 10,20", 1, Flags.PAIRWISE)
    assert at_viewer.open(at_agent.seal(FrameType.CHAT, b"hello"))[1] == b"hello"


def test_input_from_viewer_a_cannot_be_presented_as_from_viewer_b() -> None:
    session = Session()
    agent_a, viewer_a = pairwise(session, 1)
    agent_b, _ = pairwise(session, 2)
    frame = viewer_a.seal(FrameType.INPUT, b"rm -rf")
    with pytest.raises(UnexpectedFrame):
        agent_b.open(frame)
    relabelled = frame[:4] + (2).to_bytes(2, "big") + frame[6:]
    with pytest.raises(DecryptFailed):
        agent_b.open(relabelled)
    assert agent_a.open(frame)[1] == b"rm -rf"


def test_pairwise_replay_reflection_and_old_epoch_are_refused() -> None:
    session = Session()
    at_agent, at_viewer = pairwise(session, 1)
    frame = at_viewer.seal(FrameType.INPUT, b"key a")
    at_agent.open(frame)
    with pytest.raises(ReplayDetected):
        at_agent.open(frame)
    with pytest.raises(UnexpectedFrame):  # the agent never sends INPUT: a reflected frame
        at_viewer.open(frame)
    chat = at_viewer.seal(FrameType.CHAT, b"hi")
    with pytest.raises(DecryptFailed):  # CHAT goes both ways, but the keys differ per direction
        at_viewer.open(chat)
    stale = at_viewer.seal(FrameType.INPUT, b"late")
    at_agent.advance_epoch(2)
    with pytest.raises(UnknownEpoch):
        at_agent.open(stale)
    with pytest.raises(ValueError):
        at_agent.advance_epoch(2)


def test_group_and_pairwise_frames_do_not_mix() -> None:
    session = Session()
    at_agent, at_viewer = pairwise(session, 1)
    with pytest.raises(UnexpectedFrame):
        at_agent.open(session.sender.seal_update(FrameType.CHAT, b"x", slot=1))
    with pytest.raises(UnexpectedFrame):
        session.viewers[1].receiver.open(at_agent.seal(FrameType.CHAT, b"x"))
    with pytest.raises(ValueError):
        at_agent.seal(FrameType.INPUT, b"the agent does not send input")


def test_key_schedule_matches_the_documented_derivation() -> None:
    """Recompute with raw primitives, as the browser does with WebCrypto (docs/protocol.md)."""
    session = Session((5,))
    viewer = session.viewers[5]
    wrap = session.sender.wrap_for(viewer.keys.public, 5)
    frame = session.sender.seal_update(FrameType.SCREEN_UPDATE, b"spec")
    secret = viewer.keys.exchange(session.agent_keys.public)
    info = b"rsb v1 wrap" + (1).to_bytes(4, "big") + (5).to_bytes(2, "big")
    wrap_key = HKDF(hashes.SHA256(), 32, SID.encode(), info).derive(secret)
    header, nonce, sealed = wrap[:HEADER_SIZE], wrap[HEADER_SIZE:30], wrap[30:]
    unwrapped = AESGCM(wrap_key).decrypt(nonce, sealed, header)
    group_key, prefix = unwrapped[:32], unwrapped[32:]
    frame_nonce = prefix + (1).to_bytes(8, "big")
    assert AESGCM(group_key).decrypt(frame_nonce, frame[HEADER_SIZE:], frame[:HEADER_SIZE]) == (
        b"spec"
    )
    assert e2e.WRAP_INFO == b"rsb v1 wrap"
