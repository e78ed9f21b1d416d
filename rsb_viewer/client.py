"""Engineer-side client: joins a session as a viewer, decrypts the screen and can send input.

Two layers, in the websockets manner. `ViewerSession` is sans-I/O: it takes each text or binary
WebSocket message in `receive` and returns the messages to send back (``public_key``, ACK
frames, keyframe requests), so tests drive it with bytes an agent produced and no socket.
`ViewerClient` is the thin asyncio shell around it: connect with the token as a subprotocol,
pump messages, and let callers wait for conditions. The screen is kept as an (H, W, 4) uint8
BGRA array, the layout `rsb_codec.decode.apply_update` paints.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.typing import Subprotocol

from rsb_protocol.close_codes import CLOSE_CODE_EXPLANATIONS
from rsb_protocol.errors import VersionMismatch
from rsb_protocol.handshake import handshake_logger, subprotocols
from rsb_protocol.messages import State, Welcome
from rsb_protocol.readback import ReadbackString
from rsb_viewer.session import (
    DEFAULT_MAX_FRAME_SIZE,
    Cursor,
    Outgoing,
    ViewerError,
    ViewerProtocolError,
    ViewerSession,
)

__all__ = [
    "CLOSE_CODE_EXPLANATIONS",
    "ViewerClient",
    "ViewerClosed",
    "ViewerConnectError",
    "viewer_url",
]

_SESSION_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")  # the Ident shape of rsb_protocol.messages
_JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")

_T = TypeVar("_T")


class ViewerConnectError(ViewerError):
    """The WebSocket could not be opened: refused, unreachable, bad TLS or timed out.

    Attributes:
        status: The HTTP status when the broker refused the upgrade, else None.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ViewerClosed(ViewerError):
    """The connection is closed, by the broker or by us.

    Attributes:
        code: The close code received (1006 if the connection just dropped), or None.
        reason: The close reason the broker gave.
    """

    def __init__(self, code: int | None, reason: str) -> None:
        explanation = CLOSE_CODE_EXPLANATIONS.get(code or 0, "unknown close code")
        super().__init__(
            f"connection closed ({code}: {explanation}){': ' if reason else ''}{reason}"
        )
        self.code = code
        self.reason = reason


def viewer_url(broker_url: str, session_id: str) -> str:
    """Build the viewer endpoint from the broker's base URL.

    Args:
        broker_url: ``http(s)://host:port`` or ``ws(s)://host:port``, with or without a path.
        session_id: The session to join.

    Returns:
        ``ws(s)://host:port[/path]/ws/viewer/<session_id>``.

    Raises:
        ValueError: An unknown URL scheme or a session id that is not a plain identifier.
    """
    if not _SESSION_ID.fullmatch(session_id):
        raise ValueError(f"not a session id: {session_id[:70]!r}")
    scheme, sep, rest = broker_url.partition("://")
    schemes = {"http": "ws", "ws": "ws", "https": "wss", "wss": "wss"}
    if not sep or scheme.lower() not in schemes:
        raise ValueError(f"broker URL must start with http(s):// or ws(s)://, got {broker_url!r}")
    return f"{schemes[scheme.lower()]}://{rest.rstrip('/')}/ws/viewer/{session_id}"


