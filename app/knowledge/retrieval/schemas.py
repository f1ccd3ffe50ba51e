"""The retrieve (hit-testing) request and response, shaped like Dify's."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec

from app.knowledge.accounts import creator_id
from app.knowledge.retrieval.model import RetrievalModel
from app.knowledge.retrieval.services import Hit
from app.knowledge.segments.schemas import SegmentOut
from app.schemas import text_field


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


class HitSegment(SegmentOut):
    """The segment as the segments API shows it, with its document (Dify's hit-testing segment)."""

    document: HitDocument


class HitChildChunk(msgspec.Struct):
    id: uuid.UUID
    content: str
    position: int
    score: float


class Record(msgspec.Struct):
    """One hit. ``child_chunks`` and ``files`` are lists, empty outside parent-child datasets (Dify normalizes
    its nulls to ``[]`` in ``DatasetsHitTestingBase._normalize_hit_testing_records``)."""

    segment: HitSegment
    child_chunks: list[HitChildChunk]
    score: float
    tsne_position: None = None
    files: list[Any] = msgspec.field(default_factory=list)

    @classmethod
    def of(cls, hit: Hit) -> Record:
        s, d = hit.segment, hit.document
        return cls(
            segment=HitSegment(
                **msgspec.structs.asdict(SegmentOut.of(s, creator_id(hit.dataset.workspace_id))),
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
            else [],
            score=round(hit.score, 6),
        )


class RetrieveResponse(msgspec.Struct):
    query: QueryOut
    records: list[Record]
