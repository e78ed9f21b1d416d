"""`rsb-agent`: join a remote-support session from the customer's machine.

`rsb-agent join CODE_OR_LINK` checks everything it can locally first (arguments, display,
capture), because the session code is single use: only then does it exchange the code for an
agent token (`POST /api/v1/join`) and connect to the broker's agent endpoint. Exit codes:
0 the session ended normally, 2 bad code or arguments, 3 the broker could not be reached or
refused the connection.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import re
import signal
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from typing import Any
from urllib.parse import urlsplit

from agent_client.session import AgentOptions, AgentSession, ExitStatus, JoinInfo
from agent_client.transport import websocket_connector

__all__ = ["main", "parse_target"]

try:
    VERSION = metadata.version("remote-support-broker")
except metadata.PackageNotFoundError:  # running from a source tree that was not installed
    VERSION = "0.1.0"

USER_AGENT = f"rsb-agent/{VERSION}"
_CODE_SEPARATORS = re.compile(r"[ .-]")
_MAX_RESPONSE = 64 * 1024

EPILOG = """\
While a session runs, type one letter and Enter at any time:
  p  pause or resume (nothing is shared and no input is accepted while paused)
  r  take back control of mouse and keyboard
  v  stop every engineer from seeing the screen
  e  end the session
Each request to see or control the screen is asked as a question (answer y or n), naming the
engineer, their level, the case, and whether the session is recorded, with read-back words
the engineer should read to you.

