"""The http-request node's response: is it a file or text, how its text decodes, what a file is called.

Dify's classification (graphon ``Response.is_file``): ``Content-Disposition: attachment`` or a filename → file;
``text/*`` → text, except csv; ``application/*`` naming json, xml, javascript, x-www-form-urlencoded, yaml or
graphql → text; any other ``application/*`` whose first KiB decodes as UTF-8 and holds ``{``, ``[``, ``<``,
``function``, ``var``, ``const`` or ``let`` → text, undecodable → file; else the MIME type's main type decides
(application/image/audio/video → file). Python's built-in MIME table is used, not the host's
``/etc/mime.types``, so the answer does not change from machine to machine.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from email.message import Message

import charset_normalizer

BINARY_MAIN_TYPES = frozenset({"application", "image", "audio", "video"})
TEXT_APPLICATION_TYPES = ("json", "xml", "javascript", "x-www-form-urlencoded", "yaml", "graphql")
TEXT_MARKERS = (b"{", b"[", b"<", b"function", b"var ", b"const ", b"let ")
#: how much of a body without a declared charset is looked at to guess one
DETECTION_SAMPLE = 64 * 1024

_MIME = mimetypes.MimeTypes()  # the built-in table only (no system files)


def content_disposition(headers: Mapping[str, str]) -> Message | None:
    value = headers.get("content-disposition", "")
    if not value:
        return None
    message = Message()
    message["content-disposition"] = value
    return message


def classify(headers: Mapping[str, str], sample: bytes) -> bool:
    """True when the response is a file (``sample``: the body's first KiB)."""
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    disposition = content_disposition(headers)
    if disposition is not None and (
        disposition.get_content_disposition() == "attachment" or disposition.get_filename() is not None
    ):
        return True
    if content_type.startswith("text/") and "csv" not in content_type:
        return False
    if content_type.startswith("application/"):
        if any(kind in content_type for kind in TEXT_APPLICATION_TYPES):
            return False
        try:
            sample.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            if any(marker in sample for marker in TEXT_MARKERS):
                return False
    main_type, _ = _MIME.guess_type("dummy" + (_MIME.guess_extension(content_type) or ""))
    if main_type:
        return main_type.split("/")[0] in BINARY_MAIN_TYPES
    return any(kind in content_type for kind in ("image/", "audio/", "video/"))


def decode_text(content: bytes, content_type: str) -> str:
    """The body as text: the declared charset, else UTF-8, else a detected charset, else UTF-8 with
    replacement characters."""
    charset = None
    if content_type:
        message = Message()
        message["content-type"] = content_type
        charset = message.get_content_charset(failobj=None)
    if charset:
        try:
            return content.decode(charset, errors="replace")
        except LookupError:
            pass
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        pass
    best = charset_normalizer.from_bytes(content[:DETECTION_SAMPLE]).best()
    if best is not None and best.encoding:
        try:
            return content.decode(best.encoding, errors="replace")
        except LookupError:
            pass
    return content.decode("utf-8", errors="replace")


def file_name_and_type(url: str, headers: Mapping[str, str]) -> tuple[str, str]:
    """A file response's name and MIME type: the Content-Disposition filename's type, else Content-Type,
    else the type of the URL's last path segment, else ``application/octet-stream``."""
    disposition = content_disposition(headers)
    declared = disposition.get_filename() if disposition is not None else None
    from_disposition = _MIME.guess_type(declared)[0] if declared else None
    segment = url.split("?", 1)[0].rsplit("/", 1)[-1]
    content_type = headers.get("content-type", "").split(";")[0].strip()
    mime_type = from_disposition or content_type or _MIME.guess_type(segment)[0] or "application/octet-stream"
    name = (declared or "").replace("\\", "/").rsplit("/", 1)[-1] or (segment if "." in segment else "")
    if not name:
        name = "file" + (_MIME.guess_extension(mime_type) or ".bin")
    return name, mime_type


def readable_size(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.2f} KB"
    return f"{size / 1024 / 1024:.2f} MB"
