"""Turn an uploaded file's bytes into plain text: the "parsing" stage of indexing.

Pure: no I/O besides the bytes given. Every failure is an :class:`ExtractError` whose ``message`` can be shown
to the user (the indexing job records it as the document's error). Formats follow Dify's extractors where that
is sensible: CSV rows become ``header: value; ...`` lines, markdown is kept as text. The text formats (decoding,
HTML, CSV, JSON) are in ``text_formats``, the errors in ``extract_errors``; PDF and DOCX, with their limits, here.

Hostile files are refused before the expensive part (:class:`ParseLimits`, from the ``SLUICE_INDEXING_MAX_*``
settings): a DOCX whose parts unpack to too much or compress too well (zip bombs) or holds too many paragraphs
(python-docx needs > 30 s and ~1.8 GB for 1.5 M empty paragraphs in 47 KB); a PDF with too many pages, or whose
pages' content streams add up to too much (pages that share one big stream cost minutes in pypdf); any text
longer than ``max_characters``. The indexing job runs this in a confined child (``app.knowledge.indexing.parsing``), whose
time and memory limits stop whatever these checks miss.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import docx
from docx.table import Table
from pypdf import PdfReader

from app.knowledge.indexing.extract_errors import ExtractError, TooLarge, UnreadableFile, UnsupportedFileType
from app.knowledge.indexing.text_formats import csv_text, declared_charset, decode_text, html_text, json_text

__all__ = [
    "MB",
    "SUPPORTED_EXTENSIONS",
    "ExtractError",
    "ParseLimits",
    "TooLarge",
    "UnreadableFile",
    "UnsupportedFileType",
    "extension_of",
    "extract_text",
]

SUPPORTED_EXTENSIONS = frozenset({"txt", "md", "markdown", "html", "htm", "pdf", "docx", "csv", "json"})
MB = 1024 * 1024
#: below this many unpacked bytes the compression ratio is not checked (small files compress as they like)
RATIO_FLOOR = 1 * MB


@dataclass(frozen=True)
class ParseLimits:
    """Caps on one document's parsing; each ends the document in ``error`` with a message naming its setting."""

    max_uncompressed_bytes: int = 100 * MB
    max_compression_ratio: int = 100
    max_pages: int = 2_000
    max_paragraphs: int = 200_000
    max_characters: int = 5_000_000


def extension_of(filename: str) -> str:
    """The lower-case extension without the dot ("" when there is none)."""
    name = filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    return name.rsplit(".", 1)[1].lower() if "." in name.strip(".") else ""


def extract_text(filename: str, data: bytes, limits: ParseLimits = ParseLimits()) -> str:
    """The text of a file, chosen by its extension; raises UnsupportedFileType, UnreadableFile or TooLarge."""
    extension = extension_of(filename)
    if extension not in SUPPORTED_EXTENSIONS:
        supported = ", ".join(sorted(SUPPORTED_EXTENSIONS))
        shown = f".{extension}" if extension else "without an extension"
        raise UnsupportedFileType(f"Files {shown} are not supported (supported: {supported}).")
    if not data:
        raise UnreadableFile("The file is empty.")
    if extension in ("html", "htm"):
        text = html_text(decode_text(data, declared_charset(data)))
    elif extension == "pdf":
        text = _pdf_text(data, limits)
    elif extension == "docx":
        text = _docx_text(data, limits)
    elif extension == "csv":
        text = csv_text(decode_text(data))
    elif extension == "json":
        text = json_text(decode_text(data))
    else:
        text = decode_text(data)
    _check_characters(len(text), limits)
    if not text.strip():
        raise UnreadableFile(f"The {extension.upper()} file has no text.")
    return text


def _check_characters(count: int, limits: ParseLimits) -> None:
    if count > limits.max_characters:
        raise TooLarge(
            f"The document has more than {limits.max_characters:,} characters of text "
            "(SLUICE_INDEXING_MAX_CHARACTERS)."
        )


def _check_unpacked(
    kind: str, unpacked: int, packed: int, limits: ParseLimits, what: str = "unpacks to"
) -> None:
    if unpacked > limits.max_uncompressed_bytes:
        raise TooLarge(
            f"The {kind} file {what} more than {limits.max_uncompressed_bytes // MB} MB "
            "(SLUICE_INDEXING_MAX_UNCOMPRESSED_MB)."
        )
    if unpacked > RATIO_FLOOR and unpacked > limits.max_compression_ratio * max(packed, 1):
        raise TooLarge(
            f"The {kind} file {what} {unpacked // max(packed, 1):,} times its size, more than "
            f"{limits.max_compression_ratio}:1 (SLUICE_INDEXING_MAX_COMPRESSION_RATIO)."
        )


