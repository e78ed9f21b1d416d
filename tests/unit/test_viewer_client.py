"""The viewer's frame handling, driven with bytes a real agent side produced and no socket.

The agent here is `GroupSender` + `Encoder` from the packages the real agent uses; the viewer
is `ViewerSession`. A few tests at the end run `ViewerClient` against a scripted loopback
WebSocket server to check the shell: token subprotocol, replies on the wire, close codes.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from websockets.asyncio.server import ServerConnection, serve
from websockets.typing import Subprotocol

from agent_client.capture import TestPatternSource
from agent_client.encoder import Encoder
from rsb_codec.wire import Region, Update, encode_cursor, serialize_update
from rsb_protocol.e2e import GroupSender, KeyPair, PairwiseChannel, PublicKey, Side
from rsb_protocol.framing import Envelope, Flags, FrameType, peek_route
from rsb_protocol.messages import (
    GroupKey,
    Hello,
    Join,
    KeyAlgorithm,
    Leave,
    PublicKeyAnnounce,
    Role,
    State,
    Welcome,
    parse_message,
)
from rsb_protocol.readback import readback
from rsb_viewer import (
    ViewerClient,
    ViewerClosed,
    ViewerConnectError,
    ViewerError,
    ViewerSession,
    cli,
)
from rsb_viewer.client import viewer_url
from rsb_viewer.session import ViewerProtocolError

SESSION = "Glt5M5z9WROoJ9ThynxK2A"
SLOT = 3
W, H = 640, 400  # below this the test pattern's counter keeps JPEG q75 under 30 dB


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio over the colour channels, in dB."""
    diff = a[..., :3].astype(np.float64) - b[..., :3].astype(np.float64)
    mse = float(np.mean(diff**2))
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


class Agent:
    """The agent's side of the key schedule and the screen encoder, producing wire bytes."""

    def __init__(self, algorithm: KeyAlgorithm = KeyAlgorithm.X25519) -> None:
        self.pair = KeyPair.generate(algorithm)
        self.sender = GroupSender(SESSION, [self.pair])
        self.encoder = Encoder()
        self.source = TestPatternSource(W, H)

    def announce(self) -> str:
        return self.pair.public.announce(0).to_json()

    def wrap(self, viewer: PublicKey, slot: int = SLOT) -> bytes:
        return self.sender.wrap_for(viewer, slot)

    def frame(self, *, force_keyframe: bool = False) -> tuple[np.ndarray, bytes]:
        """Grab and encode the next frame: (the source pixels, the sealed frame)."""
        pixels = self.source.grab().copy()
        update = self.encoder.encode(pixels, force_keyframe=force_keyframe)
        assert update is not None
        kind = FrameType.KEYFRAME if update.kind == "keyframe" else FrameType.SCREEN_UPDATE
        return pixels, self.sender.seal_update(kind, serialize_update(update))


def welcome(slot: int = SLOT, session_id: str = SESSION) -> str:
    return Welcome(slot, "alice", session_id, "C-000123", "Acme Support").to_json()


def admitted(agent: Agent) -> ViewerSession:
    """A viewer that got welcome, the agent's key and a wrapped group key."""
    viewer = ViewerSession(SESSION)
    viewer.receive(welcome())
    viewer.receive(agent.announce())
    assert viewer.receive(agent.wrap(viewer.own.public)) == []
    assert viewer.epoch == agent.sender.epoch
    return viewer


def acks(replies: list[str | bytes]) -> list[Envelope]:
    frames = [Envelope.parse(r, 64) for r in replies if isinstance(r, bytes)]
    return [f for f in frames if f.frame_type is FrameType.ACK]


# --- handshake and keys ---------------------------------------------------------------------


def test_welcome_is_answered_with_our_public_key_for_our_slot() -> None:
    viewer = ViewerSession(SESSION)
    hello = viewer.hello()
    assert isinstance(parse_message(hello.to_json(), 4096), Hello)
    assert hello.algorithms == (KeyAlgorithm.X25519,)
    (reply,) = viewer.receive(welcome())
    assert isinstance(reply, str)
    message = PublicKeyAnnounce.parse(reply, 4096)
    assert (message.slot, PublicKey.from_announce(message)) == (SLOT, viewer.own.public)
    assert viewer.slot == SLOT


