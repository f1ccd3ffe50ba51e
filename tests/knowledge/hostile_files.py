"""Hostile documents built in the test (nothing downloaded): paragraph floods, zip bombs, PDFs whose pages share
one big content stream."""

from __future__ import annotations

import io
import zipfile

from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
    "</Types>"
)
_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="word/document.xml"/></Relationships>'
)
_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def docx(body_xml: bytes, extra: dict[str, bytes] | None = None) -> bytes:
    """A minimal Word document around ``body_xml`` (what goes inside ``<w:body>``)."""
    document = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="{_W}"><w:body>'.encode()
    )
    document += body_xml + b"</w:body></w:document>"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _RELS)
        archive.writestr("word/document.xml", document)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return out.getvalue()


def docx_of_empty_paragraphs(count: int = 1_500_000) -> bytes:
    """The issue's document: 1.5 M empty paragraphs, 47 KB on disk."""
    return docx(b"<w:p/>" * count + b"<w:p><w:r><w:t>the end</w:t></w:r></w:p>")


def docx_zip_bomb(unpacked_mb: int = 120) -> bytes:
    """A small DOCX with a part of zeros that unpacks to ``unpacked_mb`` MB."""
    return docx(b"<w:p><w:r><w:t>hello</w:t></w:r></w:p>", {"word/media/zeros.bin": bytes(unpacked_mb << 20)})


def docx_text(paragraphs: list[str]) -> bytes:
    return docx(b"".join(f"<w:p><w:r><w:t>{p}</w:t></w:r></w:p>".encode() for p in paragraphs))


def pdf_sharing_one_stream(pages: int = 200, stream_kb: int = 512) -> bytes:
    """``pages`` pages whose /Contents is the same compressed stream of ``stream_kb`` KB of text operators."""
    writer = PdfWriter()
    line = b"BT /F1 9 Tf 20 700 Td (Shared content stream text, over and over.) Tj ET\n"
    stream = DecodedStreamObject()
    stream.set_data(line * (stream_kb * 1024 // len(line)))
    stream = stream.flate_encode()
    reference = writer._add_object(stream)
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    font_reference = writer._add_object(font)
    for _ in range(pages):
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Contents")] = reference
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font_reference})}
        )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def pdf_pages(texts: list[str]) -> bytes:
    """An ordinary PDF: one page per text, each with its own small content stream."""
    writer = PdfWriter()
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    font_reference = writer._add_object(font)
    for text in texts:
        page = writer.add_blank_page(612, 792)
        stream = DecodedStreamObject()
        stream.set_data(f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode())
        page[NameObject("/Contents")] = writer._add_object(stream)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font_reference})}
        )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def pdf_slow(pages: int = 40, stream_kb: int = 1024) -> bytes:
    """Like :func:`pdf_sharing_one_stream`, but the shared stream holds varied words that barely compress: the
    file stays under the compression-ratio cap and pypdf spends seconds on every page."""
    import random

    rng = random.Random(13)
    words = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
        for _ in range(5000)
    ]
    lines, size = [], 0
    while size < stream_kb * 1024:
        line = (
            f"BT /F1 9 Tf 20 {rng.randint(10, 780)} Td ({' '.join(rng.choices(words, k=8))}) Tj ET\n".encode()
        )
        lines.append(line)
        size += len(line)
    writer = PdfWriter()
    stream = DecodedStreamObject()
    stream.set_data(b"".join(lines))
    reference = writer._add_object(stream.flate_encode())
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    font_reference = writer._add_object(font)
    for _ in range(pages):
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Contents")] = reference
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font_reference})}
        )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
