"""``rsb view``: join a session from a terminal, print the read-back words, save the screen.

The token never appears on the command line, where ``ps`` and shell history would show it: it
comes from ``--token-file``, the ``RSB_TOKEN`` environment variable, or a login with
``--user`` and the password read from standard input. Exit codes: 0 done, 2 usage or
authentication error, 3 connection error or timeout (docs/viewer.md).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import ssl
import stat
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import NamedTuple

from PIL import Image

from rsb_protocol.close_codes import AfterClose, after_close
from rsb_protocol.readback import ReadbackString
from rsb_viewer.client import ViewerClient, ViewerClosed, ViewerConnectError
from rsb_viewer.session import ViewerError

EXIT_OK, EXIT_USAGE, EXIT_CONNECTION = 0, 2, 3
DEFAULT_BROKER = "http://127.0.0.1:8080"
AUTH_HTTP_STATUSES = frozenset({400, 401, 403, 404, 429})


class CliError(Exception):
    """A failure to report in one line, with the exit code it maps to."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``rsb view`` argument parser (its own ``prog``, so ``broker.cli`` can delegate)."""
    parser = argparse.ArgumentParser(
        prog="rsb view",
        description="Join a support session as a viewer and show the read-back words.",
        epilog="The token is read from --token-file, from RSB_TOKEN, or obtained with --user "
        "and the password on standard input; never pass it as an argument.",
    )
    parser.add_argument("session_id", metavar="SESSION_ID")
    parser.add_argument(
        "--broker",
        default=os.environ.get("RSB_BROKER", DEFAULT_BROKER),
        help="broker base URL (default: $RSB_BROKER or %(default)s)",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--token-file", type=Path, help="file holding a staff token")
    source.add_argument("--user", help="log in as NAME; the password is read from stdin")
    parser.add_argument("--snapshot", type=Path, help="save the first frame as PNG and exit")
    parser.add_argument(
        "--timeout",
        type=_positive,
        default=120.0,
        help="seconds to connect and, with --snapshot, to get the first frame (default 120)",
    )
    parser.add_argument("--ca", type=Path, help="CA certificate file for a private TLS CA")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``rsb view``.

    Args:
        argv: Arguments after ``view``; ``sys.argv[1:]`` when None.

    Returns:
        The exit code: 0, 2 (usage or authentication) or 3 (connection or timeout).
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed why
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        context = ssl.create_default_context(cafile=str(args.ca)) if args.ca else None
        token = _token(args, context)
        return asyncio.run(_view(args, token, context))
    except CliError as exc:
        print(f"rsb view: {exc}", file=sys.stderr)
        return exc.exit_code
    except (OSError, ssl.SSLError) as exc:  # the --ca file
        print(f"rsb view: cannot read {args.ca}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_CONNECTION if args.snapshot else EXIT_OK


# --- token ----------------------------------------------------------------------------------


def _token(args: argparse.Namespace, context: ssl.SSLContext | None) -> str:
    if args.user:
        if sys.stdin.isatty():
            password = getpass.getpass(f"Password for {args.user}: ")
        else:
            password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CliError("no password on standard input", EXIT_USAGE)
        return login(args.broker, args.user, password, context, args.timeout)
    token: str
    if args.token_file:
        try:
            token = args.token_file.read_text(encoding="utf-8").strip()
            if os.name == "posix" and args.token_file.stat().st_mode & (
                stat.S_IRWXG | stat.S_IRWXO
            ):
                print(
                    f"rsb view: warning: {args.token_file} is readable by others", file=sys.stderr
                )
        except OSError as exc:
            raise CliError(f"cannot read the token file: {exc.strerror}", EXIT_USAGE) from None
    else:
        token = os.environ.get("RSB_TOKEN", "").strip()
    if not token:
        raise CliError(
            "no token: use --token-file FILE, set RSB_TOKEN, or --user NAME with the password "
            "on standard input",
            EXIT_USAGE,
        )
    return token


def login(
    broker: str, user: str, password: str, context: ssl.SSLContext | None, timeout: float
) -> str:
    """Log in with ``POST /api/v1/login`` and return the staff token.

    Raises:
        CliError: Refused (exit 2) or unreachable (exit 3).
    """
    base = broker.rstrip("/").replace("ws://", "http://", 1).replace("wss://", "https://", 1)
    request = urllib.request.Request(
        f"{base}/api/v1/login",
        data=json.dumps({"username": user, "password": password}).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            token: object = json.load(response)["token"]
    except urllib.error.HTTPError as exc:
        code = EXIT_USAGE if exc.code in AUTH_HTTP_STATUSES else EXIT_CONNECTION
        raise CliError(f"login refused: HTTP {exc.code}", code) from None
    except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError) as exc:
        raise CliError(f"login failed at {base}: {exc}", EXIT_CONNECTION) from None
    if not isinstance(token, str):
        raise CliError("login answer has no token", EXIT_CONNECTION)
    return token


# --- viewing --------------------------------------------------------------------------------


class _Seen(NamedTuple):
    """What the terminal shows; a line is printed for each field that changes."""

    joined: str
    readback: ReadbackString | None
    state: str
    admitted: bool
    paused: bool
    ended: str


def _observe(client: ViewerClient) -> _Seen:
    session = client.session
    welcome, state, end = session.welcome, session.state, session.ended
    joined = ""
    if welcome is not None:
        joined = (
            f"Joined session {welcome.session_id} as slot {welcome.slot} "
            f"(case {welcome.case_number}, {welcome.organisation})."
        )
    state_line = ""
    if state is not None:
        viewing = ", ".join(map(str, state.viewing_slots)) or "none"
        controller = "none" if state.controller_slot is None else state.controller_slot
        state_line = f"Session {state.phase}: viewing slots {viewing}; controller {controller}."
    return _Seen(
        joined,
        # Words over our key alone would match nothing the customer sees: wait for the agent's.
        session.readback if session.agent_key is not None else None,
        state_line,
        session.epoch > 0,
        session.paused,
        f"Session ended by {end.by}. {end.reason}".strip() if end else "",
    )


def _show(old: _Seen, new: _Seen) -> None:
    if new.joined != old.joined:
        print(new.joined)
    if new.readback is not None and new.readback != old.readback:
        words, digits = " ".join(new.readback.words), new.readback.digits
        print(f"Read-back words: {words}   (digits {digits[:3]} {digits[3:]})")
        print("  Ask the customer to read theirs; if any word differs, hang up the session.")
    if new.state and new.state != old.state:
        print(new.state)
    if new.admitted and not old.admitted:
        print("The customer let you in: receiving the screen.")
    if new.paused != old.paused:
        print("Paused by the customer." if new.paused else "Resumed.")
    if new.ended and not old.ended:
        print(new.ended)
    sys.stdout.flush()


async def _view(args: argparse.Namespace, token: str, context: ssl.SSLContext | None) -> int:
    try:
        client = ViewerClient(
            args.broker, token, args.session_id, ssl_context=context, open_timeout=args.timeout
        )
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    try:
        await client.connect()
    except ViewerConnectError as exc:
        raise CliError(str(exc), EXIT_USAGE if exc.status in AUTH_HTTP_STATUSES else 3) from None
    try:
        return await _follow(client, args)
    except TimeoutError:
        session = client.session
        if session.waiting_for_agent_key:
            why = (
                "the customer let you in, but the agent announced no "
                f"{session.own.algorithm} key (try another key algorithm or update the agent)"
            )
        else:
            why = "has the customer consented?"
        raise CliError(f"no screen after {args.timeout:g} s: {why}", EXIT_CONNECTION) from None
    except ViewerClosed as exc:
        after = after_close(exc.code)
        if after is AfterClose.ENDED and not args.snapshot:
            return EXIT_OK
        # "Not you, or not this session" (AfterClose.REFUSED): retrying the network won't help.
        raise CliError(str(exc), EXIT_USAGE if after is AfterClose.REFUSED else 3) from None
    except ViewerError as exc:
        raise CliError(str(exc), EXIT_CONNECTION) from None
    finally:
        await client.close()


async def _follow(client: ViewerClient, args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.timeout if args.snapshot else None
    shown = _Seen("", None, "", False, False, "")
    while True:
        current = _observe(client)
        _show(shown, current)
        shown = current
        if args.snapshot and client.session.keyframes_applied:
            _save_png(client, args.snapshot)
            return EXIT_OK
        if shown.ended and not args.snapshot:
            return EXIT_OK
        remaining = None if deadline is None else max(0.0, deadline - loop.time())
        await client.wait_for(
            partial(_changed, seen=shown, snapshot=bool(args.snapshot)), remaining
        )


def _changed(client: ViewerClient, *, seen: _Seen, snapshot: bool) -> bool:
    return _observe(client) != seen or (snapshot and client.session.keyframes_applied > 0)


def _save_png(client: ViewerClient, path: Path) -> None:
    canvas = client.canvas
    assert canvas is not None  # a keyframe was painted
    height, width = canvas.shape[:2]
    image = Image.frombuffer("RGB", (width, height), canvas, "raw", "BGRX", 0, 1)
    try:
        image.save(path, format="PNG")
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc}", EXIT_USAGE) from None
    print(f"Saved the first frame ({width}x{height}) to {path}.")


if __name__ == "__main__":
    sys.exit(main())