def test_welcome_for_another_session_is_fatal() -> None:
    with pytest.raises(ViewerProtocolError):
        ViewerSession(SESSION).receive(welcome(session_id="other-session"))


def test_key_wrap_for_another_slot_is_ignored() -> None:
    agent = Agent()
    viewer = ViewerSession(SESSION)
    viewer.receive(welcome())
    viewer.receive(agent.announce())
    other = KeyPair.generate()
    assert viewer.receive(agent.wrap(other.public, slot=SLOT + 1)) == []
    assert (viewer.epoch, viewer.wraps_ignored) == (0, 1)
    _, frame = agent.frame()
    assert viewer.receive(frame) == []
    assert viewer.canvas is None and viewer.errors[-1].startswith("unknown_epoch")


def test_wrap_that_overtakes_the_agent_key_is_installed_when_the_key_arrives() -> None:
    agent = Agent()
    viewer = ViewerSession(SESSION)
    viewer.receive(welcome())
    viewer.receive(agent.wrap(viewer.own.public))
    assert viewer.epoch == 0 and viewer.waiting_for_agent_key
    viewer.receive(agent.announce())
    assert viewer.epoch == 1 and not viewer.waiting_for_agent_key


def test_an_agent_key_of_another_algorithm_leaves_the_wrap_waiting() -> None:
    # What the relay bug looked like from here: the agent's P-256 key only, for an X25519 viewer.
    agent = Agent()
    viewer = ViewerSession(SESSION)
    viewer.receive(welcome())
    viewer.receive(agent.wrap(viewer.own.public))
    viewer.receive(KeyPair.generate(KeyAlgorithm.P256).public.announce(0).to_json())
    assert viewer.epoch == 0 and viewer.waiting_for_agent_key and viewer.agent_key is None
    viewer.receive(agent.announce())
    assert viewer.epoch == 1 and not viewer.waiting_for_agent_key


def test_group_key_message_installs_the_same_key_as_the_frame() -> None:
    agent = Agent()
    viewer = ViewerSession(SESSION)
    viewer.receive(welcome())
    viewer.receive(agent.announce())
    wrapped = agent.wrap(viewer.own.public)
    viewer.receive(GroupKey(SLOT, 1, base64.b64encode(wrapped).decode()).to_json())
    assert viewer.epoch == 1


def test_p256_viewer_uses_the_agents_p256_key() -> None:
    agent = Agent(KeyAlgorithm.P256)
    viewer = ViewerSession(SESSION, algorithms=("p256",))
    viewer.receive(welcome())
    viewer.receive(agent.announce())
    viewer.receive(agent.wrap(viewer.own.public))
    pixels, frame = agent.frame()
    assert acks(viewer.receive(frame))
    assert viewer.canvas is not None and psnr(viewer.canvas, pixels) >= 30


# --- screen ---------------------------------------------------------------------------------


def test_keyframe_then_deltas_rebuild_the_screen_and_each_is_acknowledged() -> None:
    agent = Agent()
    viewer = admitted(agent)
    for i in range(6):
        pixels, frame = agent.frame()
        (ack,) = acks(viewer.receive(frame))
        assert (ack.slot, ack.epoch, ack.seq, ack.payload) == (SLOT, 1, i + 1, b"")
        assert viewer.canvas is not None and psnr(viewer.canvas, pixels) >= 30
    assert (viewer.keyframes_applied, viewer.updates_applied) == (1, 6)
    assert (
        viewer.canvas is not None
        and viewer.canvas.shape == (H, W, 4)
        and viewer.canvas.dtype == np.uint8
    )


def test_more_flag_paints_only_when_the_last_part_arrives() -> None:
    agent = Agent()
    viewer = admitted(agent)
    pixels = np.full((H, W, 4), 200, dtype=np.uint8)
    whole = agent.encoder.encode(pixels, force_keyframe=True)
    assert whole is not None
    (region,) = whole.regions
    halves = [Update("keyframe", W, H, [region]), Update("keyframe", W, H, [region])]
    first = agent.sender.seal_update(
        FrameType.KEYFRAME, serialize_update(halves[0]), flags=Flags.MORE
    )
    last = agent.sender.seal_update(FrameType.KEYFRAME, serialize_update(halves[1]))
    assert viewer.receive(first) == [] and viewer.canvas is None
    (ack,) = acks(viewer.receive(last))
    assert ack.seq == 2 and viewer.canvas is not None and psnr(viewer.canvas, pixels) >= 30


