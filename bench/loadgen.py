"""The load generator: agents and viewers of many sessions, in a process of its own.

``python -m bench.loadgen`` reads one job (JSON, one line) from stdin, connects every session
to the relay under test and prints ``{"event": "ready"}``. Each further stdin line ``run``
measures one window and prints ``window_start``, then ``window_end`` with the figures; ``stop``
(or end of input) closes everything. Keeping the connections open between windows lets the
orchestrator interleave rounds of different relays, so that a noisy neighbour on the shared
machine hits every relay alike.

Every message carries its send time (``time.monotonic_ns``, same process at both ends), so a
viewer knows each message's one-way latency through the relay, and a sequence number, so it
knows how many were dropped. Modes:

- ``throughput``: each agent writes as fast as its socket accepts (the relay's back-pressure
  paces it); viewers count messages and bytes;
- ``paced``: all agents together send ``rate`` messages/s each, evenly spread in time (in
  batches of what is due, at least a millisecond apart: ``SEND_TICK``);
  viewers record every latency;
- ``idle``: connect and stay connected, nothing flows (the orchestrator reads memory).

Relays: ``broker`` (the real protocol: token subprotocols, consent answered by the agent,
broadcast frames, ACKs back to the agent), ``minimal`` (``/agent/ID`` -> ``/view/ID``, and
back), ``websockify`` (WebSocket in, a raw TCP sink out: nothing comes back) and
``meshcentral`` (``/meshrelay.ashx``, paired 1:1, both ways).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from bench.stats import latency_summary
from bench.wsclient import OP_BINARY, PEEK, WSClient, connect
from rsb_protocol import messages as msg
from rsb_protocol.framing import BROADCAST_SLOT, FrameType

monotonic_ns = time.monotonic_ns
SCREEN_UPDATE = int(FrameType.SCREEN_UPDATE)
KEYFRAME = int(FrameType.KEYFRAME)
KEYFRAME_REQUEST = int(FrameType.KEYFRAME_REQUEST)
ACK = int(FrameType.ACK)
ACK_HEADER = struct.Struct(">BBBBHIQ")
WINDOW_BYTES = 4 * 1024 * 1024
"""Throughput mode, broker only: bytes an agent may have unacknowledged (its credit window).

The other relays forward 1:1 and await each write, so TCP back-pressure is their flow control
and their senders need no window; the broker decouples the agent from its viewers and paces
the agent with ACK credits instead (docs/protocol.md).
"""
CREDIT_TIMEOUT = 0.2
SEND_TICK = 0.001
"""Paced mode: the shortest sleep between sends, in seconds; what is due meanwhile goes together.

Both event loops wake timers at millisecond granularity, so a shorter sleep returns at once:
spreading 6,000 msg/s one by one made the sender spin a whole core of the machine's two
(0.97-1.00 core at 100 and at 200 sessions, against 0.3-0.45 core with this tick), taking it
from the relay under test. Each message still carries its own send time.
"""
CONNECT_CONCURRENCY = 64
SETUP_TIMEOUT = 60.0


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass
class Receiver:
    """What one viewer saw: messages, bytes, sequence gaps and latencies.

    A viewer acknowledges every ``ack_every`` messages with an ACK frame through the relay,
    as the protocol's flow control does (see ``Job._link`` for which relays and when).
    """

    stalled: bool = False
    messages: int = 0
    nbytes: int = 0
    gaps: int = 0
    last_seq: int = -1
    record: bool = False
    latencies: list[int] = field(default_factory=list)
    client: WSClient | None = None
    slot: int = 0
    ack_every: int = 0
    _acked: int = 0

    def on_binary(self, prefix: bytes, size: int, now: int) -> None:
        self.messages += 1
        self.nbytes += size
        if len(prefix) < PEEK:
            return
        seq = int.from_bytes(prefix[10:18], "big")
        if self.last_seq >= 0 and seq > self.last_seq + 1:
            self.gaps += seq - self.last_seq - 1
        self.last_seq = seq
        if self.record:
            self.latencies.append(now - int.from_bytes(prefix[18:26], "big"))
        if self.ack_every and seq - self._acked >= self.ack_every and self.client is not None:
            self._acked = seq
            # In the update's epoch, as real viewers acknowledge: the broker forwards an ACK
            # only for what it sent (the agent's current epoch, no further than its seq).
            epoch = int.from_bytes(prefix[6:10], "big")
            self.client.send(OP_BINARY, ACK_HEADER.pack(0xB1, ACK, 0, 0, self.slot, epoch, seq))


class StreamSink(asyncio.Protocol):
    """websockify's far end: a TCP stream cut back into fixed-size messages."""

    def __init__(self, size: int, receiver: Receiver) -> None:
        self.size = size
        self.receiver = receiver
        self._offset = 0  # position inside the current message
        self._head = bytearray()

    def data_received(self, data: bytes) -> None:
        now = monotonic_ns()
        pos = 0
        end = len(data)
        size = self.size
        while pos < end:
            if self._offset < PEEK:
                take = min(PEEK - self._offset, end - pos)
                self._head += data[pos : pos + take]
                self._offset += take
                pos += take
                continue
            take = min(size - self._offset, end - pos)
            self._offset += take
            pos += take
            if self._offset == size:
                self.receiver.on_binary(bytes(self._head), size, now)
                self._head.clear()
                self._offset = 0


