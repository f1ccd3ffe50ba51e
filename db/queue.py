"""Deferring procrastinate jobs inside the caller's own database transaction (DESIGN.md rule 1).

A state change and the job it needs commit together or not at all: :func:`defer` inserts the job through
procrastinate's own SQL function ``procrastinate_defer_jobs_v1`` on the session's connection, so a rollback
removes both and a commit publishes both (procrastinate's trigger NOTIFYs the workers at commit).

The function is procrastinate-internal API: pyproject pins procrastinate's minor version and
``tests/test_queue_contract.py`` checks the behaviour.
"""

from __future__ import annotations

import datetime
import enum
import json
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

#: Queues named for workloads, so that a bulk import can never delay a deadline.
QUEUES = ("workflows", "timers", "indexing", "mail")


class Task(enum.StrEnum):
    """Every task of the worker and its queue: the one list the code defers from and the worker registers
    (``jobs.app.task``); the worker refuses to start when one is not registered (``jobs.app.unregistered``)."""

    queue: str

    def __new__(cls, name: str, queue: str) -> Task:
        member = str.__new__(cls, name)
        member._value_ = name
        member.queue = queue
        return member

    ADVANCE_WORKFLOW_RUN = ("advance_workflow_run", "workflows")
    RESUME_WORKFLOW_RUNS = ("resume_workflow_runs", "workflows")
    GENERATE_CONVERSATION_NAME = ("generate_conversation_name", "workflows")
    HANDLE_HUMAN_INPUT_DEADLINES = ("handle_human_input_deadlines", "timers")
    SWEEP_HUMAN_INPUT_DEADLINES = ("sweep_human_input_deadlines", "timers")
    SEND_HUMAN_INPUT_EMAIL = ("send_human_input_email", "mail")
    INDEX_DOCUMENT = ("index_document", "indexing")
    RUN_ANNOTATION_REPLY_JOB = ("run_annotation_reply_job", "indexing")
    RETRY_STALLED_JOBS = ("retry_stalled_jobs", "timers")
    RECOVER_ORPHANED_RUNS = ("recover_orphaned_runs", "timers")
    DELETE_OLD_JOBS = ("delete_old_jobs", "timers")
    PURGE_RUN_HISTORY = ("purge_run_history", "timers")
    PURGE_RESOLVED_FORMS = ("purge_resolved_forms", "timers")
    PURGE_APP_FILES = ("purge_app_files", "timers")
    PURGE_SHARED_STATE = ("purge_shared_state", "timers")
    NOOP = ("noop", "workflows")


class JobSpec(msgspec.Struct, frozen=True, kw_only=True):
    task: Task
    args: Mapping[str, Any] = msgspec.field(default_factory=dict)
    schedule_at: datetime.datetime | None = None
    priority: int = 0
    lock: str | None = None
    queueing_lock: str | None = None


# unnest() turns the parallel arrays into rows, one procrastinate_job_to_defer_v1 per job. The SELECT is also
# embedded as a CTE in statements that insert a row and defer its job in one round trip (``defer_params`` binds it).
DEFER_SELECT = """
    SELECT unnest(procrastinate_defer_jobs_v1(ARRAY(
        SELECT ROW(q, t, p, l, ql, a, s)::procrastinate_job_to_defer_v1
        FROM unnest(
            CAST(:queues AS varchar[]), CAST(:tasks AS varchar[]), CAST(:priorities AS integer[]),
            CAST(:locks AS text[]), CAST(:queueing_locks AS text[]), CAST(:args AS jsonb[]),
            CAST(:schedule_ats AS timestamptz[])
        ) WITH ORDINALITY AS j(q, t, p, l, ql, a, s, n)
        ORDER BY n
    ))) AS id
    """
_DEFER_SQL = text(DEFER_SELECT)


