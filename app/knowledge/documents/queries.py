"""Reading documents: lists, details, indexing status. A fixed number of queries per request, never one per document.

A document is reached through its dataset, and the dataset through the key's workspace, so another workspace's
document is indistinguishable from a missing one.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, func, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import NotFound
from app.knowledge.accounts import creator_id
from app.knowledge.datasets.services import RowLock, get_dataset, locked
from app.knowledge.indexing.splitting import InvalidProcessRule, ProcessRule
from db.models import Dataset, DatasetMetadata, Document, Segment, UploadFile

_IN_PROGRESS = ("parsing", "cleaning", "splitting", "indexing")
#: Dify's ``limits`` of a dataset process rule (``INDEXING_MAX_SEGMENTATION_TOKENS_LENGTH``).
_RULE_LIMITS = {"indexing_max_segmentation_tokens_length": 4000}


@dataclass
class DocumentView:
    """A document with what its API shapes show besides its own columns."""

    document: Document
    upload_file: UploadFile | None = None
    hit_count: int = 0
    segment_count: int = 0
    metadata_fields: Sequence[DatasetMetadata] = ()
    built_in_fields: bool = False
    dataset_process_rule: dict[str, Any] = field(default_factory=dict)
    document_process_rule: dict[str, Any] = field(default_factory=dict)
    #: Dify's ``created_by`` (the workspace standing in for its owner account, see app.knowledge.accounts).
    creator: str = ""


def display_status(d: Document) -> str | None:
    """Dify's ``Document.display_status``."""
    if d.indexing_status == "waiting" and not d.is_paused:
        return "queuing"
    if d.is_paused or d.indexing_status == "paused":
        return "paused"
    if d.indexing_status in _IN_PROGRESS:
        return "indexing"
    if d.indexing_status == "error":
        return "error"
    if d.indexing_status == "completed":
        if d.archived:
            return "archived"
        return "available" if d.enabled else "disabled"
    return None


def display_status_filter(status: str) -> ColumnElement[bool]:
    """The SQL condition of one display status (the same cases as :func:`display_status`)."""
    paused = or_(Document.is_paused.is_(True), Document.indexing_status == "paused")
    completed = Document.indexing_status == "completed"
    conditions: dict[str, ColumnElement[bool]] = {
        "queuing": and_(Document.indexing_status == "waiting", not_(paused)),
        "paused": paused,
        "indexing": and_(Document.indexing_status.in_(_IN_PROGRESS), not_(paused)),
        "error": and_(Document.indexing_status == "error", not_(paused)),
        "available": and_(completed, Document.archived.is_(False), Document.enabled.is_(True)),
        "disabled": and_(completed, Document.archived.is_(False), Document.enabled.is_(False)),
        "archived": and_(completed, Document.archived.is_(True)),
    }
    return conditions[{"active": "available", "enabled": "available"}.get(status, status)]


async def get_document(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    dataset_id: uuid.UUID,
    document_id: uuid.UUID,
    *,
    lock: RowLock | None = None,
) -> tuple[Dataset, Document]:
    """The dataset and the document, both of this workspace (404 otherwise); ``lock`` locks the document row for
    the transaction (the dataset row is read without a lock)."""
    dataset = await get_dataset(session, workspace_id, dataset_id)
    query = select(Document).where(Document.id == document_id, Document.dataset_id == dataset.id)
    document = await session.scalar(locked(query, lock))
    if document is None:
        raise NotFound("Document not found.")
    return dataset, document


async def metadata_fields(session: AsyncSession, dataset_id: uuid.UUID) -> list[DatasetMetadata]:
    rows = await session.scalars(
        select(DatasetMetadata).where(DatasetMetadata.dataset_id == dataset_id).order_by(DatasetMetadata.name)
    )
    return list(rows)


