"""Response bodies of the files API (Dify's ``FileResponse``)."""

from __future__ import annotations

import uuid

import msgspec

from app.files.signing import FileSigner
from app.schemas import unix
from db.models import UploadFile


class UploadedFile(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    size: int
    extension: str
    mime_type: str
    #: the uploading end user: the ``user`` of the upload form (Sluice has no end-user table; Dify gives its id)
    created_by: str
    created_at: int | None
    preview_url: str | None = None
    #: a signed link to the bytes, valid for ``FILES_ACCESS_TIMEOUT`` seconds
    source_url: str
    original_url: str | None = None
    user_id: str | None = None
    tenant_id: uuid.UUID
    conversation_id: str | None = None
    file_key: str | None = None

    @classmethod
    def of(cls, upload: UploadFile, signer: FileSigner) -> UploadedFile:
        return cls(
            id=upload.id,
            name=upload.name,
            size=upload.size,
            extension=upload.extension,
            mime_type=upload.mime_type,
            created_by=upload.created_by or "",
            created_at=unix(upload.created_at),
            source_url=signer.url(upload.id),
            tenant_id=upload.workspace_id,
        )
