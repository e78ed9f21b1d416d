"""Scripted relay peers for broker tests: a minimal agent and viewer speaking the real protocol.

They use the real E2E code (``rsb_protocol.e2e``) over real WebSockets to the real broker, but
no screen or prompt: each test decides exactly what they send, so it can try what a well-behaved
agent or console never would.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from rsb_protocol import messages as msg
from rsb_protocol.e2e import GroupReceiver, GroupSender, KeyPair, PairwiseChannel, PublicKey, Side
from rsb_protocol.framing import NO_FLAGS, FrameType, pack_header, peek_position, peek_route

TIMEOUT = 5.0
_CLOSED = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED)


def subprotocols(token: str) -> tuple[str, ...]:
    return ("rsb.v1", f"rsb.token.{token}")


@dataclass
class Peer:
    ws: aiohttp.ClientWebSocketResponse
    texts: list[msg.Message] = field(default_factory=list)
    binaries: list[bytes] = field(default_factory=list)
    close_reason: str | None = None
    """The reason of the close frame received, once one was (valid UTF-8, or aiohttp fails)."""
    _event: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        # `async for` would hide the close frame, and with it the reason.
        while (message := await self.ws.receive()).type not in _CLOSED:
            if message.type == aiohttp.WSMsgType.TEXT:
                self.texts.append(msg.parse_message(message.data, 1 << 20))
            elif message.type == aiohttp.WSMsgType.BINARY:
                self.binaries.append(message.data)
            self._event.set()
        if message.type == aiohttp.WSMsgType.CLOSE:
            self.close_reason = message.extra
        self._event.set()

    async def wait(self, predicate: Any, timeout: float = TIMEOUT) -> Any:
        """Wait until ``predicate()`` is truthy and return its value."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"condition not met within {timeout}s; texts={self.texts}")
            self._event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), remaining)

    def of(self, kind: type[msg.Message]) -> list[Any]:
        return [m for m in self.texts if isinstance(m, kind)]

    def frames(self, *types: FrameType) -> list[bytes]:
        return [b for b in self.binaries if peek_route(b)[0] in types]

    async def send(self, message: msg.Message) -> None:
        await self.ws.send_str(message.to_json())

    async def closed(self) -> int | None:
        if self._task is not None:
            await asyncio.wait_for(self._task, TIMEOUT)
        return self.ws.close_code

    async def close(self) -> None:
        await self.ws.close()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, TIMEOUT)


async def connect(client: TestClient[Any, Any], path: str, token: str, **kw: Any) -> Peer:
    ws = await client.ws_connect(path, protocols=subprotocols(token), **kw)
    peer = Peer(ws)
    peer.start()
    return peer


@dataclass
class ScriptedAgent:
    peer: Peer
    session_id: str
    keys: KeyPair = field(default_factory=KeyPair.generate)
    sender: GroupSender | None = None

    @classmethod
    async def join(cls, client: TestClient[Any, Any], token: str, session_id: str) -> ScriptedAgent:
        agent = cls(await connect(client, "/ws/agent", token), session_id)
        agent.sender = GroupSender(session_id, [agent.keys])
        await agent.peer.send(msg.Hello(msg.Role.AGENT, (msg.KeyAlgorithm.X25519,), "test-agent"))
        await agent.peer.send(agent.keys.public.announce(0))
        await agent.peer.wait(lambda: agent.peer.of(msg.Welcome))
        return agent

    def viewer_key(self, slot: int) -> msg.PublicKeyAnnounce | None:
        keys = [k for k in self.peer.of(msg.PublicKeyAnnounce) if k.slot == slot]
        return keys[-1] if keys else None

    async def grant(self, request: msg.ConsentRequest) -> None:
        await self.peer.send(msg.ConsentGrant(request.request_id, request.slot, request.permission))

    async def admit(self, slots: list[int]) -> None:
        """New epoch, wrapped to each admitted viewer (as a real agent does on admission)."""
        assert self.sender is not None
        self.sender.new_epoch()
        for slot in slots:
            key = self.viewer_key(slot)
            assert key is not None, f"no public key for slot {slot}"
            await self.peer.ws.send_bytes(self.sender.wrap_for(PublicKey.from_announce(key), slot))

    async def screen(self, payload: bytes, kind: FrameType = FrameType.KEYFRAME) -> bytes:
        assert self.sender is not None
        sealed = self.sender.seal_update(kind, payload)
        await self.peer.ws.send_bytes(sealed)
        return sealed

    def inputs(self, slot: int, viewer_key: msg.PublicKeyAnnounce) -> list[bytes]:
        channel = PairwiseChannel(
            self.session_id,
            self.keys,
            PublicKey.from_announce(viewer_key),
            slot,
            Side.AGENT,
            epoch=self.sender.epoch if self.sender else 1,
        )
        opened = []
        for frame in self.peer.frames(FrameType.INPUT):
            with contextlib.suppress(Exception):
                opened.append(channel.open(frame)[1])
        return opened


