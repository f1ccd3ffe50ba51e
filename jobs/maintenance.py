"""Housekeeping tasks: stalled-job recovery, the sweep for runs nobody advances, retention (old run history,
resolved forms, app files, finished jobs, expired shared state), and the no-op job of benchmarks and tests.

Retention deletes in bounded batches (``db/batches.py``, ``SLUICE_RETENTION_BATCH_SIZE`` rows per transaction,
at most ``RETENTION_BUDGET_SECONDS`` per job; the next tick continues). A retention of 0 days keeps forever.
"""

from __future__ import annotations

from typing import Any

import procrastinate
import structlog
from sqlalchemy import text

from app.clock import utcnow
from app.files.retention import purge_app_files
from app.human_input.retention import purge_resolved_forms
from app.settings import Settings
from app.stores import delete_expired
from app.workflows.runs.recovery import recover_orphaned_runs
from app.workflows.runs.retention import purge_run_history
from app.workflows.streams import STALE_SECONDS
from db import queue
from db.batches import in_batches
from db.queue import Task
from jobs.app import app, task

log = structlog.get_logger()

#: A worker that sent no heartbeat for this long is considered dead; its jobs are retried.
#: procrastinate's workers beat every 10 s by default.
STALLED_AFTER_SECONDS = 30.0
#: Longest time one retention job deletes before it leaves the rest to its next run.
RETENTION_BUDGET_SECONDS = 60.0


async def recover_stalled_jobs(
    procrastinate_app: procrastinate.App, seconds_since_heartbeat: float = STALLED_AFTER_SECONDS
) -> list[int]:
    """Put back in the queue every ``doing`` job whose worker stopped sending heartbeats (e.g. ``kill -9``).

    Safe to run from several workers at once: retrying sets the job back to ``todo`` only while it is
    ``doing``, and the jobs themselves are idempotent (DESIGN.md rule 3).
    """
    manager = procrastinate_app.job_manager
    stalled = list(await manager.get_stalled_jobs(seconds_since_heartbeat=seconds_since_heartbeat))
    for job in stalled:
        await manager.retry_job(job)
        log.warning("stalled_job_retried", stalled_job_id=job.id, stalled_task=job.task_name)
    return [job.id for job in stalled if job.id is not None]


def _resources(context: procrastinate.JobContext) -> Any:
    return context.additional_context["resources"]


@app.periodic(cron="* * * * * */15", periodic_id="retry_stalled_jobs")
@task(Task.RETRY_STALLED_JOBS, pass_context=True)
async def retry_stalled_jobs(context: procrastinate.JobContext, timestamp: int) -> None:
    """Every 15 s: retry the jobs of workers that stopped beating (SLUICE_STALLED_JOB_SECONDS)."""
    settings = context.additional_context.get("settings")
    threshold = settings.stalled_job_seconds if settings else STALLED_AFTER_SECONDS
    await recover_stalled_jobs(context.app, seconds_since_heartbeat=threshold)


@app.periodic(cron="* * * * * */15", periodic_id="recover_orphaned_runs")
@task(Task.RECOVER_ORPHANED_RUNS, pass_context=True)
async def recover_orphaned_runs_task(context: procrastinate.JobContext, timestamp: int) -> None:
    """Every 15 s: hand a new advance job to runs nobody advances (SLUICE_RUN_RECOVERY_SECONDS)."""
    resources = _resources(context)
    settings: Settings = resources.settings
    async with resources.sessions() as session, session.begin():
        retried, failed = await recover_orphaned_runs(
            session,
            resources.runtime.extensions,
            quiet_seconds=settings.run_recovery_seconds,
            max_failed_jobs=settings.run_max_failed_jobs,
            now=utcnow(),
        )
    if retried or failed:
        log.warning(
            "orphaned_runs_recovered", retried=[str(r) for r in retried], failed=[str(r) for r in failed]
        )


