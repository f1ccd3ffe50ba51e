"""Files API: ``POST /v1/files/upload`` and ``GET /v1/files/{id}/preview`` (app key), and the signed link
``GET /files/{id}/file-preview?timestamp=&nonce=&sign=`` (no key: the signature is the permission).

Every file response is served so that a hostile upload cannot run in the service's origin: ``nosniff``, a
sandboxing ``Content-Security-Policy``, HTML-like files always as downloads, names only in RFC 5987 form.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from litestar import Controller, Request, Response, get, post
from litestar.openapi.spec import OpenAPIFormat, OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import NotFound, responses
from app.files import policy, services
from app.files.schemas import UploadedFile
from app.files.signing import FileSigner
from app.knowledge.documents import uploads
from app.schemas import NO_NUL
from app.settings import Settings
from app.tenancy import services as tenancy
from app.tenancy.services import AppKey

#: Whatever a file holds, the browser may not run it in our origin.
FILE_CSP = "default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'; sandbox"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass
class FileUploadOperation(Operation):
    """The OpenAPI operation of the upload, with its multipart body (the handler reads the body itself)."""

    def __post_init__(self) -> None:
        body = Schema(
            type=OpenAPIType.OBJECT,
            properties={
                "file": Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY, description="The file."),
                "user": Schema(type=OpenAPIType.STRING, description="The end user who uploads it."),
            },
            required=["file"],
        )
        self.request_body = RequestBody(
            content={"multipart/form-data": OpenAPIMediaType(schema=body)}, required=True
        )


def file_response(
    request: Request[Any, Any, Any],
    stored: services.StoredFile,
    *,
    as_attachment: bool,
    media_type: str | None,
    cache_control: str,
) -> Response[bytes]:
    """The bytes of a stored file with safe headers; ``media_type`` None means the stored MIME type."""
    upload, content = stored.upload, stored.content
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": FILE_CSP,
        "Cache-Control": cache_control,
    }
    mime = media_type or upload.mime_type
    if as_attachment or policy.is_html(upload.mime_type, upload.name, upload.extension):
        headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(upload.name, safe='')}"
        mime = "application/octet-stream"
    status = 200
    if upload.mime_type in policy.RANGE_MIME_TYPES:
        headers["Accept-Ranges"] = "bytes"
        wanted = _byte_range(request.headers.get("range"), len(content))
        if wanted is not None:
            start, end = wanted
            headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
            content, status = content[start : end + 1], 206
    return Response(content, status_code=status, media_type=mime, headers=headers)


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One ``bytes=a-b`` range within the file, or None (no range, several ranges, or unsatisfiable: whole)."""
    match = _RANGE.match((header or "").strip())
    if not match or size == 0 or not (match.group(1) or match.group(2)):
        return None
    first, last = match.group(1), match.group(2)
    if first:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    else:
        start, end = max(0, size - int(last)), size - 1
    return (start, end) if start <= end < size else None


class FileController(Controller):
    path = "/v1/files"
    tags = ["service api: files"]

    @post(
        "/upload",
        status_code=201,
        request_max_body_size=None,  # read by uploads.read_form against the per-type limits
        operation_class=FileUploadOperation,
        responses=responses(400, 401, 413, 415, 503),
    )
    async def upload(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, settings: Settings, key: AppKey
    ) -> UploadedFile:
        """Upload one file (`file` part, optional `user` field) for use in this app's runs by that user."""
        signer = FileSigner.of(settings)
        form = await uploads.read_form(request, services.upload_size_limit(settings))
        part = services.file_part(form)
        user = services.form_user(form)
        app = await tenancy.get_app(db_session, key.app_id)
        upload = await services.store_upload(db_session, settings, app, user, part)
        return UploadedFile.of(upload, signer)

    @get("/{file_id:uuid}/preview", responses=responses(401, 403, 404), media_type="application/octet-stream")
    async def preview(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        key: AppKey,
        file_id: uuid.UUID,
        as_attachment: bool = False,
        user: Annotated[str | None, Parameter(max_length=255, pattern=NO_NUL)] = None,
    ) -> Response[bytes]:
        """The bytes of a file of this app: uploaded under it, or produced by one of its runs."""
        app = await tenancy.get_app(db_session, key.app_id)
        stored = await services.file_for_preview(db_session, app, file_id)
        return file_response(
            request,
            stored,
            as_attachment=as_attachment,
            media_type=None,
            cache_control="private, max-age=3600",
        )


class SignedFileController(Controller):
    path = "/files"
    tags = ["files"]

    @get("/{file_id:uuid}/file-preview", responses=responses(404, 503), media_type="application/octet-stream")
    async def file_preview(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        settings: Settings,
        file_id: uuid.UUID,
        timestamp: Annotated[str, Parameter(max_length=32)],
        nonce: Annotated[str, Parameter(max_length=128)],
        sign: Annotated[str, Parameter(max_length=128)],
        as_attachment: bool = False,
    ) -> Response[bytes]:
        """A file by a signed link (`source_url`, file `url`); expired or altered links are 404."""
        if not FileSigner.of(settings).verify(file_id, timestamp, nonce, sign):
            raise NotFound("File not found or signature is invalid")
        stored = await services.file_for_link(db_session, file_id)
        # As Dify: a link always answers application/octet-stream.
        return file_response(
            request,
            stored,
            as_attachment=as_attachment,
            media_type="application/octet-stream",
            cache_control="private, max-age=300",
        )