def test_delta_before_any_keyframe_asks_for_one_once() -> None:
    agent = Agent()
    viewer = admitted(agent)
    agent.encoder.encode(agent.source.grab().copy())  # keyframe the viewer never gets
    replies = [r for _ in range(3) for r in viewer.receive(agent.frame()[1])]
    requests = [
        f
        for f in (Envelope.parse(r, 64) for r in replies if isinstance(r, bytes))
        if f.frame_type is FrameType.KEYFRAME_REQUEST
    ]
    assert [(f.slot, f.payload) for f in requests] == [(SLOT, b"")]
    assert len(acks(replies)) == 3 and viewer.canvas is None
    pixels, frame = agent.frame(force_keyframe=True)
    viewer.receive(frame)
    assert viewer.canvas is not None and psnr(viewer.canvas, pixels) >= 30


def test_frame_of_an_old_epoch_after_rotation_is_rejected() -> None:
    agent = Agent()
    viewer = ViewerSession(SESSION)
    viewer.receive(welcome())
    viewer.receive(agent.announce())
    old_wrap = agent.wrap(viewer.own.public)
    viewer.receive(old_wrap)
    viewer.receive(agent.frame()[1])
    assert viewer.canvas is not None
    before = viewer.canvas.copy()
    _, stale = agent.frame()  # sealed in epoch 1, delivered late
    agent.sender.new_epoch()
    viewer.receive(agent.wrap(viewer.own.public))
    assert viewer.epoch == 2
    assert viewer.receive(stale) == []
    assert viewer.errors[-1].startswith("unknown_epoch")
    assert viewer.frames_dropped == 1 and np.array_equal(viewer.canvas, before)
    viewer.receive(old_wrap)  # nor can a replayed wrap bring epoch 1 back
    assert viewer.errors[-1].startswith("replay") and viewer.epoch == 2


def test_replayed_and_tampered_frames_are_dropped_without_ack() -> None:
    agent = Agent()
    viewer = admitted(agent)
    _, frame = agent.frame()
    assert acks(viewer.receive(frame))
    assert viewer.receive(frame) == [] and viewer.errors[-1].startswith("replay")
    _, frame = agent.frame()
    tampered = bytearray(frame)
    tampered[-1] ^= 1
    assert viewer.receive(bytes(tampered)) == []
    assert viewer.errors[-1].startswith("decrypt_failed") and viewer.frames_dropped == 2


def test_cursor_frames_move_the_cursor_and_are_not_acknowledged() -> None:
    agent = Agent()
    viewer = admitted(agent)
    for x, y, visible in [(10, 20, True), (300, 199, False)]:
        frame = agent.sender.seal_update(FrameType.CURSOR, encode_cursor(x, y, visible))
        assert viewer.receive(frame) == []
        assert viewer.cursor is not None
        assert (viewer.cursor.x, viewer.cursor.y, viewer.cursor.visible) == (x, y, visible)


def test_oversized_keyframe_is_refused_not_allocated() -> None:
    agent = Agent()
    viewer = admitted(agent)
    huge = Update("keyframe", 65535, 65535, [Region(0, 0, 1, 1, "jpeg", b"\xff")])
    viewer.receive(agent.sender.seal_update(FrameType.KEYFRAME, serialize_update(huge)))
    assert viewer.canvas is None and viewer.errors[-1].startswith("bad_payload")


# --- read-back, state, input ----------------------------------------------------------------


