"""The search queries: one function per method, each returning ``(row id, score)`` best first, scores in [0, 1].

A search runs over one *unit* table — ``segments`` for ordinary datasets, ``child_chunks`` for hierarchical
ones (only children are embedded and matched; the caller groups them under their parents) — restricted to
searchable rows: enabled segments of enabled, unarchived, completed documents of the given datasets, passing
the metadata filter. Every value is a bound parameter; the only things formatted into SQL are integers (the
embedding space's dimension, which also selects that space's partial HNSW index).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa
from pgvector.sqlalchemy import VECTOR
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from app.knowledge.embeddings.vectors import vector_literal
from app.knowledge.indexing.keywords import extract_keywords
from db.models import ChildChunk, Document, Segment
from db.models.knowledge import TEXT_SEARCH_CONFIG

Unit = type[Segment] | type[ChildChunk]
Hit = tuple[uuid.UUID, float]

#: HNSW candidate list size at query time (pgvector's default is 40). Measured on 100k segments of Zipf-like
#: text (m 16, ef_construction 64): recall@10 0.91 at 100, 0.96 at 200, 0.98 at 400, for +0.7 / +2 ms
#: (`just bench indexing`); through `/retrieve` (filters, joins) 200 gave 0.94, so 400.
#: Iterative scans keep filtered queries (a few datasets out of many) full.
EF_SEARCH = 400
#: Relaxed-order iterative scans return rows *nearly* sorted by distance, so a plain LIMIT could cut a true
#: neighbour that arrived a little late: read this many more rows, sort, then cut.
RELAXED_MARGIN = 20


def searchable(
    unit: Unit, dataset_ids: Sequence[uuid.UUID], condition: ColumnElement[bool]
) -> sa.Select[Any]:
    """``SELECT id`` skeleton of one unit table, joined to what decides whether a row may be returned."""
    query = sa.select(unit.id).join(Document, Document.id == unit.document_id)
    if unit is ChildChunk:
        query = query.join(Segment, Segment.id == ChildChunk.segment_id)
    return query.where(
        unit.dataset_id.in_(dataset_ids),
        Segment.enabled.is_(True),
        Document.enabled.is_(True),
        Document.archived.is_(False),
        Document.indexing_status == "completed",
        condition,
    )


async def semantic(
    session: AsyncSession,
    unit: Unit,
    dataset_ids: Sequence[uuid.UUID],
    condition: ColumnElement[bool],
    space_id: int,
    vector: np.ndarray,
    limit: int,
) -> list[Hit]:
    """Cosine similarity, ``score = 1 - cosine distance``, through the space's HNSW index where the planner
    takes it — and exactly, over every row of the datasets, should that come back short of ``limit``.

    An embedding space is shared by every dataset of its model, across tenants: a small dataset is a sliver of
    the space's graph, and an index scan filtered down to it gives up (pgvector's `hnsw.max_scan_tuples`, scan
    memory) before it meets all of its rows — it returned 4 of 5, or none. With good statistics the planner reads
    a small dataset's rows and sorts them anyway; with statistics that make it look large, it trusts the index.
    """
    dim = int(vector.shape[0])
    query = sa.cast(sa.literal(vector_literal(vector), sa.Text), VECTOR(dim))
    rows = searchable(unit, dataset_ids, condition).where(
        unit.embedding_space_id == sa.literal_column(str(int(space_id)))
    )
    distance = sa.cast(unit.embedding, VECTOR(dim)).op("<=>", return_type=sa.Float)(query)
    statement = rows.add_columns(distance.label("distance")).order_by(distance).limit(limit + RELAXED_MARGIN)
    # For this transaction: a deeper candidate list, iterative scans so that filters (a few datasets among
    # many) still fill top_k, and never a sequential scan of the whole table — with statistics that lag a bulk
    # load (a new embedding space looks empty until autovacuum analyzes) the planner would sort every row.
    await session.execute(
        sa.text(
            "SELECT set_config('hnsw.ef_search', :ef, true), "
            "set_config('hnsw.iterative_scan', 'relaxed_order', true), "
            "set_config('enable_seqscan', 'off', true)"
        ),
        {"ef": str(max(EF_SEARCH, int(limit)))},
    )
    found = (await session.execute(statement)).all()
    if len(found) < limit:
        # Short: the datasets hold fewer rows, or the index scan gave up. Exact: the rows come out of a
        # materialized CTE, so no plan can order them through the index.
        near = rows.add_columns(unit.embedding.label("embedding")).cte("near").prefix_with("MATERIALIZED")
        exact = sa.cast(near.c.embedding, VECTOR(dim)).op("<=>", return_type=sa.Float)(query)
        found = (await session.execute(sa.select(near.c.id, exact).order_by(exact).limit(limit))).all()
    hits = [(r[0], max(0.0, min(1.0, 1.0 - float(r[1])))) for r in found]
    return sorted(hits, key=lambda h: -h[1])[:limit]


def or_tsquery_text(query: str) -> str:
    """The query's words joined by OR for ``to_tsquery`` (each quoted, so no word is read as an operator)."""
    words = dict.fromkeys(w for w in re.findall(r"\w+", query.lower()) if w.strip("_"))
    return " | ".join("'" + w.replace("'", "''") + "'" for w in words)


