"""Segments and child chunks edited through the API. Services never commit.

Every change locks its document row first (``SELECT ... FOR UPDATE``): positions are ``max + 1`` under that
lock, so two concurrent creates cannot pick the same position, and the document's ``word_count``/``tokens``
stay the sum of its segments. The same lock orders an edit against the indexing pipeline, which updates the
document row in every transaction that writes segments.

Vectors: in a ``text_model`` document the segments are embedded; in a ``hierarchical_model`` document only the
child chunks are (the parent is what a hit returns). An ``economy`` dataset has no vectors at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.clock import utcnow
from app.errors import InvalidParam, NotFound
from app.knowledge.datasets.services import RowLock, locked
from app.knowledge.embeddings import vectors
from app.knowledge.embeddings.embedders import EmbeddingError
from app.knowledge.errors import ArchivedDocumentImmutable
from app.knowledge.indexing.chunk_text import estimate_tokens, text_fields
from app.knowledge.indexing.keywords import extract_keywords
from app.knowledge.indexing.splitting import (
    SUBCHUNK_SEGMENTATION,
    InvalidProcessRule,
    ProcessRule,
    Segmentation,
    split_text,
)
from app.knowledge.segments.schemas import SegmentCreateItem, SegmentUpdateArgs
from db.models import ChildChunk, Dataset, Document, Segment

if TYPE_CHECKING:
    from app.knowledge.embeddings.embedders import Embedder
    from app.knowledge.embeddings.providers import Embedders

log = structlog.get_logger()

HIERARCHICAL = "hierarchical_model"


# -- lookups ---------------------------------------------------------------------------------------------------


async def get_segment(
    session: AsyncSession, document: Document, segment_id: uuid.UUID, *, lock: RowLock | None = None
) -> Segment:
    """A segment of ``document`` (404 otherwise); ``lock`` locks its row for the transaction."""
    query = select(Segment).where(Segment.id == segment_id, Segment.document_id == document.id)
    segment = await session.scalar(locked(query, lock))
    if segment is None:
        raise NotFound("Segment not found.")
    return segment


async def children_of(
    session: AsyncSession, segments: Sequence[Segment]
) -> dict[uuid.UUID, list[ChildChunk]]:
    """Child chunks of many segments in one query, in position order."""
    by_segment: dict[uuid.UUID, list[ChildChunk]] = {s.id: [] for s in segments}
    if not by_segment:
        return by_segment
    rows = await session.scalars(
        select(ChildChunk)
        .where(ChildChunk.segment_id.in_(list(by_segment)))
        .order_by(ChildChunk.segment_id, ChildChunk.position)
    )
    for child in rows:
        by_segment[child.segment_id].append(child)
    return by_segment


def check_mutable(document: Document) -> None:
    """Refuse (403) any change to the segments or child chunks of an archived document, as Dify does."""
    if document.archived:
        raise ArchivedDocumentImmutable()


# -- embedding -------------------------------------------------------------------------------------------------


async def embed(
    session: AsyncSession,
    embedder: Embedder | None,
    table: vectors.VectorTable,
    rows: Sequence[tuple[uuid.UUID, str]],
) -> str | None:
    """Embed ``(id, content)`` rows of ``table`` now, in the caller's transaction (as Dify does on edits).

    The one place segment edits reach the vector store. Returns the provider's error message instead of
    raising when the embedding model fails, so the caller can mark the rows like Dify does.
    ``embedder`` is None for an economy dataset: nothing is embedded.
    """
    if embedder is None or not rows:
        return None
    try:
        # An OpenAI-compatible model learns its dimension from its first reply; when every text is already in
        # the embedding cache there is no reply, so ask first (a no-op once known, and for local models).
        await embedder.ensure_dimension()
        async with session.begin_nested():
            await vectors.embed_rows(session, embedder, table, rows)
    except EmbeddingError as exc:
        log.warning("segment_embedding_failed", table=table, rows=len(rows), error=str(exc))
        return getattr(exc, "message", None) or str(exc)
    return None


def _child_segmentation(document: Document) -> Segmentation:
    """The document's ``subchunk_segmentation`` (Dify's default when its rule has none or is unreadable)."""
    rule = document.process_rule or {}
    try:
        parsed = ProcessRule.from_api(str(rule.get("mode", "hierarchical")), rule.get("rules"))
    except InvalidProcessRule:
        return SUBCHUNK_SEGMENTATION
    return parsed.subchunk_segmentation or SUBCHUNK_SEGMENTATION


async def _regenerate_children(
    session: AsyncSession, embedder: Embedder | None, document: Document, segments: Sequence[Segment]
) -> None:
    """Replace the segments' child chunks with a fresh split of their content, and embed them (one batch)."""
    seg = _child_segmentation(document)
    await session.execute(delete(ChildChunk).where(ChildChunk.segment_id.in_([s.id for s in segments])))
    children = [
        ChildChunk(
            dataset_id=segment.dataset_id,
            document_id=segment.document_id,
            segment_id=segment.id,
            position=position,
            **text_fields(text),
            type="automatic",
        )
        for segment in segments
        for position, text in enumerate(split_text(segment.content, seg), start=1)
    ]
    session.add_all(children)
    await session.flush()
    error = await embed(session, embedder, "child_chunks", [(c.id, c.content) for c in children])
    if error is not None:
        for segment in segments:
            _mark_failed(segment, error)


