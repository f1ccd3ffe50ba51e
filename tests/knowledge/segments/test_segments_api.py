"""Segments and child chunks through the Service API: shapes, pagination, edits, vectors, errors, isolation.

Documents and segments are inserted as rows (the documents API is tested on its own); the API under test adds,
edits and deletes segments on them.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import msgspec
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.asgi import create_app
from app.knowledge.documents.queries import get_document
from app.knowledge.embeddings.providers import Embedders
from app.knowledge.segments import services
from app.knowledge.segments.schemas import SegmentCreateItem
from app.settings import Settings
from db.models import ChildChunk, Document, Segment
from tests.conftest import Tenant, make_tenant
from tests.knowledge.api_helpers import (
    assert_error,
    fresh,
    make_document,
    make_segments,
    segments_url,
)
from tests.knowledge.rows import make_dataset
from tests.support.fake_openai import EMBEDDINGS_PATH, FakeOpenAI
from tests.support.fake_openai_fixture import fake_openai_fixture  # noqa: F401

SEGMENT_FIELDS = {
    "id", "position", "document_id", "content", "sign_content", "answer", "word_count", "tokens", "keywords",
    "index_node_id", "index_node_hash", "hit_count", "enabled", "disabled_at", "disabled_by", "status",
    "created_by", "created_at", "updated_at", "updated_by", "indexing_at", "completed_at", "error", "stopped_at",
    "child_chunks",
}  # fmt: skip
CHILD_FIELDS = {"id", "segment_id", "content", "position", "word_count", "type", "created_at", "updated_at"}
HIERARCHICAL_RULE = {
    "mode": "hierarchical",
    "rules": {
        "parent_mode": "paragraph",
        "segmentation": {"separator": "\\n\\n", "max_tokens": 500},
        "subchunk_segmentation": {"separator": "\\n", "max_tokens": 50},
    },
}


async def test_list_paginates_filters_and_has_difys_shape(
    client: AsyncTestClient[Litestar], tenant: Tenant, session: AsyncSession
) -> None:
    document = await make_document(
        session, await make_dataset(session, tenant.workspace_id, technique="economy")
    )
    segments = await make_segments(session, document, [f"Segment {i} about bikes" for i in range(1, 24)])
    segments[4].status = "error"
    segments[6].content = "100% cotton"
    await session.commit()
    url, headers = segments_url(document), tenant.dataset_headers

    first = (await client.get(url, params={"limit": 10}, headers=headers)).json()
    assert set(first) == {"data", "doc_form", "has_more", "limit", "total", "page"}
    assert (first["total"], first["page"], first["limit"], first["has_more"]) == (23, 1, 10, True)
    assert [s["position"] for s in first["data"]] == list(range(1, 11))
    assert first["doc_form"] == "text_model"
    item = first["data"][0]
    assert set(item) == SEGMENT_FIELDS
    assert item["index_node_id"] == item["id"] == str(segments[0].id)
    assert item["index_node_hash"] == hashlib.sha256(b"Segment 1 about bikes").hexdigest()
    assert item["sign_content"] == item["content"]
    assert item["child_chunks"] == []
    assert isinstance(item["created_at"], int)
    assert item["tokens"] == len(item["content"]) // 4
    last = (await client.get(url, params={"page": 3, "limit": 10}, headers=headers)).json()
    assert len(last["data"]) == 3
    assert last["has_more"] is False

    errors = (await client.get(url, params={"status": ["error"]}, headers=headers)).json()
    assert [s["position"] for s in errors["data"]] == [5]
    assert errors["total"] == 1
    both = await client.get(url, params={"status": ["error", "completed"], "limit": 100}, headers=headers)
    assert both.json()["total"] == 23
    percent = (await client.get(url, params={"keyword": "100%"}, headers=headers)).json()
    assert [s["position"] for s in percent["data"]] == [7]  # % is a literal, not a wildcard
    assert (await client.get(url, params={"keyword": "SEGMENT 2"}, headers=headers)).json()["total"] == 5

    assert_error(await client.get(url, params={"limit": 101}, headers=headers), 400, "invalid_param")
    assert_error(await client.get(url, params={"status": "bogus"}, headers=headers), 400, "invalid_param")


async def test_create_appends_segments_and_counts_words(
    client: AsyncTestClient[Litestar], tenant: Tenant, session: AsyncSession
) -> None:
    document = await make_document(
        session, await make_dataset(session, tenant.workspace_id, technique="economy")
    )
    await make_segments(session, document, ["one", "two"])
    body = {
        "segments": [
            {"content": "Tubeless tires seal small punctures with latex sealant."},
            {"content": "Chain wax lasts longer than oil.", "keywords": ["chain", "wax"]},
        ]
    }
    response = await client.post(segments_url(document), json=body, headers=tenant.dataset_headers)
    assert response.status_code == 200, response.text
    created = response.json()
    assert set(created) == {"data", "doc_form"}
    assert created["doc_form"] == "text_model"
    first, second = created["data"]
    assert (first["position"], second["position"]) == (3, 4)
    assert first["status"] == "completed"
    assert first["enabled"] is True
    assert "tubeless" in first["keywords"]
    assert "sealant" in first["keywords"]
    assert second["keywords"] == ["chain", "wax"]
    assert first["word_count"] == len(body["segments"][0]["content"])
    assert first["tokens"] == first["word_count"] // 4
    refreshed = await fresh(session, Document, document.id)
    assert refreshed.word_count == 6 + first["word_count"] + second["word_count"]
    row = await fresh(session, Segment, uuid.UUID(first["id"]))
    assert row.content_hash == hashlib.sha256(body["segments"][0]["content"].encode()).digest()
    assert row.embedding_space_id is None  # economy: never embedded

    empty = await client.post(segments_url(document), json={"segments": []}, headers=tenant.dataset_headers)
    assert empty.status_code == 200
    assert empty.json()["data"] == []


async def test_create_refuses_documents_that_are_not_ready(
    client: AsyncTestClient[Litestar], tenant: Tenant, session: AsyncSession
) -> None:
    dataset = await make_dataset(session, tenant.workspace_id, technique="economy")
    body, headers = {"segments": [{"content": "text"}]}, tenant.dataset_headers
    indexing = await make_document(session, dataset, indexing_status="indexing")
    assert_error(
        await client.post(segments_url(indexing), json=body, headers=headers),
        404,
        "not_found",
        "Document is not completed.",
    )
    disabled = await make_document(session, dataset, enabled=False)
    assert_error(
        await client.post(segments_url(disabled), json=body, headers=headers),
        404,
        "not_found",
        "Document is disabled.",
    )
    archived = await make_document(session, dataset, archived=True)
    assert_error(
        await client.post(segments_url(archived), json=body, headers=headers),
        403,
        "archived_document_immutable",
    )
    ready = await make_document(session, dataset)
    for bad in ({"segments": [{"content": "   "}]}, {"segments": [{"content": ""}]}, {}, {"segments": "x"}):
        assert_error(await client.post(segments_url(ready), json=bad, headers=headers), 400, "invalid_param")
    too_many = {"segments": [{"content": "x"}] * 101}
    assert_error(await client.post(segments_url(ready), json=too_many, headers=headers), 400, "invalid_param")


async def test_update_edits_disables_and_reenables(
    client: AsyncTestClient[Litestar], tenant: Tenant, session: AsyncSession
) -> None:
    document = await make_document(
        session, await make_dataset(session, tenant.workspace_id, technique="economy")
    )
    (segment,) = await make_segments(session, document, ["Old text about brakes"])
    url, headers = f"{segments_url(document)}/{segment.id}", tenant.dataset_headers

    edited = await client.post(
        url, json={"segment": {"content": "Disc brakes need bleeding yearly."}}, headers=headers
    )
    assert edited.status_code == 200, edited.text
    data = edited.json()["data"]
    assert data["content"] == "Disc brakes need bleeding yearly."
    assert data["position"] == 1
    assert data["index_node_hash"] == hashlib.sha256(b"Disc brakes need bleeding yearly.").hexdigest()
    assert "brakes" in data["keywords"]
    assert "bleeding" in data["keywords"]
    assert (await fresh(session, Document, document.id)).word_count == len(
        "Disc brakes need bleeding yearly."
    )

    keywords = await client.post(url, json={"segment": {"keywords": ["disc", "brake"]}}, headers=headers)
    assert keywords.json()["data"]["keywords"] == ["disc", "brake"]
    assert keywords.json()["data"]["content"] == "Disc brakes need bleeding yearly."

    disabled = (await client.post(url, json={"segment": {"enabled": False}}, headers=headers)).json()["data"]
    assert disabled["enabled"] is False
    assert isinstance(disabled["disabled_at"], int)
    refused = await client.post(url, json={"segment": {"content": "new"}}, headers=headers)
    assert_error(refused, 400, "invalid_param", "Can't update disabled segment")
    enabled = await client.post(
        url, json={"segment": {"enabled": True, "content": "Back again."}}, headers=headers
    )
    assert enabled.json()["data"]["enabled"] is True
    assert enabled.json()["data"]["disabled_at"] is None
    assert enabled.json()["data"]["content"] == "Back again."

    assert_error(
        await client.post(url, json={"segment": {"content": " "}}, headers=headers), 400, "invalid_param"
    )
    assert_error(await client.post(url, json={}, headers=headers), 400, "invalid_param")


async def test_get_and_delete_segment(
    client: AsyncTestClient[Litestar], tenant: Tenant, session: AsyncSession
) -> None:
    document = await make_document(
        session, await make_dataset(session, tenant.workspace_id, technique="economy")
    )
    first, second = await make_segments(session, document, ["alpha", "bravo!"])
    url, headers = segments_url(document), tenant.dataset_headers
    got = (await client.get(f"{url}/{second.id}", headers=headers)).json()
    assert set(got) == {"data", "doc_form"}
    assert got["data"]["content"] == "bravo!"

    deleted = await client.delete(f"{url}/{second.id}", headers=headers)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_error(
        await client.get(f"{url}/{second.id}", headers=headers), 404, "not_found", "Segment not found."
    )
    assert_error(await client.delete(f"{url}/{second.id}", headers=headers), 404, "not_found")
    assert (await fresh(session, Document, document.id)).word_count == len("alpha")
    assert (await client.get(url, headers=headers)).json()["total"] == 1

    (await fresh(session, Document, document.id)).archived = True
    await session.commit()
    assert_error(
        await client.delete(f"{url}/{first.id}", headers=headers), 403, "archived_document_immutable"
    )
    updated = await client.post(f"{url}/{first.id}", json={"segment": {"content": "x"}}, headers=headers)
    assert_error(updated, 403, "archived_document_immutable")


async def test_high_quality_segments_are_embedded_and_re_embedded(
    client: AsyncTestClient[Litestar], tenant: Tenant, session: AsyncSession
) -> None:
    document = await make_document(
        session,
        await make_dataset(session, tenant.workspace_id, technique="high_quality"),
    )
    url, headers = segments_url(document), tenant.dataset_headers
    created = await client.post(url, json={"segments": [{"content": "Wheels are round."}]}, headers=headers)
    assert created.status_code == 200, created.text
    segment_id = uuid.UUID(created.json()["data"][0]["id"])

    async def vector() -> str | None:
        row = await session.execute(
            select(Segment.embedding_space_id, Segment.embedding).where(Segment.id == segment_id)
        )
        space, embedding = row.one()
        return None if space is None else str(list(embedding))

    before = await vector()
    assert before is not None
    await client.post(f"{url}/{segment_id}", json={"segment": {"keywords": ["wheel"]}}, headers=headers)
    assert await vector() == before  # same content: same vector
    await client.post(
        f"{url}/{segment_id}", json={"segment": {"content": "Spokes hold the rim."}}, headers=headers
    )
    after = await vector()
    assert after is not None
    assert after != before


async def test_hierarchical_segments_and_child_chunks(
    client: AsyncTestClient[Litestar], tenant: Tenant, session: AsyncSession
) -> None:
    dataset = await make_dataset(
        session,
        tenant.workspace_id,
        technique="high_quality",
        doc_form="hierarchical_model",
    )
    document = await make_document(session, dataset, process_rule=HIERARCHICAL_RULE)
    url, headers = segments_url(document), tenant.dataset_headers
    lines = [f"Line {i} of the parent text, short." for i in range(1, 6)]
    created = await client.post(url, json={"segments": [{"content": "\n".join(lines)}]}, headers=headers)
    assert created.status_code == 200, created.text
    segment = created.json()["data"][0]
    assert created.json()["doc_form"] == "hierarchical_model"
    assert [c["content"] for c in segment["child_chunks"]] == lines
    assert set(segment["child_chunks"][0]) == CHILD_FIELDS
    assert segment["child_chunks"][0]["type"] == "automatic"
    children_url = f"{url}/{segment['id']}/child_chunks"
    unembedded = await session.scalar(
        select(func.count()).where(
            ChildChunk.segment_id == uuid.UUID(segment["id"]), ChildChunk.embedding_space_id.is_(None)
        )
    )
    assert unembedded == 0
    seg_row = await fresh(session, Segment, uuid.UUID(segment["id"]))
    assert seg_row.embedding_space_id is None  # only children carry vectors

    page = (await client.get(children_url, params={"limit": 2, "page": 2}, headers=headers)).json()
    assert set(page) == {"data", "total", "total_pages", "page", "limit"}
    assert (page["total"], page["total_pages"], page["page"], page["limit"]) == (5, 3, 2, 2)
    assert [c["position"] for c in page["data"]] == [3, 4]
    found = (await client.get(children_url, params={"keyword": "line 4"}, headers=headers)).json()
    assert [c["content"] for c in found["data"]] == [lines[3]]

    added = await client.post(children_url, json={"content": "A hand-written child."}, headers=headers)
    assert added.status_code == 200, added.text
    child = added.json()["data"]
    assert set(added.json()) == {"data"}
    assert child["position"] == 6
    assert child["type"] == "customized"
    patched = await client.patch(
        f"{children_url}/{child['id']}", json={"content": "Edited child."}, headers=headers
    )
    assert patched.status_code == 200
    assert patched.json()["data"]["content"] == "Edited child."
    row = await fresh(session, ChildChunk, uuid.UUID(child["id"]))
    assert row.content_hash == hashlib.sha256(b"Edited child.").digest()
    assert row.embedding_space_id is not None
    removed = await client.delete(f"{children_url}/{child['id']}", headers=headers)
    assert removed.status_code == 204
    assert_error(await client.delete(f"{children_url}/{child['id']}", headers=headers), 404, "not_found")
    assert_error(
        await client.post(children_url, json={"content": "  "}, headers=headers), 400, "invalid_param"
    )

    regenerated = await client.post(
        f"{url}/{segment['id']}",
        json={"segment": {"content": "First new line.\nSecond new line.", "regenerate_child_chunks": True}},
        headers=headers,
    )
    assert regenerated.status_code == 200, regenerated.text
    assert [c["content"] for c in regenerated.json()["data"]["child_chunks"]] == [
        "First new line.",
        "Second new line.",
    ]
    kept = await client.post(
        f"{url}/{segment['id']}", json={"segment": {"content": "Changed once more."}}, headers=headers
    )
    assert len(kept.json()["data"]["child_chunks"]) == 2  # no regeneration unless asked, as in Dify

    (other,) = await make_segments(session, document, ["another parent"])
    foreign = f"{url}/{other.id}/child_chunks/{regenerated.json()['data']['child_chunks'][0]['id']}"
    assert_error(await client.patch(foreign, json={"content": "x"}, headers=headers), 404, "not_found")


async def test_other_workspaces_and_documents_are_not_found(
    client: AsyncTestClient[Litestar], tenant: Tenant, admin: dict[str, str], session: AsyncSession
) -> None:
    dataset = await make_dataset(session, tenant.workspace_id, technique="economy")
    document = await make_document(session, dataset)
    (segment,) = await make_segments(session, document, ["mine"])
    other = await make_tenant(client, admin)
    url = f"{segments_url(document)}/{segment.id}"
    stranger = other.dataset_headers
    assert_error(
        await client.get(segments_url(document), headers=stranger), 404, "not_found", "Dataset not found."
    )
    assert_error(await client.get(url, headers=stranger), 404, "not_found")
    assert_error(
        await client.post(url, json={"segment": {"content": "x"}}, headers=stranger), 404, "not_found"
    )
    assert_error(await client.delete(url, headers=stranger), 404, "not_found")
    assert_error(await client.get(f"{url}/child_chunks", headers=stranger), 404, "not_found")
    body = {"segments": [{"content": "x"}]}
    assert_error(await client.post(segments_url(document), json=body, headers=stranger), 404, "not_found")
    assert (await fresh(session, Segment, segment.id)).content == "mine"

    # The segment through another document of the same dataset, and a document through another dataset.
    sibling = await make_document(session, dataset)
    assert_error(
        await client.get(f"{segments_url(sibling)}/{segment.id}", headers=tenant.dataset_headers),
        404,
        "not_found",
    )
    other_dataset = await make_dataset(session, tenant.workspace_id, technique="economy")
    moved = f"/v1/datasets/{other_dataset.id}/documents/{document.id}/segments"
    assert_error(
        await client.get(moved, headers=tenant.dataset_headers), 404, "not_found", "Document not found."
    )
    assert_error(await client.get(segments_url(document), headers=tenant.app_headers), 401, "unauthorized")


async def test_concurrent_creates_get_distinct_positions(
    tenant: Tenant, session: AsyncSession, engine: AsyncEngine, settings: Settings
) -> None:
    """Eight transactions append at once: the document row lock gives each its own positions."""
    document = await make_document(
        session, await make_dataset(session, tenant.workspace_id, technique="economy")
    )
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    items = [SegmentCreateItem(content="first half"), SegmentCreateItem(content="second half")]
    embedders = Embedders(settings)

    async def create() -> list[int]:
        async with sessions() as own, own.begin():
            dataset, locked = await get_document(
                own, uuid.UUID(tenant.workspace["id"]), document.dataset_id, document.id, lock="update"
            )
            created = await services.create_segments(own, embedders, dataset, locked, items)
            return [s.position for s in created]

    positions = sorted(p for batch in await asyncio.gather(*(create() for _ in range(8))) for p in batch)
    assert positions == list(range(1, 17))
    assert (await fresh(session, Document, document.id)).word_count == 8 * len("first halfsecond half")


async def test_embedding_failures_are_recorded_like_dify(
    settings: Settings, tenant: Tenant, session: AsyncSession, fake_openai: FakeOpenAI
) -> None:
    app = create_app(
        msgspec.structs.replace(settings, embedding_api_base=fake_openai.base_url), configure_logs=False
    )
    dataset = await make_dataset(session, tenant.workspace_id, technique="high_quality")
    dataset.embedding_model_provider, dataset.embedding_model = "openai", "fake-embedding"
    await session.commit()
    document = await make_document(session, dataset)
    url, headers = segments_url(document), tenant.dataset_headers
    async with AsyncTestClient(app=app) as client:
        fake_openai.queue_error(400, "model is asleep", path=EMBEDDINGS_PATH)
        failed = await client.post(
            url, json={"segments": [{"content": "Saddle height matters."}]}, headers=headers
        )
        assert failed.status_code == 200, failed.text
        segment = failed.json()["data"][0]
        assert (segment["status"], segment["enabled"]) == ("error", False)
        assert "model is asleep" in segment["error"]
        assert isinstance(segment["disabled_at"], int)

        # Re-enabling embeds it again (the provider is back).
        healed = await client.post(
            f"{url}/{segment['id']}", json={"segment": {"enabled": True}}, headers=headers
        )
        assert healed.status_code == 200, healed.text
        data = healed.json()["data"]
        assert (data["status"], data["enabled"], data["error"]) == ("completed", True, None)
        row = await fresh(session, Segment, uuid.UUID(segment["id"]))
        assert row.embedding_space_id is not None

        # A child chunk that cannot be embedded is refused, and nothing is stored.
        fake_openai.queue_error(400, "still asleep", path=EMBEDDINGS_PATH)
        refused = await client.post(
            f"{url}/{segment['id']}/child_chunks", json={"content": "c"}, headers=headers
        )
        assert_error(refused, 503, "child_chunk_indexing_error")
        assert "still asleep" in refused.json()["message"]
        count = await session.scalar(select(func.count()).where(ChildChunk.segment_id == row.id))
        assert count == 0

    # A new process (new embedders) embeds text found in the embedding cache without asking the model for it.
    async with AsyncTestClient(app=create_app(app.state.settings, configure_logs=False)) as client:
        again = await client.post(
            url, json={"segments": [{"content": "Saddle height matters."}]}, headers=headers
        )
        assert again.json()["data"][0]["status"] == "completed", again.text
