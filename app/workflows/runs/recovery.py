"""The safety net for runs nobody is advancing (DESIGN.md rule 4: timers are jobs, the sweep is the safety net).

A run that is ``running`` — or ``paused`` with every pause resolved — always has a job that advances it: the
job is deferred in the transaction that made it so. That job can still be lost: it failed because the database
went away under it (a restart, a statement timeout, a full disk) or because of a bug. procrastinate does not
retry a failed job, and a worker killed mid-job is handled elsewhere (its job stays ``doing`` until the stalled
job recovery retries it). So every few seconds :func:`recover_orphaned_runs` looks for such runs that have no
job waiting or running, untouched for ``quiet_seconds``, and defers a new advance job for each (jobs are
idempotent and share the lock ``run:<id>``, so one deferred twice still runs once at a time and changes nothing
the second time). A run whose advance jobs failed ``max_failed_jobs`` times is not retried forever: it fails
with ``workflow_finished`` and an error saying so.
"""

from __future__ import annotations

import datetime
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.workflows.engine.statuses import RunStatus
from app.workflows.runs import transitions
from app.workflows.runs.pauses import Extensions
from db import queue

_ORPHANS = text(
    """
    SELECT r.id,
           (SELECT count(*) FROM procrastinate_jobs j
             WHERE j.lock = 'run:' || r.id::text AND j.status = 'failed') AS failed_jobs
    FROM workflow_runs r
    WHERE r.status IN ('running', 'paused')
      AND r.updated_at < now() - make_interval(secs => :quiet)
      AND (r.status = 'running' OR (
            EXISTS (SELECT 1 FROM workflow_pauses p WHERE p.run_id = r.id)
            AND NOT EXISTS (SELECT 1 FROM workflow_pauses p WHERE p.run_id = r.id AND p.resolved_at IS NULL)))
      AND NOT EXISTS (
            SELECT 1 FROM procrastinate_jobs j
            WHERE j.status IN ('todo', 'doing')
              AND (j.lock = 'run:' || r.id::text
                   OR (j.task_name = :resume_task AND j.args->'run_ids' ? r.id::text)))
    ORDER BY r.updated_at
    LIMIT :limit
    FOR UPDATE OF r SKIP LOCKED
    """
)


async def recover_orphaned_runs(
    session: AsyncSession,
    extensions: Extensions,
    *,
    quiet_seconds: float,
    max_failed_jobs: int,
    now: datetime.datetime,
    limit: int = 100,
) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """Defer an advance job for each run nobody advances; fail those whose jobs failed too often. Returns
    ``(runs handed a new job, runs failed)``, in the caller's transaction."""
    rows = (
        await session.execute(
            _ORPHANS,
            {"quiet": quiet_seconds, "limit": limit, "resume_task": queue.Task.RESUME_WORKFLOW_RUNS.value},
        )
    ).all()
    given_up = [row.id for row in rows if row.failed_jobs >= max_failed_jobs]
    retried = [row.id for row in rows if row.failed_jobs < max_failed_jobs]
    await queue.defer_jobs(session, [transitions.advance_job(run_id) for run_id in retried])
    # The run's elapsed time stays as its last checkpoint recorded it (nobody has run it since).
    failed = await transitions.end_active(
        session,
        extensions,
        given_up,
        RunStatus.FAILED,
        f"The run was abandoned: the job advancing it failed {max_failed_jobs} times (see the worker log).",
        now,
        clock_running=False,
    )
    return retried, sorted(failed)
