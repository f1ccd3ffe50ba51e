"""Turn an uploaded file's bytes into plain text: the "parsing" stage of indexing.

Pure: no I/O besides the bytes given. Every failure is an :class:`ExtractError` whose ``message`` can be shown
to the user (the indexing job records it as the document's error). Formats follow Dify's extractors where that
is sensible: CSV rows become ``header: value; ...`` lines, markdown is kept as text.

Hostile files are refused before the expensive part (:class:`ParseLimits`, from the ``SLUICE_INDEXING_MAX_*``
settings): a DOCX whose parts unpack to too much or compress too well (zip bombs) or holds too many paragraphs
(python-docx needs > 30 s and ~1.8 GB for 1.5 M empty paragraphs in 47 KB); a PDF with too many pages, or whose
pages' content streams add up to too much (pages that share one big stream cost minutes in pypdf); any text
longer than ``max_characters``. The indexing job runs this in a confined child (``app.knowledge.indexing.parsing``), whose
time and memory limits stop whatever these checks miss.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import docx
from docx.table import Table
from pypdf import PdfReader
from selectolax.lexbor import LexborHTMLParser, LexborNode

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


class ExtractError(Exception):
    """The file could not be read."""

    def __init__(self, message: str | None = None) -> None:
        self.message: str = message or (type(self).__doc__ or "The file could not be read.").strip()
        super().__init__(self.message)


class UnsupportedFileType(ExtractError):
    """This file type is not supported."""


class UnreadableFile(ExtractError):
    """The file could not be read."""


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
        text = _html_text(decode_text(data, _declared_charset(data)))
    elif extension == "pdf":
        text = _pdf_text(data, limits)
    elif extension == "docx":
        text = _docx_text(data, limits)
    elif extension == "csv":
        text = _csv_text(decode_text(data))
    elif extension == "json":
        text = _json_text(decode_text(data))
    else:
        text = decode_text(data)
    _check_characters(len(text), limits)
    if not text.strip():
        raise UnreadableFile(f"The {extension.upper()} file has no text.")
    return text


class TooLarge(ExtractError):
    """The document is too large to index."""


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


# -- text decoding ---------------------------------------------------------------------------------------------

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def decode_text(data: bytes, declared: str | None = None) -> str:
    """Bytes to str: a BOM wins, then UTF-8, then a declared charset, then cp1252, then latin-1.

    Bytes with NULs and no BOM are read as BOM-less UTF-16 when the NULs fall on one parity (as they do for
    mostly-ASCII UTF-16 text); otherwise they are binary and raise UnreadableFile.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                raise UnreadableFile(
                    f"The file starts with a {encoding} marker but is not valid {encoding}."
                ) from None
    if b"\x00" in data:
        return _bomless_utf16(data)
    candidates = ["utf-8", *([declared] if declared else []), "cp1252"]
    for encoding in candidates:
        try:
            return data.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode("latin-1")


def _bomless_utf16(data: bytes) -> str:
    sample = data[:4096]
    even = sample[0::2].count(0)
    odd = sample[1::2].count(0)
    half = len(sample) // 2
    encoding = (
        "utf-16-le"
        if odd > half * 0.3 and even == 0
        else "utf-16-be"
        if even > half * 0.3 and odd == 0
        else ""
    )
    if encoding:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            pass
    raise UnreadableFile("The file is not text (it contains binary data).")


