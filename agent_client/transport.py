"""The agent's link to the broker: a small `Transport` interface, its WebSocket form, the outbox.

The session logic talks to a `Transport` (send, recv, close) and never to websockets directly,
so unit tests can drive it with in-memory queues. `websocket_connector` builds the real one,
with every knob set on purpose (DESIGN.md, "Set every WebSocket knob explicitly"):

- the token travels as the `rsb.token.<jwt>` subprotocol next to `rsb.v1`, never in the URL
  (broker/auth/bearer.py);
- compression off: the frames are AES-GCM ciphertext, which does not compress, and deflate
  costs time on the frame path;
- `max_size` bounded: the agent only receives control messages and input, all small;
- TCP_NODELAY set and checked: Nagle's algorithm would hold small input and cursor frames back
  by tens of milliseconds;
- a short close timeout (`CLOSE_TIMEOUT`): when the agent ends, its `end` is already on the wire
  before it closes, so waiting websockets' default 10 s for a broker that does not answer the
  close (busy, or its event loop stalled) only kept the customer's agent running after SIGTERM
  or `e`.

`Outbox` orders everything the agent sends through one writer task, so a KEY_WRAP always
precedes the first frame sealed under its epoch, and screen frames still queued when consent
goes away can be thrown out before they reach the socket.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from enum import Enum
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from rsb_protocol.handshake import SUBPROTOCOL, handshake_logger, subprotocols

__all__ = [
    "CLOSE_TIMEOUT",
    "SUBPROTOCOL",
    "ConnectFailed",
    "Connector",
    "Kind",
    "Outbox",
    "Transport",
    "TransportClosed",
    "websocket_connector",
]

CLOSE_TIMEOUT = 1.0
"""Seconds to wait for the broker's side of the closing handshake before dropping the socket."""


class TransportClosed(Exception):
    """The connection closed; `code` is the WebSocket close code (None if there was none)."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"connection closed ({code}): {reason}" if reason else f"closed ({code})")
        self.code = code
        self.reason = reason


class ConnectFailed(Exception):
    """No connection could be opened; `final` says whether trying again is pointless."""

    def __init__(self, message: str, *, final: bool) -> None:
        super().__init__(message)
        self.final = final


class Transport(Protocol):
    """One open connection to the broker."""

    async def send(self, data: str | bytes) -> None:
        """Send a text (str) or binary (bytes) message.

        Raises:
            TransportClosed: The connection is gone.
        """
        ...

    async def recv(self) -> str | bytes:
        """Wait for the next message.

        Raises:
            TransportClosed: The connection closed, with the broker's close code.
        """
        ...

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection (idempotent)."""
        ...


Connector = Callable[[], AbstractAsyncContextManager[Transport]]
"""Opens one connection per call; raises `ConnectFailed` when it cannot."""


class _WebSocketTransport:
    """`Transport` over a websockets client connection; maps its closes to `TransportClosed`."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws

    @property
    def nodelay(self) -> bool:
        """Whether TCP_NODELAY is set on the socket (checked by the tests)."""
        sock = self._ws.transport.get_extra_info("socket")
        return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    @property
    def close_timeout(self) -> float | None:
        """Seconds `close` waits for the broker's side of the closing handshake."""
        return self._ws.close_timeout

    async def send(self, data: str | bytes) -> None:
        try:
            await self._ws.send(data)
        except ConnectionClosed as exc:
            raise _closed(exc) from None

    async def recv(self) -> str | bytes:
        try:
            return await self._ws.recv()
        except ConnectionClosed as exc:
            raise _closed(exc) from None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self._ws.close(code, reason)


def _closed(exc: ConnectionClosed) -> TransportClosed:
    frame = exc.rcvd
    return TransportClosed(frame.code if frame else None, frame.reason if frame else "")


