"""Public routes for the downloadable agent: what is on offer, and the files themselves.

``GET /api/v1/downloads`` lists the agent files in ``downloads_dir`` (name, platform, size,
SHA-256, detached signature, URL) and the organisation's release public key; ``GET
/download/{name}`` serves one of them as an attachment. Both are public: the customer who needs
the agent has no token yet, and nothing here is secret (docs/agent.md, "Signed downloads").

Only names the listing would show are served. A name is an agent file's only if it matches
``broker.release.agent_platform`` (no separator, no ``..``, no other suffix), so the request
never builds a path from free text: path traversal has nothing to work with. Symbolic links and
anything that is not a regular file are skipped, so a link planted in the folder cannot publish
a file from elsewhere. Files are sent by ``FileResponse`` (sendfile, in chunks, never read into
memory); each one's SHA-256 is computed once, in a thread, and kept while its modification
time, size and inode stay the same.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aiohttp import web

from broker import release
from broker.api.models import Model
from broker.api.routing import ApiRoute, json_response
from broker.appkeys import SETTINGS_KEY
from broker.errors import NotFound
from broker.settings import SettingsError

log = logging.getLogger(__name__)

_CHUNK = 1024 * 1024

Platform = Literal["linux-x86_64", "windows-x86_64", "macos-arm64", "macos-x86_64"]


class DownloadOut(Model):
    name: str
    platform: Platform
    size: int
    sha256: str
    signature: str | None
    signature_url: str | None
    url: str


class DownloadsOut(Model):
    files: list[DownloadOut]
    release_public_key: str | None
    release_key_fingerprint: str | None


@dataclass(frozen=True)
class AgentFile:
    """One agent file on offer."""

    name: str
    platform: str
    size: int
    sha256: str
    signature: bytes | None

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "platform": self.platform,
            "size": self.size,
            "sha256": self.sha256,
            "signature": None if self.signature is None else release.signature_text(self.signature),
            "signature_url": None if self.signature is None else _url(self.name + ".sig"),
            "url": _url(self.name),
        }


def _url(name: str) -> str:
    # Relative to the broker: right behind any proxy, whatever public_url says.
    return f"/download/{name}"


_Identity = tuple[int, int, int]
"""What says a file is unchanged: modification time (ns), size, inode."""


class Catalogue:
    """The agent files in one folder, with their digests cached by file identity."""

    def __init__(
        self, folder: Path, public_key_pem: str | None, key_fingerprint: str | None
    ) -> None:
        self.folder = folder
        self.public_key_pem = public_key_pem
        self.key_fingerprint = key_fingerprint
        self._digests: dict[str, tuple[_Identity, str]] = {}
        self._lock = asyncio.Lock()  # one scan at a time: a new release is hashed once

    async def files(self) -> list[AgentFile]:
        """The agent files now in the folder, in platform order."""
        async with self._lock:
            return await asyncio.to_thread(self._scan)

    async def path_of(self, name: str) -> Path:
        """The file to serve for ``name``: a listed agent file, or the signature beside one.

        Raises:
            NotFound: anything else (unknown name, a link, a folder, a missing file).
        """
        agent = name.removesuffix(release.SIGNATURE_SUFFIX)
        if release.agent_platform(agent) is None:
            raise NotFound("no such download")
        wanted = [agent] if agent == name else [agent, name]
        found = await asyncio.to_thread(lambda: all(self._regular(n) for n in wanted))
        if not found:
            raise NotFound("no such download")
        return self.folder / name

    def _regular(self, name: str) -> os.stat_result | None:
        try:
            info = os.lstat(self.folder / name)
        except OSError:
            return None
        return info if stat.S_ISREG(info.st_mode) else None

    def _scan(self) -> list[AgentFile]:
        try:
            names = sorted(entry.name for entry in os.scandir(self.folder))
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            platform = release.agent_platform(name)
            info = self._regular(name) if platform is not None else None
            if platform is None or info is None:
                continue
            try:
                digest = self._digest(name, (info.st_mtime_ns, info.st_size, info.st_ino))
            except OSError as exc:  # removed or unreadable since the scan: not on offer
                log.warning("download %s skipped: %s", name, exc)
                continue
            found.append(AgentFile(name, platform, info.st_size, digest, self._signature(name)))
        found.sort(key=lambda f: (release.AGENT_PLATFORMS.index(f.platform), f.name))
        return found

    def _digest(self, name: str, identity: _Identity) -> str:
        cached = self._digests.get(name)
        if cached is not None and cached[0] == identity:
            return cached[1]
        sha = hashlib.sha256()
        with open(self.folder / name, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                sha.update(chunk)
        self._digests[name] = (identity, sha.hexdigest())
        return sha.hexdigest()

    def _signature(self, name: str) -> bytes | None:
        sig = name + release.SIGNATURE_SUFFIX
        info = self._regular(sig)
        if info is None:
            return None
        if info.st_size != release.SIGNATURE_SIZE:
            log.warning("%s is not a %d-byte signature: ignored", sig, release.SIGNATURE_SIZE)
            return None
        try:
            return (self.folder / sig).read_bytes()
        except OSError:
            return None


CATALOGUE_KEY: web.AppKey[Catalogue] = web.AppKey("downloads", Catalogue)


def load_catalogue(folder: Path, public_key: Path | None) -> Catalogue:
    """The catalogue for the settings, with the release public key read and checked.

    Raises:
        SettingsError: ``release_public_key`` is set but unreadable or not an Ed25519 key.
    """
    if public_key is None:
        return Catalogue(folder, None, None)
    try:
        pem = public_key.read_bytes()
        key = release.load_public_key(pem)
    except (OSError, release.ReleaseKeyError) as exc:
        raise SettingsError(f"setting release_public_key={str(public_key)!r}: {exc}") from exc
    return Catalogue(folder, release.public_key_pem(key).decode("ascii"), release.fingerprint(key))


async def catalogue_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS_KEY]
    app[CATALOGUE_KEY] = load_catalogue(settings.downloads_dir, settings.release_public_key)
    yield


async def list_downloads(request: web.Request) -> web.Response:
    catalogue = request.app[CATALOGUE_KEY]
    return json_response(
        {
            "files": [f.to_json() for f in await catalogue.files()],
            "release_public_key": catalogue.public_key_pem,
            "release_key_fingerprint": catalogue.key_fingerprint,
        }
    )


async def download(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    path = await request.app[CATALOGUE_KEY].path_of(name)
    return web.FileResponse(
        path,
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f'attachment; filename="{name}"',
        },
    )


ROUTES = [
    ApiRoute(
        "GET",
        "/api/v1/downloads",
        list_downloads,
        "The agent files on offer, with SHA-256, detached Ed25519 signature and the release "
        "public key (no login)",
        auth="none",
        response=DownloadsOut,
        tags=("downloads",),
    ),
    ApiRoute(
        "GET",
        "/download/{name}",
        download,
        "One agent file (or its .sig), as an attachment; only names the list shows (no login)",
        auth="none",
        errors=(404,),
        tags=("downloads",),
    ),
]
