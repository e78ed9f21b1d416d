"""``rsb``: run the broker and administer it (users, keys, audit, release signing) from the
command line.

The first admin is created here (``rsb users add NAME --role admin --password-stdin``); the
web has no setup endpoint, so nobody can claim a fresh install over the network.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import getpass
import hashlib
import logging
import os
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from aiohttp import web

from broker import release
from broker.api.server import BrokerRunner, raise_open_file_limit
from broker.app import create_app, utc_now
from broker.audit.checkpoint import Anchor, AnchorError
from broker.audit.log import Actor
from broker.errors import BrokerError
from broker.event_loop import EVENT_LOOPS, EventLoopUnavailable, loop_factory
from broker.relay.hub import RECONCILE_SECONDS
from broker.services import Services, ensure_demo_users, open_services
from broker.settings import Settings, SettingsError
from broker.types import Role

DEMO_CREDENTIALS = "demo-credentials.txt"


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        "db": args.db,
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "tls_cert": getattr(args, "tls_cert", None),
        "tls_key": getattr(args, "tls_key", None),
        "event_loop": getattr(args, "event_loop", None),
        "demo_users": True if getattr(args, "demo_users", False) else None,
    }
    return Settings.load(os.environ, config_file=args.config, overrides=overrides)


def _cli_actor() -> Actor:
    return Actor(f"cli:{getpass.getuser()}", "admin", "local")


async def _with_services(settings: Settings, body: Callable[[Services], Awaitable[int]]) -> int:
    services = await open_services(settings, utc_now)
    try:
        return await body(services)
    finally:
        await services.close()


# --- serve ----------------------------------------------------------------------------------


async def _serve(settings: Settings, loop_name: str) -> int:
    """Serve until SIGINT or SIGTERM, then stop the way aiohttp's own ``run_app`` does.

    The signals only set an event: the shutdown (peers told 1001, requests finished, services
    closed) then runs as ordinary code on a live loop. Raising out of the loop instead (what
    ``handle_signals=True`` does) cancels every task at once, sockets dropped without a close
    frame (1006).
    """
    before, after = raise_open_file_limit()
    app = create_app(settings)
    runner = BrokerRunner(app)
    await runner.setup()
    try:
        ssl_context = None
        if settings.tls_cert and settings.tls_key:
            ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_context.load_cert_chain(settings.tls_cert, settings.tls_key)
        site = web.TCPSite(runner, settings.host, settings.port, ssl_context=ssl_context)
        try:
            await site.start()
        except OSError as exc:
            reason = (
                "address already in use"
                if exc.errno == errno.EADDRINUSE
                else (exc.strerror or str(exc)).lower()
            )
            print(
                f"error: cannot listen on {settings.host}:{settings.port}: {reason}; "
                "pass --port or set RSB_PORT",
                file=sys.stderr,
            )
            return 1
        await _banner(app, settings, loop_name, open_files=(before, after))
        # Start-up objects live as long as the process: move them out of the collector's
        # sight, so a full collection during a session does not walk them (50-70 ms measured).
        gc.collect()
        gc.freeze()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await stop.wait()
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
    finally:
        await runner.cleanup()
    return 0


async def _banner(
    app: web.Application, settings: Settings, loop_name: str, *, open_files: tuple[int, int]
) -> None:
    from broker.appkeys import SERVICES_KEY

    services = app[SERVICES_KEY]
    base = settings.base_url
    print(f"Broker listening on {base}  (database: {settings.db}, event loop: {loop_name})")
    print(f"  Customer page    {base}/")
    print(f"  Engineer console {base}/console")
    print(f"  Security review  {base}/audit")
    print(f"  API description  {base}/api/openapi.json")
    print(f"  Health           {base}/healthz")
    print(f"  Metrics          {base}/metrics")
    print(f"  Open files limit {open_files[1]} (was {open_files[0]})")
    if settings.demo_users:
        credentials = Path(settings.db).parent / DEMO_CREDENTIALS
        users = await ensure_demo_users(services, credentials)
        if users:
            print(f"Demo users (local use only; kept in {credentials}):")
            for name, password in users:
                user = await services.store.get_user(name)
                role = user.role if user else "?"
                print(f"  {name:<6} {role:<12} password: {password}")
    print("Press Ctrl+C to stop.", flush=True)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    try:
        loop_name, factory = loop_factory(settings.event_loop)
    except EventLoopUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(_serve(settings, loop_name))
    except KeyboardInterrupt:
        return 0  # Ctrl+C before the signal handlers were installed: a normal stop


# --- users ----------------------------------------------------------------------------------


def cmd_users_add(args: argparse.Namespace) -> int:
    if not args.password_stdin:
        print("error: pass the password on standard input with --password-stdin", file=sys.stderr)
        return 2
    password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 12:
        print("error: the password must be at least 12 characters", file=sys.stderr)
        return 2

    async def body(services: Services) -> int:
        user = await services.auth.add_user(
            args.name, args.display_name or args.name, Role(args.role), password, _cli_actor()
        )
        print(f"created {user.name} ({user.role})")
        return 0

    return asyncio.run(_with_services(_settings(args), body))


def cmd_users_list(args: argparse.Namespace) -> int:
    async def body(services: Services) -> int:
        for user in await services.auth.list_users():
            state = "disabled" if user.disabled else "active"
            print(f"{user.name}\t{user.role}\t{state}\t{user.display_name}")
        return 0

    return asyncio.run(_with_services(_settings(args), body))


def cmd_users_disable(args: argparse.Namespace) -> int:
    async def body(services: Services) -> int:
        await services.auth.set_disabled(args.name, True, _cli_actor())
        print(
            f"disabled {args.name}; a running broker closes their live connections within "
            f"{RECONCILE_SECONDS:g} s"
        )
        return 0

    return asyncio.run(_with_services(_settings(args), body))


# --- keys and audit -------------------------------------------------------------------------


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    async def body(services: Services) -> int:
        kid = await services.auth.rotate_keys(_cli_actor())
        print(f"new signing key {kid}; older keys verify existing tokens until they expire")
        audit_kid = await services.audit.rotate_key(_cli_actor(), utc_now())
        print(f"new audit key {audit_kid}; older checkpoints and anchors still verify")
        return 0

    return asyncio.run(_with_services(_settings(args), body))


def cmd_keys_list(args: argparse.Namespace) -> int:
    async def body(services: Services) -> int:
        records = await services.store.list_signing_keys()
        signing = [r for r in records if r.retired_at is None]
        for record in records:
            if record.retired_at is None:
                state = "signing" if record is signing[-1] else "active"
            else:
                state = f"retired {record.retired_at.isoformat(timespec='seconds')}"
            print(f"{record.kid}\t{record.created_at.isoformat(timespec='seconds')}\t{state}")
        return 0

    return asyncio.run(_with_services(_settings(args), body))


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    async def body(services: Services) -> int:
        rotated = await services.auth.revoke_key(args.kid, _cli_actor())
        if rotated:
            print(f"it was the signing key: new tokens are now signed by {rotated}")
        print(
            f"revoked signing key {args.kid}: tokens it signed are refused, and a running "
            f"broker closes their live connections within {RECONCILE_SECONDS:g} s"
        )
        return 0

    return asyncio.run(_with_services(_settings(args), body))


def cmd_audit_verify(args: argparse.Namespace) -> int:
    anchor = None
    if args.anchor:
        try:
            text = Path(args.anchor).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            print(f"error: cannot read anchor {args.anchor}: {exc}", file=sys.stderr)
            return 2
        try:
            anchor = Anchor.from_text(text)
        except AnchorError as exc:
            print(f"error: {args.anchor}: {exc}", file=sys.stderr)
            return 2

    async def body(services: Services) -> int:
        verification = await services.audit.verify(anchor)
        result = verification.result
        if result.ok:
            against = [
                f"{name} at seq {seq}"
                for name, seq in (
                    ("the newest signed checkpoint", verification.checkpoint_seq),
                    ("the anchor", verification.anchor_seq),
                )
                if seq is not None
            ]
            print(
                f"audit chain intact: {result.checked} events, head {result.head_hash}"
                + (f"; it holds {' and '.join(against)}" if against else "; no signed checkpoint")
            )
            return 0
        print(
            f"audit chain BROKEN at event seq {result.first_bad_seq}: {result.reason} "
            f"({result.checked} events verified before it)",
            file=sys.stderr,
        )
        return 1

    return asyncio.run(_with_services(_settings(args), body))


def cmd_audit_export(args: argparse.Namespace) -> int:
    async def body(services: Services) -> int:
        # Recorded (and the head signed) before writing, as the HTTP export does.
        await services.audit.begin_export(_cli_actor(), utc_now())
        out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
        try:
            count = 0
            async for line in services.audit.export_lines():
                out.write(line + "\n")
                count += 1
        finally:
            if args.output:
                out.close()
        print(f"exported {count} events", file=sys.stderr)
        return 0

    return asyncio.run(_with_services(_settings(args), body))


def cmd_audit_head(args: argparse.Namespace) -> int:
    async def body(services: Services) -> int:
        anchor = await services.audit.export_anchor(_cli_actor(), utc_now())
        if args.output:
            Path(args.output).write_text(anchor.to_text(), encoding="utf-8")
        else:
            sys.stdout.write(anchor.to_text())
        print(
            f"signed head anchor for seq {anchor.checkpoint.seq} written to "
            f"{args.output or 'standard output'}; keep it off this machine and check it later "
            "with rsb audit verify --anchor FILE",
            file=sys.stderr,
        )
        return 0

    return asyncio.run(_with_services(_settings(args), body))


# --- release signing ------------------------------------------------------------------------


def _passphrase(args: argparse.Namespace) -> bytes | None:
    if not args.passphrase_stdin:
        return None
    passphrase = sys.stdin.readline().rstrip("\r\n")
    if not passphrase:
        raise ValueError("--passphrase-stdin was given but standard input had no passphrase")
    return passphrase.encode()


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` from the start (never a moment world-readable); refuse to
    replace an existing file, so a release key is never overwritten by accident."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise ValueError(f"{path} exists; remove it first or pick another name") from None
    except OSError as exc:
        raise ValueError(f"cannot create {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def cmd_release_keygen(args: argparse.Namespace) -> int:
    passphrase = _passphrase(args)
    if passphrase is not None and len(passphrase) < 12:
        print("error: the passphrase must be at least 12 characters", file=sys.stderr)
        return 2
    out = Path(args.out)
    public_out = Path(args.public_out or f"{args.out}.pub")
    key = release.generate_key()
    _write_new(out, release.private_key_pem(key, passphrase), 0o600)
    _write_new(public_out, release.public_key_pem(key), 0o644)
    print(f"release private key written to {out} (mode 0600); keep it offline")
    print(f"public key written to {public_out}; set release_public_key to publish it")
    print(f"fingerprint {release.fingerprint(key.public_key())}")
    return 0


def cmd_release_sign(args: argparse.Namespace) -> int:
    key = release.load_private_key(_read(args.key, "key"), _passphrase(args))
    data = _read(args.file, "file")
    signature = release.sign(data, key)
    target = Path(f"{args.file}{release.SIGNATURE_SUFFIX}")
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(signature)
    os.replace(partial, target)  # a reader sees the old signature or the new one, never half
    print(f"signed {args.file} ({len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()})")
    print(f"signature written to {target} ({release.SIGNATURE_SIZE} raw bytes)")
    print(f"key fingerprint {release.fingerprint(key.public_key())}")
    return 0


def cmd_release_verify(args: argparse.Namespace) -> int:
    key = release.load_public_key(_read(args.public_key, "public key"))
    signature_path = args.signature or f"{args.file}{release.SIGNATURE_SUFFIX}"
    signature = _read(signature_path, "signature")
    data = _read(args.file, "file")
    try:
        release.verify(data, signature, key)
    except release.BadSignature as exc:
        print(f"BAD signature: {args.file}: {exc}", file=sys.stderr)
        return 1
    print(
        f"signature OK: {args.file} (sha256 {hashlib.sha256(data).hexdigest()}) was signed by "
        f"the key with fingerprint {release.fingerprint(key)}"
    )
    return 0


# --- parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--db",
        default=None,
        help="SQLite path or sqlite:/// URL (default: $RSB_DB, else ./var/rsb.db)",
    )
    common.add_argument("--config", default=None, help="TOML settings file (or $RSB_CONFIG)")

    parser = argparse.ArgumentParser(prog="rsb", description="Remote-support session broker")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", parents=[common], help="run the broker")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--tls-cert", default=None)
    serve.add_argument("--tls-key", default=None)
    serve.add_argument(
        "--event-loop",
        default=None,
        choices=EVENT_LOOPS,
        help="auto (uvloop when installed, the default), uvloop or asyncio",
    )
    serve.add_argument(
        "--demo-users",
        action="store_true",
        help="create one demo user per role on first start and print their passwords",
    )
    serve.set_defaults(func=cmd_serve)

    users = sub.add_parser("users", help="manage staff users").add_subparsers(
        dest="users_command", required=True
    )
    add = users.add_parser("add", parents=[common], help="create a user")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--display-name", default=None)
    add.add_argument("--password-stdin", action="store_true")
    add.set_defaults(func=cmd_users_add)
    users.add_parser("list", parents=[common], help="list users").set_defaults(func=cmd_users_list)
    disable = users.add_parser("disable", parents=[common], help="disable a user")
    disable.add_argument("name")
    disable.set_defaults(func=cmd_users_disable)

    keys = sub.add_parser("keys", help="token signing keys").add_subparsers(
        dest="keys_command", required=True
    )
    keys.add_parser("rotate", parents=[common], help="start signing with a new key").set_defaults(
        func=cmd_keys_rotate
    )
    keys.add_parser("list", parents=[common], help="list signing keys").set_defaults(
        func=cmd_keys_list
    )
    revoke = keys.add_parser(
        "revoke",
        parents=[common],
        help="delete a signing key: its tokens stop working and their connections close",
    )
    revoke.add_argument(
        "kid", help='the key id, as rsb keys list shows it (one starting with "-" goes after --)'
    )
    revoke.set_defaults(func=cmd_keys_revoke)

    audit = sub.add_parser("audit", help="audit log").add_subparsers(
        dest="audit_command", required=True
    )
    verify = audit.add_parser(
        "verify", parents=[common], help="check the hash chain and its signed checkpoints"
    )
    verify.add_argument(
        "--anchor",
        default=None,
        metavar="FILE",
        help="also check a head anchor written earlier by rsb audit head",
    )
    verify.set_defaults(func=cmd_audit_verify)
    head = audit.add_parser(
        "head", parents=[common], help="write the signed chain head as an anchor file"
    )
    head.add_argument("-o", "--output", default=None, metavar="FILE")
    head.set_defaults(func=cmd_audit_head)
    export = audit.add_parser("export", parents=[common], help="write events as JSON lines")
    export.add_argument("-o", "--output", default=None)
    export.set_defaults(func=cmd_audit_export)

    signing = sub.add_parser(
        "release", help="sign the downloadable agent with the organisation's release key"
    ).add_subparsers(dest="release_command", required=True)
    keygen = signing.add_parser("keygen", help="create an Ed25519 release key pair")
    keygen.add_argument("--out", required=True, metavar="FILE", help="private key (PEM, 0600)")
    keygen.add_argument(
        "--public-out", default=None, metavar="FILE", help="public key (default: FILE.pub)"
    )
    keygen.add_argument(
        "--passphrase-stdin",
        action="store_true",
        help="encrypt the private key with a passphrase read from standard input",
    )
    keygen.set_defaults(func=cmd_release_keygen)
    sign = signing.add_parser("sign", help="write FILE.sig, a detached Ed25519 signature")
    sign.add_argument("file", metavar="FILE")
    sign.add_argument("--key", required=True, metavar="KEY", help="private key from keygen")
    sign.add_argument(
        "--passphrase-stdin", action="store_true", help="the key's passphrase, on standard input"
    )
    sign.set_defaults(func=cmd_release_sign)
    check = signing.add_parser("verify", help="check FILE against FILE.sig; exit 1 if it differs")
    check.add_argument("file", metavar="FILE")
    check.add_argument("--public-key", required=True, metavar="PUB", help="public key (PEM)")
    check.add_argument(
        "--signature", default=None, metavar="SIG", help="the signature (default: FILE.sig)"
    )
    check.set_defaults(func=cmd_release_verify)

    # Listed here for `rsb --help`; `main` hands everything after `view` to rsb_viewer.cli.
    sub.add_parser(
        "view",
        add_help=False,
        help="join a session as a viewer; see rsb view --help",
    )
    return parser


def cmd_view(argv: Sequence[str]) -> int:
    """Run `rsb view`, imported only now: the broker itself never loads viewer or E2E code."""
    try:
        from rsb_viewer.cli import main as view_main
    except ImportError as exc:  # a server-only install has no websockets, numpy or Pillow
        print(
            f"error: rsb view needs the agent extra ({exc.name} is missing): "
            "pip install 'remote-support-broker[agent]'",
            file=sys.stderr,
        )
        return 2
    return view_main(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["view"]:
        return cmd_view(args_list[1:])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = build_parser().parse_args(args_list)
    try:
        result: int = args.func(args)
        return result
    except (SettingsError, BrokerError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
