"""File references in ``POST /v1/workflows/run``: ``file``/``file-list`` inputs and ``files`` (-> ``sys.files``),
checked before the run exists with Dify's messages; file dicts in inputs echoes, outputs and events."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.files.conftest import assert_error, new_app, upload
from tests.support.http_target import HttpTarget, Reply
from tests.workflows.conftest import AppUnderTest, sse_events

pytestmark = pytest.mark.usefixtures("files_worker")

FILES_APP = """
version: 0.1.5
kind: app
app: {name: Files, mode: workflow}
workflow:
  features:
    file_upload:
      enabled: true
      allowed_file_types: [document, image]
      allowed_file_extensions: []
      allowed_file_upload_methods: [local_file, remote_url]
      number_limits: 2
  graph:
    nodes:
      - id: start
        data:
          type: start
          title: Start
          variables:
            - {variable: doc, label: Doc, type: file, required: false, allowed_file_types: [document], allowed_file_upload_methods: [local_file, remote_url]}
            - {variable: docs, label: Docs, type: file-list, required: false, max_length: 3, allowed_file_types: [document], allowed_file_upload_methods: [local_file]}
            - {variable: archive, label: Archive, type: file, required: false, allowed_file_types: [custom], allowed_file_extensions: [.ZIP]}
      - id: end
        data:
          type: end
          title: End
          outputs:
            - {variable: doc, value_selector: [start, doc]}
            - {variable: docs, value_selector: [start, docs]}
            - {variable: files, value_selector: [sys, files]}
    edges:
      - {id: e1, source: start, target: end}
