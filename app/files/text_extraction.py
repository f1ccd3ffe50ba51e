"""The text of a document for the ``document-extractor`` node, as Dify's node extracts it (nodes spec 7).

Pure functions with plain arguments and results (bytes, str, int; a dict from :func:`extract_or_error`), no
settings, no I/O and no import-time work, so that they run in a confined child process: the worker calls
:func:`extract_or_error` through ``Sandbox.call`` (``app/files/documents.py``).

The type is chosen by the extension first, the MIME type second. Supported: plain text and source files, json,
yaml, pdf, docx, csv, xlsx, properties. Everything Dify hands to Unstructured or pandas-xlrd (doc, ppt, pptx,
epub, odt, eml, msg, xls, vtt by MIME type) fails with Dify's "Unsupported Extension Type" / "Unsupported MIME
type" message.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from typing import Any

from app.files import tables
from app.knowledge.indexing.extract_errors import ExtractError
from app.knowledge.indexing.text_formats import decode_text
from app.sandbox.functions import sandboxed

#: Office files may unpack to at most this many bytes (zip bombs) and a DOCX may hold at most this many blocks
#: (python-docx takes > 30 s and ~1.8 GB on a 47 KB file of 1.5 M empty paragraphs). Interim guards: the
#: sandbox's memory and time limits are the real bound.
MAX_UNPACKED = 200 * 1024 * 1024
MAX_DOCX_BLOCKS = 200_000
MAX_SHEET_CELLS = 2_000_000


class DocumentExtractorError(Exception):
    """The document's text could not be extracted."""

    error_type = "DocumentExtractorError"


class UnsupportedFileTypeError(DocumentExtractorError):
    error_type = "UnsupportedFileTypeError"


class TextExtractionError(DocumentExtractorError):
    error_type = "TextExtractionError"


def _plain(data: bytes) -> str:
    """Decoded text (BOM, UTF-8, cp1252, latin-1; binary-looking bytes decoded with errors dropped)."""
    try:
        return decode_text(data)
    except ExtractError:
        return data.decode("utf-8", errors="ignore")


def _json(data: bytes) -> str:
    try:
        return json.dumps(json.loads(_plain(data)), indent=2, ensure_ascii=False)
    except (ValueError, RecursionError) as error:
        raise TextExtractionError(f"Failed to decode or parse JSON file: {error}") from None


def _yaml(data: bytes) -> str:
    import yaml

    try:
        return str(yaml.dump_all(yaml.safe_load_all(_plain(data)), allow_unicode=True, sort_keys=False))
    except (yaml.YAMLError, RecursionError, ValueError) as error:
        raise TextExtractionError(f"Failed to decode or parse YAML file: {error}") from None


def _pdf(data: bytes) -> str:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            reader.decrypt("")
        return "".join(page.extract_text() or "" for page in reader.pages)
    except Exception as error:  # pypdf raises many types on corrupt input
        raise TextExtractionError(
            f"Failed to extract text from PDF: {error or type(error).__name__}"
        ) from None


def _docx(data: bytes) -> str:
    try:
        return _docx_text(data)
    except DocumentExtractorError:
        raise
    except Exception as error:  # python-docx: BadZipFile, KeyError, lxml errors...
        raise TextExtractionError(
            f"Failed to extract text from DOCX: {error or type(error).__name__}"
        ) from None


_BLOCK = re.compile(rb"<w:(?:p|tbl)[\s>/]")


def _docx_text(data: bytes) -> str:
    import zipfile

    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        tables.check_zip(data, MAX_UNPACKED)
    except tables.TableError as error:
        raise TextExtractionError(f"Failed to extract text from DOCX: {error}") from None
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = {n.replace("\\", "/"): n for n in archive.namelist()}
        body = archive.read(names["word/document.xml"]) if "word/document.xml" in names else b""
    if len(_BLOCK.findall(body)) > MAX_DOCX_BLOCKS:
        raise TextExtractionError(
            f"Failed to extract text from DOCX: the document has more than {MAX_DOCX_BLOCKS} paragraphs"
        )
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception:
        document = docx.Document(io.BytesIO(_normalized_zip(data)))  # backslash paths (Evernote exports)
    lines: list[str] = []
    for block in document.element.body:
        tag = block.tag.rsplit("}", 1)[-1]
        if tag == "p":
            lines.append(Paragraph(block, document).text)
        elif tag == "tbl":
            table = _markdown_table(Table(block, document))
            if table is not None:
                lines.append(table)
    return "\n".join(lines)


def _normalized_zip(data: bytes) -> bytes:
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            content = zin.read(item.filename)
            item.filename = item.filename.replace("\\", "/")
            zout.writestr(item, content)
    return out.getvalue()