def test_readback_matches_rsb_protocol_over_the_same_keys() -> None:
    agent = Agent()
    viewer = admitted(agent)
    assert viewer.readback == readback(SESSION, [agent.pair.public, viewer.own.public])
    other = KeyPair.generate(KeyAlgorithm.P256)
    viewer.receive(Join(4, "bob", "Bob", Role.VIEWER).to_json())
    viewer.receive(other.public.announce(4).to_json())
    viewer.receive(viewer.own.public.announce(SLOT).to_json())  # our own key, relayed back
    expected = readback(SESSION, [other.public, viewer.own.public, agent.pair.public])
    assert viewer.readback == expected
    viewer.receive(Leave(4, "bob").to_json())
    assert viewer.readback == readback(SESSION, [agent.pair.public, viewer.own.public])


def test_readback_leaves_out_keys_of_viewers_who_are_not_present() -> None:
    """The broker replays the keys of viewers who left; the agent's words do not count them."""
    agent = Agent()
    viewer = admitted(agent)
    viewer.receive(KeyPair.generate().public.announce(5).to_json())  # nobody joined slot 5
    assert viewer.readback == readback(SESSION, [agent.pair.public, viewer.own.public])
    viewer.receive(Join(5, "carol", "Carol", Role.VIEWER).to_json())  # no key of hers yet
    assert viewer.readback == readback(SESSION, [agent.pair.public, viewer.own.public])
    carol = KeyPair.generate()
    viewer.receive(carol.public.announce(5).to_json())
    viewer.receive(Join(5, "carol", "Carol", Role.VIEWER).to_json())  # repeated: key kept
    expected = [agent.pair.public, viewer.own.public, carol.public]
    assert viewer.readback == readback(SESSION, expected)
    viewer.receive(Join(5, "dave", "Dave", Role.VIEWER).to_json())  # someone else's slot now
    viewer.receive(Join(0, "agent", "Customer's computer", Role.AGENT).to_json())
    assert viewer.readback == readback(SESSION, [agent.pair.public, viewer.own.public])


def test_someone_elses_key_for_our_slot_is_refused() -> None:
    viewer = ViewerSession(SESSION)
    viewer.receive(welcome())
    before = viewer.readback
    viewer.receive(KeyPair.generate().public.announce(SLOT).to_json())
    assert viewer.readback == before and viewer.errors[-1].startswith("unexpected_frame")


def test_state_pause_and_unknown_text_are_recorded() -> None:
    viewer = ViewerSession(SESSION)
    viewer.receive(State("observing", (SLOT,), None).to_json())
    viewer.receive('{"v":1,"type":"pause","by":"customer","reason":"phone"}')
    viewer.receive('{"v":1,"type":"nonsense"}')
    assert viewer.state is not None and viewer.state.phase == "observing" and viewer.paused
    assert viewer.errors[-1].startswith("unknown_type")


def test_input_is_sealed_pairwise_with_our_slot_and_opens_at_the_agent() -> None:
    agent = Agent()
    viewer = admitted(agent)
    event = {"type": "pointer_move", "x": 10, "y": 20}
    frame = viewer.seal_input(event)
    channel = PairwiseChannel(SESSION, agent.pair, viewer.own.public, SLOT, Side.AGENT, 1)
    envelope, plaintext = channel.open(frame)
    assert (envelope.frame_type, envelope.slot) == (FrameType.INPUT, SLOT)
    assert json.loads(plaintext) == event
    agent.sender.new_epoch()
    viewer.receive(agent.wrap(viewer.own.public))
    channel.advance_epoch(2)
    assert channel.open(viewer.seal_input(event))[0].epoch == 2


def test_chat_end_and_broker_errors_are_kept() -> None:
    agent = Agent()
    viewer = admitted(agent)
    viewer.receive(agent.sender.seal_update(FrameType.CHAT, b"hello from the customer"))
    viewer.receive('{"v":1,"type":"error","code":"consent_required","message":"no"}')
    viewer.receive('{"v":1,"type":"resume","by":"customer"}')
    viewer.receive('{"v":1,"type":"end","by":"customer","reason":"done"}')
    assert list(viewer.chat) == ["hello from the customer"] and not viewer.paused
    assert viewer.broker_errors[-1].code == "consent_required"
    assert viewer.ended is not None and viewer.ended.reason == "done"