# -- PDF -------------------------------------------------------------------------------------------------------


def _pdf_text(data: bytes, limits: ParseLimits) -> str:
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not _decrypt_with_empty_password(reader):
            raise UnreadableFile("The PDF is password-protected.")
        if len(reader.pages) > limits.max_pages:
            raise TooLarge(
                f"The PDF has {len(reader.pages):,} pages, more than {limits.max_pages:,} "
                "(SLUICE_INDEXING_MAX_PAGES)."
            )
        _check_unpacked("PDF", _pdf_content_bytes(reader), len(data), limits, "has page content of")
        pages: list[str] = []
        characters = 0
        for page in reader.pages:
            pages.append(page.extract_text() or "")
            characters += len(pages[-1])
            _check_characters(characters, limits)
    except (ExtractError, MemoryError):
        raise
    except Exception:  # pypdf raises many types on corrupt input (PdfReadError, ValueError, KeyError, ...)
        raise UnreadableFile("The PDF file is corrupt or not a PDF.") from None
    text = "\n\n".join(page.strip() for page in pages if page.strip())
    if not text:
        raise UnreadableFile("The PDF has no extractable text (scanned images are not supported).")
    return text


def _pdf_content_bytes(reader: Any) -> int:
    """What text extraction will parse: each page's decoded content streams, a stream shared by several pages
    counted once per page (each stream decoded once)."""
    sizes: dict[Any, int] = {}
    total = 0
    for page in reader.pages:
        contents = page.get("/Contents")
        streams = contents.get_object() if contents is not None else []
        if not isinstance(streams, list):
            streams = [contents]
        for reference in streams:
            key = (reference.idnum, reference.generation) if hasattr(reference, "idnum") else id(reference)
            if key not in sizes:
                stream = reference.get_object()
                sizes[key] = len(stream.get_data()) if hasattr(stream, "get_data") else 0
            total += sizes[key]
    return total


def _decrypt_with_empty_password(reader: Any) -> bool:
    """Many PDFs are encrypted only to restrict permissions, with an empty user password."""
    try:
        return bool(reader.decrypt(""))
    except Exception:  # e.g. pypdf's DependencyError for AES without the cryptography package
        return False


# -- DOCX ------------------------------------------------------------------------------------------------------


def _docx_checks(data: bytes, limits: ParseLimits) -> None:
    """Zip bombs and paragraph floods, found from the archive's directory and one count over the body's bytes."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            parts = archive.infolist()
            _check_unpacked("DOCX", sum(p.file_size for p in parts), len(data), limits)
            body = next((p for p in parts if p.filename.replace("\\", "/") == "word/document.xml"), None)
            xml = archive.read(body) if body is not None else b""
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        raise UnreadableFile("The DOCX file is corrupt or not a Word document.") from None
    paragraphs = xml.count(b"<w:p>") + xml.count(b"<w:p ") + xml.count(b"<w:p/>")
    if paragraphs > limits.max_paragraphs:
        raise TooLarge(
            f"The DOCX document has {paragraphs:,} paragraphs, more than {limits.max_paragraphs:,} "
            "(SLUICE_INDEXING_MAX_PARAGRAPHS)."
        )


def _docx_text(data: bytes, limits: ParseLimits) -> str:
    _docx_checks(data, limits)
    try:
        document = docx.Document(io.BytesIO(data))
        lines: list[str] = []
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                lines.extend(_table_rows(block))
            else:
                lines.append(block.text)
    except MemoryError:
        raise
    except Exception:  # python-docx raises BadZipFile, KeyError, PackageNotFoundError, lxml errors, ...
        raise UnreadableFile("The DOCX file is corrupt or not a Word document.") from None
    text = "\n".join(lines).strip()
    if not text:
        raise UnreadableFile("The DOCX document has no text.")
    return text


def _table_rows(table: Any) -> Iterator[str]:
    """One line per row, cells joined by " | "; a merged cell (repeated by python-docx) counts once."""
    for row in table.rows:
        cells: list[str] = []
        previous = None
        for cell in row.cells:
            if cell._tc is previous:
                continue
            previous = cell._tc
            cells.append(" ".join(cell.text.split()))
        if any(cells):
            yield " | ".join(cells)
