"""The multipart body of the file endpoints: a ``file`` part and optional fields (``data``, a JSON string, on the
knowledge endpoints; ``user`` on ``/v1/files/upload``).

The body is read here, not by Litestar, so that it is read against the size limit as it arrives: an oversized
upload is refused with 413 ``file_too_large`` without buffering more than the limit. The limit may depend on the
part's file name (``/v1/files/upload`` allows larger videos than documents): see :class:`SizeLimit`. This is the
one streamed multipart reader of the service; the knowledge and the files endpoints both use it. Because the
handlers then take no ``data`` parameter, :class:`UploadOperation` writes the request body into the OpenAPI
document by hand.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qsl

import msgspec
from litestar import Request
from litestar.openapi.spec import OpenAPIFormat, OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from multipart import MultipartSegment, ParserError, ParserLimitReached, PushMultipartParser

from app import json_body
from app.errors import InvalidParam, SluiceError
from app.knowledge.documents.schemas import DocumentFileSettings
from app.knowledge.documents.services import MB, Source
from app.knowledge.errors import FileTooLarge, NoFileUploaded, TooManyFiles
from app.settings import Settings

#: Room for the part headers, boundaries and the ``data`` field on top of the file itself.
FORM_OVERHEAD = MB
#: At most this many parts (``file``, ``data``, and some slack for fields a client adds).
MAX_PARTS = 16
#: Longest header block of one part: room for a file name of some 30,000 characters (names are shortened later).
MAX_PART_HEADER = 32 * 1024


class FilenameMissing(InvalidParam):
    """The specified filename does not exist."""

    code = "filename_not_exists_error"


def request_body_limit(settings: Settings) -> int:
    """The largest request body the app accepts: an upload of the configured size, or Litestar's 10 MB."""
    return max(10_000_000, settings.upload_file_size_limit * MB + FORM_OVERHEAD)


@dataclass
class FilePart:
    field: str
    filename: str
    content_type: str | None
    data: bytes


@dataclass
class UploadForm:
    files: list[FilePart] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)

    def file(self, *, required: bool) -> FilePart | None:
        """The one ``file`` part, as Dify checks it: missing, more than one file, no file name."""
        named = [f for f in self.files if f.field == "file"]
        if not named:
            if required:
                raise NoFileUploaded()
            if not self.files:
                return None
        if len(self.files) > 1 or not named:
            raise TooManyFiles()
        part = named[0]
        if not part.filename.strip():
            raise FilenameMissing()
        if "\x00" in part.filename:
            raise InvalidParam("file: the file name must not contain NUL characters.")
        return part

    def source(self, *, required: bool) -> Source | None:
        part = self.file(required=required)
        if part is None:
            return None
        # Only the file's own name: a client may send a path (``C:\\docs\\a.md``, ``../a.md``).
        filename = part.filename.replace("\\", "/").rsplit("/", 1)[-1].strip()
        if not filename:
            raise FilenameMissing()
        return Source(filename=filename, data=part.data, mime_type=part.content_type)

    def settings(self) -> DocumentFileSettings:
        """The ``data`` part: Dify's JSON string of document settings (absent means all defaults)."""
        raw = self.fields.get("data")
        if raw is None or not raw.strip():
            return DocumentFileSettings()
        try:
            return json_body.decode(raw.encode(), DocumentFileSettings)
        except msgspec.ValidationError as exc:
            raise InvalidParam(f"data: {exc}") from None
        except msgspec.DecodeError:
            raise InvalidParam("data: must be a JSON object of document settings.") from None


@dataclass(frozen=True)
class SizeLimit:
    """How large the parts of one form may be.

    ``part_bytes(filename)`` is the limit of a part with that file name (``None`` for a plain field);
    ``largest`` is the largest of those, which (plus :data:`FORM_OVERHEAD`) bounds the whole body.
    ``too_large(part)`` is the error raised when a part goes over its limit: it sees the part's name, file name
    and content type (not its bytes), so that checks that come before the size check can be answered first.
    """

    largest: int
    part_bytes: Callable[[str | None], int]
    too_large: Callable[[FilePart], SluiceError]

    @classmethod
    def megabytes(cls, limit_mb: int) -> SizeLimit:
        """One limit for every part (the knowledge endpoints: ``UPLOAD_FILE_SIZE_LIMIT``)."""
        error = FileTooLarge(f"File size exceeded: at most {limit_mb} MB.")
        return cls(limit_mb * MB, lambda _: limit_mb * MB, lambda _: error)


