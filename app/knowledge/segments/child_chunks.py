"""Child chunks edited through the API (hierarchical documents). Services never commit.

The caller locks the document row (see ``services``), which orders these edits against the indexing pipeline.
A child chunk is embedded in the request; when that fails the change is refused, as in Dify.
"""

from __future__ import annotations

import math
import uuid
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import NotFound, SluiceError
from app.knowledge.indexing.chunk_text import text_fields
from app.knowledge.segments.services import check_content, check_mutable, embed
from db.models import ChildChunk, Dataset, Document, Segment

if TYPE_CHECKING:
    from app.knowledge.embeddings.embedders import Embedder
    from app.knowledge.embeddings.providers import Embedders


class ChildChunkIndexingError(SluiceError):
    """The child chunk could not be indexed."""

    status, code = 503, "child_chunk_indexing_error"


async def get_child_chunk(session: AsyncSession, segment: Segment, child_chunk_id: uuid.UUID) -> ChildChunk:
    child = await session.scalar(
        select(ChildChunk).where(ChildChunk.id == child_chunk_id, ChildChunk.segment_id == segment.id)
    )
    if child is None:
        raise NotFound("Child chunk not found.")
    return child


async def list_child_chunks(
    session: AsyncSession, segment: Segment, page: int, limit: int, keyword: str | None = None
) -> tuple[list[ChildChunk], int, int]:
    """A page of the segment's child chunks, their total, and the number of pages."""
    query = select(ChildChunk).where(ChildChunk.segment_id == segment.id)
    if keyword:
        query = query.where(ChildChunk.content.icontains(keyword, autoescape=True))
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.scalars(query.order_by(ChildChunk.position).offset((page - 1) * limit).limit(limit))
    return list(rows), total, math.ceil(total / limit)


async def create_child_chunk(
    session: AsyncSession,
    embedders: Embedders,
    dataset: Dataset,
    document: Document,
    segment: Segment,
    content: str,
) -> ChildChunk:
    """Append a child chunk (``customized``) to a segment; the segment row is locked by the caller."""
    check_mutable(document)
    check_content(content)
    embedder = embedders.for_dataset(dataset)
    position = await session.scalar(
        select(func.max(ChildChunk.position)).where(ChildChunk.segment_id == segment.id)
    )
    child = ChildChunk(
        dataset_id=dataset.id,
        document_id=document.id,
        segment_id=segment.id,
        position=(position or 0) + 1,
        **text_fields(content),
        type="customized",
    )
    session.add(child)
    await session.flush()
    await _embed_child(session, embedder, child)
    return child


async def update_child_chunk(
    session: AsyncSession,
    embedders: Embedders,
    dataset: Dataset,
    document: Document,
    child: ChildChunk,
    content: str,
) -> ChildChunk:
    check_mutable(document)
    check_content(content)
    embedder = embedders.for_dataset(dataset)
    if content != child.content:
        for name, value in text_fields(content).items():
            setattr(child, name, value)
        child.embedding, child.embedding_space_id = None, None
    child.type = "customized"
    await session.flush()
    if child.embedding_space_id is None:
        await _embed_child(session, embedder, child)
    return child


async def _embed_child(session: AsyncSession, embedder: Embedder | None, child: ChildChunk) -> None:
    # Dify refuses the whole change when a child chunk cannot be indexed (the request rolls back).
    error = await embed(session, embedder, "child_chunks", [(child.id, child.content)])
    if error is not None:
        raise ChildChunkIndexingError(error)


async def delete_child_chunk(session: AsyncSession, document: Document, child: ChildChunk) -> None:
    check_mutable(document)
    await session.delete(child)
    await session.flush()
