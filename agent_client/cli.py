"""`rsb-agent`: join a remote-support session from the customer's machine.

`rsb-agent join CODE_OR_LINK` checks everything it can locally first (arguments, display,
capture), because the session code is single use: only then does it exchange the code for an
agent token (`POST /api/v1/join`) and connect to the broker's agent endpoint.

`rsb-agent` alone (or `rsb-agent join` without a code) asks for the code in a window when there
is a display, else on the terminal (agent_client/join_window.py), with the broker from
`--broker` (the download passes the address it was built with) or `$RSB_BROKER`.

`rsb-agent attach --broker URL` is what the customer page tells the customer to run after they
entered the code there: the agent token comes from the environment (`RSB_AGENT_TOKEN`) or a
file (`--token-file`), never from the command line, where every local user could read it with
`ps`. The session id and case number are read from the token's claims, and the broker's
`welcome` must confirm both before anything else happens; the engineer is named in each
consent request. Exit codes (docs/agent.md): 0 the session ended normally, 2 bad code, token or
arguments, 3 the broker could not be reached or refused the connection.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import logging
import os
import signal
import ssl
import stat
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

from agent_client import texts
from agent_client.join_target import EntryError, check_broker, read_entry
from agent_client.prompt import Language, language_from
from agent_client.session import AgentOptions, AgentSession, ExitStatus, JoinInfo
from agent_client.transport import websocket_connector

__all__ = [
    "BROKER_ENV",
    "TOKEN_ENV",
    "default_broker",
    "main",
    "parse_target",
    "read_agent_token",
    "token_claims",
]

log = logging.getLogger(__name__)

try:
    VERSION = metadata.version("remote-support-broker")
except metadata.PackageNotFoundError:  # running from a source tree that was not installed
    VERSION = "0.1.0"

USER_AGENT = f"rsb-agent/{VERSION}"
_MAX_RESPONSE = 64 * 1024
_MAX_TOKEN = 8 * 1024
TOKEN_ENV = "RSB_AGENT_TOKEN"
BROKER_ENV = "RSB_BROKER"
LOG_ENV = "RSB_AGENT_LOG"

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


class CodeRefused(UsageError):
    """The broker answered the join with a 4xx status (exit code 2)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"the broker refused the code: {message}")
        self.status = status
        self.message = message


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
    try:
        return read_entry(target, broker)
    except EntryError as exc:
        if exc.key == "broker_missing":
            raise UsageError("give the join link, or the code with --broker https://...") from None
        if exc.key == "link_bad":
            link = "https://support.example/j#1234567890"
            raise UsageError(f"a join link looks like {link}") from None
        if exc.key in ("broker_bad", "broker_http"):
            raise _broker_usage(exc, broker or target) from None
        raise UsageError(
            "the session code is the 10 digits you were given, e.g. 123 456 7890"
        ) from None


def check_broker_url(url: str) -> str:
    """Return the broker URL without a trailing slash.

    Raises:
        UsageError: Not http(s), no host, or plain http to a host that is not this machine
            (tokens must not cross a network in the clear).
    """
    try:
        return check_broker(url)
    except EntryError as exc:
        raise _broker_usage(exc, url) from None


def _broker_usage(exc: EntryError, url: str) -> UsageError:
    if exc.key == "broker_http":
        return UsageError("plain http is only allowed to this machine; use https://")
    return UsageError(f"broker URL must be https://host[:port], got {url[:80]!r}")


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
            raise CodeRefused(exc.code, str(message)) from None
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


def read_agent_token(token_file: str | None, environ: Mapping[str, str]) -> str:
    """The agent token for `attach`: from `token_file` if given, else from `RSB_AGENT_TOKEN`.

    Raises:
        UsageError: No token, an unreadable file, or something that is not a compact JWT.
    """
    if token_file is not None:
        path = Path(token_file)
        try:
            token = path.read_text(encoding="utf-8").strip()
            if os.name == "posix" and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                print(f"rsb-agent: warning: {token_file} is readable by others", file=sys.stderr)
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read the token file {token_file!r}: {exc}") from None
    else:
        token = environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise UsageError(
            f"no agent token: set {TOKEN_ENV} as the customer page shows, or use --token-file"
        )
    if len(token) > _MAX_TOKEN or token.count(".") != 2:
        raise UsageError("the agent token is not what the customer page shows; copy it again")
    return token


