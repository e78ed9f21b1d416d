"""A lean WebSocket client for the load generator: an asyncio ``Protocol`` and nothing else.

A full WebSocket library in Python saturates before the relay does (shared/notes/peers.md), so
the benchmark speaks RFC 6455 itself with as little per-message work as it can:

- frames to send are built from pre-masked templates: only the 26 bytes that change per message
  (the 18-byte rsb header and an 8-byte send timestamp) are masked per send, with one integer
  XOR; the rest of the payload was masked once when the template was made. Every frame is
  masked with this connection's random key, so the server does the same unmasking work as for
  any client;
- large binary payloads are not copied: the parser keeps the first ``PEEK`` bytes (header and
  timestamp) and counts the rest as it streams past;
- writes are batched (``writelines``) and paced by the transport's own flow control.

No compression is offered (the relay's payloads are ciphertext), TCP_NODELAY is set, pings are
answered with pongs. Messages from servers are never fragmented by the relays measured here;
continuation frames are therefore not reassembled (they are counted as binary data).
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

__all__ = ["PEEK", "Template", "WSClient", "connect"]

PEEK = 26
"""Payload bytes the bench reads from every message: the rsb header (18) and a timestamp (8)."""

OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x2, 0x8, 0x9, 0xA
_RSB_HEADER = struct.Struct(">BBBBHIQ")
_MAGIC_VERSION = 0xB1

monotonic_ns = time.monotonic_ns


def _ws_prefix(opcode: int, length: int, mask: bytes) -> bytes:
    first = 0x80 | opcode
    if length < 126:
        return bytes((first, 0x80 | length)) + mask
    if length < 1 << 16:
        return bytes((first, 0x80 | 126)) + length.to_bytes(2, "big") + mask
    return bytes((first, 0x80 | 127)) + length.to_bytes(8, "big") + mask


def _xor(data: bytes, mask: bytes, offset: int = 0) -> bytes:
    """``data`` masked as if it started at payload ``offset`` (RFC 6455 section 5.3)."""
    if not data:
        return b""
    n = len(data)
    rotated = mask[offset % 4 :] + mask[: offset % 4]
    key = (rotated * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


class Template:
    """A binary message of fixed size whose first 26 payload bytes change per send.

    The payload is ``rsb header (18) || send time in ns (8) || random bytes``: a valid
    SCREEN_UPDATE header, then bytes the broker cannot tell from AES-GCM ciphertext.
    """

    __slots__ = ("_key", "_prefix", "_rest", "size")

    def __init__(self, size: int, mask: bytes) -> None:
        if size < PEEK:
            raise ValueError(f"messages must be at least {PEEK} bytes")
        self.size = size
        self._prefix = _ws_prefix(OP_BINARY, size, mask)
        self._rest = _xor(os.urandom(size - PEEK), mask, PEEK)
        self._key = int.from_bytes((mask * 7)[:PEEK], "big")

    def parts(self, frame_type: int, slot: int, epoch: int, seq: int, ts: int) -> list[bytes]:
        head = _RSB_HEADER.pack(_MAGIC_VERSION, frame_type, 0, 0, slot, epoch, seq)
        value = int.from_bytes(head + ts.to_bytes(8, "big"), "big") ^ self._key
        return [self._prefix, value.to_bytes(PEEK, "big"), self._rest]


OnBinary = Callable[[bytes, int, int], None]
OnText = Callable[[str], None]


class WSClient(asyncio.Protocol):
    """One client WebSocket. Set ``on_binary(prefix, size, now_ns)`` and ``on_text(text)``."""

    def __init__(self, host: str, path: str, protocols: Sequence[str] = ()) -> None:
        self.host = host
        self.path = path
        self.protocols = tuple(protocols)
        self.mask = os.urandom(4)
        self.transport: asyncio.Transport | None = None
        self.on_binary: OnBinary | None = None
        self._on_text: OnText | None = None
        self._early_texts: list[str] = []
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None
        self.close_reason = ""
        self.rx_bytes = 0
        self._handshake = bytearray()
        self._key = base64.b64encode(os.urandom(16)).decode()
        self._buf = bytearray()
        self._skip = 0
        self._pending: bytes = b""
        self._pending_size = 0
        self._paused = False
        self._drain: asyncio.Future[None] | None = None

    @property
    def on_text(self) -> OnText | None:
        return self._on_text

    @on_text.setter
    def on_text(self, handler: OnText | None) -> None:
        """Texts that came with the handshake answer, before a handler was set, are replayed."""
        self._on_text = handler
        while handler is not None and self._early_texts:
            handler(self._early_texts.pop(0))

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        lines = [
            f"GET {self.path} HTTP/1.1",
            f"Host: {self.host}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {self._key}",
            "Sec-WebSocket-Version: 13",
        ]
        if self.protocols:
            lines.append("Sec-WebSocket-Protocol: " + ", ".join(self.protocols))
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"connection lost during handshake: {exc}"))
        if not self.closed.done():
            self.closed.set_result(self.close_code)
        self._wake()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake()

    def _wake(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    async def drain(self) -> None:
        """Wait until the transport accepts more data (or the connection is gone)."""
        while self._paused and not self.closed.done():
            self._drain = asyncio.get_running_loop().create_future()
            await self._drain

    def data_received(self, data: bytes) -> None:
        if not self.opened.done():
            self._handshake += data
            end = self._handshake.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._handshake[:end]).decode("latin-1")
            rest = bytes(self._handshake[end + 4 :])
            self._handshake.clear()
            if not head.startswith("HTTP/1.1 101"):
                self.opened.set_exception(ConnectionError(head.splitlines()[0]))
                assert self.transport is not None
                self.transport.close()
                return
            self.opened.set_result(None)
            if not rest:
                return
            data = rest
        self.rx_bytes += len(data)
        now = monotonic_ns()
        view: Any = data
        if self._skip:
            n = len(data)
            if n < self._skip:
                self._skip -= n
                return
            view = memoryview(data)[self._skip :]
            self._skip = 0
            if self.on_binary is not None:
                self.on_binary(self._pending, self._pending_size, now)
        buf = self._buf
        if buf:
            buf += view
            view = buf
        pos = 0
        end = len(view)
        while end - pos >= 2:
            b0 = view[pos]
            length = view[pos + 1] & 0x7F
            start = pos + 2
            if length == 126:
                if end - pos < 4:
                    break
                length = (view[pos + 2] << 8) | view[pos + 3]
                start = pos + 4
            elif length == 127:
                if end - pos < 10:
                    break
                length = int.from_bytes(view[pos + 2 : pos + 10], "big")
                start = pos + 10
            stop = start + length
            opcode = b0 & 0x0F
            if stop <= end:
                if opcode == OP_BINARY or opcode == 0:
                    if self.on_binary is not None:
                        self.on_binary(bytes(view[start : start + PEEK]), length, now)
                else:
                    self._control(opcode, bytes(view[start:stop]))
                pos = stop
                continue
            if (opcode == OP_BINARY or opcode == 0) and end - start >= min(length, PEEK):
                # Stream the rest of a large payload past without buffering it.
                self._pending = bytes(view[start : start + PEEK])
                self._pending_size = length
                self._skip = stop - end
                pos = end
            break
        if view is buf:
            del buf[:pos]
        elif pos < end:
            self._buf = bytearray(view[pos:])

    def _control(self, opcode: int, payload: bytes) -> None:
        if opcode == OP_TEXT:
            if self._on_text is not None:
                self._on_text(payload.decode())
            else:
                self._early_texts.append(payload.decode())
        elif opcode == OP_PING:
            self.send(OP_PONG, payload)
        elif opcode == OP_CLOSE:
            if len(payload) >= 2:
                self.close_code = int.from_bytes(payload[:2], "big")
                self.close_reason = payload[2:].decode(errors="replace")
            if self.transport is not None and not self.transport.is_closing():
                self.send(OP_CLOSE, payload[:2])
                self.transport.close()

    # --- sending ----------------------------------------------------------------------------

    def send(self, opcode: int, payload: bytes) -> None:
        """Mask and send one small message (text, control, ACK)."""
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(_ws_prefix(opcode, len(payload), self.mask) + _xor(payload, self.mask))

    def send_text(self, text: str) -> None:
        self.send(OP_TEXT, text.encode())

    def template(self, size: int) -> Template:
        return Template(size, self.mask)

    def write_parts(self, parts: list[bytes]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.writelines(parts)

    @property
    def paused(self) -> bool:
        return self._paused

    def close(self, code: int = 1000) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.send(OP_CLOSE, code.to_bytes(2, "big"))
            self.transport.close()


async def connect(
    port: int, path: str, protocols: Sequence[str] = (), host: str = "127.0.0.1"
) -> WSClient:
    """Open a WebSocket to ``host:port`` and wait for the 101 answer."""
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(
        lambda: WSClient(f"{host}:{port}", path, protocols), host, port
    )
    await client.opened
    return client
