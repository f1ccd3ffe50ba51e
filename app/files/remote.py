"""Files given by URL (``transfer_method: remote_url``): what a HEAD says about them, and fetching their bytes.

Every request to a user-supplied URL must go through the one SSRF-guarded client (DESIGN rule 8). That client is
not wired here yet: :class:`RemoteFiles` is the small interface this package needs from it, and
:data:`NO_REMOTE_FILES` refuses every URL with a clear message until the lead adapts ``app/net``'s guarded
client to it (``probe`` = a HEAD following redirects; ``fetch`` = a GET whose body is read up to ``max_bytes``).

TODO(lead): implement ``RemoteFiles`` on top of ``app/net``'s guarded client and pass it to
``app.files.references.resolve_run_files`` (API) and ``app.files.ports.DatabaseFiles`` (worker); until then
remote-URL files are refused (400 in the API, a readable node error in a run). Do not replace it with a raw httpx
call.
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
