"""Workflow run jobs: thin wrappers around app.workflows.runner."""

from __future__ import annotations

import uuid

import procrastinate

from app.human_input.forms import pause_hook
from app.workflows.runner import advance_run
from db.queue import Task
from jobs.app import task


@task(Task.ADVANCE_WORKFLOW_RUN, pass_context=True)
async def advance_workflow_run(context: procrastinate.JobContext, run_id: str) -> None:
    """Run, resume or continue one workflow run (idempotent; jobs of one run share the lock ``run:<id>``)."""
    resources = context.additional_context["resources"]
    await advance_run(
        resources.sessions,
        uuid.UUID(run_id),
        resources.ports,
        resources.limits,
        on_pause=pause_hook(resources.settings),
    )
