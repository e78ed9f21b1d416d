"""HTTP/1.1 over a raw socket, for requests no HTTP client library would send."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

SECURITY_HEADERS = (
    "content-security-policy",
    "x-content-type-options",
    "referrer-policy",
    "x-frame-options",
    "cache-control",
)


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def assert_error_shape(self) -> None:
        """The documented JSON error body, with the broker's security headers."""
        assert self.headers.get("content-type", "").startswith("application/json"), self
        body = self.json()
        assert isinstance(body.get("error"), str) and isinstance(body.get("message"), str), body
        missing = [h for h in SECURITY_HEADERS if h not in self.headers]
        assert not missing, (missing, self.headers)


async def read_response(reader: asyncio.StreamReader, *, timeout: float = 10) -> RawResponse:
    """Read one response (head and a Content-Length body) from the stream."""
    async with asyncio.timeout(timeout):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = await reader.readexactly(length) if length else b""
    return RawResponse(status, headers, body)


async def exchange(
    port: int, data: bytes, *, timeout: float = 10, host: str = "127.0.0.1"
) -> RawResponse:
    """Send ``data`` on a new connection and read one response."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(data)
        await writer.drain()
        return await read_response(reader, timeout=timeout)
    finally:
        writer.close()


def request_bytes(
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    content_length: int | None = None,
) -> bytes:
    """A request with ``Content-Length`` set from the body unless given (it may lie)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    all_headers["Content-Length"] = str(len(body) if content_length is None else content_length)
    lines += [f"{name}: {value}" for name, value in all_headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
