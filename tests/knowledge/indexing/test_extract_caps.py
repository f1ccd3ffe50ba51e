"""The file caps of parsing (ParseLimits): hostile DOCX and PDF files are refused before the expensive part, with
a message naming the setting; ordinary files still read."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from app.knowledge.indexing.extract import MB, ExtractError, ParseLimits, TooLarge, extract_text
from tests.knowledge.hostile_files import (
    docx_of_empty_paragraphs,
    docx_text,
    docx_zip_bomb,
    pdf_pages,
    pdf_sharing_one_stream,
)

NO_RATIO = ParseLimits(max_compression_ratio=10**9)


def refused(filename: str, data: bytes, limits: ParseLimits = ParseLimits()) -> str:
    tracemalloc.start()
    began = time.perf_counter()
    try:
        with pytest.raises(TooLarge) as error:
            extract_text(filename, data, limits)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.perf_counter() - began < 2
    assert peak < 40 * MB
    return error.value.message


def test_a_docx_flood_of_empty_paragraphs_is_refused_by_its_compression_ratio() -> None:
    message = refused("flood.docx", docx_of_empty_paragraphs())
    assert "times its size" in message
    assert "SLUICE_INDEXING_MAX_COMPRESSION_RATIO" in message


def test_a_docx_flood_of_empty_paragraphs_is_refused_by_its_paragraph_count() -> None:
    message = refused("flood.docx", docx_of_empty_paragraphs(), NO_RATIO)
    assert message == (
        "The DOCX document has 1,500,001 paragraphs, more than 200,000 (SLUICE_INDEXING_MAX_PARAGRAPHS)."
    )


def test_a_docx_zip_bomb_is_refused_by_its_unpacked_size() -> None:
    message = refused("bomb.docx", docx_zip_bomb(120), NO_RATIO)
    assert message == "The DOCX file unpacks to more than 100 MB (SLUICE_INDEXING_MAX_UNCOMPRESSED_MB)."


def test_a_pdf_whose_pages_share_one_stream_is_refused() -> None:
    data = pdf_sharing_one_stream(200, 512)
    assert "times its size" in refused("shared.pdf", data)
    message = refused(
        "shared.pdf", data, ParseLimits(max_compression_ratio=10**9, max_uncompressed_bytes=50 * MB)
    )
    assert (
        message == "The PDF file has page content of more than 50 MB (SLUICE_INDEXING_MAX_UNCOMPRESSED_MB)."
    )


def test_a_pdf_with_too_many_pages_is_refused() -> None:
    message = refused("many.pdf", pdf_pages([f"page {i}" for i in range(6)]), ParseLimits(max_pages=5))
    assert message == "The PDF has 6 pages, more than 5 (SLUICE_INDEXING_MAX_PAGES)."


@pytest.mark.parametrize(
    ("filename", "data"),
    [
        ("long.txt", b"word " * 300),
        ("long.pdf", pdf_pages(["word " * 100] * 4)),
        ("long.docx", docx_text(["word " * 100] * 4)),
    ],
)
def test_too_many_characters_are_refused(filename: str, data: bytes) -> None:
    message = refused(filename, data, ParseLimits(max_characters=1000))
    assert message == "The document has more than 1,000 characters of text (SLUICE_INDEXING_MAX_CHARACTERS)."


def test_ordinary_files_still_read() -> None:
    assert extract_text("a.pdf", pdf_pages(["one", "two"])) == "one\n\ntwo"
    assert extract_text("a.docx", docx_text(["first", "second"])) == "first\nsecond"
    assert extract_text("a.txt", b"x" * 1000, ParseLimits(max_characters=1000)) == "x" * 1000


def test_a_corrupt_docx_is_unreadable_not_too_large() -> None:
    with pytest.raises(ExtractError, match="corrupt") as error:
        extract_text("a.docx", b"PK\x03\x04 not really a zip")
    assert not isinstance(error.value, TooLarge)
