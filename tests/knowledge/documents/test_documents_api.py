"""The documents API (dataset key): create from text and files, update, list, detail, delete, status actions,
pause/resume/retry, indexing status, workspace isolation; and the dataset fields and PATCH it relies on.

A private database of the module and no worker: documents stay ``waiting`` and their ``index_document`` jobs stay
queued, so what the API wrote is what the tests see. ``UPLOAD_FILE_SIZE_LIMIT`` is 1 MB here.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.settings import Settings
from db.models import (
    ChildChunk,
    Dataset,
    DatasetMetadata,
    Document,
    Segment,
    Tag,
    UploadFile,
    tag_bindings,
)
from tests.conftest import ADMIN_TOKEN, SECRET_KEY, Tenant, make_tenant
from tests.knowledge.api_helpers import assert_error

MB = 1024 * 1024
DOCUMENT_FIELDS = {
    "id", "position", "data_source_type", "data_source_info", "data_source_detail_dict",
    "dataset_process_rule_id", "name", "created_from", "created_by", "created_at", "tokens", "indexing_status",
    "error", "enabled", "disabled_at", "disabled_by", "archived", "display_status", "word_count", "hit_count",
    "doc_form", "doc_metadata", "summary_index_status", "need_summary",
}  # fmt: skip
DETAIL_FIELDS = {
    "id", "position", "data_source_type", "data_source_info", "dataset_process_rule_id", "dataset_process_rule",
    "document_process_rule", "name", "created_from", "created_by", "created_at", "tokens", "indexing_status",
    "completed_at", "updated_at", "indexing_latency", "error", "enabled", "disabled_at", "disabled_by",
    "archived", "doc_type", "doc_metadata", "segment_count", "average_segment_length", "hit_count",
    "display_status", "doc_form", "doc_language", "summary_index_status", "need_summary",
}  # fmt: skip
STATUS_FIELDS = {
    "id", "indexing_status", "processing_started_at", "parsing_completed_at", "cleaning_completed_at",
    "splitting_completed_at", "completed_at", "paused_at", "error", "stopped_at", "completed_segments",
    "total_segments",
}  # fmt: skip
DATASET_FIELDS = {
    "id", "name", "description", "provider", "permission", "data_source_type", "indexing_technique",
    "app_count", "document_count", "word_count", "created_by", "author_name", "created_at", "updated_by",
    "updated_at", "embedding_model", "embedding_model_provider", "embedding_available", "retrieval_model_dict",
    "summary_index_setting", "tags", "doc_form", "external_knowledge_info", "external_retrieval_model",
    "doc_metadata", "built_in_field_enabled", "pipeline_id", "runtime_mode", "chunk_structure", "icon_info",
    "is_published", "total_documents", "total_available_documents", "enable_api", "is_multimodal",
}  # fmt: skip
CUSTOM_RULE = {
    "mode": "custom",
    "rules": {
        "pre_processing_rules": [{"id": "remove_extra_spaces", "enabled": True}],
        "segmentation": {"separator": "\\n", "max_tokens": 300, "chunk_overlap": 20},
    },
}
HIERARCHICAL_RULE = {"mode": "hierarchical", "rules": {"parent_mode": "paragraph"}}


@pytest.fixture(scope="module")
def settings(kb_database: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The app's settings for this module: the private database (no worker on it) and a 1 MB upload limit."""
    return Settings(
        database_url=kb_database,
        data_dir=tmp_path_factory.mktemp("documents"),
        admin_token=ADMIN_TOKEN,
        secret_key=SECRET_KEY,
        log_level="WARNING",
        upload_file_size_limit=1,
    )


# -- helpers ---------------------------------------------------------------------------------------------------


async def new_dataset(client: AsyncTestClient[Litestar], tenant: Tenant, **body: Any) -> dict[str, Any]:
    created = await client.post(
        "/v1/datasets", json={"name": f"kb-{uuid.uuid4().hex[:8]}", **body}, headers=tenant.dataset_headers
    )
    assert created.status_code == 200, created.text  # Dify answers 200, not 201
    return dict(created.json())


