"""Annotation reply jobs: enabling (embedding every annotation of an app) or disabling it (queue ``indexing``)."""

from __future__ import annotations

import uuid

import procrastinate

from app.annotations import services
from db.queue import Task
from jobs.app import task


@task(Task.RUN_ANNOTATION_REPLY_JOB, pass_context=True)
async def run_annotation_reply_job(context: procrastinate.JobContext, job_id: str) -> None:
    """Apply one enable/disable of annotation reply. Idempotent (a finished job is skipped)."""
    resources = context.additional_context["resources"]
    async with resources.sessions() as session:
        await services.run_reply_job(session, resources.embedders, uuid.UUID(job_id))
        await session.commit()