class ViewerClient:
    """An asyncio viewer connection; see the module docstring. Also an async context manager.

    Raises ``ValueError`` at construction for a malformed URL, session id or token.

    Args:
        broker_url: The broker's base URL (``viewer_url`` documents the forms).
        token: A staff token; it travels only in the subprotocol list, never in the URL.
        session_id: The session to join.
        algorithms: Key algorithms to offer (``"x25519"``, ``"p256"``); our key is X25519
            when offered, else P-256.
        ssl_context: TLS settings for ``wss://`` (for example a private CA), else the default.
        open_timeout: Seconds allowed for TCP, TLS and the WebSocket handshake.
        max_size: Largest accepted message, in bytes.
    """

    def __init__(
        self,
        broker_url: str,
        token: str,
        session_id: str,
        *,
        algorithms: Sequence[str] = ("x25519",),
        ssl_context: ssl.SSLContext | None = None,
        open_timeout: float = 10.0,
        max_size: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> None:
        self.url = viewer_url(broker_url, session_id)
        if not _JWT.fullmatch(token):  # the message never quotes it: it is a credential
            raise ValueError("the token is not a compact JWT (three base64url parts)")
        self.session = ViewerSession(session_id, algorithms=algorithms, max_frame_size=max_size)
        self._token = token
        self._ssl = ssl_context
        self._open_timeout = open_timeout
        self._max_size = max_size
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()
        self._failure: ViewerError | None = None

    async def __aenter__(self) -> ViewerClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- what the session knows, delegated ----------------------------------------------

    @property
    def slot(self) -> int | None:
        """Our slot, from ``welcome``; None before it."""
        return self.session.slot

    @property
    def welcome(self) -> Welcome | None:
        """The ``welcome`` message (case number, organisation), None before it."""
        return self.session.welcome

    @property
    def readback(self) -> ReadbackString:
        """Read-back string over every public key known, ours included."""
        return self.session.readback

    @property
    def state(self) -> State | None:
        """The latest ``state`` message."""
        return self.session.state

    @property
    def canvas(self) -> np.ndarray[Any, np.dtype[np.uint8]] | None:
        """The decrypted screen, (H, W, 4) uint8 BGRA; None before the first keyframe."""
        return self.session.canvas

    @property
    def cursor(self) -> Cursor | None:
        """The agent's latest pointer position."""
        return self.session.cursor

    @property
    def closed(self) -> bool:
        """True once the connection has closed, whoever closed it."""
        return self._ws is not None and self._reader is not None and self._reader.done()

    @property
    def close_code(self) -> int | None:
        """The close code once closed (1006 if the connection dropped), else None."""
        return self._ws.close_code if self.closed and self._ws is not None else None

    @property
    def close_reason(self) -> str:
        """The close reason the broker gave, or an empty string."""
        return (self._ws.close_reason or "") if self.closed and self._ws is not None else ""

    # --- connection ---------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the WebSocket, send ``hello`` and start reading.

        Raises:
            ViewerConnectError: Refused (``status`` says the HTTP status), unreachable, TLS
                failure or timeout.
            ViewerError: Already connected.
        """
        if self._ws is not None:
            raise ViewerError("this client is already connected; make a new one to reconnect")
        secure = self.url.startswith("wss://")
        try:
            self._ws = await connect(
                self.url,
                subprotocols=[Subprotocol(p) for p in subprotocols(self._token)],
                compression=None,  # ciphertext does not compress (STYLE.md 6)
                open_timeout=self._open_timeout,
                max_size=self._max_size,
                max_queue=8,  # with 16 MiB frames, the default 16 could hold 256 MiB
                ssl=(self._ssl or True) if secure else None,
                user_agent_header="rsb-view/1",
                logger=handshake_logger("rsb_viewer.websocket"),  # never logs the token
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise ViewerConnectError(f"broker refused the viewer: HTTP {status}", status) from None
        except (WebSocketException, OSError, TimeoutError) as exc:
            # The message never includes the token: it is in the request headers only.
            raise ViewerConnectError(f"cannot connect to {self.url}: {exc!r}") from None
        try:
            await self._ws.send(self.session.hello().to_json())
        except ConnectionClosed:
            pass  # refused right after the upgrade: the reader reports the close code
        self._reader = asyncio.create_task(self._read(self._ws), name="rsb-viewer-reader")

    async def close(self) -> None:
        """Close the connection (normal closure) and wait for the reader to finish."""
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await self._reader

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for message in ws:
                try:
                    replies = self.session.receive(message)
                except VersionMismatch as exc:
                    self._failure = ViewerProtocolError(str(exc))
                    await ws.close(4002, "rsb-view speaks protocol version 1")
                    break
                except ViewerProtocolError as exc:
                    self._failure = exc
                    await ws.close(1002, str(exc)[:100])
                    break
                except Exception as exc:
                    # A bug of ours: end the session visibly rather than leave a socket open
                    # that nobody reads, and hand the cause to whoever is waiting.
                    self._failure = ViewerError(f"viewer failed: {exc!r}")
                    self._failure.__cause__ = exc
                    await ws.close(1011, "viewer internal error")
                    break
                for reply in replies:
                    await ws.send(reply)
                async with self._changed:
                    self._changed.notify_all()
        except ConnectionClosed:
            pass  # the close code and reason stay readable on ``ws``
        finally:
            async with self._changed:
                self._changed.notify_all()

    def _check_open(self) -> ClientConnection:
        if self._failure is not None:
            raise self._failure
        if self._ws is None:
            raise ViewerError("not connected: call connect() first")
        if self.closed:
            raise ViewerClosed(self.close_code, self.close_reason)
        return self._ws

    # --- waiting ------------------------------------------------------------------------

    async def wait_for(self, predicate: Callable[[ViewerClient], _T], timeout: float | None) -> _T:
        """Wait until ``predicate(self)`` is truthy, checked after every message handled.

        Args:
            predicate: Reads this client's properties; must not block.
            timeout: Seconds, or None to wait as long as the connection lives.

        Returns:
            The predicate's truthy value.

        Raises:
            TimeoutError: Not true within ``timeout``.
            ViewerClosed: The connection closed first (code and reason attached).
            ViewerProtocolError: We closed it because the broker broke the protocol.
        """
        async with asyncio.timeout(timeout), self._changed:
            while True:
                value = predicate(self)
                if value:
                    return value
                self._check_open()
                await self._changed.wait()

    async def wait_first_keyframe(
        self, timeout: float | None
    ) -> np.ndarray[Any, np.dtype[np.uint8]]:
        """Wait until a keyframe has been painted, that is, after the customer consented.

        Returns:
            A copy of the canvas at that moment (BGRA).

        Raises:
            TimeoutError, ViewerClosed, ViewerProtocolError: As ``wait_for``.
        """
        await self.wait_for(lambda c: c.session.keyframes_applied > 0, timeout)
        assert self.canvas is not None  # a painted keyframe allocated it
        return self.canvas.copy()

    # --- sending ------------------------------------------------------------------------

    async def _send(self, data: Outgoing) -> None:
        ws = self._check_open()
        try:
            await ws.send(data)
        except ConnectionClosed:
            raise ViewerClosed(ws.close_code, ws.close_reason or "") from None

    async def request_control(self, reason: str = "") -> str:
        """Ask for control; the broker forwards it to the customer as a consent request.

        Returns:
            The request id that was sent.

        Raises:
            ViewerError: Before ``welcome``, or not connected.
            ViewerClosed: The connection is closed.
        """
        request_id, text = self.session.control_request(reason)
        await self._send(text)
        return request_id

    async def release_control(self) -> None:
        """Give control back. Raises as ``request_control``."""
        await self._send(self.session.control_release())

    async def send_input(self, event: dict[str, Any]) -> None:
        """Seal one input event (``agent_client.inject`` shapes) for the agent and send it.

        Raises:
            ViewerError: No key yet (the customer has not admitted us), or not connected.
            ViewerClosed: The connection is closed.
        """
        await self._send(self.session.seal_input(event))

    async def request_keyframe(self) -> None:
        """Ask the agent for a whole frame. Raises as ``request_control``."""
        await self._send(self.session.keyframe_request())

    async def send_raw(self, data: bytes | str) -> None:
        """Send bytes or text exactly as given: for tests that play a misbehaving viewer."""
        await self._send(data)
