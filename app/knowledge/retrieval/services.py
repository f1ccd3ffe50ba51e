"""Retrieval across datasets: pick the search per dataset group, fuse, threshold, and load the hits.

Datasets are grouped by what decides how they can be searched — their unit table (segments, or child chunks
for hierarchical datasets) and their embedding model — and each group is searched with one query per method.
Economy datasets have no vectors: semantic and hybrid requests search them by keywords, as Dify does.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.knowledge.embeddings import vectors
from app.knowledge.embeddings.providers import Embedders
from app.knowledge.retrieval import search
from app.knowledge.retrieval.filters import filter_sql
from app.knowledge.retrieval.model import RetrievalModel
from db.models import ChildChunk, Dataset, Document, Segment

#: Hybrid search looks this many times deeper than ``top_k`` in each list before fusing.
HYBRID_DEPTH = 4
#: Hierarchical search reads this many children per wanted parent (several children share a parent).
CHILDREN_PER_PARENT = 3


class Ranked(NamedTuple):
    """A segment found by a search, before its rows are loaded."""

    segment_id: uuid.UUID
    score: float
    #: ``(child chunk id, score)`` of the child chunks that matched (hierarchical datasets; empty otherwise).
    children: list[tuple[uuid.UUID, float]]


@dataclass
class Hit:
    segment: Segment
    document: Document
    dataset: Dataset
    score: float
    child_chunks: list[tuple[ChildChunk, float]] = field(default_factory=list)


class Retriever:
    def __init__(self, embedders: Embedders) -> None:
        self.embedders = embedders

    async def retrieve(
        self, session: AsyncSession, datasets: Sequence[Dataset], query: str, model: RetrievalModel
    ) -> list[Hit]:
        """The best ``top_k`` segments of ``datasets`` for ``query``, loaded (their hit counts bumped)."""
        return await load(session, await self.rank(session, datasets, query, model), datasets)

    async def rank(
        self, session: AsyncSession, datasets: Sequence[Dataset], query: str, model: RetrievalModel
    ) -> list[Ranked]:
        """The best segments first, thresholded and cut to ``top_k``."""
        groups: dict[tuple[bool, str | None, str | None], list[Dataset]] = {}
        for d in datasets:
            hierarchical = d.doc_form == "hierarchical_model"
            embedder_key = (
                (d.embedding_model_provider, d.embedding_model)
                if d.indexing_technique == "high_quality"
                else (None, None)
            )
            groups.setdefault((hierarchical, *embedder_key), []).append(d)
        by_segment: dict[uuid.UUID, Ranked] = {}
        for (hierarchical, _, _), members in groups.items():
            unit: search.Unit = ChildChunk if hierarchical else Segment
            hits = await self._search_group(session, unit, members, query, model, hierarchical)
            if not hierarchical:
                for row_id, score in hits:
                    best = by_segment[row_id].score if row_id in by_segment else 0.0
                    by_segment[row_id] = Ranked(row_id, max(score, best), [])
                continue
            parents = await _parents_of(session, [h[0] for h in hits])
            for child_id, score in hits:
                parent = parents.get(child_id)
                if parent is None:  # deleted since the search
                    continue
                found = by_segment.get(parent, Ranked(parent, 0.0, []))
                by_segment[parent] = Ranked(
                    parent, max(found.score, score), [*found.children, (child_id, score)]
                )
        ranked = sorted(by_segment.values(), key=lambda r: -r.score)
        threshold = model.threshold
        if threshold is not None:
            ranked = [r for r in ranked if r.score >= threshold]
        return ranked[: model.top_k]

    async def _search_group(
        self,
        session: AsyncSession,
        unit: search.Unit,
        datasets: list[Dataset],
        query: str,
        model: RetrievalModel,
        hierarchical: bool,
    ) -> list[search.Hit]:
        ids = [d.id for d in datasets]
        condition = filter_sql(model.metadata_filtering_conditions)
        limit = model.top_k * (CHILDREN_PER_PARENT if hierarchical else 1)
        embedder = self.embedders.for_dataset(datasets[0])
        method = model.search_method
        if embedder is None and method in ("semantic_search", "hybrid_search"):
            method = "keyword_search"
        if method == "keyword_search":
            return await search.keyword(session, unit, ids, condition, query, limit)
        if method == "full_text_search":
            return await search.full_text(session, unit, ids, condition, query, limit)
        assert embedder is not None
        depth = limit if method == "semantic_search" else max(limit * HYBRID_DEPTH, 20)
        semantic_hits: list[search.Hit] = []
        space = await vectors.space_of(session, embedder.model)  # None: nothing embedded with it yet
        if space is not None:
            vector = await embedder.embed_query(query)
            semantic_hits = await search.semantic(session, unit, ids, condition, space[0], vector, depth)
        if method == "semantic_search":
            return semantic_hits
        text_hits = await search.full_text(session, unit, ids, condition, query, depth)
        if model.fusion == "weighted" and model.weights is not None:
            fused = search.fuse_weighted(semantic_hits, text_hits, model.weights.vector_setting.vector_weight)
        else:
            fused = search.fuse_rrf(semantic_hits, text_hits)
        return fused[:limit]


async def _parents_of(session: AsyncSession, child_ids: list[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    if not child_ids:
        return {}
    rows = await session.execute(
        sa.select(ChildChunk.id, ChildChunk.segment_id).where(ChildChunk.id.in_(child_ids))
    )
    return {r[0]: r[1] for r in rows}


async def load(session: AsyncSession, ranked: list[Ranked], datasets: Sequence[Dataset]) -> list[Hit]:
    """The hits' segments, documents and matched children in two queries; bumps the segments' hit counts."""
    if not ranked:
        return []
    segment_ids = [r.segment_id for r in ranked]
    rows = await session.execute(
        sa.select(Segment, Document)
        .join(Document, Document.id == Segment.document_id)
        .where(Segment.id.in_(segment_ids))
    )
    found = {segment.id: (segment, document) for segment, document in rows}
    child_ids = [child_id for r in ranked for child_id, _ in r.children]
    children = {}
    if child_ids:
        children = {
            c.id: c
            for c in (await session.scalars(sa.select(ChildChunk).where(ChildChunk.id.in_(child_ids))))
        }
    await session.execute(
        sa.update(Segment).where(Segment.id.in_(segment_ids)).values(hit_count=Segment.hit_count + 1)
    )
    by_id = {d.id: d for d in datasets}
    hits = []
    for r in ranked:
        if r.segment_id not in found:
            continue
        segment, document = found[r.segment_id]
        hit = Hit(segment, document, by_id[segment.dataset_id], r.score)
        hit.child_chunks = sorted(
            ((children[c], s) for c, s in r.children if c in children), key=lambda item: -item[1]
        )
        hits.append(hit)
    return hits