async def full_text(
    session: AsyncSession,
    unit: Unit,
    dataset_ids: Sequence[uuid.UUID],
    condition: ColumnElement[bool],
    query_text: str,
    limit: int,
) -> list[Hit]:
    """``tsvector`` match through the GIN index, any query word (stemmed, stop words dropped) may match.

    Ranked by ``ts_rank_cd`` with normalisation 1|32: divided by 1 + log(length), then mapped to rank/(rank+1),
    so scores lie in [0, 1) and a threshold means the same thing for every query.
    """
    words = or_tsquery_text(query_text)
    if not words:
        return []
    tsquery = sa.func.to_tsquery(sa.literal_column(f"'{TEXT_SEARCH_CONFIG}'::regconfig"), words)
    rank = sa.func.ts_rank_cd(unit.search_vector, tsquery, 33)
    statement = (
        searchable(unit, dataset_ids, condition)
        .add_columns(rank.label("rank"))
        .where(unit.search_vector.op("@@")(tsquery))
        .order_by(sa.desc("rank"))
        .limit(limit)
    )
    return [(r[0], float(r[1])) for r in await session.execute(statement)]


async def keyword(
    session: AsyncSession,
    unit: Unit,
    dataset_ids: Sequence[uuid.UUID],
    condition: ColumnElement[bool],
    query_text: str,
    limit: int,
) -> list[Hit]:
    """Dify's economy search: the share of the query's keywords found in a row's keywords (GIN on the array)."""
    words = extract_keywords(query_text)
    if not words:
        return []
    matched = sum(
        (sa.case((unit.keywords.contains(sa.literal([w], sa.ARRAY(sa.Text))), 1), else_=0) for w in words),
        sa.literal(0),
    )
    score = (matched * 1.0 / len(words)).label("score")
    statement = (
        searchable(unit, dataset_ids, condition)
        .add_columns(score)
        .where(unit.keywords.overlap(sa.literal(words, sa.ARRAY(sa.Text))))
        .order_by(sa.desc("score"), unit.id)
        .limit(limit)
    )
    return [(r[0], float(r[1])) for r in await session.execute(statement)]


def fuse_weighted(semantic_hits: list[Hit], text_hits: list[Hit], vector_weight: float) -> list[Hit]:
    """Weighted sum of both scores (a row missing from one list scores 0 there)."""
    keyword_weight = 1.0 - vector_weight if vector_weight <= 1 else 0.0
    scores: dict[uuid.UUID, float] = {}
    for row_id, score in semantic_hits:
        scores[row_id] = scores.get(row_id, 0.0) + vector_weight * score
    for row_id, score in text_hits:
        scores[row_id] = scores.get(row_id, 0.0) + keyword_weight * score
    return sorted(scores.items(), key=lambda h: -h[1])


RRF_K = 60


def fuse_rrf(*rankings: list[Hit]) -> list[Hit]:
    """Reciprocal rank fusion (k = 60), normalised so a row ranked first by every list scores 1."""
    scores: dict[uuid.UUID, float] = {}
    for ranking in rankings:
        for rank, (row_id, _) in enumerate(ranking, start=1):
            scores[row_id] = scores.get(row_id, 0.0) + 1.0 / (RRF_K + rank)
    best = len(rankings) / (RRF_K + 1)
    return sorted(((k, v / best) for k, v in scores.items()), key=lambda h: -h[1])
