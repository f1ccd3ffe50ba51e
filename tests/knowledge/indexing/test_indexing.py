"""The indexing pipeline with a real worker: statuses, segments and vectors, pause/resume, re-index, errors."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.knowledge.indexing import lifecycle
from db.models import ChildChunk, Document, Segment
from tests.knowledge.conftest import add_document, wait_for_status
from tests.knowledge.rows import make_dataset
from tests.support.fake_openai import EMBEDDINGS_PATH, FakeOpenAI

pytestmark = pytest.mark.usefixtures("kb_worker")

PARAGRAPHS = [f"Paragraph {i} talks about topic number {i} and nothing else at all." for i in range(40)]


async def segment_counts(sessions: async_sessionmaker[AsyncSession], document_id: object) -> tuple[int, int]:
    async with sessions() as session:
        total = await session.scalar(select(func.count()).where(Segment.document_id == document_id))
        embedded = await session.scalar(
            select(func.count()).where(
                Segment.document_id == document_id, Segment.embedding_space_id.is_not(None)
            )
        )
    return int(total or 0), int(embedded or 0)


async def test_text_document_is_parsed_split_embedded_and_timestamped(
    kb_sessions, kb_session, kb_workspace
) -> None:
    dataset = await make_dataset(kb_session, kb_workspace, technique="high_quality")
    document = await add_document(kb_sessions, dataset, "\n".join(PARAGRAPHS))
    done = await wait_for_status(kb_sessions, document.id)
    assert done.indexing_status == "completed", done.error
    for stamp in ("processing_started_at", "parsing_completed_at", "cleaning_completed_at"):
        assert getattr(done, stamp) is not None
    assert done.splitting_completed_at
    assert done.completed_at
    assert done.indexing_latency is not None
    assert done.processing_started_at <= done.parsing_completed_at <= done.splitting_completed_at
    total, embedded = await segment_counts(kb_sessions, document.id)
    assert total >= 5
    assert embedded == total  # 40 lines of ~70 chars, max 500 per segment
    async with kb_sessions() as session:
        contents = list(
            await session.scalars(
                select(Segment.content).where(Segment.document_id == document.id).order_by(Segment.position)
            )
        )
        statuses = set(
            await session.scalars(select(Segment.status).where(Segment.document_id == document.id))
        )
    assert statuses == {"completed"}
    assert all(len(c) <= 500 for c in contents)
    assert "Paragraph 0 " in contents[0]
    assert "Paragraph 39 " in contents[-1]
    assert done.word_count == sum(len(c) for c in contents)


async def test_hierarchical_document_embeds_children_only(kb_sessions, kb_session, kb_workspace) -> None:
    dataset = await make_dataset(
        kb_session, kb_workspace, technique="high_quality", doc_form="hierarchical_model"
    )
    body = "\n\n".join("\n".join(PARAGRAPHS[i : i + 4]) for i in range(0, 40, 4))
    rule = {
        "mode": "hierarchical",
        "rules": {
            "parent_mode": "paragraph",
            "segmentation": {"separator": "\\n\\n", "max_tokens": 500},
            "subchunk_segmentation": {"separator": "\\n", "max_tokens": 100},
        },
    }
    document = await add_document(kb_sessions, dataset, body, process_rule=rule)
    done = await wait_for_status(kb_sessions, document.id)
    assert done.indexing_status == "completed", done.error
    async with kb_sessions() as session:
        parents = await session.scalar(select(func.count()).where(Segment.document_id == document.id))
        children = await session.scalar(select(func.count()).where(ChildChunk.document_id == document.id))
        unembedded = await session.scalar(
            select(func.count()).where(
                ChildChunk.document_id == document.id, ChildChunk.embedding_space_id.is_(None)
            )
        )
        parent_vectors = await session.scalar(
            select(func.count()).where(
                Segment.document_id == document.id, Segment.embedding_space_id.is_not(None)
            )
        )
    assert parents == 10
    assert children == 40
    assert unembedded == 0
    assert parent_vectors == 0


async def test_economy_document_has_no_vectors(kb_sessions, kb_session, kb_workspace) -> None:
    dataset = await make_dataset(kb_session, kb_workspace, technique="economy")
    document = await add_document(kb_sessions, dataset, "\n".join(PARAGRAPHS))
    done = await wait_for_status(kb_sessions, document.id)
    assert done.indexing_status == "completed", done.error
    total, embedded = await segment_counts(kb_sessions, document.id)
    assert total > 0
    assert embedded == 0
    async with kb_sessions() as session:
        keywords = await session.scalar(
            select(Segment.keywords).where(Segment.document_id == document.id, Segment.position == 1)
        )
    assert "paragraph" in keywords


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("broken.pdf", b"%PDF-1.4 this is not really a pdf", "pdf"),
        ("empty.txt", b"   \n\n  ", "text"),
        ("bad.json", b"{not json", "json"),
    ],
)
async def test_bad_files_end_in_error_with_a_message(
    kb_sessions, kb_session, kb_workspace, name: str, content: bytes, message: str
) -> None:
    dataset = await make_dataset(kb_session, kb_workspace, technique="high_quality")
    document = await add_document(kb_sessions, dataset, content, name=name)
    done = await wait_for_status(kb_sessions, document.id)
    assert done.indexing_status == "error"
    assert done.error
    assert message in done.error.lower()
    assert done.stopped_at is not None


async def test_identical_text_is_embedded_once(
    kb_sessions, kb_session, kb_workspace, kb_embeddings: FakeOpenAI
) -> None:
    dataset = await make_dataset(
        kb_session, kb_workspace, technique="high_quality", embedding=("openai", "fake-embed")
    )
    body = "\n".join(f"Cached line {i} about caching embeddings by content hash." for i in range(30))
    first = await add_document(kb_sessions, dataset, body)
    assert (await wait_for_status(kb_sessions, first.id)).indexing_status == "completed"
    kb_embeddings.reset()
    second = await add_document(kb_sessions, dataset, body, name="copy.txt")
    assert (await wait_for_status(kb_sessions, second.id)).indexing_status == "completed"
    assert kb_embeddings.bodies(EMBEDDINGS_PATH) == []  # every vector came from the cache
    total, embedded = await segment_counts(kb_sessions, second.id)
    assert total == embedded > 0


async def test_pause_and_resume_do_not_embed_twice(
    kb_sessions, kb_session, kb_workspace, kb_embeddings: FakeOpenAI
) -> None:
    dataset = await make_dataset(
        kb_session, kb_workspace, technique="high_quality", embedding=("openai", "fake-embed-slow")
    )
    lines = [f"Slow line {i} with some words so that each segment is unique {i * 7}." for i in range(4000)]
    kb_embeddings.reset()
    kb_embeddings.queue_delay(0.15, times=200)  # every call takes a while: time to pause in the middle
    document = await add_document(kb_sessions, dataset, "\n".join(lines))
    await wait_for_status(kb_sessions, document.id, ("indexing",))
    await asyncio.sleep(0.4)
    async with kb_sessions() as session, session.begin():
        doc = await session.get(Document, document.id, with_for_update=True)
        assert doc is not None
        await lifecycle.pause_indexing(session, doc)
    await asyncio.sleep(0.6)  # the batch in flight finishes, then the job stops
    total, embedded_at_pause = await segment_counts(kb_sessions, document.id)
    async with kb_sessions() as session:
        paused = await session.get(Document, document.id)
    assert paused is not None
    assert paused.indexing_status == "paused"
    assert paused.paused_at is not None
    assert 0 < embedded_at_pause < total
    await asyncio.sleep(0.3)
    assert (await segment_counts(kb_sessions, document.id))[1] == embedded_at_pause  # really stopped
    async with kb_sessions() as session, session.begin():
        doc = await session.get(Document, document.id, with_for_update=True)
        assert doc is not None
        await lifecycle.resume_indexing(session, doc)
    done = await wait_for_status(kb_sessions, document.id)
    assert done.indexing_status == "completed", done.error
    embedded_texts = [t for body in kb_embeddings.bodies(EMBEDDINGS_PATH) for t in body["input"]]
    assert len(embedded_texts) == len(set(embedded_texts)) == total  # each segment embedded exactly once


async def test_update_during_indexing_leaves_only_the_new_version(
    kb_sessions, kb_session, kb_workspace, kb_embeddings: FakeOpenAI
) -> None:
    dataset = await make_dataset(
        kb_session, kb_workspace, technique="high_quality", embedding=("openai", "fake-embed-update")
    )
    kb_embeddings.reset()
    kb_embeddings.queue_delay(0.1, times=50)
    old = "\n".join(f"Old version line {i} with filler text to make it longer." for i in range(3000))
    document = await add_document(kb_sessions, dataset, old)
    await wait_for_status(kb_sessions, document.id, ("indexing",))
    async with kb_sessions() as session, session.begin():
        doc = await session.get(Document, document.id, with_for_update=True)
        assert doc is not None
        await session.execute(
            text("UPDATE upload_files SET content = :c WHERE id = :id"),
            {"c": b"New version, one short line.", "id": doc.upload_file_id},
        )
        await lifecycle.start_indexing(session, doc)
    done = await wait_for_status(kb_sessions, document.id)
    assert done.indexing_status == "completed"
    assert done.indexing_generation == 2
    async with kb_sessions() as session:
        contents = list(
            await session.scalars(select(Segment.content).where(Segment.document_id == document.id))
        )
    assert contents == ["New version, one short line."]