exit codes: 0 session ended, 2 bad code or arguments, 3 broker unreachable or refused
"""


class UsageError(Exception):
    """Bad arguments or code (exit code 2)."""


class Unreachable(Exception):
    """The broker could not be reached or failed (exit code 3)."""


def parse_target(target: str, broker: str | None) -> tuple[str, str]:
    """Split CODE_OR_LINK into (broker base URL, code digits).

    Args:
        target: A code such as ``123 456 7890`` or a link ``https://host/j#1234567890``.
        broker: The ``--broker`` URL, which wins over the link's host.

    Returns:
        The broker's base URL without a trailing slash, and the code's digits.

    Raises:
        UsageError: The code is not 6 to 16 digits, the link is malformed, or no broker
            URL is known.
    """
    text = target.strip()
    link_base: str | None = None
    if "://" in text:
        parts = urlsplit(text)
        if not parts.fragment or not parts.path.rstrip("/").endswith("/j"):
            raise UsageError("a join link looks like https://support.example/j#1234567890")
        link_base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')[:-2]}"
        text = parts.fragment
    digits = _CODE_SEPARATORS.sub("", text)
    if not (digits.isascii() and digits.isdigit() and 6 <= len(digits) <= 16):
        raise UsageError("the session code is the 10 digits you were given, e.g. 123 456 7890")
    base = broker or link_base
    if base is None:
        raise UsageError("give the join link, or the code with --broker https://...")
    return check_broker_url(base), digits


def check_broker_url(url: str) -> str:
    """Return the broker URL without a trailing slash.

    Raises:
        UsageError: Not http(s), no host, or plain http to a host that is not this machine
            (tokens must not cross a network in the clear).
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"broker URL must be https://host[:port], got {url[:80]!r}")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise UsageError("plain http is only allowed to this machine; use https://")
    return url.strip().rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def post_join(broker: str, code: str, context: ssl.SSLContext | None) -> JoinInfo:
    """Exchange the code for the agent token.

    Raises:
        UsageError: The broker refused the code (its message is in the exception).
        Unreachable: Network failure, TLS failure, server error or a malformed answer.
    """
    request = urllib.request.Request(
        f"{broker}/api/v1/join",
        data=json.dumps({"code": code}).encode(),
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        },
        method="POST",
    )
    https = context if broker.startswith("https:") else None
    try:
        with urllib.request.urlopen(request, timeout=15, context=https) as response:
            body = _json(response.read(_MAX_RESPONSE))
    except urllib.error.HTTPError as exc:
        message = _json(exc.read(_MAX_RESPONSE)).get("message") or exc.reason
        if 400 <= exc.code < 500:
            raise UsageError(f"the broker refused the code: {message}") from None
        raise Unreachable(f"the broker failed (HTTP {exc.code}): {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise Unreachable(f"cannot reach {broker}: {exc}") from None
    try:
        engineer = body["engineer"]
        return JoinInfo(
            session_id=_str(body["session_id"]),
            case_number=_str(body["case_number"]),
            agent_token=_str(body["agent_token"]),
            engineer_name=_str(engineer["display_name"]),
            engineer_level=engineer.get("level"),
            broker=broker,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise Unreachable(f"unexpected answer from the broker: {exc!r}") from None


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _str(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a non-empty string, got {type(value).__name__}")
    return value


def ws_url(broker: str) -> str:
    """The agent endpoint for a broker base URL (http -> ws, https -> wss)."""
    scheme, rest = broker.split(":", 1)
    return f"{'wss' if scheme == 'https' else 'ws'}:{rest}/ws/agent"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (documented in docs/agent.md)."""
    parser = argparse.ArgumentParser(
        prog="rsb-agent",
        description="Share this screen with a support engineer, only with your consent.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rsb-agent {VERSION}")
    commands = parser.add_subparsers(dest="command", required=True)
    join = commands.add_parser(
        "join",
        help="join a session with the code or link you were given",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    join.add_argument("target", metavar="CODE_OR_LINK", help="10-digit code or join link")
    join.add_argument("--broker", help="broker URL, e.g. https://support.example")
    join.add_argument("--source", choices=("screen", "test-pattern"), default="screen")
    join.add_argument("--display", help="X11 display to capture and control, e.g. :0")
    join.add_argument("--ca", metavar="FILE", help="trust only this CA certificate (PEM)")
    join.add_argument("--ui", choices=("auto", "terminal", "tk"), default="auto")
    join.add_argument("--max-fps", type=float, default=15.0, help="frame rate cap (1-60)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `rsb-agent`; returns the exit code."""
    logging.basicConfig(level=logging.WARNING, format="rsb-agent: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return _join(args)
    except UsageError as exc:
        print(f"rsb-agent: {exc}", file=sys.stderr)
        return ExitStatus.BAD_INPUT
    except Unreachable as exc:
        print(f"rsb-agent: {exc}", file=sys.stderr)
        return ExitStatus.CONNECTION_FAILED


def _join(args: argparse.Namespace) -> int:
    if not 1 <= args.max_fps <= 60:
        raise UsageError("--max-fps must be between 1 and 60")
    broker, code = parse_target(args.target, args.broker)
    context = _tls_context(args.ca)
    ui = _choose_ui(args.ui)
    from agent_client import platform  # after argument checks: it imports numpy and mss

    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rsb-capture")
    try:
        kit = platform.open_kit(args.source, args.display, executor)
    except platform.KitError as exc:
        executor.shutdown(wait=False)
        raise UsageError(str(exc)) from None
    try:
        info = post_join(broker, code, context)  # the code is spent from here on
        return asyncio.run(_run(info, context, ui, kit, executor, args.max_fps))
    finally:
        executor.submit(kit.close).result()
        executor.shutdown()


def _tls_context(ca: str | None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot load CA file {ca!r}: {exc}") from None


def _choose_ui(ui: str) -> str:
    from agent_client.prompt_tk import tk_available

    if ui == "tk" and not tk_available():
        raise UsageError("--ui tk needs tkinter and a display")
    if ui == "auto":
        # A terminal the customer typed into is where they will look; a launcher has none.
        return "tk" if tk_available() and not sys.stdin.isatty() else "terminal"
    return ui


async def _run(
    info: JoinInfo,
    context: ssl.SSLContext,
    ui: str,
    kit: Any,
    executor: ThreadPoolExecutor,
    max_fps: float,
) -> int:
    from agent_client.prompt import PromptUnavailable, TerminalPrompt
    from agent_client.prompt_tk import TkPrompt

    connect = websocket_connector(
        ws_url(info.broker),
        info.agent_token,
        ssl_context=context if info.broker.startswith("https:") else None,
        max_size=AgentOptions().max_message,
        user_agent=USER_AGENT,
    )
    options = AgentOptions(max_fps=max_fps, software=USER_AGENT)

    def make(prompt: Any) -> AgentSession:
        return AgentSession(
            info,
            connect,
            prompt,
            kit.source,
            executor=executor,
            injector_factory=kit.injector_factory,
            pointer=kit.pointer,
            origin=kit.origin,
            options=options,
        )

    session = make(TkPrompt() if ui == "tk" else TerminalPrompt())
    _on_signals(session.request_end)
    try:
        return await session.run()
    except PromptUnavailable as exc:  # raised before anything was sent
        print(f"rsb-agent: {exc}; using the terminal instead", file=sys.stderr)
        session = make(TerminalPrompt())
        _on_signals(session.request_end)
        return await session.run()


def _on_signals(request_end: Callable[[str], None]) -> None:
    loop = asyncio.get_running_loop()
    for sig, why in ((signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "the agent was stopped")):
        try:
            loop.add_signal_handler(sig, request_end, f"ended by the customer ({why})")
        except (NotImplementedError, RuntimeError):  # Windows: Ctrl-C raises instead
            pass


if __name__ == "__main__":
    sys.exit(main())
