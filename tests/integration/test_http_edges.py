"""What aiohttp's parser refuses, half-sent requests, and clients that leave mid-body.

All over raw sockets against the broker served by ``rsb serve``'s runner (the ``broker``
fixture), with the header and body timeouts shortened to one unit.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from pathlib import Path

import pytest

from broker.settings import Settings
from tests.conftest import TEST_SETTINGS, Broker
from tests.integration.conftest import WAIT_UNIT
from tests.raw_http import exchange, read_response, request_bytes

TIMEOUT = 1.0 * WAIT_UNIT


@pytest.fixture
def settings(db_path: Path) -> Settings:
    return Settings.from_mapping(
        {
            "db": str(db_path),
            **TEST_SETTINGS,
            "request_header_timeout": TIMEOUT,
            "request_body_timeout": TIMEOUT,
        }
    )


def _errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def _wait_for(pattern: str, broker: Broker, what: str) -> str:
    """Poll /metrics until ``pattern`` appears in it; returns the text."""
    deadline = time.monotonic() + 10 * WAIT_UNIT
    while True:
        text = await (await broker.client.get("/metrics")).text()
        if re.search(pattern, text):
            return text
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


PARSER_REFUSALS = {
    "over-long request line": b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "over-long header": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 9000 + b"\r\n\r\n",
    "bad method": b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n",
    "NUL in a header": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "not HTTP at all": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    "bad chunking": b"POST /api/v1/join HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    "two Content-Lengths": b"POST /api/v1/join HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
    b"Content-Length: 3\r\n\r\n{}",
}


@pytest.mark.parametrize("name", list(PARSER_REFUSALS))
async def test_parser_refusals_are_json_with_headers_and_no_error_log(
    broker: Broker, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    resp = await exchange(broker.port, PARSER_REFUSALS[name])
    assert resp.status == 400, resp
    resp.assert_error_shape()
    assert resp.json()["error"] == "bad_request"
    assert not _errors(caplog), [r.getMessage() for r in _errors(caplog)]
    # The refusal is logged, once, below ERROR and without quoting the request.
    refusals = [r for r in caplog.records if "malformed" in r.getMessage()]
    assert refusals and all(r.levelno == logging.INFO for r in refusals)


async def test_half_sent_heads_are_closed_within_the_header_timeout(broker: Broker) -> None:
    port = broker.port
    held = []
    for _ in range(50):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never the blank line
        held.append((reader, writer))
    trickle_reader, trickle_writer = await asyncio.open_connection("127.0.0.1", port)
    await _wait_for(r"rsb_http_connections (5[1-9]|[6-9]\d)", broker, "51 held connections")

    async def trickle() -> None:  # a byte at a time, as slowloris does: never a whole head
        while not trickle_writer.is_closing():
            trickle_writer.write(b"X")
            await asyncio.sleep(0.05)

    trickling = asyncio.create_task(trickle())
    try:
        async with asyncio.timeout(10 * TIMEOUT):
            closed = await asyncio.gather(*(reader.read() for reader, _ in held))
            try:
                closed.append(await trickle_reader.read())
            except ConnectionError:  # reset while it was still writing: closed all the same
                closed.append(b"")
    finally:
        trickling.cancel()
    assert closed == [b""] * 51  # all dropped without an answer, the trickler too
    for _, writer in held:
        writer.close()
    trickle_writer.close()
    # Everyone else is still served, and the count is back down.
    await _wait_for(r"rsb_http_connections [0-5]\.0", broker, "connections released")
    assert (await broker.client.get("/healthz")).status == 200


async def test_half_sent_body_gets_408(broker: Broker, caplog: pytest.LogCaptureFixture) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", broker.port)
    try:
        writer.write(request_bytes("POST", "/api/v1/join", body=b'{"co', content_length=100))
        resp = await read_response(reader, timeout=10 * TIMEOUT)
    finally:
        writer.close()
    assert resp.status == 408, resp
    resp.assert_error_shape()
    assert resp.json()["error"] == "request_timeout"
    assert not _errors(caplog)


async def test_disconnect_mid_body_is_no_server_error(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    async def leave_mid_body() -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", broker.port)
        writer.write(
            request_bytes("POST", "/api/v1/join", body=b'{"code": "12', content_length=500)
        )
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    await asyncio.gather(*(leave_mid_body() for _ in range(20)))
    text = await _wait_for(r'status="499"\} 20\.0', broker, "20 requests counted as 499")
    assert not re.search(r'rsb_http_requests_total\{[^}]*status="5\d\d"', text), text
    assert not _errors(caplog), [r.getMessage() for r in _errors(caplog)]
