"""Document downloads: a signed URL for one document's file, the signed file itself, and a ZIP of several.

As in Dify, ``GET .../documents/{id}/download`` answers ``{"url": ...}``: a link to the original file, signed with
the secret key and valid for five minutes (Dify's ``FILES_ACCESS_TIMEOUT``), that needs no API key (a browser can
open it). ``POST .../documents/download-zip`` streams a ZIP of up to 100 documents' files. Files live in
PostgreSQL (``upload_files.content``): both read them in slices of :data:`CHUNK`, so memory stays bounded
whatever the size, and the ZIP is written as it is sent (no temporary file).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
import zipfile
from collections.abc import AsyncIterator
from typing import Annotated
from urllib.parse import quote

import msgspec
from litestar import Controller, get, post
from litestar.response import Stream
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import Forbidden, NotFound, SluiceError, responses
from app.knowledge.datasets.services import get_dataset
from app.knowledge.documents.queries import get_document
from app.settings import Settings
from app.tenancy.services import KeyContext
from db.models import Document, UploadFile

CHUNK = 256 * 1024
URL_LIFETIME_SECONDS = 300
MAX_ZIP_DOCUMENTS = 100


class DownloadSigningUnavailable(SluiceError):
    """Download links cannot be signed: SLUICE_SECRET_KEY is not set."""

    status, code = 503, "secret_key_missing"


class NoFileToDownload(NotFound):
    """Document does not have an uploaded file to download."""


class OnlyFilesInZip(NotFound):
    """Only uploaded-file documents can be downloaded as ZIP."""


class DownloadZipRequest(msgspec.Struct):
    document_ids: Annotated[list[uuid.UUID], msgspec.Meta(min_length=1, max_length=MAX_ZIP_DOCUMENTS)]


class DownloadUrl(msgspec.Struct):
    url: str


def _signature(secret_key: str, upload_file_id: uuid.UUID, expires: int) -> str:
    message = f"document-download|{upload_file_id}|{expires}".encode()
    digest = hmac.new(secret_key.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def signed_url(settings: Settings, upload_file_id: uuid.UUID, now: float | None = None) -> str:
    if not settings.secret_key:
        raise DownloadSigningUnavailable()
    expires = int((now or time.time()) + URL_LIFETIME_SECONDS)
    sign = _signature(settings.secret_key, upload_file_id, expires)
    return f"{settings.public_url}/v1/datasets/document-files/{upload_file_id}?expires={expires}&sign={sign}"


def _check_signature(settings: Settings, upload_file_id: uuid.UUID, expires: int, sign: str) -> None:
    if not settings.secret_key or expires < time.time():
        raise Forbidden("The download link has expired.")
    # bytes: compare_digest refuses str with non-ASCII characters (a hostile sign would be a 500)
    if not hmac.compare_digest(
        _signature(settings.secret_key, upload_file_id, expires).encode(), sign.encode()
    ):
        raise Forbidden("The download link is invalid.")


async def _chunks(
    sessions: async_sessionmaker[AsyncSession], file_id: uuid.UUID, size: int
) -> AsyncIterator[bytes]:
    """The file's bytes, one slice per query (``substring`` on bytea reads only that slice)."""
    async with sessions() as session:
        for start in range(0, size, CHUNK):
            part = await session.scalar(
                select(func.substring(UploadFile.content, start + 1, CHUNK)).where(UploadFile.id == file_id)
            )
            if not part:
                return
            yield bytes(part)


def _attachment(name: str) -> dict[str, str]:
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "'")
    return {"Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"}


class _Sink:
    """A write-only, unseekable file for ``zipfile``: what was written since the last :meth:`take`."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def write(self, data: bytes) -> int:
        self.buffer += data
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        out, self.buffer = bytes(self.buffer), bytearray()
        return out


def _unique(name: str, taken: set[str]) -> str:
    stem, dot, ext = name.rpartition(".")
    candidate, n = name, 1
    while candidate in taken:
        candidate = f"{stem} ({n}).{ext}" if dot else f"{name} ({n})"
        n += 1
    taken.add(candidate)
    return candidate


async def zip_stream(
    sessions: async_sessionmaker[AsyncSession], files: list[UploadFile]
) -> AsyncIterator[bytes]:
    sink, names = _Sink(), set[str]()
    archive = zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_DEFLATED)
    for f in files:
        info = zipfile.ZipInfo(_unique(f.name, names), date_time=f.created_at.timetuple()[:6])
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, mode="w", force_zip64=f.size > 2**31) as entry:
            async for chunk in _chunks(sessions, f.id, f.size):
                entry.write(chunk)
                yield sink.take()
        yield sink.take()
    archive.close()
    yield sink.take()


class DocumentDownloadController(Controller):
    path = "/v1/datasets/{dataset_id:uuid}/documents"
    tags = ["service api: knowledge"]

    @get("/{document_id:uuid}/download", responses=responses(401, 404, 503))
    async def download_url(
        self,
        settings: Settings,
        db_session: AsyncSession,
        key: KeyContext,
        dataset_id: uuid.UUID,
        document_id: uuid.UUID,
    ) -> DownloadUrl:
        """A signed link (five minutes) to the document's original file."""
        _, document = await get_document(db_session, key.workspace_id, dataset_id, document_id)
        if document.upload_file_id is None:
            raise NoFileToDownload()
        return DownloadUrl(url=signed_url(settings, document.upload_file_id))

    @post("/download-zip", status_code=200, responses=responses(400, 401, 404))
    async def download_zip(
        self,
        sessions: async_sessionmaker[AsyncSession],
        db_session: AsyncSession,
        key: KeyContext,
        dataset_id: uuid.UUID,
        data: DownloadZipRequest,
    ) -> Stream:
        """A ZIP of the documents' original files (1 to 100 documents), streamed as it is written."""
        dataset = await get_dataset(db_session, key.workspace_id, dataset_id)
        wanted = list(dict.fromkeys(data.document_ids))
        documents = {
            d.id: d
            for d in await db_session.scalars(
                select(Document).where(Document.dataset_id == dataset_id, Document.id.in_(wanted))
            )
        }
        missing = [i for i in wanted if i not in documents]
        if missing:
            raise NotFound("Document not found.")
        if any(documents[i].upload_file_id is None for i in wanted):
            raise OnlyFilesInZip()
        file_ids = [documents[i].upload_file_id for i in wanted]
        rows = {
            f.id: f for f in await db_session.scalars(select(UploadFile).where(UploadFile.id.in_(file_ids)))
        }
        files = [rows[i] for i in file_ids if i is not None and i in rows]
        return Stream(
            zip_stream(sessions, files),
            media_type="application/zip",
            headers=_attachment(f"{dataset.name}.zip"),
        )


class DocumentFileController(Controller):
    """The target of a signed download link: no API key, the signature is the permission."""

    path = "/v1/datasets/document-files"
    tags = ["service api: knowledge"]

    @get("/{upload_file_id:uuid}", responses=responses(403, 404))
    async def signed_file(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        db_session: AsyncSession,
        upload_file_id: uuid.UUID,
        expires: int,
        sign: str,
    ) -> Stream:
        """The file a download link names, while the link is valid."""
        _check_signature(settings, upload_file_id, expires, sign)
        upload = await db_session.get(UploadFile, upload_file_id)
        if upload is None:
            raise NotFound("Uploaded file not found.")
        return Stream(
            _chunks(sessions, upload.id, upload.size),
            media_type=upload.mime_type or "application/octet-stream",
            headers={**_attachment(upload.name), "Content-Length": str(upload.size)},
        )
