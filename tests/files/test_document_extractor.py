"""The ``document-extractor`` node in real runs (API + worker) on uploads built here: txt, md, pdf, docx, csv,
xlsx; lists, unset files, unsupported and corrupt files (readable node errors)."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.files import fixtures
from tests.files.conftest import new_app, upload
from tests.support.http_target import HttpTarget, Reply
from tests.workflows.conftest import AppUnderTest

pytestmark = pytest.mark.usefixtures("files_worker")

EXTRACTOR_APP = """
version: 0.1.5
kind: app
app: {name: Extract, mode: workflow}
workflow:
  graph:
    nodes:
      - id: start
        data:
          type: start
          title: Start
          variables:
            - {variable: doc, label: Doc, type: file, required: false, allowed_file_types: [document, custom], allowed_file_extensions: [.zip, .bin, .xls]}
            - {variable: docs, label: Docs, type: file-list, required: false, max_length: 10, allowed_file_types: [document]}
      - id: one
        data: {type: document-extractor, title: One, variable_selector: [start, doc], is_array_file: false}
      - id: many
        data: {type: document-extractor, title: Many, variable_selector: [start, docs], is_array_file: true}
      - id: end
        data:
          type: end
          title: End
          outputs:
            - {variable: text, value_selector: [one, text]}
            - {variable: texts, value_selector: [many, text]}
    edges:
      - {id: e1, source: start, target: one}
      - {id: e2, source: one, target: many}
      - {id: e3, source: many, target: end}
"""

MIME = {
    "txt": "text/plain",
    "md": "text/markdown",
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


async def put(
    client: AsyncTestClient[Litestar], app: AppUnderTest, name: str, content: bytes
) -> dict[str, Any]:
    mime = MIME.get(name.rsplit(".", 1)[-1], "application/octet-stream")
    response = await upload(client, app, name, content, mime)
    assert response.status_code == 201, response.text
    file_id = response.json()["id"]
    return {"transfer_method": "local_file", "upload_file_id": file_id, "type": "document"}


async def run(client: AsyncTestClient[Litestar], app: AppUnderTest, inputs: dict[str, Any]) -> dict[str, Any]:
    body = {"inputs": inputs, "user": "alice", "response_mode": "blocking"}
    response = await client.post("/v1/workflows/run", json=body, headers=app.headers)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def test_every_supported_type(client: AsyncTestClient[Litestar]) -> None:
    app = await new_app(client, EXTRACTOR_APP)
    documents = [
        ("a.txt", "plain text, café".encode("cp1252"), "plain text, café"),
        ("b.md", b"# Title\n\n<b>kept</b>\n", "# Title\n\n<b>kept</b>\n"),
        ("c.pdf", fixtures.pdf("Hello PDF", "Second page"), None),
        ("d.docx", fixtures.docx(), fixtures.DOCX_TEXT),
        ("e.csv", fixtures.CSV, fixtures.CSV_TEXT),
        ("f.xlsx", fixtures.xlsx(), fixtures.XLSX_TEXT),
    ]
    mappings = [await put(client, app, name, content) for name, content, _ in documents]
    data = await run(client, app, {"docs": mappings, "doc": mappings[0]})
    assert data["status"] == "succeeded", data
    texts = data["outputs"]["texts"]
    assert isinstance(texts, list)
    assert len(texts) == len(documents)
    for (name, _, expected), text in zip(documents, texts, strict=True):
        if expected is not None:
            assert text == expected, name
    assert "Hello PDF" in texts[2]
    assert "Second page" in texts[2]
    assert data["outputs"]["text"] == "plain text, café"  # a single file gives a string


async def test_unset_file_gives_an_empty_list(client: AsyncTestClient[Litestar]) -> None:
    app = await new_app(client, EXTRACTOR_APP)
    data = await run(client, app, {})
    assert data["status"] == "succeeded"
    assert data["outputs"] == {"text": [], "texts": []}


async def node_error(client: AsyncTestClient[Litestar], app: AppUnderTest, run_id: str) -> dict[str, Any]:
    import msgspec

    from tests.workflows.conftest import sse_events

    events = await client.get(f"/v1/workflow/{run_id}/events", headers=app.headers)
    finished = [e for _, e in sse_events(events.text) if e["event"] == "node_finished"]
    failed = [e["data"] for e in finished if e["data"]["status"] == "failed"]
    assert failed, msgspec.json.encode(finished)
    return failed[0]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("broken.pdf", b"%PDF-1.4 this is not really a pdf", "Failed to extract text from PDF: "),
        ("broken.docx", b"PK\x03\x04 not a zip", "Failed to extract text from DOCX: "),
        ("broken.xlsx", b"garbage", "Failed to extract text from Excel file: "),
        ("data.zip", b"PK", "Unsupported Extension Type: .zip"),
        ("old.xls", b"\xd0\xcf\x11\xe0", "Unsupported Extension Type: .xls"),
    ],
)
async def test_bad_files_fail_the_node_readably(
    client: AsyncTestClient[Litestar], name: str, content: bytes, message: str
) -> None:
    app = await new_app(client, EXTRACTOR_APP)
    mapping = await put(client, app, name, content)
    mapping["type"] = "custom" if name.endswith((".zip", ".xls")) else "document"
    data = await run(client, app, {"doc": mapping})
    assert data["status"] == "failed"
    assert data["error"].startswith('Node "One" run failed: ' + message), data["error"]
    node = await node_error(client, app, data["id"])
    assert node["node_id"] == "one"
    assert node["error"].startswith(message)


async def test_a_docx_bomb_is_refused_quickly(client: AsyncTestClient[Litestar]) -> None:
    """1.5 M empty paragraphs in a ~50 KB DOCX: python-docx would take > 30 s and ~1.8 GB."""
    import io
    import time
    import zipfile

    good = fixtures.docx()
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "word/document.xml":
                data = data.replace(b"<w:body>", b"<w:body>" + b"<w:p/>" * 1_500_000, 1)
            zout.writestr(item, data)
    bomb = out.getvalue()
    assert len(bomb) < 100_000
    app = await new_app(client, EXTRACTOR_APP)
    mapping = await put(client, app, "bomb.docx", bomb)
    started = time.monotonic()
    data = await run(client, app, {"doc": mapping})
    assert time.monotonic() - started < 10
    assert data["status"] == "failed"
    assert "more than 200000 paragraphs" in data["error"]


FORGED_APP = """
version: 0.1.5
kind: app
app: {name: Forged, mode: workflow}
workflow:
  graph:
    nodes:
      - id: start
        data: {type: start, title: Start, variables: [{variable: blob, label: Blob, type: json_object, required: true}]}
      - id: one
        data: {type: document-extractor, title: One, variable_selector: [start, blob]}
      - id: end
        data: {type: end, title: End, outputs: [{variable: text, value_selector: [one, text]}]}
    edges:
      - {id: e1, source: start, target: one}
      - {id: e2, source: one, target: end}
