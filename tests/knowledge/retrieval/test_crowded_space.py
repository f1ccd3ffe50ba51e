"""A small dataset in a crowded embedding space: one tenant's few segments among another tenant's many, all in the
space of one model. An approximate (HNSW) scan filtered down to the small dataset gives up (pgvector's scan limits)
before it meets all of the dataset's rows: semantic search must still return them.

Each search runs with `enable_sort = off`: the planner then orders through the HNSW index whenever it can, as it
does with statistics that make the small dataset look large (what CI met: a search that found none of 6 rows)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.knowledge.embeddings import vectors
from app.knowledge.embeddings.providers import Embedders
from app.knowledge.retrieval.model import parse_retrieval_model
from app.knowledge.retrieval.services import Hit, Retriever
from app.settings import Settings
from db.models import Dataset
from tests.knowledge.conftest import add_document, wait_for_status
from tests.knowledge.rows import make_dataset, make_workspace

pytestmark = pytest.mark.usefixtures("kb_worker")

MODEL = ("openai", "fake-crowded")
#: Rows of the other tenant's dataset: enough that a filtered HNSW scan gives up before the small dataset's rows.
CROWD = 30_000
FACTS = [
    "The keeper trimmed the lamp wick at dusk.",
    "Fog rolled over the headland before dawn.",
    "The lens turned once every twenty seconds.",
    "Supplies came by boat once a month.",
    "Gulls nested on the gallery rail.",
]
FACT_NAMES = [f"fact-{i}.txt" for i in range(len(FACTS))]


@dataclass
class Space:
    crowd: Dataset
    small: Dataset


@pytest.fixture(scope="module")
async def space(kb_engine, kb_settings: Settings) -> Space:
    sessions = async_sessionmaker(kb_engine, expire_on_commit=False)
    async with sessions() as session:
        crowd = await make_dataset(
            session, await make_workspace(session), technique="high_quality", embedding=MODEL
        )
    async with sessions() as session:
        small = await make_dataset(
            session, await make_workspace(session), technique="high_quality", embedding=MODEL
        )
    seed = await add_document(sessions, crowd, "The crowd's first line.", name="crowd.txt")
    assert (await wait_for_status(sessions, seed.id)).indexing_status == "completed"
    for name, fact in zip(FACT_NAMES, FACTS, strict=True):
        doc = await add_document(sessions, small, fact, name=name)
        assert (await wait_for_status(sessions, doc.id)).indexing_status == "completed"

    embedder = Embedders(kb_settings).for_dataset(small)
    assert embedder is not None
    async with sessions() as session, session.begin():
        found = await vectors.space_of(session, embedder.model)
        assert found is not None
        space_id, dimension = found
        # The other tenant's rows: random vectors in the same space, searchable like any segment.
        await session.execute(
            text(
                "INSERT INTO segments (id, created_at, updated_at, dataset_id, document_id, position, content, "
                "word_count, tokens, keywords, content_hash, hit_count, enabled, status, embedding_space_id, "
                "embedding) "
                "SELECT gen_random_uuid(), now(), now(), :dataset, :document, 1 + r.n, 'crowd ' || r.n, 2, 2, "
                "'{}', sha256(r.n::text::bytea), 0, true, 'completed', :space, "
                "(SELECT array_agg(random() - 0.5) FROM generate_series(1, :dim) AS d(i) WHERE r.n > 0)::vector "
                "FROM generate_series(1, :rows) AS r(n)"
            ),
            {"dataset": crowd.id, "document": seed.id, "space": space_id, "dim": dimension, "rows": CROWD},
        )
    async with sessions() as session:
        await session.execute(text("ANALYZE segments"))
    return Space(crowd, small)


async def semantic(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, dataset: Dataset, query: str, top_k: int
) -> list[Hit]:
    model = parse_retrieval_model({"search_method": "semantic_search", "top_k": top_k})
    async with sessions() as session, session.begin():
        await session.execute(text("SET LOCAL enable_sort = off"))
        return await Retriever(Embedders(settings)).retrieve(session, [dataset], query, model)


async def test_an_index_scan_that_comes_back_short_is_redone_exactly(
    kb_sessions, kb_settings, space: Space
) -> None:
    for fact in FACTS:
        hits = await semantic(
            kb_sessions, kb_settings, space.small, f"{fact} (asked differently)", len(FACTS)
        )
        assert sorted(h.document.name for h in hits) == FACT_NAMES
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    # more than the dataset holds: every row, the same text first
    hits = await semantic(kb_sessions, kb_settings, space.small, FACTS[2], 8)
    assert sorted(h.document.name for h in hits) == FACT_NAMES
    assert hits[0].document.name == FACT_NAMES[2]
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)


async def test_a_large_dataset_is_searched_through_the_index(kb_sessions, kb_settings, space: Space) -> None:
    hits = await semantic(kb_sessions, kb_settings, space.crowd, "anything at all", 10)
    assert len(hits) == 10
    assert all(h.dataset.id == space.crowd.id for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