def test_more_parts_beyond_the_bound_are_dropped_and_a_keyframe_is_requested() -> None:
    agent = Agent()
    viewer = admitted(agent)
    part = serialize_update(Update("delta", W, H, []))
    replies: list[str | bytes] = []
    for _ in range(300):
        frame = agent.sender.seal_update(FrameType.SCREEN_UPDATE, part, flags=Flags.MORE)
        replies += viewer.receive(frame)
    (request,) = [Envelope.parse(r, 64) for r in replies if isinstance(r, bytes)]
    assert request.frame_type is FrameType.KEYFRAME_REQUEST
    assert any("exceeds the viewer's bounds" in e for e in viewer.errors)


def test_input_before_admission_is_an_error() -> None:
    viewer = ViewerSession(SESSION)
    viewer.receive(welcome())
    with pytest.raises(ViewerError, match="consent"):
        viewer.seal_input({"type": "key", "key": "a", "pressed": True})


def test_viewer_url_forms() -> None:
    assert viewer_url("http://h:8080/", "abc") == "ws://h:8080/ws/viewer/abc"
    assert viewer_url("https://h/rsb", "abc") == "wss://h/rsb/ws/viewer/abc"
    for bad in [("ftp://h", "abc"), ("http://h", "../x"), ("h:80", "abc")]:
        with pytest.raises(ValueError):
            viewer_url(*bad)


# --- the asyncio shell against a scripted loopback server ------------------------------------


Script = Callable[[ServerConnection, Agent], Awaitable[None]]


@asynccontextmanager
async def fake_broker(script: Script, agent: Agent) -> AsyncIterator[str]:
    """Serve one scripted broker on a free loopback port; yield its base URL."""

    async def handler(ws: ServerConnection) -> None:
        await script(ws, agent)

    async with serve(handler, "127.0.0.1", 0, subprotocols=[Subprotocol("rsb.v1")]) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"http://127.0.0.1:{port}"


async def test_client_joins_decrypts_acks_and_reports_the_close_code() -> None:
    agent = Agent()
    seen: dict[str, object] = {}

    async def script(ws: ServerConnection, agent: Agent) -> None:
        seen["subprotocols"] = ws.request.headers["Sec-WebSocket-Protocol"] if ws.request else ""
        seen["hello"] = await ws.recv()
        await ws.send(welcome())
        await ws.send(agent.announce())
        key = PublicKey.from_announce(PublicKeyAnnounce.parse(str(await ws.recv()), 4096))
        await ws.send(agent.wrap(key))
        pixels, frame = agent.frame()
        seen["pixels"] = pixels
        await ws.send(frame)
        seen["ack"] = await ws.recv()
        await ws.close(4103, "customer ended the session")

    async with fake_broker(script, agent) as url:
        client = ViewerClient(url, "a.b.c", SESSION)
        await client.connect()
        canvas = await client.wait_first_keyframe(timeout=5)
        assert psnr(canvas, seen["pixels"]) >= 30  # type: ignore[arg-type]
        with pytest.raises(ViewerClosed) as closed:
            await client.wait_for(lambda c: False, timeout=5)
        assert (closed.value.code, closed.value.reason) == (4103, "customer ended the session")
        assert client.close_code == 4103 and "ended" in str(closed.value)
        await client.close()
    assert seen["subprotocols"] == "rsb.v1, rsb.token.a.b.c"
    assert isinstance(parse_message(str(seen["hello"]), 4096), Hello)
    ack = Envelope.parse(seen["ack"], 64)  # type: ignore[arg-type]
    assert (ack.frame_type, ack.slot, ack.seq) == (FrameType.ACK, SLOT, 1)


