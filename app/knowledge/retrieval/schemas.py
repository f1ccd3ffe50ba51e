"""The retrieve (hit-testing) request and response, shaped like Dify's."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec

from app.knowledge.retrieval.service import Hit
from app.knowledge.retrieval.settings import RetrievalModel
from app.schemas import text_field, unix


class RetrieveRequest(msgspec.Struct, kw_only=True):
    query: Annotated[str, text_field(1, 250)]
    retrieval_model: RetrievalModel | None = None
    external_retrieval_model: dict[str, Any] | None = None
    attachment_ids: list[str] | None = None


class QueryOut(msgspec.Struct):
    content: str


class HitDocument(msgspec.Struct):
    id: uuid.UUID
    data_source_type: str
    name: str
    doc_type: str | None
    doc_metadata: dict[str, Any] | None


class HitSegment(msgspec.Struct):
    id: uuid.UUID
    position: int
    document_id: uuid.UUID
    content: str
    sign_content: str
    answer: str | None
    word_count: int
    tokens: int
    keywords: list[str]
    index_node_id: str
    index_node_hash: str
    hit_count: int
    enabled: bool
    disabled_at: int | None
    disabled_by: str | None
    status: str
    created_by: str | None
    created_at: int
    indexing_at: int | None
    completed_at: int | None
    error: str | None
    stopped_at: int | None
    document: HitDocument


class HitChildChunk(msgspec.Struct):
    id: uuid.UUID
    content: str
    position: int
    score: float


class Record(msgspec.Struct):
    segment: HitSegment
    child_chunks: list[HitChildChunk] | None
    score: float
    tsne_position: None = None
    files: list[Any] = msgspec.field(default_factory=list)

    @classmethod
    def of(cls, hit: Hit) -> Record:
        s, d = hit.segment, hit.document
        return cls(
            segment=HitSegment(
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
                created_by=None,
                created_at=unix(s.created_at) or 0,
                indexing_at=unix(s.indexing_at),
                completed_at=unix(s.completed_at),
                error=s.error,
                stopped_at=None,
                document=HitDocument(
                    id=d.id,
                    data_source_type=d.data_source_type,
                    name=d.name,
                    doc_type=None,
                    doc_metadata=d.doc_metadata or None,
                ),
            ),
            child_chunks=[
                HitChildChunk(id=c.id, content=c.content, position=c.position, score=round(score, 6))
                for c, score in hit.child_chunks
            ]
            if hit.dataset.doc_form == "hierarchical_model"
            else None,
            score=round(hit.score, 6),
        )


class RetrieveResponse(msgspec.Struct):
    query: QueryOut
    records: list[Record]