def _mark_failed(segment: Segment, error: str) -> None:
    """Dify's answer to a failed index write: the segment stays, disabled, with the error."""
    segment.status, segment.error = "error", error
    segment.enabled, segment.disabled_at = False, utcnow()


def _adjust_counts(document: Document, word_delta: int) -> None:
    document.word_count = max(0, document.word_count + word_delta)
    document.tokens = estimate_tokens(document.word_count)


def check_content(content: str) -> str:
    """``content`` itself, or 400 when it is only whitespace (Dify's check and message)."""
    if not content.strip():
        raise InvalidParam("Content is empty")
    return content


# -- segments --------------------------------------------------------------------------------------------------


async def list_segments(
    session: AsyncSession,
    document: Document,
    page: int,
    limit: int,
    statuses: Sequence[str] = (),
    keyword: str | None = None,
) -> tuple[list[Segment], int]:
    query = select(Segment).where(Segment.document_id == document.id)
    if statuses:
        query = query.where(Segment.status.in_(list(statuses)))
    if keyword:
        query = query.where(Segment.content.icontains(keyword, autoescape=True))
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.scalars(query.order_by(Segment.position).offset((page - 1) * limit).limit(limit))
    return list(rows), total


async def create_segments(
    session: AsyncSession,
    embedders: Embedders,
    dataset: Dataset,
    document: Document,
    items: Sequence[SegmentCreateItem],
) -> list[Segment]:
    """Append segments to a completed, enabled document (``document`` locked by the caller)."""
    check_mutable(document)
    # Dify answers these two with 404 and these messages.
    if document.indexing_status != "completed":
        raise NotFound("Document is not completed.")
    if not document.enabled:
        raise NotFound("Document is disabled.")
    qa = document.doc_form == "qa_model"
    for item in items:
        check_content(item.content)
        if qa and not (item.answer or "").strip():
            raise InvalidParam("Answer is required")
    embedder = embedders.for_dataset(dataset)  # before any write: a misconfigured model is a 400
    position = (
        await session.scalar(select(func.max(Segment.position)).where(Segment.document_id == document.id))
    ) or 0
    now = utcnow()
    segments = []
    for item in items:
        position += 1
        answer = item.answer if qa else None
        words = len(item.content) + len(answer or "")
        segments.append(
            Segment(
                dataset_id=dataset.id,
                document_id=document.id,
                position=position,
                content=item.content,
                answer=answer,
                word_count=words,
                tokens=estimate_tokens(words),
                keywords=item.keywords if item.keywords is not None else extract_keywords(item.content),
                content_hash=vectors.content_hash(item.content),
                status="completed",
                indexing_at=now,
                completed_at=now,
            )
        )
    session.add_all(segments)
    await session.flush()
    _adjust_counts(document, sum(s.word_count for s in segments))
    if document.doc_form == HIERARCHICAL:
        await _regenerate_children(session, embedder, document, segments)
    else:
        error = await embed(session, embedder, "segments", [(s.id, s.content) for s in segments])
        if error is not None:
            for segment in segments:
                _mark_failed(segment, error)
    await session.flush()
    return segments


async def update_segment(
    session: AsyncSession,
    embedders: Embedders,
    dataset: Dataset,
    document: Document,
    segment: Segment,
    args: SegmentUpdateArgs,
) -> Segment:
    """Dify's ``update_segment``: disable, or re-enable and/or edit (re-embedding changed content)."""
    check_mutable(document)
    if args.enabled is False and segment.enabled:
        # Disabling is all this request does (Dify ignores the other fields then).
        segment.enabled, segment.disabled_at = False, utcnow()
        await session.flush()
        return segment
    if not segment.enabled and args.enabled is not True:
        raise InvalidParam("Can't update disabled segment")
    content = check_content(args.content) if args.content is not None else segment.content
    embedder = embedders.for_dataset(dataset)
    changed = content != segment.content
    old_words = segment.word_count
    if document.doc_form == "qa_model" and args.answer is not None:
        segment.answer = args.answer
    segment.content = content
    segment.word_count = len(content) + len(segment.answer or "")
    segment.tokens = estimate_tokens(segment.word_count)
    if args.keywords:
        segment.keywords = args.keywords
    elif changed:
        segment.keywords = extract_keywords(content)
    segment.enabled, segment.disabled_at = True, None
    if changed:
        now = utcnow()
        segment.content_hash = vectors.content_hash(content)
        segment.status, segment.error = "completed", None
        segment.indexing_at = segment.completed_at = now
        segment.embedding, segment.embedding_space_id = None, None
    _adjust_counts(document, segment.word_count - old_words)
    await session.flush()
    if document.doc_form == HIERARCHICAL:
        if args.regenerate_child_chunks:
            await _regenerate_children(session, embedder, document, [segment])
    elif changed or (embedder is not None and segment.embedding_space_id is None):
        # Also re-embeds a segment whose earlier embedding failed, when it is re-enabled or edited.
        error = await embed(session, embedder, "segments", [(segment.id, segment.content)])
        if error is not None:
            _mark_failed(segment, error)
        elif segment.status == "error":
            segment.status, segment.error = "completed", None
    await session.flush()
    return segment


async def delete_segment(session: AsyncSession, document: Document, segment: Segment) -> None:
    """Delete the segment with its child chunks and vectors (they live in the rows)."""
    check_mutable(document)
    _adjust_counts(document, -segment.word_count)
    await session.delete(segment)
    await session.flush()