@dataclass
class ScriptedViewer:
    peer: Peer
    session_id: str
    slot: int = 0
    keys: KeyPair = field(default_factory=KeyPair.generate)
    receiver: GroupReceiver | None = None

    @classmethod
    async def join(
        cls, client: TestClient[Any, Any], token: str, session_id: str
    ) -> ScriptedViewer:
        viewer = cls(await connect(client, f"/ws/viewer/{session_id}", token), session_id)
        await viewer.peer.send(msg.Hello(msg.Role.VIEWER, (msg.KeyAlgorithm.X25519,), "test"))
        welcome = await viewer.peer.wait(lambda: viewer.peer.of(msg.Welcome))
        viewer.slot = welcome[0].slot
        await viewer.peer.send(viewer.keys.public.announce(viewer.slot))
        return viewer

    def agent_key(self) -> msg.PublicKeyAnnounce | None:
        keys = [k for k in self.peer.of(msg.PublicKeyAnnounce) if k.slot == 0]
        return keys[-1] if keys else None

    def open_all(self) -> list[bytes]:
        """Install every key wrap for us, then open every screen frame we can."""
        agent_key = self.agent_key()
        assert agent_key is not None
        if self.receiver is None:
            self.receiver = GroupReceiver(
                self.session_id, self.keys, self.slot, PublicKey.from_announce(agent_key)
            )
        opened = []
        for frame in self.peer.binaries:
            kind = peek_route(frame)[0]
            with contextlib.suppress(Exception):
                if kind == FrameType.KEY_WRAP:
                    self.receiver.install_wrapped_key(frame)
                elif kind in (FrameType.KEYFRAME, FrameType.SCREEN_UPDATE):
                    opened.append(self.receiver.open(frame)[1])
        return opened

    def pairwise_input(self, payload: bytes, epoch: int) -> bytes:
        """An INPUT frame sealed with our pairwise key, as the console sends it."""
        agent_key = self.agent_key()
        assert agent_key is not None
        channel = PairwiseChannel(
            self.session_id,
            self.keys,
            PublicKey.from_announce(agent_key),
            self.slot,
            Side.VIEWER,
            epoch=epoch,
        )
        return channel.seal(FrameType.INPUT, payload)

    async def send_input(self, payload: bytes, epoch: int) -> None:
        await self.peer.ws.send_bytes(self.pairwise_input(payload, epoch))

    async def ack(self, seq: int, epoch: int = 0) -> None:
        await self.peer.ws.send_bytes(pack_header(FrameType.ACK, self.slot, epoch, seq, NO_FLAGS))

    def last_position(self) -> tuple[int, int]:
        """(epoch, seq) of the newest screen update or keyframe this viewer received."""
        frames = self.peer.frames(FrameType.SCREEN_UPDATE, FrameType.KEYFRAME)
        assert frames, "no screen frame received yet"
        return peek_position(frames[-1])

    async def ack_latest(self) -> tuple[int, int]:
        """Acknowledge what we were sent: the broker forwards no ACK beyond that."""
        epoch, seq = self.last_position()
        await self.ack(seq, epoch)
        return epoch, seq
