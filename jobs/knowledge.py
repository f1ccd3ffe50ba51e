"""Knowledge-base jobs: indexing a document (queue ``indexing``)."""

from __future__ import annotations

import uuid

import procrastinate

from app.knowledge.pipeline import DocumentIndexer
from db.queue import Task
from jobs.app import task


@task(Task.INDEX_DOCUMENT, pass_context=True)
async def index_document(context: procrastinate.JobContext, document_id: str, generation: int) -> None:
    """Parse, clean, split, embed and store one generation of a document. Idempotent and resumable."""
    resources = context.additional_context["resources"]
    await DocumentIndexer(resources.sessions, resources.embedders, uuid.UUID(document_id), generation).run()
