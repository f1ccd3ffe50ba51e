"""Service API (dataset key): ``/v1/datasets/{id}/documents/{doc}/segments`` and their child chunks."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, delete, get, patch, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import responses
from app.knowledge.accounts import creator_id
from app.knowledge.documents.queries import get_document
from app.knowledge.embeddings.providers import Embedders
from app.knowledge.segments import child_chunks, services
from app.knowledge.segments.schemas import (
    ChildChunkDetail,
    ChildChunkOut,
    ChildChunkPage,
    ChildChunkWrite,
    SegmentDetail,
    SegmentOut,
    SegmentPage,
    SegmentsCreate,
    SegmentsOut,
    SegmentStatus,
    SegmentUpdate,
)
from app.schemas import NO_NUL, Limit, PageNumber
from app.tenancy.services import KeyContext

Keyword = Annotated[str | None, Parameter(max_length=255, pattern=NO_NUL)]


class SegmentController(Controller):
    path = "/v1/datasets/{dataset_id:uuid}/documents/{document_id:uuid}/segments"
    tags = ["service api: knowledge"]

    @get("/", responses=responses(401, 404))
    async def list_segments(
        self,
        db_session: AsyncSession,
        key: KeyContext,
        dataset_id: uuid.UUID,
        document_id: uuid.UUID,
        page: PageNumber = 1,
        limit: Limit = 20,
        status: list[SegmentStatus] | None = None,
        keyword: Keyword = None,
    ) -> SegmentPage:
        """Segments of the document in position order; ``status`` may repeat."""
        _, document = await get_document(db_session, key.workspace_id, dataset_id, document_id)
        segments, total = await services.list_segments(
            db_session, document, page, limit, status or (), keyword
        )
        children = await services.children_of(db_session, segments)
        return SegmentPage(
            data=[SegmentOut.of(s, creator_id(key.workspace_id), children[s.id]) for s in segments],
            doc_form=document.doc_form,
            has_more=page * limit < total,
            limit=limit,
            total=total,
            page=page,
        )

    @post("/", status_code=200, responses=responses(401, 403, 404, 503))
    async def create_segments(
        self,
        db_session: AsyncSession,
        key: KeyContext,
        embedders: Embedders,
        dataset_id: uuid.UUID,
        document_id: uuid.UUID,
        data: SegmentsCreate,
    ) -> SegmentsOut:
        """Append segments to a completed, enabled document; they are embedded before the answer."""
        dataset, document = await get_document(
            db_session, key.workspace_id, dataset_id, document_id, lock="update"
        )
        segments = await services.create_segments(db_session, embedders, dataset, document, data.segments)
        children = await services.children_of(db_session, segments)
        return SegmentsOut(
            data=[SegmentOut.of(s, creator_id(key.workspace_id), children[s.id]) for s in segments],
            doc_form=document.doc_form,
        )

    @get("/{segment_id:uuid}", responses=responses(401, 404))
    async def get_segment(
        self,
        db_session: AsyncSession,
        key: KeyContext,
        dataset_id: uuid.UUID,
        document_id: uuid.UUID,
        segment_id: uuid.UUID,
    ) -> SegmentDetail:
        _, document = await get_document(db_session, key.workspace_id, dataset_id, document_id)
        segment = await services.get_segment(db_session, document, segment_id)
        children = await services.children_of(db_session, [segment])
        return SegmentDetail(
            data=SegmentOut.of(segment, creator_id(key.workspace_id), children[segment.id]),
            doc_form=document.doc_form,
        )

    @post("/{segment_id:uuid}", status_code=200, responses=responses(401, 403, 404, 503))
    async def update_segment(
        self,
        db_session: AsyncSession,
        key: KeyContext,
        embedders: Embedders,
        dataset_id: uuid.UUID,
        document_id: uuid.UUID,
        segment_id: uuid.UUID,
        data: SegmentUpdate,
    ) -> SegmentDetail:
        """Edit, enable or disable a segment; changed content is embedded again (children re-split on request)."""
        dataset, document = await get_document(
            db_session, key.workspace_id, dataset_id, document_id, lock="update"
        )
        segment = await services.get_segment(db_session, document, segment_id, lock="update")
        segment = await services.update_segment(
            db_session, embedders, dataset, document, segment, data.segment
        )
        children = await services.children_of(db_session, [segment])
        return SegmentDetail(
            data=SegmentOut.of(segment, creator_id(key.workspace_id), children[segment.id]),
            doc_form=document.doc_form,
        )

    @delete("/{segment_id:uuid}", responses=responses(401, 403, 404))
    async def delete_segment(
        self,
        db_session: AsyncSession,
        key: KeyContext,
        dataset_id: uuid.UUID,
        document_id: uuid.UUID,
        segment_id: uuid.UUID,
    ) -> None:
        _, document = await get_document(db_session, key.workspace_id, dataset_id, document_id, lock="update")
        await services.delete_segment(
            db_session, document, await services.get_segment(db_session, document, segment_id)
        )

    @get("/{segment_id:uuid}/child_chunks", responses=responses(401, 404))
    async def list_child_chunks(
        self,
        db_session: AsyncSession,
        key: KeyContext,
        dataset_id: uuid.UUID,
        document_id: uuid.UUID,
        segment_id: uuid.UUID,
        page: PageNumber = 1,
        limit: Limit = 20,
        keyword: Keyword = None,
    ) -> ChildChunkPage:
        _, document = await get_document(db_session, key.workspace_id, dataset_id, document_id)
        segment = await services.get_segment(db_session, document, segment_id)
        children, total, pages = await child_chunks.list_child_chunks(
            db_session, segment, page, limit, keyword
        )
        return ChildChunkPage(
            data=[ChildChunkOut.of(c) for c in children],
            total=total,
            total_pages=pages,
            page=page,
            limit=limit,
        )

    @post("/{segment_id:uuid}/child_chunks", status_code=200, responses=responses(401, 403, 404, 503))
    async def create_child_chunk(
        self,
        db_session: AsyncSession,
        key: KeyContext,
        embedders: Embedders,
        dataset_id: uuid.UUID,
        document_id: uuid.UUID,
        segment_id: uuid.UUID,
        data: ChildChunkWrite,
    ) -> ChildChunkDetail:
        dataset, document = await get_document(
            db_session, key.workspace_id, dataset_id, document_id, lock="update"
        )
        segment = await services.get_segment(db_session, document, segment_id, lock="update")
        child = await child_chunks.create_child_chunk(
            db_session, embedders, dataset, document, segment, data.content
        )
        return ChildChunkDetail(data=ChildChunkOut.of(child))

    @patch("/{segment_id:uuid}/child_chunks/{child_chunk_id:uuid}", responses=responses(401, 403, 404, 503))
    async def update_child_chunk(
        self,
        db_session: AsyncSession,
        key: KeyContext,
        embedders: Embedders,
        dataset_id: uuid.UUID,
        document_id: uuid.UUID,
        segment_id: uuid.UUID,
        child_chunk_id: uuid.UUID,
        data: ChildChunkWrite,
    ) -> ChildChunkDetail:
        dataset, document = await get_document(
            db_session, key.workspace_id, dataset_id, document_id, lock="update"
        )
        segment = await services.get_segment(db_session, document, segment_id)
        child = await child_chunks.get_child_chunk(db_session, segment, child_chunk_id)
        child = await child_chunks.update_child_chunk(
            db_session, embedders, dataset, document, child, data.content
        )
        return ChildChunkDetail(data=ChildChunkOut.of(child))

    @delete("/{segment_id:uuid}/child_chunks/{child_chunk_id:uuid}", responses=responses(401, 403, 404))
    async def delete_child_chunk(
        self,
        db_session: AsyncSession,
        key: KeyContext,
        dataset_id: uuid.UUID,
        document_id: uuid.UUID,
        segment_id: uuid.UUID,
        child_chunk_id: uuid.UUID,
    ) -> None:
        _, document = await get_document(db_session, key.workspace_id, dataset_id, document_id, lock="update")
        segment = await services.get_segment(db_session, document, segment_id)
        await child_chunks.delete_child_chunk(
            db_session, document, await child_chunks.get_child_chunk(db_session, segment, child_chunk_id)
        )