_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_:.-]+)""", re.IGNORECASE)


def _declared_charset(data: bytes) -> str | None:
    match = _CHARSET.search(data[:4096])
    return match.group(1).decode("ascii") if match else None


# -- HTML ------------------------------------------------------------------------------------------------------

_DROPPED_TAGS = "script, style, noscript, template, head > meta, head > link"
# Elements that start and end a paragraph ("\n\n") or a line ("\n"); everything else is inline. Breaks are
# written as markers first so that adjacent breaks (</li><li>, </div></ul>) merge into the strongest one.
_LINE, _PARAGRAPH = "\x01", "\x02"
# The lookbehind makes a match start only where a run of blanks and markers starts: linear, not quadratic, on
# long runs of blanks without a marker.
_BREAKS = re.compile(r"(?<![\s\x01\x02])[\s\x01\x02]*[\x01\x02][\s\x01\x02]*")
_PARAGRAPH_TAGS = frozenset(
    "p h1 h2 h3 h4 h5 h6 table ul ol dl blockquote pre section article header footer nav aside main figure "
    "form fieldset address details hr title".split()
)
_LINE_TAGS = frozenset("div li tr dt dd figcaption summary caption thead tbody tfoot legend option".split())
_CELL_TAGS = frozenset({"td", "th"})


def _html_text(html: str) -> str:
    """Visible text: scripts/styles dropped, blocks on their own lines, table rows one per line (cells " | ")."""
    tree = LexborHTMLParser(html)
    for node in tree.css(_DROPPED_TAGS):
        node.decompose()
    root = tree.root
    if root is None:
        return ""
    parts: list[str] = []
    # An explicit stack (not recursion) so that absurdly deep markup cannot overflow; a str entry is text to
    # emit when popped (the break after an element's children), a node entry is an element to walk.
    stack: list[LexborNode | str] = [root]
    cells_in_row: list[int] = [0]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if item == "</tr>":
                cells_in_row.pop()
            else:
                parts.append(item)
            continue
        tag = item.tag
        if tag == "-text":
            text = item.text(deep=False) or ""
            text = text.replace(_LINE, "").replace(_PARAGRAPH, "")
            if not _inside_pre(item):
                text = re.sub(r"\s+", " ", text)
                if parts and parts[-1] in ("\n", _LINE, _PARAGRAPH):
                    text = text.lstrip()
            parts.append(text)
            continue
        if tag == "br":
            parts.append("\n")
            continue
        if tag in _CELL_TAGS:
            if cells_in_row[-1]:
                parts.append(" | ")
            cells_in_row[-1] += 1
        elif tag == "tr":
            cells_in_row.append(0)
            stack.append("</tr>")
        if tag in _PARAGRAPH_TAGS:
            parts.append(_PARAGRAPH)
            stack.append(_PARAGRAPH)
        elif tag in _LINE_TAGS:
            parts.append(_LINE)
            stack.append(_LINE)
        stack.extend(reversed(list(item.iter(include_text=True))))
    text = _BREAKS.sub(lambda run: "\n\n" if _PARAGRAPH in run.group(0) else "\n", "".join(parts))
    text = re.sub(r"(?<![ \t\u00a0])[ \t\u00a0]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _inside_pre(node: LexborNode) -> bool:
    parent = node.parent
    while parent is not None:
        if parent.tag in ("pre", "textarea"):
            return True
        parent = parent.parent
    return False


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


# -- CSV -------------------------------------------------------------------------------------------------------


def _csv_text(text: str) -> str:
    """Each data row as ``header: value; header: value`` (empty values left out), rows separated by a blank line."""
    try:
        dialect: Any = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), dialect))
    except csv.Error as error:
        raise UnreadableFile(f"The CSV file could not be parsed ({error}).") from None
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise UnreadableFile("The CSV file is empty.")
    header = [name.strip() for name in rows[0]]
    lines = []
    for row in rows[1:]:
        pairs = []
        for index, value in enumerate(row):
            name = (header[index] if index < len(header) else "") or f"column {index + 1}"
            if value.strip():
                pairs.append(f"{name}: {value.strip()}")
        if pairs:
            lines.append("; ".join(pairs))
    if not lines:
        raise UnreadableFile("The CSV file has a header row but no data rows.")
    return "\n\n".join(lines)


# -- JSON ------------------------------------------------------------------------------------------------------


def _json_text(text: str) -> str:
    """Flattened ``path.to.key: value`` lines (arrays as ``key[0]``); top-level array items apart by a blank line.

    JSON Lines (one value per line) is accepted too and read as a top-level array.
    """
    try:
        value = json.loads(text)
    except RecursionError:
        raise UnreadableFile("The JSON file is nested too deeply.") from None
    except json.JSONDecodeError as error:
        value = _json_lines(text, error)
    if isinstance(value, list):
        return "\n\n".join("\n".join(_flatten(item, f"[{index}]")) for index, item in enumerate(value))
    return "\n".join(_flatten(value, ""))


def _json_lines(text: str, error: json.JSONDecodeError) -> list[Any]:
    lines = [line for line in text.splitlines() if line.strip()]
    if error.msg == "Extra data" and len(lines) > 1:
        try:
            return [json.loads(line) for line in lines]
        except (json.JSONDecodeError, RecursionError):
            pass
    raise UnreadableFile(
        f"The JSON file is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})."
    ) from None


def _flatten(value: Any, path: str) -> Iterator[str]:
    """Leaves in document order; iterative so deep nesting cannot overflow the stack."""
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        key, item = stack.pop()
        if isinstance(item, dict) and item:
            children = [(f"{key}.{name}" if key else str(name), child) for name, child in item.items()]
            stack.extend(reversed(children))
        elif isinstance(item, list) and item:
            stack.extend(reversed([(f"{key}[{index}]", child) for index, child in enumerate(item)]))
        else:
            rendered = _scalar(item)
            yield f"{key}: {rendered}" if key else rendered


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)
