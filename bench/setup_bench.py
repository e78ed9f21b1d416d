"""Measurement 6 of issue 5: from ``POST /api/v1/join`` to the first decrypted frame.

The engineer's console is already in the session (as when the engineer reads out the code);
the clock starts when the customer's side posts the join code and stops when the viewer has
unwrapped the group key and decrypted a real 1280x800 keyframe. In between, everything a
customer's first second contains: the join exchange, the agent's WebSocket, its hello and
public key, the consent request for the waiting engineer and its grant, a new key epoch
wrapped to the viewer, capture of a test-pattern screen, JPEG encoding, AES-GCM sealing and
the relay. Uses aiohttp's WebSocket client, not the lean load generator: this is one session
at a time, measured end to end.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import aiohttp

from agent_client.capture import TestPatternSource
from agent_client.encoder import Encoder
from bench import servers as srv
from bench.api import Api
from bench.context import Context
from rsb_codec.wire import parse_update, serialize_update
from rsb_protocol import messages as msg
from rsb_protocol.e2e import GroupReceiver, GroupSender, KeyPair, PublicKey
from rsb_protocol.framing import FrameType, peek_route

TIMEOUT = 20.0
LIMIT = 1 << 20


def _protocols(token: str) -> tuple[str, str]:
    return ("rsb.v1", f"rsb.token.{token}")


async def _next_text(ws: aiohttp.ClientWebSocketResponse) -> msg.Message:
    while True:
        message = await ws.receive(timeout=TIMEOUT)
        if message.type == aiohttp.WSMsgType.TEXT:
            return msg.parse_message(message.data, LIMIT)
        if message.type != aiohttp.WSMsgType.BINARY:
            raise RuntimeError(f"socket closed: {message.type} {message.data!r}")


async def one_session(http: aiohttp.ClientSession, api: Api, base: str, staff: str) -> float:
    """Milliseconds from the join request to the viewer's first decrypted frame."""
    session = await api.new_session({"Authorization": f"Bearer {staff}"}, join=False)
    viewer_keys, agent_keys = KeyPair.generate(), KeyPair.generate()
    viewer = await http.ws_connect(f"{base}/ws/viewer/{session.id}", protocols=_protocols(staff))
    await viewer.send_str(msg.Hello(msg.Role.VIEWER, (msg.KeyAlgorithm.X25519,), "bench").to_json())
    welcome = await _next_text(viewer)
    assert isinstance(welcome, msg.Welcome)
    slot = welcome.slot
    await viewer.send_str(viewer_keys.public.announce(slot).to_json())
    source = TestPatternSource(1280, 800)

    started = time.perf_counter()
    joined = await api.call("POST", "/api/v1/join", json={"code": session.code})
    agent = await http.ws_connect(f"{base}/ws/agent", protocols=_protocols(joined["agent_token"]))
    try:
        await agent.send_str(
            msg.Hello(msg.Role.AGENT, (msg.KeyAlgorithm.X25519,), "bench").to_json()
        )
        await agent.send_str(agent_keys.public.announce(0).to_json())
        viewer_key: msg.PublicKeyAnnounce | None = None
        admitted = False
        while viewer_key is None or not admitted:
            item = await _next_text(agent)
            if isinstance(item, msg.PublicKeyAnnounce) and item.slot == slot:
                viewer_key = item
            elif isinstance(item, msg.ConsentRequest):
                grant = msg.ConsentGrant(item.request_id, item.slot, item.permission)
                await agent.send_str(grant.to_json())
            elif isinstance(item, msg.State) and slot in item.viewing_slots:
                admitted = True
        sender = GroupSender(session.id, [agent_keys])
        sender.new_epoch()
        await agent.send_bytes(sender.wrap_for(PublicKey.from_announce(viewer_key), slot))
        update = Encoder().encode(source.grab(), force_keyframe=True)
        assert update is not None
        await agent.send_bytes(sender.seal_update(FrameType.KEYFRAME, serialize_update(update)))

        receiver: GroupReceiver | None = None
        while True:
            message = await viewer.receive(timeout=TIMEOUT)
            if message.type == aiohttp.WSMsgType.TEXT:
                item = msg.parse_message(message.data, LIMIT)
                if isinstance(item, msg.PublicKeyAnnounce) and item.slot == 0:
                    receiver = GroupReceiver(
                        session.id, viewer_keys, slot, PublicKey.from_announce(item)
                    )
                continue
            if message.type != aiohttp.WSMsgType.BINARY:
                raise RuntimeError(f"viewer socket closed: {message.type}")
            kind = peek_route(message.data)[0]
            if receiver is None:
                raise RuntimeError("a frame arrived before the agent's public key")
            if kind == FrameType.KEY_WRAP:
                receiver.install_wrapped_key(message.data)
            elif kind == FrameType.KEYFRAME:
                _, plaintext = receiver.open(message.data)
                parse_update(plaintext)  # a whole, valid update: the frame can be painted
                return (time.perf_counter() - started) * 1e3
    finally:
        await agent.close()
        await viewer.close()


async def measure(port: int, count: int) -> list[float]:
    base = f"http://127.0.0.1:{port}"
    async with Api(port) as api, aiohttp.ClientSession() as http:
        staff = (await api.engineers(1, prefix="setup"))[0]
        await one_session(http, api, base, staff)  # warm-up: imports, first connections
        return [await one_session(http, api, base, staff) for _ in range(count)]


def run_setup(ctx: Context) -> None:
    report = ctx.report
    count = 5 if ctx.options.quick else 20
    server = srv.start_broker(ctx.work, tag="broker-setup")
    try:
        ctx.log(f"session setup, {count} sessions")
        samples = asyncio.run(measure(server.port, count))
    finally:
        server.stop()
    figure = report.figure("setup.ms", "ms")
    for value in samples:
        figure.add(value)
    section = report.section(
        "setup",
        "6. Session setup: join to first decrypted frame",
        ["sessions", "median ms", "spread (min-max) ms", "p90 ms"],
    )
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    section.rows.append(
        [str(count), f"{statistics.median(samples):.1f}", f"{min(samples):.1f}-{max(samples):.1f}"]
        + [f"{p90:.1f}"]
    )
    section.notes.append(
        "Each sample is one new session, measured in sequence on the broker as production "
        "starts it; the viewer was connected before the join (the engineer waiting for the "
        "customer). Includes encoding and sealing a 1280x800 test-pattern keyframe."
    )


__all__: list[Any] = ["run_setup"]
