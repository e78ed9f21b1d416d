"""``rsb serve --demo-users`` as ``make run`` starts it: a real process on a real port."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.conftest import REPO
from tests.log_check import TokenLogCheck


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_prints_urls_and_demo_users(tmp_path: Path, token_log_check: TokenLogCheck) -> None:
    port = _free_port()
    env = {**os.environ, "RSB_ARGON2_TIME_COST": "1", "RSB_ARGON2_MEMORY_KIB": "8192"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "broker.cli",
            "serve",
            "--demo-users",
            "--port",
            str(port),
            "--db",
            str(tmp_path / "var" / "rsb.db"),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Press Ctrl+C"):
                break
        output = "".join(lines)
        assert f"http://127.0.0.1:{port}/api/openapi.json" in output, output
        assert "event loop: uvloop" in output, output  # the default where uvloop is installed
        for page in ("/", "/console", "/audit"):  # every page the banner names is served
            url = f"http://127.0.0.1:{port}{page}"
            assert url in output, output
            with urllib.request.urlopen(url, timeout=10) as resp:
                assert resp.headers["Content-Type"].startswith("text/html")
        users = {ln.split()[0]: ln.split()[-1] for ln in lines if "password:" in ln}
        assert set(users) == {"desk", "rse", "eng", "sec", "admin"}
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/login",
            data=json.dumps({"username": "rse", "password": users["rse"]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert json.load(resp)["user"]["level"] == "L2"
        credentials = tmp_path / "var" / "demo-credentials.txt"
        assert credentials.stat().st_mode & 0o777 == 0o600
    finally:
        proc.terminate()
        rest, _ = proc.communicate(timeout=10)
        token_log_check.scan_text("".join(lines) + rest, "rsb serve --demo-users")


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_serve_over_tls(tmp_path: Path, token_log_check: TokenLogCheck) -> None:
    import ssl

    cert, key = _self_signed(tmp_path)
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "broker.cli",
            "serve",
            "--port",
            str(port),
            "--db",
            str(tmp_path / "rsb.db"),
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(key),
            "--event-loop",  # the other loop: TLS on uvloop is covered by the agent's TLS test
            "asyncio",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "Press Ctrl+C" not in banner:
            banner += proc.stdout.readline()
        assert f"https://127.0.0.1:{port}" in banner
        assert "event loop: asyncio" in banner, banner
        trusting = ssl.create_default_context(cafile=str(cert))
        with urllib.request.urlopen(
            f"https://127.0.0.1:{port}/healthz", context=trusting, timeout=10
        ) as resp:
            assert json.load(resp)["status"] == "ok"
        # A client that does not trust the certificate refuses to talk.
        try:
            urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", timeout=10)
            raise AssertionError("an untrusted certificate was accepted")
        except urllib.error.URLError as exc:
            assert isinstance(exc.reason, ssl.SSLCertVerificationError)
    finally:
        proc.terminate()
        rest, _ = proc.communicate(timeout=10)
        assert proc.returncode == 0, "SIGTERM is a normal stop"
        token_log_check.scan_text(banner + rest, "rsb serve over TLS")