@dataclass
class Link:
    """One session: an agent (sender) and its viewers, with the agent's credit window."""

    agent: WSClient
    receivers: list[Receiver]
    clients: list[Any]
    seq: int = 0
    acked: int = 0
    keyframe_due: bool = False
    keyframe_requests: int = 0
    stale_windows: int = 0
    _credit: asyncio.Future[None] | None = None

    def __post_init__(self) -> None:
        self.agent.on_binary = self._agent_binary

    def _agent_binary(self, prefix: bytes, size: int, now: int) -> None:
        if len(prefix) < 18:
            return
        if prefix[1] == ACK:
            self.progress(int.from_bytes(prefix[10:18], "big"))
        elif prefix[1] == KEYFRAME_REQUEST:
            # The broker asks for a keyframe after dropping deltas for a slow viewer; a real
            # agent answers with one, and that viewer receives deltas again after it.
            self.keyframe_due = True
            self.keyframe_requests += 1

    def progress(self, seq: int) -> None:
        if seq > self.acked:
            self.acked = seq
            if self._credit is not None and not self._credit.done():
                self._credit.set_result(None)

    async def wait_credit(self, window: int) -> None:
        """Until fewer than ``window`` messages are unacknowledged (or the wait is stale)."""
        while self.seq - self.acked >= window and not self.agent.closed.done():
            self._credit = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self._credit, CREDIT_TIMEOUT)
            except TimeoutError:
                # Acknowledged frames were dropped for a slow viewer: start a fresh window,
                # as the real agent does when no ACK comes for too long.
                self.stale_windows += 1
                self.acked = self.seq

    def next_kind(self) -> int:
        if self.keyframe_due:
            self.keyframe_due = False
            return KEYFRAME
        return SCREEN_UPDATE