async def create_text(
    client: AsyncTestClient[Litestar],
    tenant: Tenant,
    dataset_id: str,
    name: str = "notes",
    text: str = "Bikes need air.\nTrains need rails.",
    path: str = "create_by_text",
    **extra: Any,
) -> dict[str, Any]:
    body = {"name": name, "text": text, "indexing_technique": "economy", **extra}
    response = await client.post(
        f"/v1/datasets/{dataset_id}/document/{path}", json=body, headers=tenant.dataset_headers
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def upload(
    client: AsyncTestClient[Litestar],
    tenant: Tenant,
    url: str,
    files: Any = None,
    data: dict[str, Any] | str | None = None,
) -> Any:
    form = {"data": data if isinstance(data, str) else json.dumps(data)} if data is not None else None
    return await client.post(url, files=files, data=form, headers=tenant.dataset_headers)


async def jobs_of(session: AsyncSession, document_id: str) -> list[dict[str, Any]]:
    rows = await session.execute(
        text(
            "SELECT queue_name, args FROM procrastinate_jobs "
            "WHERE task_name = 'index_document' AND args->>'document_id' = :id ORDER BY id"
        ),
        {"id": document_id},
    )
    return [{"queue": queue, **args} for queue, args in rows]


async def file_content(session: AsyncSession, file_id: str) -> bytes | None:
    content: bytes | None = await session.scalar(
        select(UploadFile.content).where(UploadFile.id == uuid.UUID(file_id))
    )
    return content


async def set_document(session: AsyncSession, document_id: str, **values: Any) -> None:
    await session.execute(update(Document).where(Document.id == uuid.UUID(document_id)).values(**values))
    await session.commit()


async def add_segments(
    session: AsyncSession, document_id: str, statuses: list[str], hits: int = 0
) -> list[Segment]:
    document = await session.get_one(Document, uuid.UUID(document_id), populate_existing=True)
    segments = [
        Segment(
            dataset_id=document.dataset_id,
            document_id=document.id,
            position=position,
            content=f"segment {position}",
            word_count=9,
            tokens=2,
            keywords=[],
            content_hash=hashlib.sha256(f"segment {position}".encode()).digest(),
            hit_count=hits,
            status=status,
        )
        for position, status in enumerate(statuses, start=1)
    ]
    session.add_all(segments)
    await session.commit()
    return segments


# -- creating --------------------------------------------------------------------------------------------------


async def test_create_by_text_stores_a_txt_upload_and_defers_one_job(
    client: AsyncTestClient[Litestar], tenant: Tenant, kb_session: AsyncSession
) -> None:
    dataset = await new_dataset(client, tenant)
    assert dataset["indexing_technique"] is None
    assert dataset["document_count"] == 0

    created = await create_text(client, tenant, dataset["id"], indexing_technique="high_quality")
    assert set(created) == {"document", "batch"}
    assert re.fullmatch(r"\d{20}", created["batch"])
    document = created["document"]
    assert set(document) == DOCUMENT_FIELDS
    assert document["indexing_status"] == "waiting"
    assert document["display_status"] == "queuing"
    assert (document["name"], document["position"], document["doc_form"]) == ("notes", 1, "text_model")
    assert document["data_source_type"] == "upload_file"
    assert document["created_from"] == "api"
    assert isinstance(document["created_at"], int)
    assert document["doc_metadata"] == []
    file = document["data_source_detail_dict"]["upload_file"]
    assert document["data_source_info"] == {"upload_file_id": file["id"]}
    assert (file["name"], file["extension"], file["mime_type"]) == ("notes.txt", "txt", "text/plain")
    assert await file_content(kb_session, file["id"]) == b"Bikes need air.\nTrains need rails."
    assert file["size"] == len(b"Bikes need air.\nTrains need rails.")

    jobs = await jobs_of(kb_session, document["id"])
    assert jobs == [{"queue": "indexing", "document_id": document["id"], "generation": 1}]
    row = await kb_session.get_one(Document, uuid.UUID(document["id"]))
    assert row.process_rule == {
        "mode": "automatic",
        "rules": {
            "pre_processing_rules": [
                {"id": "remove_extra_spaces", "enabled": True},
                {"id": "remove_urls_emails", "enabled": False},
            ],
            "segmentation": {"separator": "\n", "max_tokens": 500, "chunk_overlap": 50},
        },
    }

    # The first document settled the dataset: technique, the default embedding model, doc_form.
    shown = (await client.get(f"/v1/datasets/{dataset['id']}", headers=tenant.dataset_headers)).json()
    assert shown["indexing_technique"] == "high_quality"
    assert shown["doc_form"] == "text_model"
    assert (shown["embedding_model_provider"], shown["embedding_model"]) == ("local", "multilingual-e5-small")
    assert shown["document_count"] == 1
    assert shown["data_source_type"] == "upload_file"

    # The hyphenated path is the same endpoint; positions follow; each call has its own batch.
    second = await create_text(client, tenant, dataset["id"], name="more", path="create-by-text")
    assert second["document"]["position"] == 2
    assert second["batch"] != created["batch"]


async def test_create_checks_technique_doc_form_and_process_rule(
    client: AsyncTestClient[Litestar], tenant: Tenant, kb_session: AsyncSession
) -> None:
    dataset = await new_dataset(client, tenant)
    url = f"/v1/datasets/{dataset['id']}/document/create_by_text"
    headers = tenant.dataset_headers

    async def refused(body: dict[str, Any], message: str | None = None) -> None:
        response = await client.post(url, json={"name": "n", "text": "t", **body}, headers=headers)
        assert_error(response, 400, "invalid_param")
        if message:
            assert message in response.json()["message"], response.json()

    await refused({}, "indexing_technique is required.")
    await refused({"indexing_technique": "economy", "doc_form": "qa_model"}, "qa_model is not supported")
    await refused({"indexing_technique": "economy", "doc_form": "paragraphs"}, "doc_form")
    await refused({"indexing_technique": "fast"}, "indexing_technique")
    await refused({"indexing_technique": "economy", "process_rule": {"mode": "magic"}}, "process_rule")
    custom_too_small = {"mode": "custom", "rules": {"segmentation": {"separator": "\n", "max_tokens": 10}}}
    await refused({"indexing_technique": "economy", "process_rule": custom_too_small}, "max_tokens")
    await refused({"indexing_technique": "economy", "process_rule": HIERARCHICAL_RULE}, "hierarchical")
    await refused({"indexing_technique": "economy", "process_rule": "automatic"}, "process_rule")
    await refused({"indexing_technique": "economy", "retrieval_model": {"top_k": 0}}, "top_k")
    # PostgreSQL text cannot hold NUL: refused at the edge, never a 500.
    await refused({"indexing_technique": "economy", "text": "a\x00b"}, "text")
    await refused({"indexing_technique": "economy", "name": "a\x00b"}, "name")
    await refused({"indexing_technique": "economy", "name": " "}, "name")
    nul_rule = {"mode": "custom", "rules": {"segmentation": {"separator": "\x00", "max_tokens": 100}}}
    await refused({"indexing_technique": "economy", "process_rule": nul_rule}, "NUL")
    bad_json = await client.post(url, content=b"{", headers={**headers, "content-type": "application/json"})
    assert_error(bad_json, 400, "invalid_param")
    assert (
        await kb_session.scalar(select(func.count()).where(Document.dataset_id == uuid.UUID(dataset["id"])))
    ) == 0

    # A custom rule is stored as given; a document without a rule takes the dataset's latest (Dify).
    first = await create_text(client, tenant, dataset["id"], process_rule=CUSTOM_RULE)
    second = await create_text(client, tenant, dataset["id"], name="second")
    for created in (first, second):
        row = await kb_session.get_one(Document, uuid.UUID(created["document"]["id"]), populate_existing=True)
        assert row.process_rule == CUSTOM_RULE
    # The dataset is text_model now: a hierarchical document does not fit it.
    await refused(
        {"doc_form": "hierarchical_model", "process_rule": HIERARCHICAL_RULE}, "doc_form is different"
    )

    hierarchical = await new_dataset(client, tenant, indexing_technique="economy")
    parent_child = await create_text(
        client, tenant, hierarchical["id"], doc_form="hierarchical_model", process_rule=HIERARCHICAL_RULE
    )
    assert parent_child["document"]["doc_form"] == "hierarchical_model"
    shown = (await client.get(f"/v1/datasets/{hierarchical['id']}", headers=headers)).json()
    assert shown["doc_form"] == "hierarchical_model"
    # Without doc_form, a document takes the dataset's.
    inherited = await create_text(client, tenant, hierarchical["id"], name="child")
    assert inherited["document"]["doc_form"] == "hierarchical_model"


async def test_create_by_file_with_real_markdown_and_csv(
    client: AsyncTestClient[Litestar], tenant: Tenant, kb_session: AsyncSession
) -> None:
    dataset = await new_dataset(client, tenant, indexing_technique="economy")
    markdown = b"# Bikes\n\nBikes need **air** in their tyres.\n\n## Trains\n\nTrains need rails.\n"
    csv = b"name,wheels\nbike,2\ntricycle,3\n"
    url = f"/v1/datasets/{dataset['id']}/document/create_by_file"

    created = await upload(
        client,
        tenant,
        url,
        files={"file": ("bikes.md", markdown, "text/markdown")},
        data={"process_rule": CUSTOM_RULE, "doc_language": "English"},
    )
    assert created.status_code == 200, created.text
    document = created.json()["document"]
    assert document["name"] == "bikes.md"
    assert document["indexing_status"] == "waiting"
    file = document["data_source_detail_dict"]["upload_file"]
    assert (file["extension"], file["mime_type"], file["size"]) == ("md", "text/markdown", len(markdown))
    assert await file_content(kb_session, file["id"]) == markdown
    assert len(await jobs_of(kb_session, document["id"])) == 1

    table = await upload(
        client, tenant, url.replace("_by_", "-by-"), files={"file": ("wheels.csv", csv, "text/csv")}
    )
    assert table.status_code == 200, table.text
    table_document = table.json()["document"]
    assert table_document["name"] == "wheels.csv"
    assert table_document["position"] == 2
    row = await kb_session.get_one(Document, uuid.UUID(table_document["id"]))
    assert row.process_rule == CUSTOM_RULE  # no rule given: the dataset's latest
    assert len(await jobs_of(kb_session, table_document["id"])) == 1

    named = await upload(
        client, tenant, url, files={"file": ("a.txt", b"x", "text/plain")}, data={"name": "Alpha"}
    )
    assert named.status_code == 200
    assert named.json()["document"]["name"] == "Alpha"
    path = await upload(client, tenant, url, files={"file": ("C:\\docs\\..\\plan.txt", b"x", "text/plain")})
    assert path.status_code == 200
    assert path.json()["document"]["name"] == "plan.txt"


async def test_file_rules(
    client: AsyncTestClient[Litestar], tenant: Tenant, kb_session: AsyncSession
) -> None:
    dataset = await new_dataset(client, tenant, indexing_technique="economy")
    url = f"/v1/datasets/{dataset['id']}/document/create-by-file"

    no_file = await upload(client, tenant, url, data={"indexing_technique": "economy"})
    assert_error(no_file, 400, "no_file_uploaded")
    as_json = await client.post(url, json={"file": "x"}, headers=tenant.dataset_headers)
    assert_error(as_json, 400, "no_file_uploaded")
    two = await upload(
        client,
        tenant,
        url,
        files=[("file", ("a.txt", b"a", "text/plain")), ("file", ("b.txt", b"b", "text/plain"))],
    )
    assert_error(two, 400, "too_many_files")
    other_field = await upload(client, tenant, url, files={"file": ("a.txt", b"a"), "extra": ("b.txt", b"b")})
    assert_error(other_field, 400, "too_many_files")
    assert_error(
        await upload(client, tenant, url, files={"file": ("run.exe", b"MZ")}), 400, "unsupported_file_type"
    )
    assert_error(
        await upload(client, tenant, url, files={"file": ("README", b"x")}), 400, "unsupported_file_type"
    )
    assert_error(await upload(client, tenant, url, files={"file": ("empty.txt", b"")}), 400, "empty_file")
    # httpx leaves out an empty file name (the part is then a plain field, as in Flask: no file); write it out.
    boundary = "sluiceboundary"
    unnamed = await client.post(
        url,
        content=(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename=""\r\n\r\nx\r\n'
            f"--{boundary}--\r\n"
        ).encode(),
        headers={**tenant.dataset_headers, "content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert_error(unnamed, 400, "filename_not_exists_error")
    assert_error(await upload(client, tenant, url, files={"file": ("", b"x")}), 400, "no_file_uploaded")
    broken = await client.post(
        url,
        content=b"--sluiceboundary\r\nContent-Disposition: form-data; name=",
        headers={**tenant.dataset_headers, "content-type": "multipart/form-data; boundary=sluiceboundary"},
    )
    assert_error(broken, 400, "invalid_param")
    bad_data = await upload(client, tenant, url, files={"file": ("a.txt", b"a")}, data="{not json")
    assert_error(bad_data, 400, "invalid_param")
    bad_setting = await upload(client, tenant, url, files={"file": ("a.txt", b"a")}, data={"doc_form": 3})
    assert_error(bad_setting, 400, "invalid_param")
    assert "doc_form" in bad_setting.json()["message"]

    # 1 MB is the limit here: one byte more is 413, whether the body is just over or far over.
    at_limit = await upload(client, tenant, url, files={"file": ("big.txt", b"a" * MB)})
    assert at_limit.status_code == 200, at_limit.text
    assert_error(
        await upload(client, tenant, url, files={"file": ("big.txt", b"a" * (MB + 1))}), 413, "file_too_large"
    )
    assert_error(
        await upload(client, tenant, url, files={"file": ("big.txt", b"a" * (3 * MB))}), 413, "file_too_large"
    )
    too_long_text = await client.post(
        url.replace("create-by-file", "create-by-text"),
        json={"name": "long", "text": "a" * (MB + 1)},
        headers=tenant.dataset_headers,
    )
    assert_error(too_long_text, 413, "file_too_large")
    count = await kb_session.scalar(
        select(func.count()).where(Document.dataset_id == uuid.UUID(dataset["id"]))
    )
    assert count == 1  # only the upload at the limit


# -- reading ---------------------------------------------------------------------------------------------------


async def test_indexing_status_of_a_batch(
    client: AsyncTestClient[Litestar], tenant: Tenant, kb_session: AsyncSession
) -> None:
    dataset = await new_dataset(client, tenant)
    created = await create_text(client, tenant, dataset["id"])
    document_id = created["document"]["id"]
    await add_segments(kb_session, document_id, ["completed", "completed", "indexing"])
    url = f"/v1/datasets/{dataset['id']}/documents/{created['batch']}/indexing-status"

    status = (await client.get(url, headers=tenant.dataset_headers)).json()
    assert [set(item) for item in status["data"]] == [STATUS_FIELDS]
    item = status["data"][0]
    assert (item["id"], item["indexing_status"]) == (document_id, "waiting")
    assert (item["completed_segments"], item["total_segments"]) == (2, 3)
    assert item["processing_started_at"] is None
    assert item["error"] is None

    missing = await client.get(
        f"/v1/datasets/{dataset['id']}/documents/20990101000000123456/indexing-status",
        headers=tenant.dataset_headers,
    )
    assert_error(missing, 404, "not_found")


async def test_list_paginates_and_filters(
    client: AsyncTestClient[Litestar], tenant: Tenant, kb_session: AsyncSession
) -> None:
    dataset = await new_dataset(client, tenant)
    ids = [
        (await create_text(client, tenant, dataset["id"], name=name))["document"]["id"]
        for name in ("Alpha notes", "Beta notes", "Gamma")
    ]
    url, headers = f"/v1/datasets/{dataset['id']}/documents", tenant.dataset_headers

    first = (await client.get(url, params={"limit": 2}, headers=headers)).json()
    assert set(first) == {"data", "has_more", "limit", "total", "page"}
    assert (first["total"], first["limit"], first["page"], first["has_more"]) == (3, 2, 1, True)
    assert [d["id"] for d in first["data"]] == [ids[2], ids[1]]  # newest first
    assert set(first["data"][0]) == DOCUMENT_FIELDS
    second = (await client.get(url, params={"limit": 2, "page": 2}, headers=headers)).json()
    assert [d["id"] for d in second["data"]] == [ids[0]]
    assert second["has_more"] is False
    assert_error(await client.get(url, params={"limit": 101}, headers=headers), 400, "invalid_param")
    assert_error(await client.get(url, params={"page": 0}, headers=headers), 400, "invalid_param")

    found = (await client.get(url, params={"keyword": "NOTES"}, headers=headers)).json()
    assert {d["name"] for d in found["data"]} == {"Alpha notes", "Beta notes"}
    assert (await client.get(url, params={"keyword": "%"}, headers=headers)).json()["total"] == 0

    await set_document(kb_session, ids[0], indexing_status="completed")
    await set_document(kb_session, ids[1], indexing_status="error", error="boom")

    async def with_status(status: str) -> list[str]:
        response = await client.get(url, params={"status": status}, headers=headers)
        assert response.status_code == 200, response.text
        return [d["id"] for d in response.json()["data"]]

    assert await with_status("available") == [ids[0]] == await with_status("enabled")
    assert await with_status("error") == [ids[1]]
    assert await with_status("queuing") == [ids[2]]
    assert await with_status("disabled") == []
    assert await with_status("indexing") == []
    assert_error(await client.get(url, params={"status": "lost"}, headers=headers), 400, "invalid_param")
    listed = {d["id"]: d for d in (await client.get(url, headers=headers)).json()["data"]}
    assert listed[ids[0]]["display_status"] == "available"
    assert listed[ids[1]]["error"] == "boom"


async def test_document_detail(
    client: AsyncTestClient[Litestar], tenant: Tenant, kb_session: AsyncSession
) -> None:
    dataset = await new_dataset(client, tenant)
    document_id = (await create_text(client, tenant, dataset["id"], process_rule=CUSTOM_RULE))["document"][
        "id"
    ]
    await add_segments(kb_session, document_id, ["completed", "completed"], hits=3)
    field = DatasetMetadata(dataset_id=uuid.UUID(dataset["id"]), name="author", type="string")
    kb_session.add(field)
    await kb_session.commit()
    await set_document(kb_session, document_id, word_count=90, doc_metadata={"author": "Ada"})
    url, headers = f"/v1/datasets/{dataset['id']}/documents/{document_id}", tenant.dataset_headers

    detail = (await client.get(url, headers=headers)).json()
    assert set(detail) == DETAIL_FIELDS
    assert (detail["segment_count"], detail["average_segment_length"], detail["hit_count"]) == (2, 45, 6)
    assert detail["doc_metadata"] == [
        {"id": str(field.id), "name": "author", "type": "string", "value": "Ada"}
    ]
    assert detail["document_process_rule"]["mode"] == "custom"
    assert detail["document_process_rule"]["rules"]["segmentation"]["max_tokens"] == 300
    assert detail["dataset_process_rule"]["limits"] == {"indexing_max_segmentation_tokens_length": 4000}
    assert detail["display_status"] == "queuing"
    assert detail["doc_language"] == "English"

    only = (await client.get(url, params={"metadata": "only"}, headers=headers)).json()
    assert set(only) == {"id", "doc_type", "doc_metadata"}
    assert only["doc_metadata"] == detail["doc_metadata"]
    without = (await client.get(url, params={"metadata": "without"}, headers=headers)).json()
    assert set(without) == DETAIL_FIELDS - {"doc_type", "doc_metadata"}
    assert_error(await client.get(url, params={"metadata": "some"}, headers=headers), 400, "invalid_param")
    assert_error(
        await client.get(url.replace(document_id, str(uuid.uuid4())), headers=headers), 404, "not_found"
    )

    # The list shows hits and metadata values too.
    listed = (await client.get(f"/v1/datasets/{dataset['id']}/documents", headers=headers)).json()["data"][0]
    assert listed["hit_count"] == 6
    assert listed["doc_metadata"][0]["value"] == "Ada"


async def test_built_in_metadata_fields(
    client: AsyncTestClient[Litestar], tenant: Tenant, kb_session: AsyncSession
) -> None:
    dataset = await new_dataset(client, tenant)
    await kb_session.execute(
        update(Dataset).where(Dataset.id == uuid.UUID(dataset["id"])).values(built_in_field_enabled=True)
    )
    await kb_session.commit()
    document = (await create_text(client, tenant, dataset["id"], name="Guide"))["document"]
    shown = {m["name"]: m for m in document["doc_metadata"]}
    assert list(shown) == ["document_name", "uploader", "upload_date", "last_update_date", "source"]
    assert shown["document_name"] == {
        "id": "built-in",
        "name": "document_name",
        "type": "string",
        "value": "Guide",
    }
    # Dify writes the time fields as str(datetime.timestamp()): a string with the fraction
    assert isinstance(shown["upload_date"]["value"], str)
    assert int(float(shown["upload_date"]["value"])) == document["created_at"]
    assert shown["source"]["value"] == "file_upload"
    row = await kb_session.get_one(Document, uuid.UUID(document["id"]))
    assert row.doc_metadata["document_name"] == "Guide"
    assert row.doc_metadata["uploader"] is None

    await set_document(kb_session, document["id"], indexing_status="completed")
    url = f"/v1/datasets/{dataset['id']}/documents/{document['id']}/update_by_text"
    assert (
        await client.post(url, json={"name": "Handbook"}, headers=tenant.dataset_headers)
    ).status_code == 200
    row = await kb_session.get_one(Document, uuid.UUID(document["id"]), populate_existing=True)
    assert row.doc_metadata["document_name"] == "Handbook"


# -- changing --------------------------------------------------------------------------------------------------


async def test_update_by_text(
    client: AsyncTestClient[Litestar], tenant: Tenant, kb_session: AsyncSession
) -> None:
    dataset = await new_dataset(client, tenant)
    created = await create_text(client, tenant, dataset["id"])
    document_id, batch = created["document"]["id"], created["batch"]
    old_file = created["document"]["data_source_info"]["upload_file_id"]
    base, headers = f"/v1/datasets/{dataset['id']}/documents/{document_id}", tenant.dataset_headers

    # Still waiting for its job: being indexed, it cannot change (Dify: only available documents).
    busy = await client.post(f"{base}/update_by_text", json={"name": "x"}, headers=headers)
    assert_error(busy, 400, "document_indexing")
    await set_document(kb_session, document_id, indexing_status="completed")

    renamed = await client.post(f"{base}/update_by_text", json={"name": "Renamed"}, headers=headers)
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["document"]["name"] == "Renamed"
    assert renamed.json()["batch"] == batch
    assert renamed.json()["document"]["indexing_status"] == "completed"
    assert len(await jobs_of(kb_session, document_id)) == 1  # a new name alone does not index again

    no_name = await client.post(f"{base}/update-by-text", json={"text": "new"}, headers=headers)
    assert_error(no_name, 400, "invalid_param", "name is required when text is provided.")
    replaced = await client.post(
        f"{base}/update-by-text", json={"name": "v2", "text": "New text."}, headers=headers
    )
    assert replaced.status_code == 200, replaced.text
    document = replaced.json()["document"]
    assert (document["name"], document["indexing_status"]) == ("v2", "waiting")
    assert replaced.json()["batch"] == batch
    new_file = document["data_source_info"]["upload_file_id"]
    assert new_file != old_file
    assert await file_content(kb_session, old_file) is None
    assert await file_content(kb_session, new_file) == b"New text."
    jobs = await jobs_of(kb_session, document_id)
    assert [job["generation"] for job in jobs] == [1, 2]

    await set_document(kb_session, document_id, indexing_status="completed")
    rule = await client.post(f"{base}/update_by_text", json={"process_rule": CUSTOM_RULE}, headers=headers)
    assert rule.status_code == 200
    assert rule.json()["document"]["indexing_status"] == "waiting"
    assert [job["generation"] for job in await jobs_of(kb_session, document_id)] == [1, 2, 3]

    await set_document(kb_session, document_id, indexing_status="completed", archived=True)
    archived = await client.post(f"{base}/update_by_text", json={"name": "x"}, headers=headers)
    assert_error(archived, 403, "archived_document_immutable")


async def test_update_by_file(
    client: AsyncTestClient[Litestar], tenant: Tenant, kb_session: AsyncSession
) -> None:
    dataset = await new_dataset(client, tenant)
    document_id = (await create_text(client, tenant, dataset["id"]))["document"]["id"]
    await set_document(kb_session, document_id, indexing_status="error", error="boom")
    base = f"/v1/datasets/{dataset['id']}/documents/{document_id}"

    replaced = await upload(
        client, tenant, f"{base}/update_by_file", files={"file": ("guide.md", b"# Guide\n")}
    )
    assert replaced.status_code == 200, replaced.text
    document = replaced.json()["document"]
    assert (document["name"], document["indexing_status"], document["error"]) == ("guide.md", "waiting", None)
    assert document["data_source_detail_dict"]["upload_file"]["extension"] == "md"
    assert len(await jobs_of(kb_session, document_id)) == 2

    await set_document(kb_session, document_id, indexing_status="completed")
    settings_only = await upload(client, tenant, f"{base}/update-by-file", data={"process_rule": CUSTOM_RULE})
    assert settings_only.status_code == 200
    assert settings_only.json()["document"]["indexing_status"] == "waiting"
    assert len(await jobs_of(kb_session, document_id)) == 3
    await set_document(kb_session, document_id, indexing_status="completed")
    nothing = await upload(client, tenant, f"{base}/update-by-file", data={})
    assert nothing.status_code == 200
    assert nothing.json()["document"]["indexing_status"] == "completed"
    bad = await upload(client, tenant, f"{base}/update-by-file", files={"file": ("x.exe", b"MZ")})
    assert_error(bad, 400, "unsupported_file_type")
    big = await upload(client, tenant, f"{base}/update-by-file", files={"file": ("big.txt", b"a" * (MB + 1))})
    assert_error(big, 413, "file_too_large")


async def test_delete_removes_segments_child_chunks_and_file(
    client: AsyncTestClient[Litestar], tenant: Tenant, kb_session: AsyncSession
) -> None:
    dataset = await new_dataset(client, tenant)
    keep = (await create_text(client, tenant, dataset["id"], name="keep"))["document"]["id"]
    created = (await create_text(client, tenant, dataset["id"], name="drop"))["document"]
    document_id, file_id = created["id"], created["data_source_info"]["upload_file_id"]
    segments = await add_segments(kb_session, document_id, ["completed", "completed"])
    await add_segments(kb_session, keep, ["completed"])
    kb_session.add_all(
        ChildChunk(
            dataset_id=segment.dataset_id,
            document_id=segment.document_id,
            segment_id=segment.id,
            position=1,
            content="child",
            word_count=5,
            keywords=[],
            content_hash=hashlib.sha256(b"child").digest(),
        )
        for segment in segments
    )
    await kb_session.commit()
    url, headers = f"/v1/datasets/{dataset['id']}/documents/{document_id}", tenant.dataset_headers

    deleted = await client.delete(url, headers=headers)
    assert deleted.status_code == 204, deleted.text
    doc_uuid = uuid.UUID(document_id)
    assert await kb_session.scalar(select(func.count()).where(Segment.document_id == doc_uuid)) == 0
    assert await kb_session.scalar(select(func.count()).where(ChildChunk.document_id == doc_uuid)) == 0
    assert await kb_session.scalar(select(func.count()).where(UploadFile.id == uuid.UUID(file_id))) == 0
    assert await kb_session.scalar(select(func.count()).where(Segment.document_id == uuid.UUID(keep))) == 1
    assert_error(await client.get(url, headers=headers), 404, "not_found")
    assert_error(await client.delete(url, headers=headers), 404, "not_found")

    await set_document(kb_session, keep, indexing_status="completed", archived=True)
    archived = await client.delete(url.replace(document_id, keep), headers=headers)
    assert_error(archived, 403, "archived_document_immutable")


async def test_status_actions(
    client: AsyncTestClient[Litestar], tenant: Tenant, kb_session: AsyncSession
) -> None:
    dataset = await new_dataset(client, tenant)
    first = (await create_text(client, tenant, dataset["id"]))["document"]["id"]
    second = (await create_text(client, tenant, dataset["id"], name="b"))["document"]["id"]
    base, headers = f"/v1/datasets/{dataset['id']}/documents", tenant.dataset_headers

    async def act(action: str, ids: list[str]) -> Any:
        return await client.patch(f"{base}/status/{action}", json={"document_ids": ids}, headers=headers)

    assert_error(await act("delete", [first]), 400, "invalid_action")
    assert_error(await act("disable", [first]), 400, "document_indexing")  # still waiting
    await set_document(kb_session, first, indexing_status="completed")
    await set_document(kb_session, second, indexing_status="completed")

    async def shown(document_id: str) -> dict[str, Any]:
        return dict((await client.get(f"{base}/{document_id}", headers=headers)).json())

    disabled = await act("disable", [first, second, str(uuid.uuid4())])  # unknown ids are skipped
    assert disabled.status_code == 200
    assert disabled.json() == {"result": "success"}
    state = await shown(first)
    assert (state["enabled"], state["display_status"]) == (False, "disabled")
    assert isinstance(state["disabled_at"], int)
    assert (await act("disable", [first])).status_code == 200  # already disabled: nothing to do
    assert (await act("enable", [first])).status_code == 200
    assert (await shown(first))["display_status"] == "available"
    assert (await shown(second))["display_status"] == "disabled"
    assert (await act("archive", [first])).status_code == 200
    assert (await shown(first))["archived"] is True
    assert (await shown(first))["display_status"] == "archived"
    assert (await act("un_archive", [first])).status_code == 200
    assert (await shown(first))["display_status"] == "available"
    assert (await act("enable", [])).status_code == 200
    assert_error(
        await client.patch(f"{base}/status/enable", json={"document_ids": ["x"]}, headers=headers),
        400,
        "invalid_param",
    )


async def test_pause_resume_retry(
    client: AsyncTestClient[Litestar], tenant: Tenant, kb_session: AsyncSession
) -> None:
    dataset = await new_dataset(client, tenant)
    created = await create_text(client, tenant, dataset["id"])
    document_id = created["document"]["id"]
    base, headers = f"/v1/datasets/{dataset['id']}/documents/{document_id}", tenant.dataset_headers
    retry_url = f"/v1/datasets/{dataset['id']}/retry"
    status_url = f"/v1/datasets/{dataset['id']}/documents/{created['batch']}/indexing-status"

    paused = await client.patch(f"{base}/processing/pause", headers=headers)
    assert paused.status_code == 200
    assert paused.json() == {"result": "success"}
    status = (await client.get(status_url, headers=headers)).json()["data"][0]
    assert status["indexing_status"] == "paused"
    assert isinstance(status["paused_at"], int)
    assert (await client.get(base, headers=headers)).json()["display_status"] == "paused"
    assert (await client.patch(f"{base}/processing/pause", headers=headers)).status_code == 200

    resumed = await client.patch(f"{base}/processing/resume", headers=headers)
    assert resumed.status_code == 200
    assert resumed.json() == {"result": "success"}
    assert len(await jobs_of(kb_session, document_id)) == 2
    assert_error(await client.patch(f"{base}/processing/resume", headers=headers), 400, "invalid_action")
    assert_error(
        await client.post(retry_url, json={"document_ids": [document_id]}, headers=headers),
        400,
        "invalid_action",
    )

    await set_document(kb_session, document_id, indexing_status="error", error="boom")
    retried = await client.post(
        retry_url, json={"document_ids": [document_id, str(uuid.uuid4())]}, headers=headers
    )
    assert retried.status_code == 200
    assert retried.json() == {"result": "success"}
    row = await kb_session.get_one(Document, uuid.UUID(document_id), populate_existing=True)
    assert (row.indexing_status, row.error, row.indexing_generation) == ("waiting", None, 2)
    assert [job["generation"] for job in await jobs_of(kb_session, document_id)] == [1, 1, 2]

    await set_document(kb_session, document_id, indexing_status="completed")
    finished = await client.post(retry_url, json={"document_ids": [document_id]}, headers=headers)
    assert_error(finished, 400, "document_already_finished")
    assert_error(
        await client.patch(f"{base}/processing/pause", headers=headers), 400, "document_already_finished"
    )
    missing = f"/v1/datasets/{dataset['id']}/documents/{uuid.uuid4()}/processing/pause"
    assert_error(await client.patch(missing, headers=headers), 404, "not_found")


async def test_another_workspace_sees_nothing(
    client: AsyncTestClient[Litestar], admin: dict[str, str], kb_session: AsyncSession
) -> None:
    ours, theirs = await make_tenant(client, admin), await make_tenant(client, admin)
    dataset = await new_dataset(client, ours)
    created = await create_text(client, ours, dataset["id"])
    document_id = created["document"]["id"]
    ds, doc, headers = (
        f"/v1/datasets/{dataset['id']}",
        f"/v1/datasets/{dataset['id']}/documents/{document_id}",
        theirs.dataset_headers,
    )

    attempts = [
        client.get(f"{ds}/documents", headers=headers),
        client.get(doc, headers=headers),
        client.delete(doc, headers=headers),
        client.post(
            f"{ds}/document/create_by_text",
            json={"name": "n", "text": "t", "indexing_technique": "economy"},
            headers=headers,
        ),
        client.post(f"{ds}/document/create_by_file", files={"file": ("a.txt", b"a")}, headers=headers),
        client.post(f"{doc}/update_by_text", json={"name": "n"}, headers=headers),
        client.post(f"{doc}/update_by_file", files={"file": ("a.txt", b"a")}, headers=headers),
        client.get(f"{ds}/documents/{created['batch']}/indexing-status", headers=headers),
        client.patch(f"{ds}/documents/status/archive", json={"document_ids": [document_id]}, headers=headers),
        client.patch(f"{doc}/processing/pause", headers=headers),
        client.post(f"{ds}/retry", json={"document_ids": [document_id]}, headers=headers),
        client.patch(ds, json={"name": "mine"}, headers=headers),
    ]
    for attempt in attempts:
        assert_error(await attempt, 404, "not_found")
    row = await kb_session.get_one(Document, uuid.UUID(document_id))
    assert (row.name, row.archived, row.is_paused) == ("notes", False, False)

    # A document of one dataset is not reachable through another dataset of the same workspace.
    other = await new_dataset(client, ours)
    moved = await client.get(
        f"/v1/datasets/{other['id']}/documents/{document_id}", headers=ours.dataset_headers
    )
    assert_error(moved, 404, "not_found")
    assert_error(await client.get(doc), 401, "unauthorized")
    assert_error(await client.get(doc, headers=ours.app_headers), 401, "unauthorized")


# -- datasets --------------------------------------------------------------------------------------------------


async def test_dataset_fields_are_filled(
    client: AsyncTestClient[Litestar], tenant: Tenant, kb_session: AsyncSession
) -> None:
    dataset = await new_dataset(
        client,
        tenant,
        indexing_technique="high_quality",
        embedding_model="static-64",
        embedding_model_provider="local",
        retrieval_model={"search_method": "hybrid_search", "top_k": 7},
        provider="vendor",
        external_knowledge_api_id="ignored",
    )
    assert set(dataset) == DATASET_FIELDS
    assert (dataset["embedding_model_provider"], dataset["embedding_model"]) == ("local", "static-64")
    assert dataset["embedding_available"] is True
    assert dataset["tags"] == []
    assert dataset["retrieval_model_dict"] == {
        "search_method": "hybrid_search",
        "reranking_enable": False,
        "reranking_mode": None,
        "reranking_model": {"reranking_provider_name": "", "reranking_model_name": ""},
        "weights": None,
        "top_k": 7,
        "score_threshold_enabled": False,
        "score_threshold": None,
    }
    documents = [
        (await create_text(client, tenant, dataset["id"], name=name))["document"]["id"] for name in ("a", "b")
    ]
    await set_document(kb_session, documents[0], word_count=40, indexing_status="completed")
    await set_document(kb_session, documents[1], word_count=2)
    tag = Tag(workspace_id=uuid.UUID(tenant.workspace["id"]), name="manuals")
    field = DatasetMetadata(dataset_id=uuid.UUID(dataset["id"]), name="author", type="string")
    kb_session.add_all([tag, field])
    await kb_session.flush()
    await kb_session.execute(tag_bindings.insert().values(tag_id=tag.id, dataset_id=uuid.UUID(dataset["id"])))
    await kb_session.commit()
    empty = await new_dataset(client, tenant, indexing_technique="high_quality")
    assert (empty["embedding_model_provider"], empty["embedding_model"]) == ("local", "multilingual-e5-small")

    listed = {
        d["id"]: d for d in (await client.get("/v1/datasets", headers=tenant.dataset_headers)).json()["data"]
    }
    shown = listed[dataset["id"]]
    assert (shown["document_count"], shown["word_count"], shown["total_available_documents"]) == (2, 42, 1)
    assert shown["tags"] == [{"id": str(tag.id), "name": "manuals", "type": "knowledge"}]
    assert shown["doc_metadata"] == [{"id": str(field.id), "name": "author", "type": "string"}]
    assert listed[empty["id"]]["document_count"] == 0
    assert listed[empty["id"]]["tags"] == []

    economy = await new_dataset(client, tenant, indexing_technique="economy")
    assert economy["retrieval_model_dict"]["search_method"] == "keyword_search"
    assert economy["embedding_model"] is None
    assert economy["embedding_available"] is True


async def test_dataset_patch(client: AsyncTestClient[Litestar], tenant: Tenant) -> None:
    dataset = await new_dataset(client, tenant)
    taken = await new_dataset(client, tenant)
    url, headers = f"/v1/datasets/{dataset['id']}", tenant.dataset_headers

    changed = await client.patch(
        url,
        json={
            "name": " Manuals ",
            "description": "How-tos",
            "permission": "all_team_members",
            "indexing_technique": "high_quality",
            "embedding_model": "static-64",
            "embedding_model_provider": "local",
            "retrieval_model": {"search_method": "full_text_search", "top_k": 2},
            "partial_member_list": [{"user_id": "someone"}],
        },
        headers=headers,
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["name"], body["description"], body["permission"]) == (
        "Manuals",
        "How-tos",
        "all_team_members",
    )
    assert (body["indexing_technique"], body["embedding_model"]) == ("high_quality", "static-64")
    assert body["retrieval_model_dict"]["search_method"] == "full_text_search"
    assert body["retrieval_model_dict"]["top_k"] == 2
    unchanged = await client.patch(url, json={}, headers=headers)
    assert unchanged.status_code == 200
    assert unchanged.json()["name"] == "Manuals"

    duplicate = await client.patch(url, json={"name": taken["name"]}, headers=headers)
    assert_error(duplicate, 400, "invalid_param")  # Dify: a ValueError on update (409 only on create)
    assert duplicate.json()["message"] == "Dataset name already exists"
    assert_error(await client.patch(url, json={"name": ""}, headers=headers), 400, "invalid_param")
    assert_error(
        await client.patch(url, json={"permission": "everyone"}, headers=headers), 400, "invalid_param"
    )

    await create_text(client, tenant, dataset["id"])
    model = await client.patch(url, json={"embedding_model": "other-model"}, headers=headers)
    assert_error(model, 400, "invalid_param")
    assert "embedding model" in model.json()["message"]
    technique = await client.patch(url, json={"indexing_technique": "economy"}, headers=headers)
    assert_error(technique, 400, "invalid_param")
    same = await client.patch(url, json={"embedding_model": "static-64", "name": "Manuals"}, headers=headers)
    assert same.status_code == 200, same.text
    assert_error(
        await client.patch(f"/v1/datasets/{uuid.uuid4()}", json={}, headers=headers), 404, "not_found"
    )


async def test_dataset_delete_removes_its_files(
    client: AsyncTestClient[Litestar], tenant: Tenant, kb_session: AsyncSession
) -> None:
    dataset = await new_dataset(client, tenant)
    created = await create_text(client, tenant, dataset["id"])
    file_id = uuid.UUID(created["document"]["data_source_info"]["upload_file_id"])
    assert (
        await client.delete(f"/v1/datasets/{dataset['id']}", headers=tenant.dataset_headers)
    ).status_code == 204
    assert await kb_session.get(UploadFile, file_id) is None
    assert await kb_session.get(Dataset, uuid.UUID(dataset["id"])) is None
