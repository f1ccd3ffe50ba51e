"""What an upload may be, and what kind of file a file is: Dify's extension classes, size limits, blacklist,
name shortening, and file type detection (``standardize_file_type``). Pure functions of settings and names.
"""

from __future__ import annotations

import mimetypes
import os
import re

from app.settings import Settings

MB = 1024 * 1024

IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "webp", "gif", "svg"})
VIDEO_EXTENSIONS = frozenset({"mp4", "mov", "mpeg", "webm"})
AUDIO_EXTENSIONS = frozenset({"mp3", "m4a", "wav", "amr", "mpga"})
DOCUMENT_EXTENSIONS = frozenset(
    {
        "txt", "markdown", "md", "mdx", "pdf", "html", "htm", "xlsx", "xls", "vtt", "properties", "doc",
        "docx", "csv", "eml", "msg", "ppt", "pptx", "xml", "epub", "odt",
    }
)  # fmt: skip
FILE_TYPES = ("image", "document", "audio", "video", "custom")
TRANSFER_METHODS = ("remote_url", "local_file", "tool_file", "datasource_file")

#: Names longer than this are shortened (Dify): the part before the first dot, cut, plus the extension.
MAX_NAME = 200
#: A part that is a form field, not a file (``user``): never needs more.
MAX_FIELD_BYTES = 64 * 1024

_DOCUMENT_MIME_TYPES = frozenset(
    {
        "application/epub+zip", "application/msword", "application/pdf", "application/dps", "application/et",
        "application/kswps", "application/vnd.ms-excel", "application/vnd.ms-outlook",
        "application/vnd.ms-powerpoint", "application/vnd.oasis.opendocument.text", "message/rfc822",
    }
)  # fmt: skip
_DOCUMENT_MIME_PREFIXES = ("application/vnd.openxmlformats-officedocument", "application/wps-office", "text/")
_MIME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$")


def extension_of(filename: str) -> str:
    """The lower-case extension without the dot, as Dify takes it (``os.path.splitext``)."""
    return os.path.splitext(filename)[1].lstrip(".").lower()


def size_limit(settings: Settings, extension: str) -> int:
    """Bytes an upload with this extension may have: the image, video or audio limit, else the general one."""
    extension = extension.lower()
    if extension in IMAGE_EXTENSIONS:
        megabytes = settings.upload_image_file_size_limit
    elif extension in VIDEO_EXTENSIONS:
        megabytes = settings.upload_video_file_size_limit
    elif extension in AUDIO_EXTENSIONS:
        megabytes = settings.upload_audio_file_size_limit
    else:
        megabytes = settings.upload_file_size_limit
    return megabytes * MB


def largest_limit(settings: Settings) -> int:
    return (
        max(
            settings.upload_file_size_limit,
            settings.upload_image_file_size_limit,
            settings.upload_video_file_size_limit,
            settings.upload_audio_file_size_limit,
        )
        * MB
    )


def has_path_separator(filename: str) -> bool:
    return "/" in filename or "\\" in filename


def has_control_characters(filename: str) -> bool:
    """NUL and other C0 controls: PostgreSQL cannot store NUL, and none belongs in a file name."""
    return any(ord(c) < 32 or ord(c) == 127 for c in filename)


def shorten(filename: str) -> str:
    """Dify's rule for names over 200 characters: the part before the first dot, cut to 200, plus the
    lower-case extension (Dify leaves a bare trailing dot when there is no extension; Sluice does not)."""
    if len(filename) <= MAX_NAME:
        return filename
    extension = extension_of(filename)
    stem = filename.split(".")[0][:MAX_NAME]
    return f"{stem}.{extension}" if extension else stem


def clean_mime_type(mime_type: str | None) -> str:
    """The part's MIME type when it is one (``type/subtype``), else ``application/octet-stream``."""
    value = (mime_type or "").split(";")[0].strip().lower()
    return value if _MIME.match(value) else "application/octet-stream"


def guess_mime_type(filename: str) -> str:
    return mimetypes.guess_type(filename)[0] or ""


def detect_type(*, extension: str = "", mime_type: str = "") -> str:
    """Dify's ``standardize_file_type``: by extension first (``.pdf`` or ``pdf``), then by MIME type, else
    ``custom``."""
    name = extension.lstrip(".")
    for kind, names in (
        ("image", IMAGE_EXTENSIONS),
        ("video", VIDEO_EXTENSIONS),
        ("audio", AUDIO_EXTENSIONS),
        ("document", DOCUMENT_EXTENSIONS),
    ):
        # Dify's sets hold the lower- and the upper-case spelling, not mixed case.
        if name in names or (name.isupper() and name.lower() in names):
            return kind
    if not mime_type:
        return "custom"
    mime = mime_type.partition(";")[0].strip().lower()
    for kind in ("image", "video", "audio"):
        if mime.startswith(f"{kind}/"):
            return kind
    if mime in _DOCUMENT_MIME_TYPES or mime.startswith(_DOCUMENT_MIME_PREFIXES):
        return "document"
    return "custom"


#: Served as a download, never inline (Dify's ``enforce_download_for_html``).
HTML_MIME_TYPES = frozenset({"text/html", "application/xhtml+xml"})
HTML_EXTENSIONS = frozenset({"html", "htm"})


def is_html(mime_type: str | None, filename: str | None, extension: str | None) -> bool:
    if (mime_type or "").split(";")[0].strip().lower() in HTML_MIME_TYPES:
        return True
    if (extension or "").lstrip(".").lower() in HTML_EXTENSIONS:
        return True
    return bool(filename) and extension_of(filename or "") in HTML_EXTENSIONS


#: Audio and video types whose previews advertise (and honour) byte ranges, as Dify lists them.
RANGE_MIME_TYPES = frozenset(
    {
        "audio/mpeg", "audio/wav", "audio/mp4", "audio/ogg", "audio/flac", "audio/aac", "video/mp4",
        "video/webm", "video/quicktime", "audio/x-m4a",
    }
)  # fmt: skip
