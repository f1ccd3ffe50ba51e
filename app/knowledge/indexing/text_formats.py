"""The text formats of document extraction: bytes decoded to text (BOMs, an HTML document's declared charset,
UTF-16 without a BOM), HTML to text with its paragraphs and lines, CSV rows as ``header: value`` lines, JSON
flattened to ``path: value`` lines. Pure, linear in the input; failures are :class:`UnreadableFile`."""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Iterator
from typing import Any

from selectolax.lexbor import LexborHTMLParser, LexborNode

from app.knowledge.indexing.extract_errors import UnreadableFile

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


def declared_charset(data: bytes) -> str | None:
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


def html_text(html: str) -> str:
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


# -- CSV -------------------------------------------------------------------------------------------------------


def csv_text(text: str) -> str:
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


def json_text(text: str) -> str:
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
