"""Rows and assertions shared by the knowledge API tests (segments, metadata, tags).

Documents and segments are inserted as rows (datasets with tests/knowledge/rows.py): these tests exercise the
APIs built on them, not the documents API.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Dataset, Document, Segment


async def make_document(session: AsyncSession, dataset: Dataset, **columns: Any) -> Document:
    position = await session.scalar(
        select(func.coalesce(func.max(Document.position), 0) + 1).where(Document.dataset_id == dataset.id)
    )
    values: dict[str, Any] = {
        "name": "doc.txt",
        "batch": uuid.uuid4().hex,
        "process_rule": {"mode": "automatic"},
        "doc_form": dataset.doc_form or "text_model",
        "indexing_technique": dataset.indexing_technique or "economy",
        "indexing_status": "completed",
    }
    document = Document(dataset_id=dataset.id, position=position, **{**values, **columns})
    session.add(document)
    await session.commit()
    return document


async def make_segments(session: AsyncSession, document: Document, contents: list[str]) -> list[Segment]:
    """Completed segments appended after the document's last one."""
    start = await session.scalar(
        select(func.coalesce(func.max(Segment.position), 0) + 1).where(Segment.document_id == document.id)
    )
    segments = [
        Segment(
            dataset_id=document.dataset_id,
            document_id=document.id,
            position=position,
            content=content,
            word_count=len(content),
            tokens=len(content) // 4,
            keywords=[],
            content_hash=hashlib.sha256(content.encode()).digest(),
            status="completed",
        )
        for position, content in enumerate(contents, start=start)
    ]
    session.add_all(segments)
    document.word_count += sum(len(c) for c in contents)
    await session.commit()
    return segments


def segments_url(document: Document) -> str:
    return f"/v1/datasets/{document.dataset_id}/documents/{document.id}/segments"


async def fresh(session: AsyncSession, model: Any, row_id: Any) -> Any:
    return await session.get(model, row_id, populate_existing=True)


def assert_error(response: Any, status: int, code: str, message: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and body["status"] == status
    if message is not None:
        assert body["message"] == message