class Job:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.relay: str = spec["relay"]
        self.port: int = spec["port"]
        self.mode: str = spec["mode"]
        self.size: int = spec.get("size", 1024)
        self.rate: float = spec.get("rate", 0.0)
        self.duration: float = spec.get("duration", 2.0)
        self.warmup: float = spec.get("warmup", 0.5)
        self.viewers: int = spec.get("viewers", 1)
        self.stalled: int = spec.get("stalled", 0)
        self.links: list[Link] = []
        self._sink_queue: asyncio.Queue[asyncio.BaseTransport] = asyncio.Queue()
        self._sink_receivers: list[Receiver] = []
        self._sink_server: asyncio.Server | None = None

    # --- connecting ---------------------------------------------------------------------------

    async def setup(self) -> None:
        if self.relay == "websockify":
            self._sink_server = await asyncio.get_running_loop().create_server(
                self._sink_factory, "127.0.0.1", self.spec["sink_port"], backlog=1024
            )
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        tag = os.urandom(4).hex()  # ids never seen by this relay process before
        sessions: list[dict[str, Any]] = self.spec.get("sessions") or [
            {"id": f"{tag}{self.spec.get('offset', 0) + i}"} for i in range(self.spec["count"])
        ]

        async def one(session: dict[str, Any]) -> Link:
            async with gate:
                return await asyncio.wait_for(self._connect(session), SETUP_TIMEOUT)

        if self.relay == "websockify":  # one at a time: sink connections arrive in order
            self.links = [await self._connect(s) for s in sessions]
        else:
            self.links = list(await asyncio.gather(*(one(s) for s in sessions)))

    def _sink_factory(self) -> StreamSink:
        receiver = Receiver()
        self._sink_receivers.append(receiver)
        return StreamSink(self.size, receiver)

    async def _connect(self, session: dict[str, Any]) -> Link:
        if self.relay == "broker":
            return await self._connect_broker(session)
        receivers = [Receiver(stalled=i < self.stalled) for i in range(self.viewers)]
        if self.relay == "minimal":
            views = [await connect(self.port, f"/view/{session['id']}") for _ in receivers]
            agent = await connect(self.port, f"/agent/{session['id']}")
            for view, receiver in zip(views, receivers, strict=True):
                view.on_binary = receiver.on_binary
                receiver.client = view
            return self._link(agent, receivers, views)
        if self.relay == "websockify":
            agent = await connect(self.port, "/", protocols=("binary",))
            while len(self._sink_receivers) < 1:
                await asyncio.sleep(0.005)
            receiver = self._sink_receivers.pop()
            return self._link(agent, [receiver], [])
        if self.relay == "meshcentral":
            path = f"/meshrelay.ashx?id={session['id']}&p=2&noping=1"
            agent = await connect(self.port, path)
            paired = [asyncio.get_running_loop().create_future() for _ in range(2)]
            agent.on_text = _resolve_on(paired[0], "c")
            view = await connect(self.port, path)
            view.on_text = _resolve_on(paired[1], "c")
            await asyncio.gather(*paired)
            view.on_binary = receivers[0].on_binary
            receivers[0].client = view
            return self._link(agent, receivers[:1], [view])
        raise ValueError(f"unknown relay {self.relay!r}")

    def _link(self, agent: WSClient, receivers: list[Receiver], views: list[Any]) -> Link:
        link = Link(agent, receivers, [agent, *views])
        for view, receiver in zip(views, receivers, strict=False):
            if receiver.stalled and view.transport is not None:
                view.transport.pause_reading()
        readers = [r for r in receivers if not r.stalled]
        if self.mode == "paced" or self.relay == "broker":
            # Acknowledge through the relay as the browser viewer does: when paced, every
            # second update (its delayed ACK, web/js/viewer.js) and at most about 30 per
            # second, through every relay that carries messages back to the agent, so that all
            # of them relay the same messages; when flooding, about four ACKs per credit
            # window, through the broker only (the others are paced by TCP back-pressure).
            window = max(2, WINDOW_BYTES // self.size)
            every = (
                max(1, window // 4) if self.mode == "throughput" else max(2, int(self.rate) // 30)
            )
            for receiver in readers:
                receiver.ack_every = every if receiver.client is not None else 0
        return link

    async def _connect_broker(self, session: dict[str, Any]) -> Link:
        """Agent first; each viewer joins, the agent grants VIEW, the state lists the viewer."""
        loop = asyncio.get_running_loop()
        agent = await connect(
            self.port, "/ws/agent", ("rsb.v1", f"rsb.token.{session['agent_token']}")
        )

        def agent_text(text: str) -> None:
            message = msg.parse_message(text, 1 << 20)
            if isinstance(message, msg.ConsentRequest):
                grant = msg.ConsentGrant(message.request_id, message.slot, message.permission)
                agent.send_text(grant.to_json())

        agent.on_text = agent_text
        receivers = [Receiver(stalled=i < self.stalled) for i in range(self.viewers)]
        views = []
        for token, receiver in zip(session["viewer_tokens"], receivers, strict=False):
            admitted: asyncio.Future[int] = loop.create_future()
            view = await connect(
                self.port, f"/ws/viewer/{session['id']}", ("rsb.v1", f"rsb.token.{token}")
            )
            view.on_text = _until_admitted(admitted)
            receiver.slot = await admitted
            receiver.client = view
            view.on_binary = receiver.on_binary
            views.append(view)
        return self._link(agent, receivers, views)

    # --- sending ------------------------------------------------------------------------------

    async def run_window(self) -> dict[str, Any]:
        stop = asyncio.Event()
        sender = asyncio.create_task(self._send(stop))
        try:
            await asyncio.sleep(self.warmup)
            receivers = [r for link in self.links for r in link.receivers]
            before = [(r.messages, r.nbytes, r.gaps) for r in receivers]
            for receiver in receivers:
                receiver.latencies.clear()
                receiver.record = not receiver.stalled
            emit("window_start")
            start = time.monotonic()
            await asyncio.sleep(self.duration)
            elapsed = time.monotonic() - start
            for receiver in receivers:
                receiver.record = False
            after = [(r.messages, r.nbytes, r.gaps) for r in receivers]
        finally:
            stop.set()
            await sender
        return self._summary(receivers, before, after, elapsed)

    def _summary(
        self,
        receivers: list[Receiver],
        before: list[tuple[int, int, int]],
        after: list[tuple[int, int, int]],
        elapsed: float,
    ) -> dict[str, Any]:
        per_viewer: list[dict[str, float]] = []
        stalled: list[dict[str, float]] = []
        latencies: list[int] = []
        for receiver, (m0, b0, g0), (m1, b1, g1) in zip(receivers, before, after, strict=True):
            row = {"msgs_s": (m1 - m0) / elapsed, "mb_s": (b1 - b0) / elapsed / 1e6}
            row["gaps"] = g1 - g0
            (stalled if receiver.stalled else per_viewer).append(row)
            latencies.extend(receiver.latencies)
        closed = [c.close_code for link in self.links for c in link.clients if c.closed.done()]
        result: dict[str, Any] = {
            "elapsed": elapsed,
            "msgs_s": sum(r["msgs_s"] for r in per_viewer),
            "mb_s": sum(r["mb_s"] for r in per_viewer),
            "gaps": sum(r["gaps"] for r in per_viewer),
            "per_viewer_mb_s": [r["mb_s"] for r in per_viewer],
            "stalled_mb_s": [r["mb_s"] for r in stalled],
            "keyframe_requests": sum(link.keyframe_requests for link in self.links),
            "stale_windows": sum(link.stale_windows for link in self.links),
            "closed": len(closed),
            "close_codes": sorted({c for c in closed if c is not None}),
        }
        if latencies:
            result["latency"] = latency_summary(latencies)
        return result

    async def _send(self, stop: asyncio.Event) -> None:
        if self.mode == "throughput":
            await asyncio.gather(*(self._flood(link, stop) for link in self.links))
        elif self.mode == "paced":
            await self._paced(stop)

    async def _flood(self, link: Link, stop: asyncio.Event) -> None:
        """As fast as the socket takes it: batches of about 256 KiB, then yield or drain."""
        agent = link.agent
        template = agent.template(self.size)
        window = max(2, WINDOW_BYTES // self.size)
        batch = max(1, min(window // 2, (256 * 1024) // self.size))
        credits = self.relay == "broker"
        while not stop.is_set() and not agent.closed.done():
            if credits:
                await link.wait_credit(window - batch + 1)
            for _ in range(batch):
                link.seq += 1
                kind = link.next_kind()
                agent.write_parts(template.parts(kind, BROADCAST_SLOT, 1, link.seq, monotonic_ns()))
            if agent.paused:
                await agent.drain()
            else:
                await asyncio.sleep(0)

    async def _paced(self, stop: asyncio.Event) -> None:
        """Round-robin over the sessions, one message every ``1 / (rate * sessions)`` s, sent
        in batches of what is due at least every ``SEND_TICK``."""
        links = self.links
        templates = [link.agent.template(self.size) for link in links]
        interval_ns = int(1e9 / (self.rate * len(links)))
        start = monotonic_ns()
        k = 0
        count = len(links)
        while not stop.is_set():
            now = monotonic_ns()
            due = (now - start) // interval_ns
            while k <= due:
                index = k % count
                link = links[index]
                link.seq += 1
                kind = link.next_kind()
                parts = templates[index].parts(kind, BROADCAST_SLOT, 1, link.seq, monotonic_ns())
                link.agent.write_parts(parts)
                k += 1
            next_at = start + k * interval_ns
            await asyncio.sleep(max(SEND_TICK, (next_at - monotonic_ns()) / 1e9))

    async def close(self) -> None:
        for link in self.links:
            for client in link.clients:
                client.close()
        if self._sink_server is not None:
            self._sink_server.close()


def _resolve_on(future: asyncio.Future[None], expected: str) -> Any:
    def on_text(text: str) -> None:
        if text == expected and not future.done():
            future.set_result(None)

    return on_text


def _until_admitted(future: asyncio.Future[int]) -> Any:
    """Viewer text handler: resolves to our slot once a state lists it as viewing."""
    slot: list[int] = []

    def on_text(text: str) -> None:
        message = msg.parse_message(text, 1 << 20)
        if isinstance(message, msg.Welcome):
            slot.append(message.slot)
        elif isinstance(message, msg.State) and slot and slot[0] in message.viewing_slots:
            if not future.done():
                future.set_result(slot[0])

    return on_text


async def _stdin_lines() -> Any:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        yield line.strip()
        if not line:
            return


async def main_async() -> None:
    lines = _stdin_lines()
    spec = json.loads(await anext(lines))
    job = Job(spec)
    started = time.monotonic()
    await job.setup()
    emit("ready", connections=sum(len(link.clients) for link in job.links))
    emit("setup_seconds", seconds=time.monotonic() - started)
    try:
        async for command in lines:
            if command == "run":
                emit("window_end", result=await job.run_window())
            elif command in ("stop", ""):
                break
    finally:
        await job.close()
        await asyncio.sleep(0.1)


def main() -> None:
    raise_fd_limit()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main_async())


if __name__ == "__main__":
    main()

__all__ = ["OP_BINARY", "Job", "Receiver", "StreamSink", "main"]
