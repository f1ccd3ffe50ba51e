"""The http-request node's response rules on their own: file or text, file names and types, sizes."""

from __future__ import annotations

import pytest

from app.workflows.engine.nodes.http_request_response import (
    classify,
    decode_text,
    file_name_and_type,
    readable_size,
)


@pytest.mark.parametrize(
    ("headers", "sample", "is_file"),
    [
        ({"content-type": "text/plain"}, b"hello", False),
        ({"content-type": "text/html; charset=utf-8"}, b"<p>", False),
        (
            {"content-type": "text/csv"},
            b"a,b",
            False,
        ),  # skips the text/* shortcut, then its MIME guess says text
        ({"content-type": "application/json"}, b"\xff\xfe", False),
        ({"content-type": "application/problem+json"}, b"{}", False),
        ({"content-type": "application/xml"}, b"<a/>", False),
        ({"content-type": "application/javascript"}, b"x", False),
        ({"content-type": "application/x-www-form-urlencoded"}, b"a=b", False),
        ({"content-type": "application/x-yaml"}, b"a: b", False),
        ({"content-type": "application/graphql"}, b"{ a }", False),
        ({"content-type": "application/octet-stream"}, b'{"looks": "like json"}', False),
        ({"content-type": "application/octet-stream"}, b"function f() {}", False),
        ({"content-type": "application/octet-stream"}, b"plain words", True),
        ({"content-type": "application/octet-stream"}, b"\x89PNG\r\n\x1a\n", True),
        ({"content-type": "application/pdf"}, b"%PDF-1.7", True),
        ({"content-type": "image/png"}, b"\x89PNG", True),
        ({"content-type": "audio/mpeg"}, b"ID3", True),
        ({"content-type": "video/mp4"}, b"\0\0\0", True),
        ({"content-type": "image/x-unknown-thing"}, b"", True),
        ({"content-type": "application/x-unknown-thing"}, b"\xff", False),  # Dify: no guess, not a file
        ({}, b"anything", False),
        ({"content-type": "text/plain", "content-disposition": "attachment"}, b"x", True),
        ({"content-type": "text/plain", "content-disposition": 'inline; filename="a.txt"'}, b"x", True),
        ({"content-type": "application/json", "content-disposition": "inline"}, b"{}", False),
    ],
)
def test_classification(headers: dict[str, str], sample: bytes, is_file: bool) -> None:
    assert classify(headers, sample) is is_file


def test_file_names_and_types() -> None:
    assert file_name_and_type("http://h/x/report.pdf?a=1", {"content-type": "application/pdf"}) == (
        "report.pdf",
        "application/pdf",
    )
    assert file_name_and_type(
        "http://h/download",
        {"content-type": "application/octet-stream", "content-disposition": 'attachment; filename="d.csv"'},
    ) == ("d.csv", "text/csv")
    assert file_name_and_type(
        "http://h/download", {"content-disposition": "attachment; filename*=UTF-8''na%C3%AFve%20file.txt"}
    ) == ("naïve file.txt", "text/plain")
    assert file_name_and_type("http://h/x", {"content-type": "image/png; q=1"}) == ("file.png", "image/png")
    assert file_name_and_type("http://h/a.mp3", {}) == ("a.mp3", "audio/mpeg")
    assert file_name_and_type("http://h/", {}) == ("file.bin", "application/octet-stream")
    name, _ = file_name_and_type(
        "http://h/", {"content-disposition": 'attachment; filename="../../etc/passwd"'}
    )
    assert name == "passwd"


def test_text_decoding_and_sizes() -> None:
    assert decode_text("é".encode("latin-1"), "text/plain; charset=latin-1") == "é"
    assert decode_text("é".encode(), "text/plain; charset=bogus-charset") == "é"
    assert decode_text(b"\xff\xfe\xfa" * 3, "") != ""
    assert [readable_size(n) for n in (10, 2048, 3 * 1024 * 1024 // 2)] == ["10 bytes", "2.00 KB", "1.50 MB"]
