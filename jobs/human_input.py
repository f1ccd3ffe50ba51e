"""Human-input deadline jobs: one timer per deadline, and the periodic safety sweep."""

from __future__ import annotations

import datetime
import uuid

import procrastinate
import structlog

from app.human_input import services
from db import queue
from db.models import HumanInputForm
from db.queue import Task
from jobs.app import app, task

log = structlog.get_logger()

#: A timer whose form was locked by a submission in flight looks again this much later.
RECHECK_SECONDS = 1.0


@task(Task.EXPIRE_HUMAN_INPUT_FORM, pass_context=True)
async def expire_human_input_form(context: procrastinate.JobContext, form_id: str) -> None:
    """At a form's deadline: apply it (and any other passed deadlines, in one batch). Idempotent."""
    sessions = context.additional_context["resources"].sessions
    async with sessions() as session, session.begin():
        handled = await services.handle_deadlines(session, uuid.UUID(form_id))
        form = await session.get(HumanInputForm, uuid.UUID(form_id))
        if form is not None and form.status == "waiting":
            now = datetime.datetime.now(datetime.UTC)
            due = form.global_expiration_time <= now or (
                form.expiration_time is not None and form.expiration_time <= now
            )
            if due:  # skipped: a submission held the row; whichever wins, look once more
                await queue.defer(
                    session,
                    Task.EXPIRE_HUMAN_INPUT_FORM,
                    args={"form_id": form_id},
                    schedule_at=now + datetime.timedelta(seconds=RECHECK_SECONDS),
                )
    if handled > 1:
        log.info("human_input_deadlines_handled", forms=handled)


@app.periodic(cron="* * * * *", periodic_id="sweep_human_input_deadlines")
@task(Task.SWEEP_HUMAN_INPUT_DEADLINES, pass_context=True)
async def sweep_human_input_deadlines(context: procrastinate.JobContext, timestamp: int) -> None:
    """The safety net (HUMAN_INPUT_TIMEOUT_TASK_INTERVAL minutes): every waiting form past a deadline, in
    batches until none is left, so a backlog never grows."""
    resources = context.additional_context["resources"]
    interval = max(1, resources.settings.human_input_timeout_task_interval)
    if (timestamp // 60) % interval:
        return
    total = 0
    while True:
        async with resources.sessions() as session, session.begin():
            handled = await services.handle_deadlines(session, None, services.BATCH)
        total += handled
        if handled < services.BATCH:
            break
    if total:
        log.warning("human_input_sweep_handled_overdue_forms", forms=total)
