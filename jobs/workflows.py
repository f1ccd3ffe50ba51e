"""Workflow run jobs: thin wrappers around app.workflows.runner."""

from __future__ import annotations

import uuid

import procrastinate

from app.workflows.runner import advance_run, resume_runs
from db.queue import Task
from jobs.app import task


@task(Task.ADVANCE_WORKFLOW_RUN, pass_context=True)
async def advance_workflow_run(context: procrastinate.JobContext, run_id: str) -> None:
    """Run, resume or continue one workflow run (idempotent; jobs of one run share the lock ``run:<id>``)."""
    resources = context.additional_context["resources"]
    await advance_run(resources.sessions, uuid.UUID(run_id), resources.runtime)


@task(Task.RESUME_WORKFLOW_RUNS, pass_context=True)
async def resume_workflow_runs(context: procrastinate.JobContext, run_ids: list[str]) -> None:
    """Continue many resolved runs in one transaction, each as far as it goes without I/O (idempotent)."""
    resources = context.additional_context["resources"]
    await resume_runs(resources.sessions, [uuid.UUID(r) for r in run_ids], resources.runtime)
