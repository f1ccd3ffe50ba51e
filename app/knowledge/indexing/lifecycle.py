"""Starting, pausing, resuming and retrying a document's indexing. Services never commit.

Every change of a document's indexing state happens in the caller's transaction together with the job it needs
(``index_document`` on the ``indexing`` queue), so a committed ``waiting`` document always has its job. Each
(re)index bumps ``indexing_generation``; a job carries the generation it was made for and does nothing for an
older one, so an update during indexing can never mix segments of two versions of a document. The job's
``lock`` (one per document) makes the jobs of one document run one after another.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.clock import utcnow
from app.knowledge.errors import DocumentAlreadyFinished, InvalidAction
from db import queue
from db.models import Document

#: Statuses in which the pipeline still has work to do (and a pause can take effect).
ACTIVE_STATUSES = frozenset({"waiting", "parsing", "cleaning", "splitting", "indexing"})


async def _defer(session: AsyncSession, document: Document) -> None:
    await queue.defer(
        session,
        queue.Task.INDEX_DOCUMENT,
        args={"document_id": str(document.id), "generation": document.indexing_generation},
        lock=f"document:{document.id}",
    )


async def start_indexing(session: AsyncSession, document: Document, *, new: bool = False) -> None:
    """(Re)index ``document`` from its source: a new generation, every timestamp cleared, a job deferred."""
    if not new:
        document.indexing_generation += 1
    document.indexing_status = "waiting"
    document.error = None
    document.is_paused = False
    for column in (
        "processing_started_at",
        "parsing_completed_at",
        "cleaning_completed_at",
        "splitting_completed_at",
        "completed_at",
        "paused_at",
        "stopped_at",
        "indexing_latency",
    ):
        setattr(document, column, None)
    await session.flush()
    await _defer(session, document)


async def pause_indexing(session: AsyncSession, document: Document) -> None:
    """Pause: the running job stops after its current batch; finished segments stay finished."""
    if document.is_paused:
        return
    if document.indexing_status not in ACTIVE_STATUSES:
        raise DocumentAlreadyFinished()
    document.is_paused = True
    document.indexing_status = "paused"
    document.paused_at = utcnow()
    await session.flush()


async def resume_indexing(session: AsyncSession, document: Document) -> None:
    """Resume a paused document where it stopped: segments already embedded are not embedded again."""
    if not document.is_paused:
        raise InvalidAction("The document is not paused.")
    document.is_paused = False
    document.paused_at = None
    document.indexing_status = "indexing" if document.splitting_completed_at else "waiting"
    await session.flush()
    await _defer(session, document)


async def retry_indexing(session: AsyncSession, document: Document) -> None:
    """Retry a document that ended in ``error`` (or was stopped): index it again from its source."""
    if document.indexing_status in ACTIVE_STATUSES and not document.is_paused:
        raise InvalidAction("The document is still being indexed.")
    await start_indexing(session, document)
