"""extract_text on small real files: text encodings, HTML, PDF, DOCX, CSV, JSON, and the errors users see."""

from __future__ import annotations

import io

import docx
import pytest
from pypdf import PdfReader, PdfWriter

from app.knowledge.indexing.extract import (
    SUPPORTED_EXTENSIONS,
    ExtractError,
    UnreadableFile,
    UnsupportedFileType,
    extract_text,
)


def make_pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF: one Helvetica text line per page (an empty string gives a page with no text)."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{4 + 2 * index} 0 R" for index in range(len(pages)))
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for index, text in enumerate(pages):
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode("latin-1") if text else b""
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {5 + 2 * index} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def encrypt_pdf(data: bytes, user_password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def make_docx() -> bytes:
    document = docx.Document()
    document.add_heading("Handbook", level=1)
    document.add_paragraph("Before the table.")
    table = document.add_table(rows=3, cols=3)
    for row, values in enumerate([("Name", "Role", "Team"), ("Ann", "Lead", "Core"), ("Bob", "Dev", "")]):
        for column, value in enumerate(values):
            table.cell(row, column).text = value
    table.cell(2, 1).merge(table.cell(2, 2))
    document.add_paragraph("After the table.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


# -- types and errors ------------------------------------------------------------------------------------------


def test_supported_extensions() -> None:
    assert {"txt", "md", "markdown", "html", "htm", "pdf", "docx", "csv", "json"} == SUPPORTED_EXTENSIONS


@pytest.mark.parametrize("filename", ["virus.exe", "notes", "archive.tar.gz", "image.PNG", ".txt.bak"])
def test_unsupported_extension(filename: str) -> None:
    with pytest.raises(UnsupportedFileType) as caught:
        extract_text(filename, b"data")
    assert isinstance(caught.value, ExtractError)
    assert "not supported" in caught.value.message
    assert "docx" in caught.value.message


def test_extension_is_case_insensitive() -> None:
    assert extract_text("README.MD", b"# Title\n\nBody") == "# Title\n\nBody"


@pytest.mark.parametrize("filename", ["a.txt", "a.pdf", "a.docx", "a.csv", "a.json", "a.html"])
def test_empty_file(filename: str) -> None:
    with pytest.raises(UnreadableFile, match="empty"):
        extract_text(filename, b"")


@pytest.mark.parametrize("filename", ["a.txt", "a.md", "a.html"])
def test_whitespace_only_file_has_no_text(filename: str) -> None:
    with pytest.raises(UnreadableFile, match="no text"):
        extract_text(filename, b"  \n\t \n")


def test_error_default_message_is_docstring() -> None:
    assert UnreadableFile().message == "The file could not be read."
    assert str(UnsupportedFileType()) == "This file type is not supported."


# -- plain text ------------------------------------------------------------------------------------------------


def test_utf8_and_markdown_kept_as_text() -> None:
    markdown = "# Título\n\n- **bold** [link](https://example.com)\n\n```py\nx = 1\n```\n"
    assert extract_text("doc.markdown", markdown.encode()) == markdown


def test_utf8_bom_is_dropped() -> None:
    assert extract_text("a.txt", b"\xef\xbb\xbfhello") == "hello"


def test_utf16_with_bom() -> None:
    assert extract_text("a.txt", "héllo wörld €".encode("utf-16")) == "héllo wörld €"
    assert extract_text("a.txt", b"\xfe\xff" + "ünïcode".encode("utf-16-be")) == "ünïcode"


def test_utf16_without_bom() -> None:
    assert extract_text("a.txt", "plain ascii text".encode("utf-16-le")) == "plain ascii text"


def test_cp1252_fallback() -> None:
    assert extract_text("a.txt", "café \u2013 “quoted” €5".encode("cp1252")) == "café \u2013 “quoted” €5"


def test_latin1_last_resort() -> None:
    # 0x81 is undefined in cp1252, so only latin-1 can decode this
    assert extract_text("a.txt", b"caf\xe9 \x81") == "café \x81"


def test_binary_file_with_text_extension() -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00\x1f\xf3\xffa"
    with pytest.raises(UnreadableFile, match="not text"):
        extract_text("photo.txt", png)


# -- HTML ------------------------------------------------------------------------------------------------------


def test_html_blocks_tables_and_dropped_elements() -> None:
    html = b"""<!doctype html><html><head><title>Guide</title><style>p { color: red }</style>
    <script>var secret = 1;</script></head><body>
    <h1>Install</h1>
    <p>Run   the <b>installer</b>
       and wait.</p>
    <div>first</div><div>second<br>third</div>
    <ul><li>one</li><li>two</li></ul>
    <table><tr><th>Key</th><th>Value</th></tr><tr><td>port</td><td>8080</td></tr></table>
    <noscript>enable js</noscript><template><p>hidden template</p></template>
    </body></html>"""
    text = extract_text("page.html", html)
    assert text == (
        "Guide\n\nInstall\n\nRun the installer and wait.\n\nfirst\nsecond\nthird\n\none\ntwo\n\n"
        "Key | Value\nport | 8080"
    )
    for hidden in ("secret", "color", "enable js", "hidden template"):
        assert hidden not in text


def test_htm_preformatted_text_keeps_spacing() -> None:
    assert extract_text("a.htm", b"<pre>def f():\n    return 1</pre>") == "def f():\n    return 1"


def test_html_entities_and_declared_charset() -> None:
    html = '<meta charset="windows-1251"><p>Привет &amp; пока</p>'.encode("windows-1251")
    assert extract_text("a.html", html) == "Привет & пока"


def test_html_without_visible_text() -> None:
    with pytest.raises(UnreadableFile, match="no text"):
        extract_text("a.html", b"<html><head><script>x()</script></head><body>  </body></html>")


def test_deeply_nested_html_does_not_overflow() -> None:
    html = "<div>" * 5000 + "deep" + "</div>" * 5000
    assert extract_text("a.html", html.encode()) == "deep"


# -- PDF -------------------------------------------------------------------------------------------------------


def test_pdf_pages_joined_by_blank_line() -> None:
    text = extract_text("report.pdf", make_pdf(["Hello from page one", "Second (page) text"]))
    assert text == "Hello from page one\n\nSecond (page) text"


def test_pdf_empty_pages_are_skipped() -> None:
    assert extract_text("a.pdf", make_pdf(["", "Only text"])) == "Only text"


def test_pdf_without_text() -> None:
    with pytest.raises(UnreadableFile) as caught:
        extract_text("scan.pdf", make_pdf(["", ""]))
    assert caught.value.message == "The PDF has no extractable text (scanned images are not supported)."


@pytest.mark.parametrize(
    "data",
    [b"%PDF-1.4\n garbage without objects", b"not a pdf at all", make_pdf(["Hello"])[:60]],
    ids=["garbage", "not-pdf", "truncated"],
)
def test_corrupt_pdf(data: bytes) -> None:
    with pytest.raises(UnreadableFile, match="corrupt"):
        extract_text("broken.pdf", data)


def test_password_protected_pdf() -> None:
    with pytest.raises(UnreadableFile, match="password"):
        extract_text("secret.pdf", encrypt_pdf(make_pdf(["Classified"]), "secret"))


def test_pdf_encrypted_with_empty_user_password_is_read() -> None:
    assert extract_text("a.pdf", encrypt_pdf(make_pdf(["Open to all"]), "")) == "Open to all"


# -- DOCX ------------------------------------------------------------------------------------------------------


def test_docx_paragraphs_and_tables_in_document_order() -> None:
    assert extract_text("handbook.docx", make_docx()) == (
        "Handbook\nBefore the table.\nName | Role | Team\nAnn | Lead | Core\nBob | Dev\nAfter the table."
    )


@pytest.mark.parametrize(
    "data", [b"PK\x03\x04 not really a zip", b"plain text renamed", make_docx()[:300]], ids=str
)
def test_corrupt_docx(data: bytes) -> None:
    with pytest.raises(UnreadableFile, match="corrupt"):
        extract_text("broken.docx", data)


def test_docx_without_text() -> None:
    buffer = io.BytesIO()
    docx.Document().save(buffer)
    with pytest.raises(UnreadableFile, match="no text"):
        extract_text("blank.docx", buffer.getvalue())


# -- CSV -------------------------------------------------------------------------------------------------------


def test_csv_rows_become_header_value_lines() -> None:
    data = b'name,city,note\nAnn,Paris,"likes, commas"\nBob,,quiet\n\n'
    assert extract_text("people.csv", data) == (
        "name: Ann; city: Paris; note: likes, commas\n\nname: Bob; note: quiet"
    )


def test_csv_dialect_is_sniffed() -> None:
    assert extract_text("a.csv", b"name;age\nAnn;30\nBob;41\n") == "name: Ann; age: 30\n\nname: Bob; age: 41"
    assert extract_text("a.csv", b"name\tage\nAnn\t30\n") == "name: Ann; age: 30"


def test_csv_extra_cells_get_column_names() -> None:
    assert extract_text("a.csv", b"a,\n1,2,3\n") == "a: 1; column 2: 2; column 3: 3"


def test_csv_header_only() -> None:
    with pytest.raises(UnreadableFile, match="no data rows"):
        extract_text("a.csv", b"name,age\n")


def test_csv_utf8_bom() -> None:
    assert extract_text("a.csv", "\ufeffnom,ville\nÉlise,Lyon\n".encode()) == "nom: Élise; ville: Lyon"


# -- JSON ------------------------------------------------------------------------------------------------------


def test_json_is_flattened() -> None:
    data = b'{"name": "Sluice", "meta": {"tags": ["a", "b"], "stars": 5, "ok": true, "none": null, "x": {}}}'
    assert extract_text("a.json", data) == (
        "name: Sluice\nmeta.tags[0]: a\nmeta.tags[1]: b\nmeta.stars: 5\nmeta.ok: true\nmeta.none: null\nmeta.x: {}"
    )


def test_json_top_level_array_items_are_paragraphs() -> None:
    data = '[{"q": "Où?", "a": "Ici"}, {"q": "When?", "a": "Now"}, 3]'.encode()
    assert extract_text("faq.json", data) == "[0].q: Où?\n[0].a: Ici\n\n[1].q: When?\n[1].a: Now\n\n[2]: 3"


def test_json_scalar() -> None:
    assert extract_text("a.json", b'"just a string"') == "just a string"


def test_json_lines() -> None:
    assert extract_text("a.json", b'{"a": 1}\n{"a": 2}\n') == "[0].a: 1\n\n[1].a: 2"


def test_invalid_json() -> None:
    with pytest.raises(UnreadableFile, match=r"not valid JSON .*line 1, column 7"):
        extract_text("a.json", b'{"a": }')


def test_deeply_nested_json() -> None:
    data = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(UnreadableFile):
        extract_text("a.json", data)


def test_json_without_text() -> None:
    with pytest.raises(UnreadableFile, match="no text"):
        extract_text("a.json", b'""')