def token_claims(token: str) -> tuple[str, str]:
    """Read the session id and case number from an agent token, without verifying it.

    The agent cannot verify the broker's signature (it holds no key); it only needs to know
    which session to expect. The broker verifies the token, and its `welcome` must name the
    same session and case or the agent disconnects (`AgentSession._check_welcome`).

    Returns:
        (session id, case number).

    Raises:
        UsageError: Not a JWT with string claims ``sid`` and ``case``.
    """
    try:
        body = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        return _str(claims["sid"]), _str(claims["case"])
    except (IndexError, ValueError, binascii.Error, KeyError, TypeError):
        raise UsageError("the agent token is not what the customer page shows") from None


def ws_url(broker: str) -> str:
    """The agent endpoint for a broker base URL (http -> ws, https -> wss)."""
    scheme, rest = broker.split(":", 1)
    return f"{'wss' if scheme == 'https' else 'ws'}:{rest}/ws/agent"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (documented in docs/agent.md)."""
    # allow_abbrev off everywhere: `--token X` must be an error, not `--token-file X`.
    parser = argparse.ArgumentParser(
        prog="rsb-agent",
        allow_abbrev=False,
        description="Share this screen with a support engineer, only with your consent.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rsb-agent {VERSION}")
    common = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    common.add_argument("--source", choices=("screen", "test-pattern"), default="screen")
    common.add_argument("--display", help="X11 display to capture and control, e.g. :0")
    common.add_argument("--ca", metavar="FILE", help="trust only this CA certificate (PEM)")
    common.add_argument("--ui", choices=("auto", "terminal", "tk"), default="auto")
    common.add_argument(
        "--lang",
        choices=("auto", "en", "es"),
        default="auto",
        help="language of the consent questions (auto: from the locale)",
    )
    common.add_argument("--max-fps", type=float, default=15.0, help="frame rate cap (1-60)")
    commands = parser.add_subparsers(dest="command", required=True)
    join = commands.add_parser(
        "join",
        allow_abbrev=False,
        parents=[common],
        help="join a session with the code or link you were given",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    join.add_argument(
        "target",
        metavar="CODE_OR_LINK",
        nargs="?",
        help="10-digit code or join link (none: ask for it in a window or on the terminal)",
    )
    join.add_argument(
        "--broker", help=f"broker URL, e.g. https://support.example (default ${BROKER_ENV})"
    )
    join.set_defaults(start=_join)
    attach = commands.add_parser(
        "attach",
        allow_abbrev=False,
        parents=[common],
        help=f"attach to the session the customer page opened (token in ${TOKEN_ENV})",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    attach.add_argument("--broker", required=True, help="broker URL, e.g. https://support.example")
    attach.add_argument(
        "--token-file",
        metavar="FILE",
        help=f"read the agent token from FILE instead of ${TOKEN_ENV}",
    )
    attach.set_defaults(start=_attach)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `rsb-agent`; returns the exit code."""
    logging.basicConfig(level=logging.WARNING, format="rsb-agent: %(message)s")
    if os.environ.get(LOG_ENV, "").lower() == "debug":
        # What the windows show (tests read it), not the connection's frame dumps.
        for name in ("prompt_tk", "join_window", "indicator", "cli"):
            logging.getLogger(f"agent_client.{name}").setLevel(logging.DEBUG)
    words = list(sys.argv[1:] if argv is None else argv)
    if not words or (words[0].startswith("-") and words[0] not in ("-h", "--help", "--version")):
        words.insert(0, "join")  # `rsb-agent` alone, as a download is started: ask for the code
    args = build_parser().parse_args(words)
    try:
        start: Callable[[argparse.Namespace], int] = args.start
        return start(args)
    except CodeRefused as exc:
        from agent_client.join_window import failure_for

        refusal = failure_for(exc.status, exc.message).text_in(_language(args))
        print(f"rsb-agent: {refusal}", file=sys.stderr)
        return ExitStatus.BAD_INPUT
    except UsageError as exc:
        print(f"rsb-agent: {exc}", file=sys.stderr)
        return ExitStatus.BAD_INPUT
    except Unreachable as exc:
        print(f"rsb-agent: {exc}", file=sys.stderr)
        return ExitStatus.CONNECTION_FAILED


def _join(args: argparse.Namespace) -> int:
    if args.target is None:
        return _join_asking(args)
    broker, code = parse_target(args.target, args.broker)
    return _start(args, lambda context: post_join(broker, code, context))