async def test_client_sends_control_input_keyframe_request_and_raw() -> None:
    received: list[str | bytes] = []

    async def script(ws: ServerConnection, agent: Agent) -> None:
        await ws.recv()
        await ws.send(welcome())
        await ws.send(agent.announce())
        key = PublicKey.from_announce(PublicKeyAnnounce.parse(str(await ws.recv()), 4096))
        await ws.send(agent.wrap(key))
        await ws.send(State("controlling", (SLOT,), SLOT).to_json())
        received.extend([await ws.recv() for _ in range(5)])

    agent = Agent()
    async with fake_broker(script, agent) as url, ViewerClient(url, "a.b.c", SESSION) as client:
        await client.wait_for(lambda c: c.state and c.state.controller_slot == c.slot, 5)
        request_id = await client.request_control("need the settings")
        await client.send_input({"type": "key", "key": "a", "pressed": True})
        await client.request_keyframe()
        await client.release_control()
        await client.send_raw(b"not a frame")
        await client.wait_for(lambda c: c.closed, 5)
    control, sealed, keyframe, release, raw = received
    assert parse_message(str(control), 4096).to_dict()["request_id"] == request_id
    channel = PairwiseChannel(SESSION, agent.pair, client.session.own.public, SLOT, Side.AGENT)
    assert isinstance(sealed, bytes) and isinstance(keyframe, bytes)
    assert json.loads(channel.open(sealed)[1]) == {"type": "key", "key": "a", "pressed": True}
    assert peek_route(keyframe) == (FrameType.KEYFRAME_REQUEST, SLOT)
    assert parse_message(str(release), 4096).to_dict() == {
        "v": 1,
        "type": "control_release",
        "slot": SLOT,
    }
    assert raw == b"not a frame"


async def test_client_reports_refusal_and_unreachable_broker() -> None:
    async def script(ws: ServerConnection, agent: Agent) -> None:
        await asyncio.sleep(0)

    async with fake_broker(script, Agent()) as url:
        with pytest.raises(ViewerConnectError):
            await ViewerClient(url.replace("http", "https"), "a.b.c", SESSION).connect()
    with pytest.raises(ViewerConnectError):
        await ViewerClient("http://127.0.0.1:9", "a.b.c", SESSION, open_timeout=2).connect()


# --- command line -----------------------------------------------------------------------------


def test_cli_without_a_token_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RSB_TOKEN", raising=False)
    assert cli.main([SESSION]) == 2
    assert cli.main([]) == 2


def test_cli_user_without_a_password_on_stdin_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert cli.main([SESSION, "--user", "alice", "--broker", "http://127.0.0.1:9"]) == 2
    monkeypatch.setattr("sys.stdin", io.StringIO("secret\n"))
    assert cli.main([SESSION, "--user", "alice", "--broker", "http://127.0.0.1:9"]) == 3


def test_cli_unreachable_broker_is_a_connection_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RSB_TOKEN", "a.b.c")
    assert cli.main([SESSION, "--broker", "http://127.0.0.1:9", "--timeout", "2"]) == 3


async def test_cli_snapshot_prints_the_readback_and_writes_the_first_frame(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    agent = Agent()
    sent: dict[str, np.ndarray] = {}

    async def script(ws: ServerConnection, agent: Agent) -> None:
        await ws.recv()
        await ws.send(welcome())
        await ws.send(State("pending_consent").to_json())
        await ws.send(agent.announce())
        key = PublicKey.from_announce(PublicKeyAnnounce.parse(str(await ws.recv()), 4096))
        await ws.send(State("observing", (SLOT,)).to_json())
        await ws.send(agent.wrap(key))
        sent["pixels"], frame = agent.frame()
        await ws.send(frame)
        await ws.wait_closed()

    out = tmp_path / "first.png"
    monkeypatch.setenv("RSB_TOKEN", "a.b.c")
    async with fake_broker(script, agent) as url:
        argv = [SESSION, "--broker", url, "--snapshot", str(out), "--timeout", "10"]
        assert await asyncio.to_thread(cli.main, argv) == 0
    printed = capsys.readouterr().out
    with Image.open(out) as image:
        rgb = np.asarray(image.convert("RGB"))
    assert psnr(rgb[..., ::-1], sent["pixels"]) >= 30  # PNG is RGB, the source BGRA
    own = [line for line in printed.splitlines() if line.startswith("Read-back words:")]
    assert len(own) == 1 and "Session observing: viewing slots 3" in printed


async def test_cli_maps_an_auth_close_to_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    async def script(ws: ServerConnection, agent: Agent) -> None:
        await ws.close(4003, "token expired")

    monkeypatch.setenv("RSB_TOKEN", "a.b.c")
    async with fake_broker(script, Agent()) as url:
        assert await asyncio.to_thread(cli.main, [SESSION, "--broker", url]) == 2