"""


async def test_a_forged_file_dict_cannot_reach_another_users_file(client: AsyncTestClient[Litestar]) -> None:
    """A file dict smuggled in through a JSON input is read only if the run's end user owns the file."""
    app = await new_app(client, FORGED_APP)
    bobs = (await upload(client, app, "bob.txt", b"bob's secret", user="bob")).json()
    forged = {
        "dify_model_identity": "__dify__file__", "type": "document", "transfer_method": "local_file",
        "related_id": bobs["id"], "filename": "bob.txt", "extension": ".txt", "mime_type": "text/plain",
    }  # fmt: skip
    body = {"inputs": {"blob": forged}, "user": "alice", "response_mode": "blocking"}
    data = (await client.post("/v1/workflows/run", json=body, headers=app.headers)).json()["data"]
    assert data["status"] == "failed", data
    assert "Error downloading file: Upload file" in data["error"], data
    body["user"] = "bob"
    data = (await client.post("/v1/workflows/run", json=body, headers=app.headers)).json()["data"]
    assert data["status"] == "succeeded"
    assert data["outputs"] == {"text": "bob's secret"}


async def test_node_files_belong_to_the_run(client: AsyncTestClient[Litestar], files_settings: Any) -> None:
    """``FilePort.save`` stores a tool file of the run's app and end user; it previews under the app and is
    readable by runs of that user only."""
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    from app.files.ports import DatabaseFiles
    from app.files.remote import remote_files
    from app.files.signing import FileSigner
    from app.workflows.engine.nodes.base import RunInfo
    from db import urls

    app = await new_app(client, EXTRACTOR_APP)
    run_id = (await run(client, app, {}))["id"]
    engine = create_async_engine(urls.asyncpg(files_settings.database_url))
    try:
        port = DatabaseFiles(
            async_sessionmaker(engine, expire_on_commit=False),
            FileSigner.of(files_settings),
            remote=remote_files(files_settings),
        )
        run_info = RunInfo(run_id=run_id, app_id=app.app_id, workflow_id="w", user_id="alice")
        saved = await port.save(
            run_info, filename="../out/report.txt", mime_type="text/plain", content=b"made"
        )
        assert saved["transfer_method"] == "tool_file"
        assert saved["filename"] == ".._out_report.txt"
        assert saved["url"].startswith("http://files.test/files/")
        assert saved["type"] == "document"
        assert await port.read(run_info, saved, max_bytes=100) == b"made"
        with pytest.raises(Exception, match="larger than"):
            await port.read(run_info, saved, max_bytes=3)
        stranger = RunInfo(run_id=run_id, app_id=app.app_id, workflow_id="w", user_id="mallory")
        with pytest.raises(Exception, match="not found"):
            await port.read(stranger, saved, max_bytes=100)
        with pytest.raises(Exception, match="blocked by SSRF protection"):
            await port.read(
                run_info, {"transfer_method": "remote_url", "remote_url": "http://127.0.0.1:9/x"}, max_bytes=9
            )
    finally:
        await engine.dispose()
    preview = await client.get(f"/v1/files/{saved['related_id']}/preview", headers=app.headers)
    assert preview.status_code == 200
    assert preview.content == b"made"
    # a run of its user may reference it as a tool file
    mapping = {"transfer_method": "tool_file", "tool_file_id": saved["related_id"], "type": "document"}
    body = {"inputs": {"doc": mapping}, "user": "alice", "response_mode": "blocking"}
    data = (await client.post("/v1/workflows/run", json=body, headers=app.headers)).json()["data"]
    assert data["status"] == "succeeded", data
    assert data["outputs"]["text"] == "made", data


async def test_a_remote_file_is_fetched_through_the_guard_and_extracted(
    client: AsyncTestClient[Litestar],
) -> None:
    app = await new_app(client, EXTRACTOR_APP)
    with HttpTarget("127.0.0.2") as host:
        host.route("/notes.txt", lambda _: Reply(headers=[("Content-Type", "text/plain")], body=b"from afar"))
        mapping = {"transfer_method": "remote_url", "url": host.url("/notes.txt"), "type": "document"}
        body = {"inputs": {"doc": mapping}, "user": "alice", "response_mode": "blocking"}
        data = (await client.post("/v1/workflows/run", json=body, headers=app.headers)).json()["data"]
        assert data["status"] == "succeeded", data
        assert data["outputs"]["text"] == "from afar"
        assert [r.method for r in host.requests] == ["HEAD", "GET"]  # probed by the API, read by the worker
