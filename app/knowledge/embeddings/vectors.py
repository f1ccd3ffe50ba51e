"""Embedding spaces, the embedding cache and bulk vector writes.

An embedding space is one model at one dimension. Its vectors sit in ``segments.embedding`` /
``child_chunks.embedding`` tagged with the space's id, and each space has one partial HNSW index per table over
``embedding::vector(dim)`` — so vectors of two models never share an index, and a query names its space and
gets that index. Spaces are created on first use, under a transaction-scoped advisory lock so that two
transactions racing to create the same one cannot both build its indexes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Literal

import numpy as np
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.knowledge.embeddings.embedders import Embedder

VectorTable = Literal["segments", "child_chunks"]
VECTOR_TABLES: tuple[VectorTable, ...] = ("segments", "child_chunks")
_SPACES_LOCK = 0x51CE_0001  # advisory lock key: creating an embedding space


def content_hash(content: str) -> bytes:
    return hashlib.sha256(content.encode()).digest()


def vector_literal(vector: np.ndarray) -> str:
    """pgvector's text form; float32 values printed with 7 significant digits round-trip exactly enough."""
    return "[" + ",".join(f"{x:.7g}" for x in vector.tolist()) + "]"


def index_name(table: VectorTable, space_id: int) -> str:
    return f"{table}_embedding_space_{space_id}_hnsw"


async def ensure_space(session: AsyncSession, model: str, dimension: int) -> int:
    """The id of ``(model, dimension)``'s embedding space, creating it and its HNSW indexes if new."""
    find = text("SELECT id FROM embedding_spaces WHERE model = :model AND dimension = :dimension")
    params = {"model": model, "dimension": dimension}
    space_id = await session.scalar(find, params)
    if space_id is not None:
        return int(space_id)
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SPACES_LOCK})
    space_id = await session.scalar(find, params)
    if space_id is not None:  # created by the transaction we waited for
        return int(space_id)
    space_id = int(
        await session.scalar(
            text("INSERT INTO embedding_spaces (model, dimension) VALUES (:model, :dimension) RETURNING id"),
            params,
        )
    )
    for table in VECTOR_TABLES:
        # Identifiers and the predicate are integers we just read back, never user text.
        await session.execute(
            text(
                f"CREATE INDEX IF NOT EXISTS {index_name(table, space_id)} ON {table} "
                f"USING hnsw ((embedding::vector({int(dimension)})) vector_cosine_ops) "
                f"WHERE embedding_space_id = {space_id}"
            )
        )
    return space_id


async def space_of(session: AsyncSession, model: str) -> tuple[int, int] | None:
    """``(space id, dimension)`` of the newest space of ``model``, or None when nothing was embedded with it."""
    row = (
        await session.execute(
            text("SELECT id, dimension FROM embedding_spaces WHERE model = :model ORDER BY id DESC LIMIT 1"),
            {"model": model},
        )
    ).first()
    return (int(row[0]), int(row[1])) if row else None


async def embed_with_cache(session: AsyncSession, embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
    """Vectors for ``texts`` (in order): cached ones read back, the rest embedded once each and cached.

    The cache insert is ``ON CONFLICT DO NOTHING``: two workers embedding the same text both succeed.
    """
    hashes = [content_hash(t) for t in texts]
    cached: dict[bytes, np.ndarray] = {}
    rows = await session.execute(
        text(
            "SELECT content_hash, embedding::text FROM embedding_cache "
            "WHERE model = :model AND content_hash = ANY(:hashes)"
        ),
        {"model": embedder.model, "hashes": list(set(hashes))},
    )
    for digest, vector_text in rows:
        cached[bytes(digest)] = np.array(vector_text.strip("[]").split(","), dtype=np.float32)
    missing: dict[bytes, str] = {}
    for digest, t in zip(hashes, texts, strict=True):
        if digest not in cached and digest not in missing:
            missing[digest] = t
    if missing:
        fresh = await embedder.embed_documents(list(missing.values()))
        for digest, vector in zip(missing, fresh, strict=True):
            cached[digest] = vector
        await session.execute(
            text(
                "INSERT INTO embedding_cache (model, content_hash, embedding) "
                "SELECT :model, h, CAST(v AS vector) "
                "FROM unnest(CAST(:hashes AS bytea[]), CAST(:vectors AS text[])) AS t(h, v) "
                "ON CONFLICT DO NOTHING"
            ),
            {
                "model": embedder.model,
                "hashes": list(missing),
                "vectors": [vector_literal(v) for v in fresh],
            },
        )
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([cached[d] for d in hashes])


async def write_vectors(
    session: AsyncSession, table: VectorTable, space_id: int, ids: Sequence[object], vectors: np.ndarray
) -> int:
    """Store many vectors in one statement; returns how many rows were updated (rows deleted meanwhile skip)."""
    if not ids:
        return 0
    result = await session.execute(
        text(
            f"UPDATE {table} AS t SET embedding = CAST(v.vector AS vector), embedding_space_id = :space_id "  # noqa: S608
            "FROM unnest(CAST(:ids AS uuid[]), CAST(:vectors AS text[])) AS v(id, vector) "
            "WHERE t.id = v.id"
        ),
        {"space_id": space_id, "ids": list(ids), "vectors": [vector_literal(v) for v in vectors]},
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def embed_rows(
    session: AsyncSession, embedder: Embedder, table: VectorTable, rows: Sequence[tuple[object, str]]
) -> None:
    """Embed ``(id, content)`` rows of ``table`` (through the cache) and store their vectors."""
    if not rows:
        return
    vectors = await embed_with_cache(session, embedder, [content for _, content in rows])
    # The vectors' own width: an API embedder learns its dimension only from a response, and cached
    # vectors need none.
    space_id = await ensure_space(session, embedder.model, int(vectors.shape[1]))
    await write_vectors(session, table, space_id, [row_id for row_id, _ in rows], vectors)
