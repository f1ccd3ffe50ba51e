"""Housekeeping tasks: stalled-job recovery, and the no-op job that benchmarks and contract tests use."""

from __future__ import annotations

import procrastinate
import structlog

from db.queue import Task
from jobs.app import app, task

log = structlog.get_logger()

#: A worker that sent no heartbeat for this long is considered dead; its jobs are retried.
#: procrastinate's workers beat every 10 s by default.
STALLED_AFTER_SECONDS = 30.0


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


@app.periodic(cron="* * * * * */15", periodic_id="retry_stalled_jobs")
@task(Task.RETRY_STALLED_JOBS, pass_context=True)
async def retry_stalled_jobs(context: procrastinate.JobContext, timestamp: int) -> None:
    """Every 15 s: retry the jobs of workers that stopped beating (SLUICE_STALLED_JOB_SECONDS)."""
    settings = context.additional_context.get("settings")
    threshold = settings.stalled_job_seconds if settings else STALLED_AFTER_SECONDS
    await recover_stalled_jobs(context.app, seconds_since_heartbeat=threshold)


@app.periodic(cron="17 * * * *", periodic_id="delete_old_jobs")
@task(Task.DELETE_OLD_JOBS, pass_context=True)
async def delete_old_jobs(context: procrastinate.JobContext, timestamp: int) -> None:
    """Hourly: forget succeeded jobs older than a day (failed ones stay for operators to look at)."""
    await context.app.job_manager.delete_old_jobs(nb_hours=24, queue=None, include_failed=False)


@task(Task.NOOP)
async def noop() -> None:
    """Does nothing: the baseline job for `just bench queue` and the queue contract tests."""
