"""The download routes against the real broker: ``GET /api/v1/downloads`` and ``/download/{name}``.

A real folder of files (agent files, their signatures, and things that must never be served:
other files, a folder, a symbolic link to a file outside), the broker on 127.0.0.1, requests
with no token. Traversal attempts go over a raw socket, so no client library tidies the path.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tracemalloc
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker import release
from broker.api.download_routes import load_catalogue
from broker.settings import Settings, SettingsError
from tests.conftest import TEST_SETTINGS, Broker
from tests.raw_http import exchange, request_bytes

LINUX = b"\x7fELF linux agent " * 1000
WINDOWS = b"MZ windows agent " * 700
SECRET = b"the broker's own secrets"


@pytest.fixture
def release_key() -> Ed25519PrivateKey:
    return release.generate_key()


@pytest.fixture
def folder(tmp_path: Path, release_key: Ed25519PrivateKey) -> Path:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "rsb-agent-linux-x86_64").write_bytes(LINUX)
    (downloads / "rsb-agent-linux-x86_64.sig").write_bytes(release.sign(LINUX, release_key))
    (downloads / "rsb-agent-windows-x86_64.exe").write_bytes(WINDOWS)  # not signed
    (downloads / "README.txt").write_text("not an agent")
    (downloads / "rsb-agent-linux-x86_64.tar.gz").write_bytes(b"archive")
    (downloads / "rsb-agent-macos-arm64").mkdir()  # a folder with an agent's name
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (downloads / "rsb-agent-macos-x86_64").symlink_to(tmp_path / "secret.txt")
    return downloads


@pytest.fixture
def settings(db_path: Path, folder: Path, release_key: Ed25519PrivateKey) -> Settings:
    public = folder.parent / "release.pub"
    public.write_bytes(release.public_key_pem(release_key))
    return Settings.from_mapping(
        {
            "db": str(db_path),
            **TEST_SETTINGS,
            "downloads_dir": str(folder),
            "release_public_key": str(public),
        }
    )


async def test_the_list_names_each_agent_file_with_its_hash_and_signature(
    broker: Broker, folder: Path, release_key: Ed25519PrivateKey
) -> None:
    body = await broker.call("GET", "/api/v1/downloads", status=200)  # no token
    files = {f["name"]: f for f in body["files"]}
    # Not the README, the archive, the folder or the link to a file outside.
    assert list(files) == ["rsb-agent-linux-x86_64", "rsb-agent-windows-x86_64.exe"]
    linux = files["rsb-agent-linux-x86_64"]
    assert linux == {
        "name": "rsb-agent-linux-x86_64",
        "platform": "linux-x86_64",
        "size": len(LINUX),
        "sha256": hashlib.sha256(LINUX).hexdigest(),
        "signature": base64.b64encode(
            (folder / "rsb-agent-linux-x86_64.sig").read_bytes()
        ).decode(),
        "signature_url": "/download/rsb-agent-linux-x86_64.sig",
        "url": "/download/rsb-agent-linux-x86_64",
    }
    windows = files["rsb-agent-windows-x86_64.exe"]
    assert windows["platform"] == "windows-x86_64"
    assert windows["sha256"] == hashlib.sha256(WINDOWS).hexdigest()
    assert windows["signature"] is None and windows["signature_url"] is None
    # The published key verifies the published signature of the published file.
    public = release.load_public_key(body["release_public_key"].encode())
    assert body["release_key_fingerprint"] == release.fingerprint(release_key.public_key())
    release.verify(LINUX, base64.b64decode(linux["signature"]), public)


async def test_a_file_and_its_signature_are_served_as_attachments(
    broker: Broker, folder: Path
) -> None:
    listed = await broker.call("GET", "/api/v1/downloads", status=200)
    linux = next(f for f in listed["files"] if f["platform"] == "linux-x86_64")
    resp = await broker.client.get(linux["url"])
    assert resp.status == 200
    data = await resp.read()
    assert hashlib.sha256(data).hexdigest() == linux["sha256"]
    assert resp.headers["Content-Type"] == "application/octet-stream"
    assert resp.headers["Content-Disposition"] == 'attachment; filename="rsb-agent-linux-x86_64"'
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    sig = await broker.client.get(linux["signature_url"])
    assert sig.status == 200
    assert await sig.read() == (folder / "rsb-agent-linux-x86_64.sig").read_bytes()
    assert 'filename="rsb-agent-linux-x86_64.sig"' in sig.headers["Content-Disposition"]


@pytest.mark.parametrize(
    "path",
    [
        "/download/rsb-agent-macos-arm64",  # a folder
        "/download/rsb-agent-macos-x86_64",  # a link to a file outside the folder
        "/download/README.txt",  # in the folder, but no agent file
        "/download/rsb-agent-linux-x86_64.tar.gz",
        "/download/rsb-agent-windows-x86_64.exe.sig",  # no signature beside it
        "/download/rsb-agent-linux-arm64",
        "/download/nothing",
        "/download/..%2Fsecret.txt",
        "/download/%2e%2e%2fsecret.txt",
        "/download/rsb-agent-linux-x86_64%2F..%2F..%2Fsecret.txt",
        "/download/rsb-agent-linux-x86_64%00",
        "/download/..%5Csecret.txt",
        "/download/../secret.txt",
        "/download/./rsb-agent-linux-x86_64/../../secret.txt",
        "/download/%252e%252e%252fsecret.txt",
    ],
)
async def test_anything_not_listed_is_404_and_nothing_outside_leaks(
    broker: Broker, path: str
) -> None:
    resp = await exchange(broker.port, request_bytes("GET", path))
    assert resp.status == 404, (path, resp)
    resp.assert_error_shape()
    assert SECRET not in resp.body


async def test_the_hash_is_kept_while_mtime_and_size_stay_and_redone_when_they_change(
    broker: Broker, folder: Path
) -> None:
    path = folder / "rsb-agent-linux-x86_64"

    async def listed_sha() -> str:
        body = await broker.call("GET", "/api/v1/downloads", status=200)
        return str(next(f["sha256"] for f in body["files"] if f["name"] == path.name))

    assert await listed_sha() == hashlib.sha256(LINUX).hexdigest()
    # Same size, same inode, same modification time: the cached hash stands (it is not redone
    # per request), though the bytes differ.
    before = path.stat()
    with open(path, "r+b") as handle:
        handle.write(b"X")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert await listed_sha() == hashlib.sha256(LINUX).hexdigest()
    # A new release (another modification time): hashed again.
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    assert await listed_sha() == hashlib.sha256(b"X" + LINUX[1:]).hexdigest()
    # Replaced by a longer file: hashed again too.
    path.write_bytes(LINUX + b"!")
    assert await listed_sha() == hashlib.sha256(LINUX + b"!").hexdigest()


async def test_a_large_file_is_streamed_not_read_into_memory(broker: Broker, folder: Path) -> None:
    big = folder / "rsb-agent-macos-arm64"
    big.rmdir()
    size = 96 * 1024 * 1024
    with open(big, "wb") as handle:  # sparse: nothing is written to the disk
        handle.truncate(size)
    tracemalloc.start()
    try:
        body = await broker.call("GET", "/api/v1/downloads", status=200)
        resp = await broker.client.get("/download/rsb-agent-macos-arm64")
        assert resp.status == 200
        sha = hashlib.sha256()
        received = 0
        async for chunk in resp.content.iter_chunked(256 * 1024):
            sha.update(chunk)
            received += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    listed = next(f for f in body["files"] if f["name"] == big.name)
    assert received == size == listed["size"]
    assert sha.hexdigest() == listed["sha256"] == hashlib.sha256(bytes(size)).hexdigest()
    # Hashing and sending both went in chunks: far less than the file was ever held at once.
    assert peak < 16 * 1024 * 1024, peak


async def test_no_folder_lists_nothing(broker: Broker, folder: Path) -> None:
    for path in folder.iterdir():
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
        else:
            path.unlink()
    folder.rmdir()
    body = await broker.call("GET", "/api/v1/downloads", status=200)
    assert body["files"] == []
    await broker.call("GET", "/download/rsb-agent-linux-x86_64", status=404)


async def test_both_routes_are_public_in_the_api_document(broker: Broker) -> None:
    spec = await broker.call("GET", "/api/openapi.json", status=200)
    listing = spec["paths"]["/api/v1/downloads"]["get"]
    assert listing["security"] == []
    schema = spec["components"]["schemas"]["DownloadsOut"]
    assert {"files", "release_public_key", "release_key_fingerprint"} <= set(schema["properties"])
    download = spec["paths"]["/download/{name}"]["get"]
    assert download["security"] == [] and "404" in download["responses"]


def test_a_release_public_key_that_is_no_key_stops_start_up(tmp_path: Path) -> None:
    bad = tmp_path / "release.pub"
    bad.write_text("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n")
    with pytest.raises(SettingsError, match="release_public_key"):
        load_catalogue(tmp_path, bad)
    with pytest.raises(SettingsError, match="release_public_key"):
        load_catalogue(tmp_path, tmp_path / "missing.pub")
    # A private key where the public one is due is refused too: it must never be published.
    private = tmp_path / "release.pem"
    private.write_bytes(release.private_key_pem(release.generate_key()))
    with pytest.raises(SettingsError, match="release_public_key"):
        load_catalogue(tmp_path, private)