async def _hit_counts(session: AsyncSession, document_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    if not document_ids:
        return {}
    rows = await session.execute(
        select(Segment.document_id, func.coalesce(func.sum(Segment.hit_count), 0))
        .where(Segment.document_id.in_(document_ids))
        .group_by(Segment.document_id)
    )
    return {document_id: int(hits) for document_id, hits in rows}


async def _upload_files(session: AsyncSession, documents: Sequence[Document]) -> dict[uuid.UUID, UploadFile]:
    ids = [d.upload_file_id for d in documents if d.upload_file_id is not None]
    if not ids:
        return {}
    return {f.id: f for f in await session.scalars(select(UploadFile).where(UploadFile.id.in_(ids)))}


async def views(session: AsyncSession, dataset: Dataset, documents: Sequence[Document]) -> list[DocumentView]:
    """Views of some documents of one dataset, in three queries whatever their number."""
    files = await _upload_files(session, documents)
    hits = await _hit_counts(session, [d.id for d in documents])
    fields = await metadata_fields(session, dataset.id)
    return [
        DocumentView(
            document=d,
            upload_file=files.get(d.upload_file_id) if d.upload_file_id else None,
            hit_count=hits.get(d.id, 0),
            metadata_fields=fields,
            built_in_fields=dataset.built_in_field_enabled,
            creator=creator_id(dataset.workspace_id),
        )
        for d in documents
    ]


async def list_documents(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    dataset_id: uuid.UUID,
    page: int,
    limit: int,
    keyword: str | None = None,
    status: str | None = None,
) -> tuple[list[DocumentView], int]:
    """A page of the dataset's documents, newest first (as Dify: ``created_at`` then ``position``, descending)."""
    dataset = await get_dataset(session, workspace_id, dataset_id)
    query = select(Document).where(Document.dataset_id == dataset.id)
    if keyword:
        query = query.where(Document.name.icontains(keyword, autoescape=True))
    if status:
        query = query.where(display_status_filter(status))
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    documents = list(
        await session.scalars(
            query.order_by(Document.created_at.desc(), Document.position.desc())
            .offset((page - 1) * limit)
            .limit(limit)
        )
    )
    return await views(session, dataset, documents), total


def _rule_for_display(rule: dict[str, Any] | None) -> dict[str, Any]:
    """A stored process rule with every default filled in (what the splitter will use)."""
    rule = rule or {"mode": "automatic"}
    try:
        return ProcessRule.from_api(rule.get("mode", "automatic"), rule.get("rules")).to_api()
    except (InvalidProcessRule, TypeError, AttributeError):
        return dict(rule)


async def document_detail(
    session: AsyncSession, workspace_id: uuid.UUID, dataset_id: uuid.UUID, document_id: uuid.UUID
) -> DocumentView:
    """Dify's document detail: the document with its segment count, hits and both process rules."""
    dataset, document = await get_document(session, workspace_id, dataset_id, document_id)
    view = (await views(session, dataset, [document]))[0]
    view.segment_count = (
        await session.scalar(select(func.count()).where(Segment.document_id == document.id)) or 0
    )
    latest = await latest_process_rule(session, dataset.id)
    view.dataset_process_rule = {**_rule_for_display(latest), "limits": _RULE_LIMITS}
    view.document_process_rule = _rule_for_display(document.process_rule)
    return view


async def latest_process_rule(session: AsyncSession, dataset_id: uuid.UUID) -> dict[str, Any] | None:
    """The process rule of the dataset's newest document: Dify's ``dataset.latest_process_rule``."""
    rule: dict[str, Any] | None = await session.scalar(
        select(Document.process_rule)
        .where(Document.dataset_id == dataset_id)
        .order_by(Document.created_at.desc(), Document.position.desc())
        .limit(1)
    )
    return rule


async def batch_status(
    session: AsyncSession, workspace_id: uuid.UUID, dataset_id: uuid.UUID, batch: str
) -> list[tuple[Document, int, int]]:
    """The documents of one create call with ``(completed_segments, total_segments)``, in two queries."""
    dataset = await get_dataset(session, workspace_id, dataset_id)
    documents = list(
        await session.scalars(
            select(Document)
            .where(Document.dataset_id == dataset.id, Document.batch == batch)
            .order_by(Document.position)
        )
    )
    if not documents:
        raise NotFound("Documents not found.")
    rows = await session.execute(
        select(Segment.document_id, func.count().filter(Segment.status == "completed"), func.count())
        .where(Segment.document_id.in_([d.id for d in documents]))
        .group_by(Segment.document_id)
    )
    counts = {document_id: (int(done), int(total)) for document_id, done, total in rows}
    return [(d, *counts.get(d.id, (0, 0))) for d in documents]
