"""Knowledge-base jobs: indexing a document (queue ``indexing``)."""

from __future__ import annotations

import uuid

import procrastinate

from app.knowledge.indexing.pipeline import DocumentIndexer
from db.queue import Task
from jobs.app import task


@task(Task.INDEX_DOCUMENT, pass_context=True)
async def index_document(context: procrastinate.JobContext, document_id: str, generation: int) -> None:
    """Parse, clean, split, embed and store one generation of a document. Idempotent and resumable.

    A job whose worker died under it (``kill -9``, the OOM killer, a segfault) is put back by the stalled-job
    sweep with one more attempt (``jobs.maintenance``); after ``SLUICE_INDEXING_MAX_ATTEMPTS`` such deaths the
    document ends in ``error`` instead of taking the next worker down too.
    """
    resources = context.additional_context["resources"]
    indexer = DocumentIndexer(
        resources.sessions, resources.embedders, resources.parsing, uuid.UUID(document_id), generation
    )
    attempts = context.job.attempts
    limit = resources.settings.indexing_max_attempts
    if attempts >= limit:
        await indexer.abandon(
            f"Indexing stopped: the worker processing this document stopped unexpectedly {attempts} times "
            f"(killed, or out of memory; SLUICE_INDEXING_MAX_ATTEMPTS={limit}). Retry the document to try again."
        )
        return
    await indexer.run()
