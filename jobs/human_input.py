"""Human-input deadline jobs: the deadline alarm (one job, at the earliest deadline) and the periodic sweep."""

from __future__ import annotations

import procrastinate
import structlog

from app.human_input import services
from db.queue import Task
from jobs.app import app, task
from jobs.worker import Resources

log = structlog.get_logger()


async def _handle_all(resources: Resources) -> int:
    """Batches of due deadlines until none is left, then the alarm set for the next one."""
    total = 0
    while True:
        async with resources.sessions() as session, session.begin():
            handled = await services.handle_due(session, resources.runtime.extensions)
        total += handled
        if handled < services.BATCH:
            return total


@task(Task.HANDLE_HUMAN_INPUT_DEADLINES, pass_context=True)
async def handle_human_input_deadlines(context: procrastinate.JobContext) -> None:
    """The alarm rang: apply every passed deadline and set the alarm for the next one. Idempotent."""
    handled = await _handle_all(context.additional_context["resources"])
    if handled:
        log.info("human_input_deadlines_handled", forms=handled)


@app.periodic(cron="* * * * *", periodic_id="sweep_human_input_deadlines")
@task(Task.SWEEP_HUMAN_INPUT_DEADLINES, pass_context=True)
async def sweep_human_input_deadlines(context: procrastinate.JobContext, timestamp: int) -> None:
    """The safety net (HUMAN_INPUT_TIMEOUT_TASK_INTERVAL minutes): handles what the alarm missed and makes sure
    an alarm is queued for the next deadline."""
    resources = context.additional_context["resources"]
    interval = max(1, resources.settings.human_input_timeout_task_interval)
    if (timestamp // 60) % interval:
        return
    handled = await _handle_all(resources)
    if handled:
        log.warning("human_input_sweep_handled_overdue_forms", forms=handled)
