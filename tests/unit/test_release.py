"""Release signing (``broker/release.py``) and ``rsb release keygen/sign/verify``.

A detached Ed25519 signature over the whole file: any changed byte of the file or of the
signature, or another key, fails; OpenSSL 3 verifies the same signature, as docs/agent.md says.
"""

from __future__ import annotations

import base64
import hashlib
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from broker import release
from tests.conftest import rsb

DATA = bytes(range(256)) * 64 + b"rsb-agent"


def test_a_signature_verifies_and_is_64_raw_bytes() -> None:
    key = release.generate_key()
    signature = release.sign(DATA, key)
    assert len(signature) == release.SIGNATURE_SIZE == 64
    release.verify(DATA, signature, key.public_key())
    text = release.signature_text(signature)
    assert base64.b64decode(text, validate=True) == signature


@pytest.mark.parametrize("where", [0, len(DATA) // 2, len(DATA) - 1])
def test_a_tampered_file_fails(where: int) -> None:
    key = release.generate_key()
    signature = release.sign(DATA, key)
    tampered = bytearray(DATA)
    tampered[where] ^= 0x01
    with pytest.raises(release.BadSignature, match="does not match"):
        release.verify(bytes(tampered), signature, key.public_key())
    with pytest.raises(release.BadSignature):
        release.verify(DATA + b"\0", signature, key.public_key())  # appended
    with pytest.raises(release.BadSignature):
        release.verify(DATA[:-1], signature, key.public_key())  # cut


def test_a_tampered_signature_another_key_or_a_wrong_size_fails() -> None:
    key = release.generate_key()
    signature = release.sign(DATA, key)
    flipped = bytes([signature[0] ^ 0x80]) + signature[1:]
    with pytest.raises(release.BadSignature):
        release.verify(DATA, flipped, key.public_key())
    with pytest.raises(release.BadSignature):
        release.verify(DATA, signature, release.generate_key().public_key())
    with pytest.raises(release.BadSignature, match="64 raw bytes"):
        release.verify(DATA, signature[:63], key.public_key())
    with pytest.raises(release.BadSignature, match="64 raw bytes"):
        release.verify(DATA, base64.b64encode(signature), key.public_key())


def test_keys_round_trip_through_pem_with_and_without_a_passphrase() -> None:
    key = release.generate_key()
    plain = release.private_key_pem(key)
    assert plain.startswith(b"-----BEGIN PRIVATE KEY-----")
    locked = release.private_key_pem(key, b"correct horse battery")
    assert locked.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    for pem, passphrase in ((plain, None), (locked, b"correct horse battery")):
        loaded = release.load_private_key(pem, passphrase)
        release.verify(DATA, release.sign(DATA, loaded), key.public_key())
    public = release.load_public_key(release.public_key_pem(key))
    assert release.fingerprint(public) == release.fingerprint(key.public_key())
    assert len(release.fingerprint(public)) == 64
    assert release.public_key_pem(public) == release.public_key_pem(key)


def test_unusable_keys_are_refused_with_a_reason() -> None:
    key = release.generate_key()
    locked = release.private_key_pem(key, b"correct horse battery")
    with pytest.raises(release.ReleaseKeyError, match="passphrase"):
        release.load_private_key(locked, None)
    with pytest.raises(release.ReleaseKeyError):
        release.load_private_key(locked, b"wrong horse battery")
    with pytest.raises(release.ReleaseKeyError, match="passphrase"):
        release.load_private_key(release.private_key_pem(key), b"not encrypted")
    with pytest.raises(release.ReleaseKeyError):
        release.load_private_key(b"not a key")
    with pytest.raises(release.ReleaseKeyError):
        release.load_public_key(release.private_key_pem(key))  # private where public is due
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_private = ec_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    ec_public = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(release.ReleaseKeyError, match="Ed25519"):
        release.load_private_key(ec_private)
    with pytest.raises(release.ReleaseKeyError, match="Ed25519"):
        release.load_public_key(ec_public)


@pytest.mark.parametrize(
    ("name", "platform"),
    [
        ("rsb-agent-linux-x86_64", "linux-x86_64"),
        ("rsb-agent-windows-x86_64.exe", "windows-x86_64"),
        ("rsb-agent-windows-x86_64", "windows-x86_64"),
        ("rsb-agent-macos-arm64", "macos-arm64"),
        ("rsb-agent-macos-x86_64", "macos-x86_64"),
        ("rsb-agent-linux-x86_64.exe", None),
        ("rsb-agent-macos-arm64.exe", None),
        ("rsb-agent-windows-x86_64.exe.exe", None),
        ("rsb-agent-linux-x86_64.sig", None),
        ("rsb-agent-linux-arm64", None),
        ("rsb-agent-linux-x86_64/..", None),
        ("../rsb-agent-linux-x86_64", None),
        ("rsb-agent-linux-x86_64\n", None),
        ("RSB-AGENT-LINUX-X86_64", None),
        ("", None),
    ],
)
def test_agent_file_names_name_their_platform(name: str, platform: str | None) -> None:
    assert release.agent_platform(name) == platform


def test_every_platform_has_a_file_name() -> None:
    for platform in release.AGENT_PLATFORMS:
        suffix = ".exe" if platform.startswith("windows") else ""
        assert release.agent_platform(f"rsb-agent-{platform}{suffix}") == platform


# --- the command line -------------------------------------------------------------------------


def test_keygen_sign_verify_on_the_command_line(tmp_path: Path) -> None:
    key = tmp_path / "release.pem"
    done = rsb("release", "keygen", "--out", str(key))
    assert done.returncode == 0, done.stderr
    public = tmp_path / "release.pem.pub"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    fingerprint = release.fingerprint(release.load_public_key(public.read_bytes()))
    assert f"fingerprint {fingerprint}" in done.stdout

    again = rsb("release", "keygen", "--out", str(key))
    assert again.returncode == 2 and "exists" in again.stderr, "a release key is never replaced"

    agent = tmp_path / "rsb-agent-linux-x86_64"
    agent.write_bytes(DATA)
    signed = rsb("release", "sign", str(agent), "--key", str(key))
    assert signed.returncode == 0, signed.stderr
    signature = Path(f"{agent}.sig").read_bytes()
    assert len(signature) == 64
    assert hashlib.sha256(DATA).hexdigest() in signed.stdout
    release.verify(DATA, signature, release.load_public_key(public.read_bytes()))

    ok = rsb("release", "verify", str(agent), "--public-key", str(public))
    assert ok.returncode == 0 and "signature OK" in ok.stdout, ok.stderr

    agent.write_bytes(DATA[:-1] + b"X")  # one byte changed
    bad = rsb("release", "verify", str(agent), "--public-key", str(public))
    assert bad.returncode == 1 and "BAD signature" in bad.stderr, (bad.stdout, bad.stderr)

    other = tmp_path / "other.pem"
    assert rsb("release", "keygen", "--out", str(other)).returncode == 0
    agent.write_bytes(DATA)
    wrong = rsb("release", "verify", str(agent), "--public-key", f"{other}.pub")
    assert wrong.returncode == 1, wrong.stderr


def test_a_passphrase_protects_the_key(tmp_path: Path) -> None:
    key = tmp_path / "locked.pem"
    short = rsb("release", "keygen", "--out", str(key), "--passphrase-stdin", stdin="short\n")
    assert short.returncode == 2 and not key.exists()
    made = rsb(
        "release", "keygen", "--out", str(key), "--passphrase-stdin", stdin="a long passphrase\n"
    )
    assert made.returncode == 0, made.stderr
    assert key.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    agent = tmp_path / "rsb-agent-macos-arm64"
    agent.write_bytes(DATA)
    refused = rsb("release", "sign", str(agent), "--key", str(key))
    assert refused.returncode == 2 and "passphrase" in refused.stderr
    assert not Path(f"{agent}.sig").exists()
    wrong = rsb(
        "release", "sign", str(agent), "--key", str(key), "--passphrase-stdin", stdin="wrong one\n"
    )
    assert wrong.returncode == 2 and not Path(f"{agent}.sig").exists()
    signed = rsb(
        "release",
        "sign",
        str(agent),
        "--key",
        str(key),
        "--passphrase-stdin",
        stdin="a long passphrase\n",
    )
    assert signed.returncode == 0, signed.stderr
    ok = rsb("release", "verify", str(agent), "--public-key", f"{key}.pub")
    assert ok.returncode == 0, ok.stderr


def test_openssl_verifies_the_signature_as_documented(tmp_path: Path) -> None:
    """docs/agent.md tells a customer's IT to check a download with OpenSSL alone."""
    key = release.generate_key()
    agent = tmp_path / "rsb-agent-linux-x86_64"
    agent.write_bytes(DATA)
    Path(f"{agent}.sig").write_bytes(release.sign(DATA, key))
    public = tmp_path / "release.pub"
    public.write_bytes(release.public_key_pem(key))

    def openssl_verify() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(public), "-rawin"]
            + ["-in", str(agent), "-sigfile", f"{agent}.sig"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    good = openssl_verify()
    assert good.returncode == 0 and "Signature Verified Successfully" in good.stdout, good
    agent.write_bytes(DATA + b"!")
    assert openssl_verify().returncode != 0
