"""The pure pieces: Dify's text extraction by extension and MIME type, type detection and upload policy, link
signing, and the ``document-extractor`` node against in-memory ports (its own error messages)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.files import policy, tables
from app.files.documents import SandboxDocuments
from app.files.signing import FileSigner
from app.files.text_extraction import extract_or_error, extract_text
from app.sandbox.client import Sandbox, SandboxConfig
from app.settings import Settings
from app.workflows.engine.errors import NodeRunError
from app.workflows.engine.nodes.base import Ports, RunInfo
from tests.files import fixtures
from tests.workflows.engine.helpers import edge, graph, node, run_graph


def text_of(content: bytes, extension: str | None, mime: str | None = None) -> dict[str, Any]:
    return extract_or_error(content, extension, mime, 1_000_000)


def test_plain_json_yaml_properties() -> None:
    assert text_of(b"<p>not stripped</p>", ".html") == {"text": "<p>not stripped</p>"}
    assert text_of(b"print('x')", ".py") == {"text": "print('x')"}
    assert text_of('{"a":[1,"é"]}'.encode(), ".json") == {"text": '{\n  "a": [\n    1,\n    "é"\n  ]\n}'}
    assert text_of(b"b: 1\na: [x]\n---\nc: 2\n", ".yaml") == {"text": "b: 1\na:\n- x\n---\nc: 2\n"}
    assert text_of(b"# c\nkey = value\nother: 2\nbare\n", ".properties") == {
        "text": "# c\nkey: value\nother: 2\nbare: "
    }
    assert text_of(b"\x00\x01binary\xff", ".txt") == {"text": "\x00\x01binary"}


def test_type_by_extension_then_mime() -> None:
    assert text_of(b"a,b\n1,2\n", None, "text/csv") == {"text": "| a | b |\n| - | - |\n| 1 | 2 |\n"}
    assert text_of(b"x", ".PDF", "text/plain")["error"].startswith("Failed to extract text from PDF")
    assert text_of(b"x", ".pptx") == {
        "error": "Unsupported Extension Type: .pptx",
        "error_type": "UnsupportedFileTypeError",
    }
    assert text_of(b"x", None, "video/mp4") == {
        "error": "Unsupported MIME type: video/mp4",
        "error_type": "UnsupportedFileTypeError",
    }
    assert (
        text_of(b"x", None, None)["error"]
        == "Unable to determine file type: MIME type or file extension is missing"
    )


def test_hostile_documents_are_errors_not_crashes() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    assert text_of(deep, ".json")["error"].startswith("Failed to decode or parse JSON file")
    assert text_of(b"a: [" * 10_000, ".yaml")["error"].startswith("Failed to decode or parse YAML file")
    huge_field = b'"' + b"x" * 200_000 + b'"\n'
    assert text_of(huge_field, ".csv")["error"].startswith("Failed to extract text from CSV: field larger")
    long_text = extract_or_error(b"x" * 101, ".txt", None, 100)
    assert long_text == {
        "error": "The extracted text is longer than 100 characters.",
        "error_type": "TextExtractionError",
    }


def test_zip_bombs_are_refused_before_parsing() -> None:
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/big.xml", b"\x00" * (210 * 1024 * 1024))
    result = text_of(out.getvalue(), ".xlsx")
    assert "unpacks to more than 200 MB" in result["error"]


def test_excel_cell_budget() -> None:
    with pytest.raises(tables.TableError, match="too many cells"):
        tables.excel_markdown(fixtures.xlsx(), max_cells=3, max_unpacked=10**9)


def test_pdf_pages_are_concatenated() -> None:
    assert extract_text(fixtures.pdf("one", "two"), ".pdf", None) == "onetwo"


def test_policy() -> None:
    s = Settings()
    assert policy.size_limit(s, "PNG") == 10 * policy.MB
    assert policy.size_limit(s, "mov") == 100 * policy.MB
    assert policy.size_limit(s, "wav") == 50 * policy.MB
    assert policy.size_limit(s, "pdf") == 15 * policy.MB
    assert policy.shorten("a" * 300 + ".b.TXT") == "a" * 200 + ".txt"
    assert policy.shorten("a" * 300) == "a" * 200
    assert policy.detect_type(extension=".pdf") == "document"
    assert policy.detect_type(extension="JPG") == "image"
    assert policy.detect_type(extension=".Jpg") == "custom"
    assert policy.detect_type(extension=".xyz", mime_type="audio/ogg") == "audio"
    assert policy.detect_type(mime_type="text/x-anything") == "document"
    assert policy.detect_type(extension=".zip", mime_type="application/zip") == "custom"
    assert policy.clean_mime_type("Text/Plain; charset=utf-8") == "text/plain"
    assert policy.clean_mime_type("text/html\r\nX-Evil: 1") == "application/octet-stream"


def test_settings_are_read() -> None:
    s = Settings.from_env(
        {
            "UPLOAD_IMAGE_FILE_SIZE_LIMIT": "3",
            "UPLOAD_VIDEO_FILE_SIZE_LIMIT": "7",
            "UPLOAD_AUDIO_FILE_SIZE_LIMIT": "5",
            "UPLOAD_FILE_EXTENSION_BLACKLIST": " EXE, .bat,,sh ",
            "FILES_ACCESS_TIMEOUT": "60",
            "FILES_URL": "https://files.example/",
        }
    )
    assert (
        s.upload_image_file_size_limit,
        s.upload_video_file_size_limit,
        s.upload_audio_file_size_limit,
    ) == (3, 7, 5)
    assert s.upload_file_extension_blacklist == {"exe", "bat", "sh"}
    assert s.files_access_timeout == 60
    assert s.files_url == "https://files.example"
    defaults = Settings.from_env({})
    assert defaults.upload_file_extension_blacklist == frozenset()
    assert defaults.files_access_timeout == 300
    from app.settings import SettingsError

    with pytest.raises(SettingsError, match="UPLOAD_VIDEO_FILE_SIZE_LIMIT"):
        Settings.from_env({"UPLOAD_VIDEO_FILE_SIZE_LIMIT": "0"})


def test_signing_round_trip() -> None:
    now = [1_000_000.0]
    signer = FileSigner("k", "http://h/", 300, clock=lambda: now[0])
    url = signer.url("f1", as_attachment=True)
    assert url.startswith("http://h/files/f1/file-preview?timestamp=1000000&")
    assert url.endswith("as_attachment=true")
    from urllib.parse import parse_qs, urlparse

    q = {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}
    assert signer.verify("f1", q["timestamp"], q["nonce"], q["sign"])
    assert not signer.verify("f2", q["timestamp"], q["nonce"], q["sign"])
    now[0] += 301
    assert not signer.verify("f1", q["timestamp"], q["nonce"], q["sign"])


# -- the node against in-memory ports ---------------------------------------------------------------------------


class MemoryFiles:
    def __init__(self, contents: dict[str, bytes]) -> None:
        self.contents = contents

    async def save(self, run: RunInfo, *, filename: str, mime_type: str, content: bytes) -> dict[str, Any]:
        raise NotImplementedError

    async def read(self, run: RunInfo, file: Any, *, max_bytes: int) -> bytes:
        content = self.contents.get(file["related_id"])
        if content is None:
            raise LookupError(f"Upload file {file['related_id']} not found")
        return content


def file(related_id: str, extension: str | None = ".txt") -> dict[str, Any]:
    return {
        "dify_model_identity": "__dify__file__", "type": "document", "transfer_method": "local_file",
        "related_id": related_id, "filename": f"{related_id}{extension or ''}", "extension": extension,
        "mime_type": "text/plain", "size": 1,
    }  # fmt: skip


@pytest.fixture(scope="module")
async def sandbox() -> AsyncIterator[Sandbox]:
    box = Sandbox(SandboxConfig(timeout=10.0))
    await box.start()
    assert box.refused is None, box.describe()
    yield box
    await box.close()


async def run_extractor(
    sandbox: Sandbox, value: Any, contents: dict[str, bytes] | None = None, selector: Any = None
) -> Any:
    g = graph(
        [
            node("start", "start", variables=[]),
            node("x", "document-extractor", variable_selector=selector or ["src", "v"]),
            node("end", "end", outputs=[{"variable": "text", "value_selector": ["x", "text"]}]),
        ],
        [edge("start", "x"), edge("x", "end")],
    )
    ports = Ports(
        files=MemoryFiles(contents or {}),
        documents=SandboxDocuments(sandbox, max_input_bytes=1000, max_output_chars=1000),
    )
    outcome, recorder, _ = await run_graph(g, ports=ports, pools={"src": {"v": value}})
    return outcome, recorder


async def test_node_outputs_and_errors(sandbox: Sandbox) -> None:
    outcome, _ = await run_extractor(sandbox, file("a"), {"a": b"alpha"})
    assert outcome.status == "succeeded"
    assert outcome.outputs == {"text": "alpha"}
    outcome, recorder = await run_extractor(
        sandbox, [file("a"), None, file("b")], {"a": b"alpha", "b": b"beta"}
    )
    assert outcome.outputs == {"text": ["alpha", "beta"]}
    result = recorder.finished[1].result
    assert result is not None
    assert [d["related_id"] for d in result.process_data["documents"]] == ["a", "b"]
    assert result.inputs == {"variable_selector": ["src", "v"]}
    outcome, _ = await run_extractor(sandbox, [])
    assert outcome.outputs == {"text": []}
    outcome, _ = await run_extractor(sandbox, None, selector=["src", "missing"])
    assert outcome.error == "Node \"x\" run failed: File variable not found for selector: ['src', 'missing']"
    outcome, _ = await run_extractor(sandbox, "just text")
    assert outcome.error == "Node \"x\" run failed: Variable ['src', 'v'] is not an ArrayFileSegment"
    outcome, _ = await run_extractor(sandbox, file("gone"))
    assert outcome.error == 'Node "x" run failed: Error downloading file: Upload file gone not found'
    outcome, _ = await run_extractor(sandbox, file("big"), {"big": b"x" * 1001})
    assert outcome.error is not None
    assert "larger than" in outcome.error
    outcome, _ = await run_extractor(sandbox, file("a", ".exe"), {"a": b"MZ"})
    assert outcome.error == 'Node "x" run failed: Unsupported Extension Type: .exe'


async def test_parsing_runs_confined_with_a_time_limit(sandbox: Sandbox) -> None:
    """A slow parse (a big spreadsheet) is killed at the port's time limit; the worker is not held up."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in range(20_000):
        sheet.append([row, f"name {row}", row * 1.5, "x" * 20])
    buffer = io.BytesIO()
    book.save(buffer)
    slow = SandboxDocuments(
        sandbox, max_input_bytes=50 * 1024 * 1024, max_output_chars=50_000_000, timeout_seconds=0.3
    )
    with pytest.raises(NodeRunError, match="timeout") as caught:
        await slow.extract(content=buffer.getvalue(), extension=".xlsx", mime_type=None)
    assert caught.value.error_type == "TextExtractionError"
    fine = SandboxDocuments(sandbox, max_input_bytes=1000, max_output_chars=1000)
    assert await fine.extract(content=b"still serving", extension=".txt", mime_type=None) == "still serving"


def test_all_numeric_sheets_render_like_pandas_iterrows() -> None:
    """Checked against pandas 3.1: an all-number frame with one float column prints every cell as a float; a
    datetime row prints its gaps as NaT; repeated header values are renamed ``a.1`` (and ``True`` repeats 1)."""
    import datetime

    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    for row in (["a", "b"], [1, 1.5], [2, 3]):
        sheet.append(row)
    other = book.create_sheet("two")
    for row in ([1, True, "x"], [datetime.datetime(2024, 1, 1), None, None], ["s", 2, "t"]):
        other.append(row)
    out = io.BytesIO()
    book.save(out)
    text = tables.excel_markdown(out.getvalue(), max_cells=100, max_unpacked=10**8)
    assert text == (
        "| a | b |\n| - | - |\n| 1.0 | 1.5 |\n| 2.0 | 3.0 |\n\n"
        "| 1 | True.1 | x |\n| - | ------ | - |\n| 2024-01-01 00:00:00 | NaT | NaT |\n| s | 2.0 | t |\n\n"
    )
