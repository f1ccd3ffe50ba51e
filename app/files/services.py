"""App files in ``upload_files``: store an upload, find a file for a preview or a signed link. Services never
commit.

Order of the upload checks is Dify's (``FileApi.post`` then ``FileService.upload_file``): no ``file`` part, more
than one file, no MIME type, no file name, a path separator in the name, a blacklisted extension, the size limit
of the extension's class. The size is enforced while the body streams in (``uploads.SizeLimit``), with
:func:`oversize_error` answering the earlier checks first so the order holds there too.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import InvalidParam, NotFound, SluiceError
from app.files import policy
from app.files.errors import (
    FileAccessDenied,
    FilenameInvalid,
    FilenameMissing,
    FileNotFound,
    FileTooLarge,
    NoFileUploaded,
    TooManyFiles,
    UnsupportedFileType,
)
from app.knowledge.documents.uploads import FilePart, SizeLimit, UploadForm
from app.settings import Settings
from db.models import App, UploadFile

#: ``user`` when the form has none (Dify's shared anonymous end user).
DEFAULT_USER = "DEFAULT-USER"
MAX_USER = 255


def upload_size_limit(settings: Settings) -> SizeLimit:
    """The per-part limits of ``/v1/files/upload``: by the file name's extension class."""

    def part_bytes(filename: str | None) -> int:
        if filename is None:
            return policy.MAX_FIELD_BYTES
        return policy.size_limit(settings, policy.extension_of(filename))

    return SizeLimit(policy.largest_limit(settings), part_bytes, lambda part: oversize_error(settings, part))


def oversize_error(settings: Settings, part: FilePart) -> SluiceError:
    """The error for a part found too large while streaming: an error Dify checks before the size, if the
    part's headers already show one, else 413 ``file_too_large``. (``read_form`` passes an empty part when the
    whole body is too large.)"""
    if not (part.field or part.filename or part.content_type):
        largest = policy.largest_limit(settings) // policy.MB
        return FileTooLarge(f"File size exceeded. The request is larger than {largest} MB.")
    if part.field == "file" or part.filename:
        try:
            _checked_name(settings, part)
        except SluiceError as error:
            return error
        megabytes = policy.size_limit(settings, policy.extension_of(part.filename)) // policy.MB
        return FileTooLarge(f"File size exceeded. The file is larger than {megabytes} MB.")
    return InvalidParam(f"{part.field}: the form field is too large.")


def _checked_name(settings: Settings, part: FilePart) -> tuple[str, str]:
    """The stored name and extension of a file part, or the error Dify gives for it (in Dify's order)."""
    if not part.content_type:
        raise UnsupportedFileType()
    filename = part.filename
    if not filename:
        raise FilenameMissing()
    if policy.has_path_separator(filename) or policy.has_control_characters(filename):
        raise FilenameInvalid()
    extension = policy.extension_of(filename)
    name = policy.shorten(filename)
    if extension and extension in settings.upload_file_extension_blacklist:
        raise InvalidParam(f"File extension '.{extension}' is not allowed for security reasons")
    if len(name) > 255:
        # Only an extension of more than 54 characters gets here (the shortened stem is at most 200).
        raise FilenameInvalid("Filename is too long: its extension has more than 54 characters.")
    return name, extension


def file_part(form: UploadForm) -> FilePart:
    """The one ``file`` part: missing or more than one file are Dify's first two errors."""
    named = [f for f in form.files if f.field == "file"]
    if not named:
        raise NoFileUploaded()
    if len(form.files) > 1:
        raise TooManyFiles()
    return named[0]


def form_user(form: UploadForm) -> str:
    user = form.fields.get("user")
    if user is None or user == "":
        return DEFAULT_USER
    if len(user) > MAX_USER or "\x00" in user:
        raise InvalidParam(f"user: must be at most {MAX_USER} characters, without NUL.")
    return user


async def store_upload(
    session: AsyncSession, settings: Settings, app: App, user: str, part: FilePart
) -> UploadFile:
    name, extension = _checked_name(settings, part)
    if len(part.data) > policy.size_limit(
        settings, extension
    ):  # the stream already stopped it; belt and braces
        raise FileTooLarge("File size exceeded.")
    upload = UploadFile(
        workspace_id=app.workspace_id,
        source="upload",
        app_id=app.id,
        created_by=user,
        name=name,
        extension=extension,
        mime_type=policy.clean_mime_type(part.content_type),
        size=len(part.data),
        content_hash=hashlib.sha256(part.data).digest(),
        content=part.data,
    )
    session.add(upload)
    await session.flush()
    return upload


async def save_tool_file(
    session: AsyncSession,
    *,
    app_id: uuid.UUID,
    user: str,
    run_id: uuid.UUID | None,
    filename: str,
    mime_type: str,
    content: bytes,
) -> UploadFile:
    """A file a node produced, owned by the run's app and end user."""
    app = await session.get(App, app_id)
    if app is None:
        raise FileNotFound("The run's app no longer exists.")
    name = policy.shorten(filename.replace("/", "_").replace("\\", "_").replace("\x00", "")) or "file"
    upload = UploadFile(
        workspace_id=app.workspace_id,
        source="tool",
        app_id=app.id,
        created_by=user,
        run_id=run_id,
        name=name[:255],
        extension=policy.extension_of(name)[:255],
        mime_type=policy.clean_mime_type(mime_type),
        size=len(content),
        content_hash=hashlib.sha256(content).digest(),
        content=content,
    )
    session.add(upload)
    await session.flush()
    return upload


@dataclass(frozen=True)
class StoredFile:
    upload: UploadFile
    content: bytes


async def file_for_preview(session: AsyncSession, app: App, file_id: uuid.UUID) -> StoredFile:
    """A file of this app (uploaded under it, or produced by one of its runs), with its bytes.

    A knowledge upload or an unknown id: 404 ``file_not_found``; a file of another app: 403
    ``file_access_denied`` (Dify's two answers; see the README on why workflow apps differ from chat apps).
    """
    upload = await session.scalar(select(UploadFile).where(UploadFile.id == file_id))
    if upload is None or upload.app_id is None:
        raise FileNotFound()
    if upload.app_id != app.id or upload.workspace_id != app.workspace_id:
        raise FileAccessDenied()
    return StoredFile(upload, await _content(session, upload.id))


async def file_for_link(session: AsyncSession, file_id: uuid.UUID) -> StoredFile:
    """A file by id for a signed link (the signature is the permission)."""
    upload = await session.scalar(select(UploadFile).where(UploadFile.id == file_id))
    if upload is None:
        raise NotFound("File not found or signature is invalid")
    return StoredFile(upload, await _content(session, upload.id))


async def _content(session: AsyncSession, upload_id: uuid.UUID) -> bytes:
    content = await session.scalar(select(UploadFile.content).where(UploadFile.id == upload_id))
    return content or b""