async def defer_jobs(session: AsyncSession, jobs: Sequence[JobSpec]) -> list[int]:
    """Insert ``jobs`` in the session's transaction; returns their ids in order. One round trip."""
    if not jobs:
        return []
    result = await session.execute(_DEFER_SQL, defer_params(jobs))
    return [row[0] for row in result]


def defer_params(jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """The parameters of :data:`DEFER_SELECT` for ``jobs``."""
    return {
        "queues": [j.task.queue for j in jobs],
        "tasks": [j.task.value for j in jobs],
        "priorities": [j.priority for j in jobs],
        "locks": [j.lock for j in jobs],
        "queueing_locks": [j.queueing_lock for j in jobs],
        "args": [json.dumps(dict(j.args)) for j in jobs],
        "schedule_ats": [j.schedule_at for j in jobs],
    }


async def defer(
    session: AsyncSession,
    task: Task,
    *,
    args: Mapping[str, Any] | None = None,
    schedule_at: datetime.datetime | None = None,
    priority: int = 0,
    lock: str | None = None,
    queueing_lock: str | None = None,
) -> int | None:
    """Defer one job in the session's transaction and return its id.

    With a ``queueing_lock``, a job already waiting under the same lock makes this a no-op that returns None;
    the insert runs in a savepoint so that the conflict does not abort the caller's transaction.
    """
    job = JobSpec(
        task=task,
        args=args or {},
        schedule_at=schedule_at,
        priority=priority,
        lock=lock,
        queueing_lock=queueing_lock,
    )
    if queueing_lock is None:
        return (await defer_jobs(session, [job]))[0]
    try:
        async with session.begin_nested():
            await session.connection()  # make sure the SAVEPOINT is really emitted before the insert
            return (await defer_jobs(session, [job]))[0]
    except IntegrityError:
        return None


async def cancel_jobs(session: AsyncSession, job_ids: Sequence[int]) -> int:
    """Delete jobs that have not started yet (``todo``), in the caller's transaction; a job already running or
    done is left alone. Returns how many were removed. (procrastinate's ``procrastinate_cancel_job_v1``.)"""
    if not job_ids:
        return 0
    result = await session.execute(
        text(
            "SELECT count(*) FROM unnest(CAST(:ids AS bigint[])) AS j(id) "
            "WHERE procrastinate_cancel_job_v1(j.id, false, true) IS NOT NULL"
        ),
        {"ids": list(job_ids)},
    )
    return int(result.scalar_one())


async def delete_finished_jobs(
    session: AsyncSession, *, succeeded_hours: float, failed_days: float, limit: int
) -> int:
    """Delete up to ``limit`` finished jobs (their events go with them): succeeded ones whose last event is older
    than ``succeeded_hours``, failed, cancelled or aborted ones older than ``failed_days``. The job a periodic
    task deferred last is kept (``procrastinate_periodic_defers`` references it). Returns how many went.

    Jobs are looked at in id order (oldest first), so a batch reads the old end of the table; ``SKIP LOCKED``
    leaves jobs a worker is touching alone."""
    result = await session.execute(
        text(
            """
            DELETE FROM procrastinate_jobs WHERE id IN (
                SELECT j.id FROM procrastinate_jobs j
                WHERE j.status IN ('succeeded', 'failed', 'cancelled', 'aborted')
                  AND (SELECT max(e.at) FROM procrastinate_events e WHERE e.job_id = j.id)
                      < now() - CASE WHEN j.status = 'succeeded' THEN make_interval(secs => :succeeded)
                                     ELSE make_interval(secs => :failed) END
                  AND NOT EXISTS (SELECT 1 FROM procrastinate_periodic_defers p WHERE p.job_id = j.id)
                ORDER BY j.id
                LIMIT :limit
                FOR UPDATE OF j SKIP LOCKED
            )
            RETURNING id
            """
        ),
        {"succeeded": succeeded_hours * 3600, "failed": failed_days * 86400, "limit": limit},
    )
    return len(result.all())