def websocket_connector(
    url: str,
    token: str,
    *,
    ssl_context: ssl.SSLContext | None,
    max_size: int,
    user_agent: str,
    open_timeout: float = 10.0,
) -> Connector:
    """Build the connector for `url` (ws:// or wss://) that authenticates with `token`.

    Args:
        url: The agent endpoint, e.g. ``wss://support.example/ws/agent``.
        token: The agent token from the join response.
        ssl_context: TLS settings for wss:// (None for ws://, tests only).
        max_size: Largest message accepted from the broker, in bytes.
        user_agent: The User-Agent header value.
        open_timeout: Seconds for TCP, TLS and the WebSocket handshake together.

    Returns:
        A function that opens one connection per call.
    """
    protocols = [Subprotocol(p) for p in subprotocols(token)]
    # websockets refuses an ssl argument for ws://, even None, so pass it only for wss://.
    tls: dict[str, Any] = {"ssl": ssl_context} if ssl_context is not None else {}

    @asynccontextmanager
    async def open_connection() -> AsyncIterator[Transport]:
        try:
            ws = await connect(
                url,
                subprotocols=protocols,
                compression=None,
                max_size=max_size,
                open_timeout=open_timeout,
                close_timeout=CLOSE_TIMEOUT,
                user_agent_header=user_agent,
                logger=handshake_logger("agent_client.websocket"),  # never logs the token
                **tls,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            # 4xx other than timeouts and rate limits will not change by trying again.
            final = 400 <= status < 500 and status not in (408, 429)
            raise ConnectFailed(
                f"the broker refused the connection (HTTP {status})", final=final
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise ConnectFailed(
                f"TLS certificate not trusted: {exc.verify_message}", final=True
            ) from None
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise ConnectFailed(f"cannot connect to the broker: {exc}", final=False) from exc
        try:
            if ws.subprotocol != SUBPROTOCOL:
                raise ConnectFailed("the broker did not agree to protocol rsb.v1", final=True)
            sock = ws.transport.get_extra_info("socket")
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                # asyncio already sets it on TCP sockets; set it again so that does not depend
                # on an implementation detail.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            yield _WebSocketTransport(ws)
        finally:
            await ws.close()

    return open_connection


class Kind(Enum):
    """What an outgoing message is, which decides what `Outbox.purge` may drop."""

    CONTROL = "control"
    """JSON control messages: consent answers, pause, end. Kept across a reconnect."""
    KEY_WRAP = "key_wrap"
    """Wrapped epoch keys: only useful on the connection they were made for."""
    FRAME = "frame"
    """Screen updates and keyframes."""
    CURSOR = "cursor"
    """Pointer position: only the newest one matters."""


class Outbox:
    """Everything the agent sends, in order, drained by one writer task per connection."""

    def __init__(self) -> None:
        self._items: deque[tuple[str | bytes, Kind]] = deque()
        self._ready = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()

    def put(self, data: str | bytes, kind: Kind) -> None:
        """Queue one message; never waits (credits bound the frames, not this queue)."""
        if kind is Kind.CURSOR:
            self._items = deque(item for item in self._items if item[1] is not Kind.CURSOR)
        self._items.append((data, kind))
        self._ready.set()
        self._empty.clear()

    def purge(self, *kinds: Kind) -> int:
        """Drop queued messages of these kinds; returns how many went."""
        before = len(self._items)
        self._items = deque(item for item in self._items if item[1] not in kinds)
        if not self._items:
            self._empty.set()
        return before - len(self._items)

    def __len__(self) -> int:
        return len(self._items)

    async def pump(self, transport: Transport) -> None:
        """Send queued messages to `transport` until cancelled or the connection closes."""
        while True:
            if not self._items:
                self._empty.set()
                self._ready.clear()
                await self._ready.wait()
                continue
            data, _ = self._items.popleft()
            await transport.send(data)

    async def drained(self, timeout: float) -> bool:
        """Wait until everything queued was handed to the transport; False on timeout."""
        try:
            await asyncio.wait_for(self._empty.wait(), timeout)
        except TimeoutError:
            return False
        return True