async def _bounded(chunks: AsyncIterator[bytes], budget: int, error: SluiceError) -> AsyncIterator[bytes]:
    received = 0
    async for chunk in chunks:
        received += len(chunk)
        if received > budget:
            raise error
        yield chunk


async def read_form(request: Request[Any, Any, Any], limit: int | SizeLimit) -> UploadForm:
    """Parse the multipart body; a part over its limit (or a body far over the largest) is refused with the
    limit's error (413 ``file_too_large``) as soon as it is seen, without reading the rest. ``limit`` in MB is
    one limit for every part."""
    sizes = SizeLimit.megabytes(limit) if isinstance(limit, int) else limit
    budget = sizes.largest + FORM_OVERHEAD
    body_too_large = sizes.too_large(FilePart("", "", None, b""))
    if (request.content_length or 0) > budget:
        raise body_too_large
    content_type, options = request.content_type
    if content_type == "application/x-www-form-urlencoded":
        # No file can come this way, but an update may send just its ``data`` like this (as Flask reads it).
        body = b"".join([chunk async for chunk in _bounded(request.stream(), budget, body_too_large)])
        try:
            return UploadForm(fields=dict(parse_qsl(body.decode(), keep_blank_values=True)))
        except UnicodeDecodeError:
            raise InvalidParam("The form body is not valid text.") from None
    if content_type != "multipart/form-data":
        return UploadForm()
    boundary = options.get("boundary")
    if not boundary:
        raise InvalidParam("The multipart boundary is missing from Content-Type.")
    form = UploadForm()
    segment: MultipartSegment | None = None
    buffer = bytearray()
    part_limit = 0
    try:
        with PushMultipartParser(
            boundary, max_header_size=MAX_PART_HEADER, max_segment_count=MAX_PARTS
        ) as parser:
            async for chunk in _bounded(request.stream(), budget, body_too_large):
                for event in parser.parse(chunk):
                    if isinstance(event, MultipartSegment):
                        segment, buffer = event, bytearray()
                        part_limit = sizes.part_bytes(event.filename)
                    elif event:
                        buffer += event
                        if len(buffer) > part_limit and segment is not None:
                            header_only = FilePart(
                                segment.name or "", segment.filename or "", segment.content_type, b""
                            )
                            raise sizes.too_large(header_only)
                    elif segment is not None:
                        _add_part(form, segment, bytes(buffer))
                        segment, buffer = None, bytearray()
                if parser.closed:
                    break
    except ParserLimitReached as exc:
        if "count" in str(exc) and "header" not in str(exc):
            raise InvalidParam(f"Too many parts in the form (at most {MAX_PARTS}).") from None
        raise InvalidParam(f"The multipart/form-data body is too large in its headers ({exc}).") from None
    except ParserError:
        raise InvalidParam("The multipart/form-data body is malformed.") from None
    return form


def _add_part(form: UploadForm, segment: MultipartSegment, data: bytes) -> None:
    name = segment.name or ""
    if segment.filename is not None:
        form.files.append(FilePart(name, segment.filename, segment.content_type, data))
        return
    try:
        form.fields[name] = data.decode(segment.charset or "utf-8")
    except (UnicodeDecodeError, LookupError):
        raise InvalidParam(f"{name}: the form field is not valid text.") from None


@dataclass
class UploadOperation(Operation):
    """The OpenAPI operation of a file endpoint, with its multipart request body."""

    file_required: ClassVar[bool] = True

    def __post_init__(self) -> None:
        file = Schema(
            type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY, description="The document's file."
        )
        data = Schema(
            type=OpenAPIType.STRING,
            description=(
                "JSON object of document settings: indexing_technique, doc_form, doc_language, process_rule, "
                "retrieval_model, embedding_model, embedding_model_provider, name; and on create "
                "original_document_id (replace that document instead of adding one)."
            ),
        )
        body = Schema(
            type=OpenAPIType.OBJECT,
            properties={"file": file, "data": data},
            required=["file"] if self.file_required else None,
        )
        self.request_body = RequestBody(
            content={"multipart/form-data": OpenAPIMediaType(schema=body)}, required=self.file_required
        )


@dataclass
class OptionalUploadOperation(UploadOperation):
    """A file endpoint whose ``file`` may be left out (an update that only changes settings)."""

    file_required: ClassVar[bool] = False
