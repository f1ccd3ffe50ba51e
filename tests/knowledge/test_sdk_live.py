"""Against the live service (`python -m app up`, real HTTP, the real worker and the default local embedding
model): the upstream Dify Python SDK's ``KnowledgeBaseClient`` drives the knowledge-base Service API end to end.

Everything goes through the SDK's methods; where the SDK has no method for a Dify endpoint (deleting a metadata
field, creating and deleting a tag) the step uses the SDK's own lower-level ``_send_request``, which sends the
same auth header to the same base URL. Only the dataset key is made with raw HTTP, through the console API.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from dify_client import KnowledgeBaseClient
from dify_client.exceptions import APIError

from tests.support.processes import LiveService

TEXT_DOC = """Lighthouse keepers once lived at the edge of the sea.
They trimmed the lamp wick every evening and wound the clockwork that turned the lens.
In a storm the keeper stayed awake all night so that ships could find the harbour.
The water temperature near the rocks stayed cold even in summer."""

FILE_DOC = """# Baking sourdough bread

Feed the sourdough starter with flour and water the night before baking.
Knead the dough, let it rise slowly, then shape the loaf.
Bake the bread in a hot oven until the crust is dark and crisp.
Check the oven temperature before the loaf goes in.
"""

INDEXING_TIMEOUT = 60.0


@dataclass
class KnowledgeBase:
    client: KnowledgeBaseClient
    dataset_id: str
    text_doc: str
    file_doc: str
    file_batch: str


@pytest.fixture(scope="module")
def dataset_key(live_service: LiveService) -> str:
    admin = {"Authorization": f"Bearer {live_service.admin_token}"}
    with httpx.Client(base_url=live_service.base_url, headers=admin) as http:
        created = http.post("/console/api/datasets/api-keys", json={})
        assert created.status_code in (200, 201), created.text
        token = created.json()["token"]
    assert token.startswith("dataset-")
    return str(token)


def wait_indexed(client: KnowledgeBaseClient, batch: str) -> list[dict[str, Any]]:
    """Poll ``indexing-status`` for a batch until every document in it is ``completed`` (or fail on error)."""
    deadline = time.monotonic() + INDEXING_TIMEOUT
    while True:
        statuses = client.batch_indexing_status(batch).json()["data"]
        assert statuses, f"batch {batch} has no documents"
        assert all(s["indexing_status"] != "error" for s in statuses), statuses
        if all(s["indexing_status"] == "completed" for s in statuses):
            return list(statuses)
        assert time.monotonic() < deadline, f"indexing did not finish in {INDEXING_TIMEOUT} s: {statuses}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def kb(
    live_service: LiveService, dataset_key: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KnowledgeBase]:
    """A dataset made with the SDK, holding one document created by text and one by file, both indexed."""
    base_url = f"{live_service.base_url}/v1"
    with KnowledgeBaseClient(dataset_key, base_url=base_url) as creator:
        dataset = creator.create_dataset(name=f"sdk-{uuid.uuid4().hex[:8]}").json()
    assert dataset["name"].startswith("sdk-")
    assert dataset["document_count"] == 0
    assert dataset["indexing_technique"] is None  # the SDK sends only the name; the first document decides
    client = KnowledgeBaseClient(dataset_key, base_url=base_url, dataset_id=dataset["id"])

    by_text = client.create_document_by_text("lighthouses", TEXT_DOC).json()
    assert set(by_text) == {"document", "batch"}
    assert by_text["document"]["name"] == "lighthouses"
    assert by_text["document"]["data_source_type"] == "upload_file"
    assert by_text["document"]["indexing_status"] in {
        "waiting",
        "parsing",
        "cleaning",
        "splitting",
        "indexing",
    }

    path = tmp_path_factory.mktemp("sdk-docs") / "sourdough.md"
    path.write_text(FILE_DOC)
    by_file = client.create_document_by_file(str(path)).json()
    assert by_file["document"]["name"] == "sourdough.md"
    upload = by_file["document"]["data_source_detail_dict"]["upload_file"]
    assert upload["name"] == "sourdough.md"
    assert upload["extension"] == "md"
    assert upload["size"] == len(FILE_DOC)
    assert by_file["document"]["data_source_info"]["upload_file_id"] == upload["id"]
    assert by_file["batch"] != by_text["batch"]

    for created in (by_text, by_file):
        (status,) = wait_indexed(client, created["batch"])
        assert status["id"] == created["document"]["id"]
        assert status["completed_segments"] == status["total_segments"] > 0
        assert status["error"] is None
        for stamp in (
            "processing_started_at",
            "parsing_completed_at",
            "splitting_completed_at",
            "completed_at",
        ):
            assert isinstance(status[stamp], int), (stamp, status)

    yield KnowledgeBase(
        client, dataset["id"], by_text["document"]["id"], by_file["document"]["id"], by_file["batch"]
    )
    try:
        client.delete_dataset()  # normally already deleted by the last test
    except APIError as exc:
        assert exc.status_code == 404
    client.close()


def test_datasets_and_documents(kb: KnowledgeBase) -> None:
    client = kb.client
    dataset = client.get_dataset().json()
    assert dataset["id"] == kb.dataset_id
    assert dataset["indexing_technique"] == "high_quality"  # set by the SDK's first document
    assert dataset["embedding_model"]
    assert dataset["embedding_available"] is True
    assert dataset["document_count"] == 2
    assert dataset["word_count"] > 0
    assert dataset["retrieval_model_dict"]["search_method"] == "semantic_search"

    listed = client.list_datasets(page=1, page_size=100).json()
    assert {"data", "has_more", "limit", "total", "page"} <= set(listed)
    assert kb.dataset_id in [d["id"] for d in listed["data"]]

    updated = client.update_dataset(description="Bread and lighthouses").json()
    assert updated["description"] == "Bread and lighthouses"
    assert updated["name"] == dataset["name"]

    docs = client.list_documents(page=1, page_size=10).json()
    assert docs["total"] == 2
    assert docs["page"] == 1
    assert docs["limit"] == 10
    assert docs["has_more"] is False
    by_id = {d["id"]: d for d in docs["data"]}
    assert set(by_id) == {kb.text_doc, kb.file_doc}
    for doc in by_id.values():
        assert doc["indexing_status"] == "completed"
        assert doc["display_status"] == "available"
        assert doc["enabled"] is True
        assert doc["archived"] is False
        assert doc["doc_form"] == "text_model"
        assert doc["word_count"] > 0
    assert by_id[kb.file_doc]["name"] == "sourdough.md"
    assert [d["id"] for d in client.list_documents(keyword="sourdough").json()["data"]] == [kb.file_doc]

    # Disable then enable a document (PATCH .../documents/status/{action}).
    assert client.batch_update_document_status("disable", [kb.text_doc]).json() == {"result": "success"}
    disabled = {d["id"]: d for d in client.list_documents().json()["data"]}[kb.text_doc]
    assert disabled["enabled"] is False
    assert disabled["display_status"] == "disabled"
    assert client.batch_update_document_status("enable", [kb.text_doc]).json() == {"result": "success"}
    assert {d["id"]: d for d in client.list_documents().json()["data"]}[kb.text_doc]["enabled"] is True


def test_update_document_by_text_reindexes(kb: KnowledgeBase) -> None:
    client = kb.client
    before = client.query_segments(kb.text_doc).json()["data"]
    answer = client.update_document_by_text(
        kb.text_doc, "lighthouse keepers", TEXT_DOC + "\nThe last keeper left in 1990."
    ).json()
    assert answer["document"]["id"] == kb.text_doc
    assert answer["document"]["name"] == "lighthouse keepers"
    (status,) = wait_indexed(client, answer["batch"])
    assert status["completed_segments"] == status["total_segments"] > 0
    after = client.query_segments(kb.text_doc).json()["data"]
    assert "1990" in " ".join(s["content"] for s in after)
    assert "1990" not in " ".join(s["content"] for s in before)


def test_create_by_file_with_original_document_id_replaces_it(kb: KnowledgeBase, tmp_path: Path) -> None:
    """The SDK's ``original_document_id`` (sent inside the ``data`` form field): Dify replaces that document's
    file and re-indexes it in place (same id, same batch) instead of adding a document."""
    client = kb.client
    path = tmp_path / "sourdough.md"
    path.write_text(FILE_DOC + "Let the loaf cool on a wire rack before slicing.\n")
    answer = client.create_document_by_file(str(path), original_document_id=kb.file_doc).json()
    assert answer["document"]["id"] == kb.file_doc
    assert answer["batch"] == kb.file_batch
    assert answer["document"]["data_source_detail_dict"]["upload_file"]["size"] == path.stat().st_size
    (status,) = wait_indexed(client, answer["batch"])
    assert status["id"] == kb.file_doc
    assert status["completed_segments"] == status["total_segments"] > 0
    docs = client.list_documents().json()
    assert docs["total"] == 2
    assert {d["id"] for d in docs["data"]} == {kb.text_doc, kb.file_doc}
    assert "wire rack" in " ".join(s["content"] for s in client.query_segments(kb.file_doc).json()["data"])

    # The text endpoint takes it too (the SDK's create_document_by_text passes it through ``extra_params``).
    text = TEXT_DOC + "\nThe lamp burned whale oil before paraffin."
    answer = client.create_document_by_text(
        "lighthouses", text, extra_params={"original_document_id": kb.text_doc}
    ).json()
    assert answer["document"]["id"] == kb.text_doc
    assert answer["document"]["name"] == "lighthouses"
    wait_indexed(client, answer["batch"])
    assert client.list_documents().json()["total"] == 2
    assert "paraffin" in " ".join(s["content"] for s in client.query_segments(kb.text_doc).json()["data"])


def test_segments_add_update_delete(kb: KnowledgeBase) -> None:
    client = kb.client
    initial = client.query_segments(kb.text_doc).json()
    assert {"data", "doc_form", "has_more", "limit", "total", "page"} <= set(initial)
    assert initial["doc_form"] == "text_model"
    assert initial["total"] == len(initial["data"]) > 0
    assert all(s["status"] == "completed" and s["document_id"] == kb.text_doc for s in initial["data"])

    added = client.add_segments(
        kb.text_doc,
        [
            {"content": "The fog horn sounded every thirty seconds.", "keywords": ["fog", "horn"]},
            {"content": "Seagulls nested on the gallery rail.", "keywords": ["seagulls"]},
        ],
    ).json()
    assert added["doc_form"] == "text_model"
    assert len(added["data"]) == 2
    fog, gulls = added["data"]
    assert fog["content"] == "The fog horn sounded every thirty seconds."
    assert fog["keywords"] == ["fog", "horn"]
    assert fog["status"] == "completed"
    assert fog["enabled"] is True
    assert fog["word_count"] == len(fog["content"])
    assert fog["child_chunks"] == []
    assert gulls["position"] > fog["position"] > max(s["position"] for s in initial["data"])

    updated = client.update_document_segment(
        kb.text_doc, fog["id"], {"content": "The fog horn sounded every twenty seconds.", "keywords": ["fog"]}
    ).json()
    assert updated["doc_form"] == "text_model"
    assert updated["data"]["id"] == fog["id"]
    assert updated["data"]["content"] == "The fog horn sounded every twenty seconds."
    assert updated["data"]["keywords"] == ["fog"]
    assert updated["data"]["index_node_hash"] != fog["index_node_hash"]

    deleted = client.delete_document_segment(kb.text_doc, gulls["id"])
    assert deleted.status_code == 204

    listed = client.query_segments(kb.text_doc).json()
    contents = {s["id"]: s["content"] for s in listed["data"]}
    assert listed["total"] == initial["total"] + 1
    assert contents[fog["id"]] == "The fog horn sounded every twenty seconds."
    assert gulls["id"] not in contents
    found = client.query_segments(kb.text_doc, keyword="twenty", status="completed").json()
    assert [s["id"] for s in found["data"]] == [fog["id"]]
    # Extra query parameters go through the SDK's ``params`` keyword.
    paged = client.query_segments(kb.text_doc, params={"page": 1, "limit": 1}).json()
    assert paged["limit"] == 1
    assert len(paged["data"]) == 1
    assert paged["has_more"] is True


def test_metadata_fields_and_document_values(kb: KnowledgeBase) -> None:
    client = kb.client
    field = client.create_dataset_metadata({"type": "string", "name": "author"}).json()
    assert set(field) == {"id", "type", "name"}
    assert field["name"] == "author"
    assert field["type"] == "string"

    listed = client.get_dataset_metadata().json()
    assert listed["built_in_field_enabled"] is False
    assert [(f["id"], f["name"], f["type"], f["count"]) for f in listed["doc_metadata"]] == [
        (field["id"], "author", "string", 0)
    ]

    renamed = client.update_dataset_metadata(field["id"], {"name": "writer"}).json()
    assert renamed == {"id": field["id"], "type": "string", "name": "writer"}

    result = client.update_documents_metadata(
        [
            {
                "document_id": kb.file_doc,
                "metadata_list": [{"id": field["id"], "name": "writer", "value": "Ada"}],
            }
        ]
    ).json()
    assert result == {"result": "success"}
    doc = {d["id"]: d for d in client.list_documents().json()["data"]}[kb.file_doc]
    assert doc["doc_metadata"] == [{"id": field["id"], "name": "writer", "type": "string", "value": "Ada"}]
    assert {f["name"]: f["count"] for f in client.get_dataset_metadata().json()["doc_metadata"]} == {
        "writer": 1
    }

    built_in = client.get_built_in_metadata().json()
    assert {f["name"] for f in built_in["fields"]} == {
        "document_name",
        "uploader",
        "upload_date",
        "last_update_date",
        "source",
    }
    assert client.manage_built_in_metadata("enable").json() == {"result": "success"}
    assert client.get_dataset_metadata().json()["built_in_field_enabled"] is True
    doc = {d["id"]: d for d in client.list_documents().json()["data"]}[kb.file_doc]
    values = {m["name"]: m["value"] for m in doc["doc_metadata"]}
    assert values["writer"] == "Ada"
    assert values["document_name"] == "sourdough.md"
    assert client.manage_built_in_metadata("disable").json() == {"result": "success"}
    assert client.get_dataset_metadata().json()["built_in_field_enabled"] is False

    # The SDK has no method to delete a metadata field (Dify serves DELETE .../metadata/{id}, 204).
    deleted = client._send_request("DELETE", f"/datasets/{kb.dataset_id}/metadata/{field['id']}")
    assert deleted.status_code == 204
    assert client.get_dataset_metadata().json()["doc_metadata"] == []
    doc = {d["id"]: d for d in client.list_documents().json()["data"]}[kb.file_doc]
    assert doc["doc_metadata"] == []


def test_hit_testing(kb: KnowledgeBase) -> None:
    client = kb.client
    hits = client.hit_testing("How do I bake sourdough bread?").json()
    assert hits["query"] == {"content": "How do I bake sourdough bread?"}
    records = hits["records"]
    assert records
    assert len(records) <= 4  # the dataset's default top_k
    top = records[0]
    assert top["segment"]["document"]["id"] == kb.file_doc
    assert top["segment"]["document"]["name"] == "sourdough.md"
    assert top["segment"]["document_id"] == kb.file_doc
    assert {"id", "content", "position", "keywords", "status", "document"} <= set(top["segment"])
    assert top["child_chunks"] == []
    assert top["files"] == []  # not a hierarchical dataset (Dify: [] not null)
    scores = [r["score"] for r in records]
    assert all(0 <= s <= 1 for s in scores)
    assert scores == sorted(scores, reverse=True)

    # Full-text search: "temperature" is in both documents; a metadata filter keeps only one of them.
    field = client.create_dataset_metadata({"type": "string", "name": "topic"}).json()
    client.update_documents_metadata(
        [
            {
                "document_id": kb.file_doc,
                "metadata_list": [{"id": field["id"], "name": "topic", "value": "baking"}],
            },
            {
                "document_id": kb.text_doc,
                "metadata_list": [{"id": field["id"], "name": "topic", "value": "sea"}],
            },
        ]
    )
    full_text = {"search_method": "full_text_search", "top_k": 10, "score_threshold_enabled": False}
    unfiltered = client.hit_testing("temperature", retrieval_model=full_text).json()["records"]
    assert {r["segment"]["document_id"] for r in unfiltered} == {kb.file_doc, kb.text_doc}
    assert all("temperature" in r["segment"]["content"].lower() for r in unfiltered)
    assert all(0 <= r["score"] <= 1 for r in unfiltered)

    filtered_model = {
        **full_text,
        "metadata_filtering_conditions": {
            "logical_operator": "and",
            "conditions": [{"name": "topic", "comparison_operator": "is", "value": "sea"}],
        },
    }
    filtered = client.hit_testing("temperature", retrieval_model=filtered_model).json()["records"]
    assert filtered
    assert {r["segment"]["document_id"] for r in filtered} == {kb.text_doc}
    assert filtered[0]["segment"]["document"]["doc_metadata"] == {"topic": "sea"}
    assert all(0 <= r["score"] <= 1 for r in filtered)

    # A semantic query for bread, restricted to the sea document, finds nothing of the bread document.
    semantic_sea = {**filtered_model, "search_method": "semantic_search", "top_k": 3}
    sea_only = client.hit_testing("sourdough bread", retrieval_model=semantic_sea).json()["records"]
    assert {r["segment"]["document_id"] for r in sea_only} <= {kb.text_doc}

    client._send_request("DELETE", f"/datasets/{kb.dataset_id}/metadata/{field['id']}")


def test_tags(kb: KnowledgeBase) -> None:
    client = kb.client
    # The SDK can list, bind and unbind tags, but has no method to create or delete one.
    tag = client._send_request("POST", "/datasets/tags", json={"name": f"sdk-{uuid.uuid4().hex[:6]}"}).json()
    assert {"id", "name", "type", "binding_count"} <= set(tag)
    assert tag["type"] == "knowledge"
    assert tag["id"] in [t["id"] for t in client.list_dataset_tags().json()]

    assert client.bind_dataset_tags([tag["id"]]).status_code == 204
    assert client.get_dataset_tags().json() == {"data": [{"id": tag["id"], "name": tag["name"]}], "total": 1}
    listed = {t["id"]: t for t in client.list_dataset_tags().json()}
    assert listed[tag["id"]]["binding_count"] == "1"
    assert client.unbind_dataset_tag(tag["id"]).status_code == 204
    assert client.get_dataset_tags().json() == {"data": [], "total": 0}

    gone = client._send_request("DELETE", "/datasets/tags", json={"tag_id": tag["id"]})
    assert gone.status_code == 204


def test_delete_dataset_while_indexing(live_service: LiveService, dataset_key: str) -> None:
    """Deleting datasets while the worker indexes their document: always 204, and the worker goes on. Each
    delete lands at another moment of the job (the delays sweep the split-and-store and the embed steps); one
    landing in the transaction that stores the segments used to deadlock with the cascade (500)."""
    lines = "\n".join(f"Line {i}: the keeper logged the wind and the tide." for i in range(40))
    rule = {"mode": "custom", "rules": {"segmentation": {"separator": "\n", "max_tokens": 60}}}
    log_start = live_service.log_path.stat().st_size
    with KnowledgeBaseClient(dataset_key, base_url=f"{live_service.base_url}/v1") as client:
        for step in range(16):
            client.dataset_id = client.create_dataset(name=f"sdk-busy-{uuid.uuid4().hex[:8]}").json()["id"]
            created = client.create_document_by_text(
                "busy", lines, extra_params={"process_rule": rule}
            ).json()
            time.sleep(step * 0.02)
            assert client.delete_dataset().status_code == 204
            with pytest.raises(APIError) as missing:
                client.batch_indexing_status(created["batch"])
            assert missing.value.status_code == 404
        # The worker gave those documents up and goes on with other work.
        client.dataset_id = client.create_dataset(name=f"sdk-after-{uuid.uuid4().hex[:8]}").json()["id"]
        after = client.create_document_by_text("after", "A short note written after the deletes.").json()
        (done,) = wait_indexed(client, after["batch"])
        assert done["completed_segments"] == done["total_segments"] == 1
        assert client.delete_dataset().status_code == 204
    with live_service.log_path.open("rb") as log:  # nor was the worker a deadlock's victim
        log.seek(log_start)
        assert b"deadlock detected" not in log.read()


def test_cleanup_deletes_document_then_dataset(kb: KnowledgeBase) -> None:
    client = kb.client
    assert client.delete_document(kb.file_doc).status_code == 204
    docs = client.list_documents().json()
    assert [d["id"] for d in docs["data"]] == [kb.text_doc]
    assert docs["total"] == 1
    records = client.hit_testing("sourdough bread").json()["records"]
    assert records  # semantic search still answers, from the remaining document only
    assert all(r["segment"]["document_id"] == kb.text_doc for r in records)

    assert client.delete_dataset().status_code == 204
    with pytest.raises(APIError) as missing:
        client.get_dataset()
    assert missing.value.status_code == 404
    listed = client.list_datasets(page=1, page_size=100).json()
    assert kb.dataset_id not in [d["id"] for d in listed["data"]]
