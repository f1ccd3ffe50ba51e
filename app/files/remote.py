"""Files given by URL (``transfer_method: remote_url``): what a HEAD says about them, and fetching their bytes.

Every request to a user-supplied URL goes through the one SSRF-guarded client (``app/net``, DESIGN rule 8):
:class:`GuardedRemoteFiles` is the API's and the worker's ``RemoteFiles``. :data:`NO_REMOTE_FILES` refuses every
URL; it is what code that was given no client (tests of other things) gets.
"""

from __future__ import annotations

import mimetypes
import os
import re
import urllib.parse
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from app.errors import InvalidParam
from app.net.client import GuardedClient
from app.net.errors import NetError
from app.settings import Settings

NOT_CONFIGURED = "Remote file URLs cannot be used: no SSRF-guarded HTTP client is configured on this server."


@dataclass(frozen=True)
class RemoteHead:
    status: int
    headers: Mapping[str, str]


class RemoteFiles(Protocol):
    async def probe(self, url: str) -> RemoteHead:
        """HEAD the URL (following redirects) through the guarded client."""
        ...

    async def fetch(self, url: str, *, max_bytes: int) -> bytes:
        """GET the URL through the guarded client; a non-2xx status or more than ``max_bytes`` is an error."""
        ...


class RemoteFilesUnavailable(InvalidParam):
    """Remote file URLs cannot be used: no SSRF-guarded HTTP client is configured on this server."""


class _NoRemoteFiles:
    """What is used until the guarded client is wired: every URL is refused, nothing is fetched."""

    async def probe(self, url: str) -> RemoteHead:
        raise RemoteFilesUnavailable(NOT_CONFIGURED)

    async def fetch(self, url: str, *, max_bytes: int) -> bytes:
        raise RemoteFilesUnavailable(NOT_CONFIGURED)


NO_REMOTE_FILES: RemoteFiles = _NoRemoteFiles()

#: How long probing or fetching a remote file may take (seconds).
REMOTE_TIMEOUT_SECONDS = 30.0


class RemoteFileUnreachable(InvalidParam):
    """The remote file could not be fetched."""


def remote_files(settings: Settings) -> GuardedRemoteFiles:
    """The remote files of this deployment: the guarded client under the operator's network policy."""
    from app.net.node_port import policy_from

    return GuardedRemoteFiles(GuardedClient(policy_from(settings)))


class GuardedRemoteFiles:
    """``RemoteFiles`` through the SSRF-guarded client: private and loopback addresses are refused (unless the
    operator allows their networks), every redirect hop is checked, bodies stop at ``max_bytes``."""

    def __init__(self, client: GuardedClient) -> None:
        self.client = client

    async def probe(self, url: str) -> RemoteHead:
        try:
            async with self.client.stream("HEAD", url, timeout=REMOTE_TIMEOUT_SECONDS) as response:
                return RemoteHead(status=response.status_code, headers=dict(response.headers))
        except NetError as exc:
            raise RemoteFileUnreachable(exc.message) from None

    async def fetch(self, url: str, *, max_bytes: int) -> bytes:
        try:
            fetched = await self.client.request(
                "GET", url, max_bytes=max_bytes, timeout=REMOTE_TIMEOUT_SECONDS
            )
        except NetError as exc:
            raise RemoteFileUnreachable(exc.message) from None
        if not 200 <= fetched.status_code < 300:
            raise RemoteFileUnreachable(f"Fetching '{url}' answered HTTP {fetched.status_code}.")
        return fetched.content


@dataclass(frozen=True)
class RemoteInfo:
    mime_type: str
    filename: str
    size: int


def remote_file_info(url: str, head: RemoteHead | None) -> RemoteInfo:
    """Dify's ``get_remote_file_info``: the name from ``Content-Disposition`` or the URL's path, the MIME type
    guessed from the name or else the ``Content-Type``, the size from ``Content-Length`` (-1 when unknown)."""
    path = urllib.parse.urlparse(url).path
    filename = os.path.basename(path)
    mime_type = _guess(filename)
    size = -1
    if head is not None and head.status == 200:
        headers = {k.lower(): v for k, v in head.headers.items()}
        extracted = extract_filename(path, headers.get("content-disposition"))
        if extracted:
            filename = extracted
            mime_type = _guess(filename)
        length = headers.get("content-length", "")
        size = int(length) if length.isdigit() else -1
        if not mime_type:
            mime_type = headers.get("content-type", "").split(";")[0].strip()
    if not filename:
        extension = mimetypes.guess_extension(mime_type) or ".bin"
        filename = f"{uuid.uuid4().hex}{extension}"
        if not mime_type:
            mime_type = _guess(filename)
    return RemoteInfo(mime_type=mime_type, filename=filename[:255], size=size)


def remote_extension(info: RemoteInfo) -> str:
    """Dify's extension of a remote file: from the MIME type, else the name's last dot part, else ``.bin``."""
    guessed = mimetypes.guess_extension(info.mime_type) if info.mime_type else None
    if guessed:
        return guessed
    return "." + info.filename.split(".")[-1] if "." in info.filename else ".bin"


def extract_filename(path: str, content_disposition: str | None) -> str | None:
    """A safe base name from ``Content-Disposition`` (``filename*`` first, then ``filename``) or the path."""
    filename: str | None = None
    if content_disposition:
        star = re.search(r"filename\*=([^;]+)", content_disposition)
        if star:
            raw = star.group(1).strip().removesuffix('"')
            parts = raw.split("'", 2)
            charset = (parts[0] or "utf-8").lower() if len(parts) == 3 else "utf-8"
            value = parts[2] if len(parts) == 3 else parts[-1]
            try:
                filename = urllib.parse.unquote(value, encoding=charset, errors="replace")
            except LookupError:
                filename = urllib.parse.unquote(value)
        if not filename:
            plain = re.search(r'filename=("([^"]*)"|[^;]+)', content_disposition)
            if plain:
                raw = plain.group(2) if plain.group(2) is not None else plain.group(1).strip()
                filename = urllib.parse.unquote(raw)
    if not filename:
        candidate = os.path.basename(path)
        filename = urllib.parse.unquote(candidate, errors="replace") if candidate else None
    if filename:
        filename = os.path.basename(filename.replace("\\", "/")).replace("\x00", "")
        if not filename.strip():
            filename = None
    return filename or None


def _guess(filename: str) -> str:
    return mimetypes.guess_type(filename)[0] or ""
