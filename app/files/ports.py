"""The ``files`` port (``FilePort``): files nodes read and write, kept in ``upload_files``.

A node's file belongs to the run's app and end user (Dify's tool files): ``save`` stores it in its own short
transaction and returns its file dict; ``read`` returns the bytes of a file dict from the pool, but only of a
file of the run's app and end user (a dict forged into the pool cannot reach anyone else's file), or of a
remote URL through the guarded client (:mod:`app.files.remote`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.files import services
from app.files.references import file_dict
from app.files.remote import NO_REMOTE_FILES, RemoteFiles
from app.files.signing import FileSigner
from app.workflows.engine.nodes.base import RunInfo
from db.models import UploadFile


class FileReadError(Exception):
    """The file cannot be read."""


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


class DatabaseFiles:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        signer: FileSigner,
        remote: RemoteFiles = NO_REMOTE_FILES,
    ) -> None:
        self.sessions, self.signer, self.remote = sessions, signer, remote

    async def save(self, run: RunInfo, *, filename: str, mime_type: str, content: bytes) -> dict[str, Any]:
        app_id = _uuid(run.app_id)
        if app_id is None:
            raise FileReadError(f"run {run.run_id} has no app")
        async with self.sessions() as session, session.begin():
            upload = await services.save_tool_file(
                session,
                app_id=app_id,
                user=run.user_id,
                run_id=_uuid(run.run_id),
                filename=filename,
                mime_type=mime_type,
                content=content,
            )
        return file_dict(upload, self.signer, transfer_method="tool_file")

    async def read(self, run: RunInfo, file: Mapping[str, Any], *, max_bytes: int) -> bytes:
        related = _uuid(file.get("related_id")) if file.get("related_id") else None
        if related is None:
            if file.get("transfer_method") == "remote_url":
                url = file.get("remote_url") or file.get("url")
                if not url:
                    raise FileReadError("Missing URL for remote file")
                return await self.remote.fetch(str(url), max_bytes=max_bytes)
            raise FileReadError("the file has no stored content")
        async with self.sessions() as session:
            owned = (
                UploadFile.id == related,
                UploadFile.app_id == _uuid(run.app_id),
                UploadFile.created_by == run.user_id,
            )
            size = await session.scalar(select(UploadFile.size).where(*owned))
            if size is None:
                raise FileReadError(f"Upload file {related} not found")
            if size > max_bytes:
                raise FileReadError(f"the file is larger than {max_bytes} bytes")
            content = await session.scalar(select(UploadFile.content).where(*owned))
        return content or b""