def default_broker(environ: Mapping[str, str]) -> str:
    """The broker to offer when `--broker` is not given: ``$RSB_BROKER``, else none.

    The single-file agent passes the address baked in at build time as ``--broker``
    (packaging/agent_entry.py), so it needs nothing here.
    """
    return environ.get(BROKER_ENV, "")


def _language(args: argparse.Namespace) -> Language:
    lang: Language = language_from(os.environ) if args.lang == "auto" else args.lang
    return lang


def _join_asking(args: argparse.Namespace) -> int:
    """`rsb-agent` without a code: the join window, or the terminal without a display."""
    from agent_client.join_window import JoinFailed, JoinWindow, ask_on_terminal
    from agent_client.prompt import PromptUnavailable
    from agent_client.prompt_tk import TkThread, tk_available

    broker = args.broker or default_broker(os.environ)
    language = _language(args)

    def attempt(context: ssl.SSLContext) -> Callable[[str, str], JoinInfo]:
        def one(url: str, digits: str) -> JoinInfo:
            try:
                return post_join(url, digits, context)
            except CodeRefused as exc:
                from agent_client.join_window import failure_for

                raise failure_for(exc.status, exc.message) from None
            except Unreachable as exc:
                log.info("join failed: %s", exc)
                raise JoinFailed("unreachable", {"broker": url}) from None

        return one

    if args.ui != "terminal" and tk_available():
        thread = TkThread()
        try:
            thread.start()
        except PromptUnavailable as exc:
            print(f"rsb-agent: {exc}; asking on the terminal instead", file=sys.stderr)
        else:
            window = JoinWindow(thread, broker, language)
            return _start(
                args,
                lambda context: window.run(attempt(context)),
                tk_thread=thread,
                language=lambda: window.language,
            )
    return _start(
        args,
        lambda context: ask_on_terminal(broker, language, attempt(context)),
        ui="terminal",
    )


def _attach(args: argparse.Namespace) -> int:
    broker = check_broker_url(args.broker)
    token = read_agent_token(args.token_file, os.environ)
    # Children of the agent (none today) must not inherit the credential.
    os.environ.pop(TOKEN_ENV, None)
    session_id, case_number = token_claims(token)
    info = JoinInfo(session_id, case_number, token, None, None, broker)
    return _start(args, lambda context: info)


def _start(
    args: argparse.Namespace,
    get_info: Callable[[ssl.SSLContext], JoinInfo | None],
    *,
    ui: str | None = None,
    tk_thread: Any = None,
    language: Callable[[], Language] | None = None,
) -> int:
    """Check options, open capture and input, then get the session (which may spend a code).

    Args:
        args: The parsed arguments.
        get_info: Joins (or reads the token); None if the customer gave up asking for a code.
        ui: The prompt to use; None to choose from ``--ui``.
        tk_thread: The join window's Tk thread, which the consent dialog takes over.
        language: The language the customer chose in the join window.
    """
    if not 1 <= args.max_fps <= 60:
        raise UsageError("--max-fps must be between 1 and 60")
    context = _tls_context(args.ca)
    ui = "tk" if tk_thread is not None else ui or _choose_ui(args.ui)
    from agent_client import platform  # after argument checks: it imports numpy and mss

    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rsb-capture")
    try:
        kit = platform.open_kit(args.source, args.display, executor)
    except platform.KitError as exc:
        executor.shutdown(wait=False)
        raise UsageError(str(exc)) from None
    try:
        info = get_info(context)  # a join code is spent from here on
        chosen = language() if language is not None else _language(args)
        if info is None:
            if tk_thread is not None:
                tk_thread.stop()
            print(f"rsb-agent: {texts.text('no_code', chosen)}", file=sys.stderr)
            return ExitStatus.BAD_INPUT
        return asyncio.run(
            _run(info, context, ui, kit, executor, args.max_fps, chosen, tk_thread=tk_thread)
        )
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
    language: Language = "en",
    *,
    tk_thread: Any = None,
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

    window = TkPrompt(language=language, tk_thread=tk_thread, linger=True) if ui == "tk" else None
    session = make(window or TerminalPrompt(language=language))
    _on_signals(session.request_end)
    try:
        status = await session.run()
        if window is not None:
            if status is not ExitStatus.ENDED:
                # A customer without a terminal must be able to read why it stopped.
                await asyncio.to_thread(window.linger_until_closed)
            window.stop()
        return status
    except PromptUnavailable as exc:  # raised before anything was sent
        print(f"rsb-agent: {exc}; using the terminal instead", file=sys.stderr)
        session = make(TerminalPrompt(language=language))
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