"""


async def run(
    client: AsyncTestClient[Litestar],
    app: AppUnderTest,
    inputs: dict[str, Any],
    files: list[Any] | None = None,
    user: str = "alice",
    mode: str = "blocking",
) -> Any:
    body: dict[str, Any] = {"inputs": inputs, "user": user, "response_mode": mode}
    if files is not None:
        body["files"] = files
    return await client.post("/v1/workflows/run", json=body, headers=app.headers)


def local(file_id: str, kind: str | None = "document") -> dict[str, Any]:
    mapping = {"transfer_method": "local_file", "upload_file_id": file_id}
    return {**mapping, "type": kind} if kind is not None else mapping


async def test_a_local_file_becomes_a_file_dict_everywhere(client: AsyncTestClient[Litestar]) -> None:
    app = await new_app(client, FILES_APP)
    uploaded = (await upload(client, app, "notes.txt", b"hello", "text/plain")).json()
    response = await run(client, app, {"doc": local(uploaded["id"])}, files=[local(uploaded["id"])])
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["status"] == "succeeded", data
    doc = data["outputs"]["doc"]
    assert set(doc) == {
        "dify_model_identity", "id", "tenant_id", "type", "transfer_method", "remote_url", "related_id",
        "filename", "extension", "mime_type", "size", "url",
    }  # fmt: skip
    assert doc["dify_model_identity"] == "__dify__file__"
    assert doc["related_id"] == uploaded["id"]
    assert (doc["type"], doc["transfer_method"], doc["filename"], doc["extension"], doc["size"]) == (
        "document",
        "local_file",
        "notes.txt",
        ".txt",
        5,
    )
    assert doc["tenant_id"] == uploaded["tenant_id"]
    assert doc["mime_type"] == "text/plain"
    assert doc["url"].startswith(f"http://files.test/files/{uploaded['id']}/file-preview?")
    assert data["outputs"]["files"][0]["related_id"] == uploaded["id"]  # sys.files
    assert data["inputs"]["doc"]["related_id"] == uploaded["id"]  # the inputs echo
    # ... and the stream's events carry the same dicts
    streamed = await run(client, app, {"doc": local(uploaded["id"])}, mode="streaming")
    events = [e for _, e in sse_events(streamed.text)]
    started = next(e for e in events if e["event"] == "workflow_started")
    assert started["data"]["inputs"]["doc"]["filename"] == "notes.txt"
    finished = next(e for e in events if e["event"] == "workflow_finished")
    assert finished["data"]["outputs"]["doc"]["related_id"] == uploaded["id"]


async def test_another_users_upload_is_invalid(client: AsyncTestClient[Litestar]) -> None:
    app, other_app = await new_app(client, FILES_APP), await new_app(client, FILES_APP)
    bobs = (await upload(client, app, "bob.txt", b"b", user="bob")).json()["id"]
    other_apps = (await upload(client, other_app, "alice.txt", b"a", user="alice")).json()["id"]
    for file_id in (bobs, other_apps, str(uuid.uuid4())):
        assert_error(
            await run(client, app, {"doc": local(file_id)}), 400, "invalid_param", "Invalid upload file"
        )
        assert_error(
            await run(client, app, {}, files=[local(file_id)]), 400, "invalid_param", "Invalid upload file"
        )
    # the owner may
    assert (await run(client, app, {"doc": local(bobs)}, user="bob")).json()["data"]["status"] == "succeeded"


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"doc": "not a file"}, "doc: must be a file"),
        ({"doc": {}}, "transfer_method is required in file mapping"),
        ({"doc": {"transfer_method": "pigeon"}}, "'pigeon' is not a valid FileTransferMethod"),
        ({"doc": {"transfer_method": "local_file"}}, "Invalid upload file id"),
        (
            {"doc": {"transfer_method": "local_file", "upload_file_id": "nope"}},
            "Invalid upload file id format",
        ),
        ({"doc": {"transfer_method": "remote_url", "type": "document"}}, "Invalid file url"),
        ({"doc": {"transfer_method": "remote_url", "url": "ftp://x/a.txt"}}, "Invalid file url"),
        ({"docs": "x"}, "docs: must be a list of files"),
        ({"docs": ["x"]}, "docs: must be a list of files"),
        ({"docs": [{}, {}, {}, {}]}, "docs: must be less than 3 files"),
    ],
)
async def test_bad_file_inputs_are_400_before_the_run(
    client: AsyncTestClient[Litestar], inputs: dict[str, Any], message: str
) -> None:
    app = await new_app(client, FILES_APP)
    assert_error(await run(client, app, inputs), 400, "invalid_param", message)
    logs = (await client.get("/v1/workflows/logs", headers=app.headers)).json()
    assert logs["total"] == 0  # no run was created


async def test_remote_urls_go_through_the_ssrf_guard(client: AsyncTestClient[Litestar]) -> None:
    """A remote file is probed through the guarded client: loopback is refused (nothing is sent there); a host
    on a network the operator allows is probed for its name and type."""
    app = await new_app(client, FILES_APP)
    with HttpTarget("127.0.0.1") as refused, HttpTarget("127.0.0.2") as allowed:
        allowed.route(
            "/report.txt", lambda _: Reply(headers=[("Content-Type", "text/plain")], body=b"remote text")
        )
        blocked = {"transfer_method": "remote_url", "url": refused.url("/a.txt"), "type": "document"}
        response = await run(client, app, {"doc": blocked})
        assert_error(response, 400, "invalid_param")
        assert "blocked by SSRF protection" in response.json()["message"]
        assert refused.requests == []
        good = {"transfer_method": "remote_url", "url": allowed.url("/report.txt"), "type": "document"}
        data = (await run(client, app, {"doc": good})).json()["data"]
        assert data["status"] == "succeeded", data
        assert data["outputs"]["doc"]["filename"] == "report.txt"
        assert data["outputs"]["doc"]["remote_url"] == allowed.url("/report.txt")
        assert [r.method for r in allowed.requests] == ["HEAD"]


async def test_allowed_types_extensions_and_methods(client: AsyncTestClient[Litestar]) -> None:
    app = await new_app(client, FILES_APP)
    image = (await upload(client, app, "a.png", b"png", "image/png")).json()["id"]
    text = (await upload(client, app, "a.txt", b"txt")).json()["id"]
    archive = (await upload(client, app, "a.zip", b"zip", "application/zip")).json()["id"]
    rar = (await upload(client, app, "a.rar", b"rar", "application/x-rar")).json()["id"]
    failed = "File validation failed for file: {}"
    assert_error(
        await run(client, app, {"doc": local(image, "image")}), 400, "invalid_param", failed.format("a.png")
    )
    # Dify reads a mapping without a type as "custom": not a document
    assert_error(
        await run(client, app, {"doc": local(text, None)}), 400, "invalid_param", failed.format("a.txt")
    )
    ok = await run(client, app, {"archive": local(archive, None)})
    assert ok.json()["data"]["status"] == "succeeded", ok.text
    assert_error(
        await run(client, app, {"archive": local(rar, None)}), 400, "invalid_param", failed.format("a.rar")
    )
    # the given type wins over the detected one
    typed = await run(client, app, {"doc": local(image, "document")})
    assert typed.json()["data"]["outputs"]["doc"]["type"] == "document"
    assert_error(
        await run(client, app, {"doc": local(text, "blob")}),
        400,
        "invalid_param",
        "'blob' is not a valid FileType",
    )


async def test_file_lists_skip_incomplete_mappings(client: AsyncTestClient[Litestar]) -> None:
    app = await new_app(client, FILES_APP)
    text = (await upload(client, app, "a.txt", b"txt")).json()["id"]
    docs = [{"type": "document"}, {"transfer_method": "remote_url", "type": "document"}, local(text)]
    response = await run(client, app, {"docs": docs})
    outputs = response.json()["data"]["outputs"]
    assert [f["filename"] for f in outputs["docs"]] == ["a.txt"]


async def test_optional_file_may_be_an_empty_string(client: AsyncTestClient[Litestar]) -> None:
    app = await new_app(client, FILES_APP)
    response = await run(client, app, {"doc": "", "docs": []})
    assert response.json()["data"]["outputs"] == {"doc": None, "docs": [], "files": []}


async def test_sys_files_follow_features_file_upload(client: AsyncTestClient[Litestar]) -> None:
    app = await new_app(client, FILES_APP)
    ids = [(await upload(client, app, f"{n}.txt", b"t")).json()["id"] for n in "abc"]
    images = [(await upload(client, app, f"{n}.png", b"p", "image/png")).json()["id"] for n in "abc"]
    assert_error(
        await run(client, app, {}, files=[local(i) for i in ids]),
        400,
        "invalid_param",
        "Number of files exceeds the maximum limit 2",
    )
    assert_error(
        await run(client, app, {}, files=[local(i, "image") for i in images]),
        400,
        "invalid_param",
        "Number of image files exceeds the maximum limit 2",
    )
    zipped = (await upload(client, app, "a.zip", b"z", "application/zip")).json()["id"]
    assert_error(
        await run(client, app, {}, files=[local(zipped, "custom")]),
        400,
        "invalid_param",
        "File validation failed for file: a.zip",
    )
    ok = await run(client, app, {}, files=[local(ids[0]), {"type": "image"}, local(images[0], "image")])
    assert [f["type"] for f in ok.json()["data"]["outputs"]["files"]] == ["document", "image"]


async def test_without_file_upload_feature_any_file_goes_to_sys_files(
    client: AsyncTestClient[Litestar],
) -> None:
    app = await new_app(client)  # no features.file_upload
    ids = [
        (await upload(client, app, f"{n}.bin", b"b", "application/octet-stream")).json()["id"] for n in "abcd"
    ]
    response = await run(client, app, {}, files=[local(i, None) for i in ids])
    files = response.json()["data"]["outputs"]["files"]
    assert [f["filename"] for f in files] == ["a.bin", "b.bin", "c.bin", "d.bin"]
    assert {f["type"] for f in files} == {"custom"}


async def test_too_many_mappings_are_refused(client: AsyncTestClient[Litestar]) -> None:
    app = await new_app(client)
    response = await run(client, app, {}, files=[{"transfer_method": "local_file"}] * 1001)
    assert_error(response, 400, "invalid_param", "Too many files in one request (at most 1000).")