def _markdown_table(table: Any) -> str | None:
    """Dify's DOCX table: a Markdown table with ``---`` separators, cell newlines as ``<br>``; empty: None."""
    try:
        rows = table.rows
        if not any(cell.text.strip() for row in rows for cell in row.cells):
            return None
        first = [cell.text.replace("\n", "<br>") for cell in rows[0].cells]
        text = f"| {' | '.join(first)} |\n| {' | '.join(['---'] * len(first))} |\n"
        for row in rows[1:]:
            text += "| " + " | ".join(cell.text.replace("\n", "<br>") for cell in row.cells) + " |\n"
        return text
    except Exception:  # Dify skips a table it cannot read
        return None


def _csv(data: bytes) -> str:
    try:
        return tables.csv_markdown(_plain(data))
    except Exception as error:
        raise TextExtractionError(f"Failed to extract text from CSV: {error}") from None


def _excel(data: bytes) -> str:
    try:
        return tables.excel_markdown(data, max_cells=MAX_SHEET_CELLS, max_unpacked=MAX_UNPACKED)
    except Exception as error:
        raise TextExtractionError(f"Failed to extract text from Excel file: {error}") from None


def _properties(data: bytes) -> str:
    lines = []
    for line in _plain(data).splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "!")):
            lines.append(stripped)
            continue
        key, value = stripped.split("=", 1) if "=" in stripped else [*stripped.split(":", 1), ""][:2]
        lines.append(f"{key.strip()}: {value.strip()}")
    return "\n".join(lines)


PLAIN_TEXT_EXTENSIONS = frozenset(
    ".txt .markdown .md .mdx .html .htm .xml .c .h .cpp .hpp .cc .cxx .c++ .py .js .ts .jsx .tsx .java .php .rb "
    ".go .rs .swift .kt .scala .sh .bash .bat .ps1 .sql .r .m .pl .lua .vim .asm .s .css .scss .less .sass .ini "
    ".cfg .conf .toml .env .log .vtt".split()
)
PLAIN_TEXT_MIME_TYPES = frozenset({"text/plain", "text/html", "text/htm", "text/markdown", "text/xml"})

_BY_EXTENSION: dict[str, Callable[[bytes], str]] = {
    **dict.fromkeys(PLAIN_TEXT_EXTENSIONS, _plain),
    ".json": _json,
    ".yaml": _yaml,
    ".yml": _yaml,
    ".pdf": _pdf,
    ".docx": _docx,
    ".csv": _csv,
    ".xlsx": _excel,
    ".properties": _properties,
}
_BY_MIME: dict[str, Callable[[bytes], str]] = {
    **dict.fromkeys(PLAIN_TEXT_MIME_TYPES, _plain),
    "application/json": _json,
    "application/x-yaml": _yaml,
    "text/yaml": _yaml,
    "application/pdf": _pdf,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": _docx,
    "text/csv": _csv,
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": _excel,
    "text/properties": _properties,
}


def extract_text(content: bytes, extension: str | None, mime_type: str | None) -> str:
    """The document's text; raises a :class:`DocumentExtractorError` with Dify's message."""
    if extension:
        extractor = _BY_EXTENSION.get(extension.lower())
        if extractor is None:
            raise UnsupportedFileTypeError(f"Unsupported Extension Type: {extension}")
    elif mime_type:
        extractor = _BY_MIME.get(mime_type)
        if extractor is None:
            raise UnsupportedFileTypeError(f"Unsupported MIME type: {mime_type}")
    else:
        raise UnsupportedFileTypeError(
            "Unable to determine file type: MIME type or file extension is missing"
        )
    return extractor(content)


@sandboxed("files.extract_text")
def extract_or_error(
    content: bytes, extension: str | None, mime_type: str | None, max_chars: int
) -> dict[str, Any]:
    """:func:`extract_text` with a plain-data result for a process boundary: ``{"text": ...}`` or
    ``{"error": message, "error_type": name}``. Text longer than ``max_chars`` is an error."""
    try:
        text = extract_text(content, extension, mime_type)
    except DocumentExtractorError as error:
        return {"error": str(error), "error_type": error.error_type}
    except RecursionError:
        return {
            "error": "Failed to extract text: the document is nested too deeply",
            "error_type": "TextExtractionError",
        }
    except MemoryError:
        return {
            "error": "Failed to extract text: the document needs too much memory",
            "error_type": "TextExtractionError",
        }
    if len(text) > max_chars:
        return {
            "error": f"The extracted text is longer than {max_chars} characters.",
            "error_type": "TextExtractionError",
        }
    return {"text": text}
