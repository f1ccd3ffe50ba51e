"""Segment and child chunk bodies, field for field like Dify's ``segment_fields`` / ``child_chunk_fields``."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

import msgspec

from app.schemas import text_field, unix
from db.models import ChildChunk, Segment

#: Longest segment or child chunk accepted through the API (characters); splitter output is far shorter.
MAX_CONTENT = 100_000
#: Most segments one create request may add.
MAX_SEGMENTS_PER_REQUEST = 100

Content = Annotated[str, text_field(1, MAX_CONTENT)]
Keywords = Annotated[list[Annotated[str, text_field(1, 255)]], msgspec.Meta(max_length=100)]
SegmentStatus = Literal["waiting", "indexing", "completed", "error"]


class SegmentCreateItem(msgspec.Struct, kw_only=True):
    content: Content
    answer: Annotated[str, text_field(0, MAX_CONTENT)] | None = None
    keywords: Keywords | None = None


class SegmentsCreate(msgspec.Struct, kw_only=True):
    segments: Annotated[list[SegmentCreateItem], msgspec.Meta(max_length=MAX_SEGMENTS_PER_REQUEST)]


class SegmentUpdateArgs(msgspec.Struct, kw_only=True):
    content: Content | None = None
    answer: Annotated[str, text_field(0, MAX_CONTENT)] | None = None
    keywords: Keywords | None = None
    enabled: bool | None = None
    regenerate_child_chunks: bool = False


class SegmentUpdate(msgspec.Struct, kw_only=True):
    segment: SegmentUpdateArgs


class ChildChunkWrite(msgspec.Struct, kw_only=True):
    content: Content


class ChildChunkOut(msgspec.Struct):
    id: uuid.UUID
    segment_id: uuid.UUID
    content: str
    position: int
    word_count: int
    type: str
    created_at: int
    updated_at: int

    @classmethod
    def of(cls, c: ChildChunk) -> ChildChunkOut:
        return cls(
            id=c.id,
            segment_id=c.segment_id,
            content=c.content,
            position=c.position,
            word_count=c.word_count,
            type=c.type,
            created_at=unix(c.created_at) or 0,
            updated_at=unix(c.updated_at) or 0,
        )


class SegmentOut(msgspec.Struct):
    id: uuid.UUID
    position: int
    document_id: uuid.UUID
    content: str
    sign_content: str
    answer: str | None
    word_count: int
    tokens: int
    keywords: list[str]
    #: Dify's id of the row in its vector store; here the vector lives in the segment row, so it is the id.
    index_node_id: str
    #: Hex SHA-256 of the content.
    index_node_hash: str
    hit_count: int
    enabled: bool
    disabled_at: int | None
    disabled_by: str | None
    status: str
    created_by: str
    created_at: int
    updated_at: int
    updated_by: str | None
    indexing_at: int | None
    completed_at: int | None
    error: str | None
    stopped_at: int | None
    child_chunks: list[ChildChunkOut]

    @classmethod
    def of(cls, s: Segment, creator: str, children: list[ChildChunk] | None = None) -> SegmentOut:
        """``creator``: Dify's ``created_by`` (the workspace, see app.knowledge.accounts); ``updated_by`` and
        ``disabled_by`` stay null (no accounts). ``answer`` is null outside Q&A documents, as in Dify."""
        return cls(
            id=s.id,
            position=s.position,
            document_id=s.document_id,
            content=s.content,
            sign_content=s.content,
            answer=s.answer,
            word_count=s.word_count,
            tokens=s.tokens,
            keywords=list(s.keywords or []),
            index_node_id=str(s.id),
            index_node_hash=s.content_hash.hex(),
            hit_count=s.hit_count,
            enabled=s.enabled,
            disabled_at=unix(s.disabled_at),
            disabled_by=None,
            status=s.status,
            created_by=creator,
            created_at=unix(s.created_at) or 0,
            updated_at=unix(s.updated_at) or 0,
            updated_by=None,
            indexing_at=unix(s.indexing_at),
            completed_at=unix(s.completed_at),
            error=s.error,
            stopped_at=None,
            child_chunks=[ChildChunkOut.of(c) for c in children or []],
        )


class SegmentPage(msgspec.Struct):
    data: list[SegmentOut]
    doc_form: str
    has_more: bool
    limit: int
    total: int
    page: int


class SegmentsOut(msgspec.Struct):
    data: list[SegmentOut]
    doc_form: str


class SegmentDetail(msgspec.Struct):
    data: SegmentOut
    doc_form: str


class ChildChunkPage(msgspec.Struct):
    data: list[ChildChunkOut]
    total: int
    total_pages: int
    page: int
    limit: int


class ChildChunkDetail(msgspec.Struct):
    data: ChildChunkOut