@app.periodic(cron="17 * * * *", periodic_id="delete_old_jobs")
@task(Task.DELETE_OLD_JOBS, pass_context=True)
async def delete_old_jobs(context: procrastinate.JobContext, timestamp: int) -> None:
    """Hourly: forget succeeded jobs after SLUICE_JOB_RETENTION_HOURS, failed and cancelled ones after
    SLUICE_FAILED_JOB_RETENTION_DAYS."""
    resources = _resources(context)
    settings: Settings = resources.settings

    async def batch(session: Any, limit: int) -> int:
        return await queue.delete_finished_jobs(
            session,
            succeeded_hours=settings.job_retention_hours,
            failed_days=settings.failed_job_retention_days,
            limit=limit,
        )

    deleted = await in_batches(
        resources.sessions,
        batch,
        limit=settings.retention_batch_size,
        budget_seconds=RETENTION_BUDGET_SECONDS,
    )
    log.info("old_jobs_deleted", count=deleted)


async def _retain(context: procrastinate.JobContext, days: int, purge: Any, event: str) -> None:
    """Delete in batches with ``purge(session, older_than_days=days, limit=n)``; 0 days keeps forever."""
    if not days:
        return
    resources = _resources(context)
    settings: Settings = resources.settings

    async def batch(session: Any, limit: int) -> int:
        return int(await purge(session, older_than_days=days, limit=limit))

    deleted = await in_batches(
        resources.sessions,
        batch,
        limit=settings.retention_batch_size,
        budget_seconds=RETENTION_BUDGET_SECONDS,
    )
    log.info(event, count=deleted)


@app.periodic(cron="*/10 * * * *", periodic_id="purge_run_history")
@task(Task.PURGE_RUN_HISTORY, pass_context=True)
async def purge_run_history_task(context: procrastinate.JobContext, timestamp: int) -> None:
    """Every 10 minutes: drop the events, node executions and values of runs finished more than
    WORKFLOW_LOG_RETENTION_DAYS ago (the run rows stay, marked purged)."""
    settings: Settings = _resources(context).settings
    await _retain(context, settings.workflow_log_retention_days, purge_run_history, "run_history_purged")


@app.periodic(cron="23 * * * *", periodic_id="purge_resolved_forms")
@task(Task.PURGE_RESOLVED_FORMS, pass_context=True)
async def purge_resolved_forms_task(context: procrastinate.JobContext, timestamp: int) -> None:
    """Hourly: delete forms resolved more than SLUICE_FORM_RETENTION_DAYS ago (with their deliveries and
    recipients) whose run has finished."""
    settings: Settings = _resources(context).settings
    await _retain(context, settings.form_retention_days, purge_resolved_forms, "resolved_forms_purged")


@app.periodic(cron="29 * * * *", periodic_id="purge_app_files")
@task(Task.PURGE_APP_FILES, pass_context=True)
async def purge_app_files_task(context: procrastinate.JobContext, timestamp: int) -> None:
    """Hourly: delete app files (uploads, node outputs) older than SLUICE_UPLOAD_FILE_RETENTION_DAYS that no
    document and no active run may still need."""
    settings: Settings = _resources(context).settings
    await _retain(context, settings.upload_file_retention_days, purge_app_files, "app_files_purged")


@app.periodic(cron="*/5 * * * *", periodic_id="purge_shared_state")
@task(Task.PURGE_SHARED_STATE, pass_context=True)
async def purge_shared_state(context: procrastinate.JobContext, timestamp: int) -> None:
    """Every 5 minutes: expired rate-limit windows, and event-stream rows of API processes that died."""
    resources = _resources(context)
    settings: Settings = resources.settings

    async def batch(session: Any, limit: int) -> int:
        connection = await session.connection()
        removed = await delete_expired(connection, limit)
        result = await session.execute(
            text(
                "DELETE FROM event_streams WHERE id IN (SELECT id FROM event_streams "
                "WHERE seen_at < now() - make_interval(secs => :stale) LIMIT :limit FOR UPDATE SKIP LOCKED)"
            ),
            {"stale": STALE_SECONDS, "limit": limit},
        )
        return max(removed, int(result.rowcount or 0))

    await in_batches(
        resources.sessions,
        batch,
        limit=settings.retention_batch_size,
        budget_seconds=RETENTION_BUDGET_SECONDS,
    )


@task(Task.NOOP)
async def noop() -> None:
    """Does nothing: the baseline job for `just bench queue` and the queue contract tests."""
