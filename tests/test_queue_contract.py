"""DESIGN.md rule 1: a job deferred with db.queue commits or rolls back with the caller's transaction.

This pins the behaviour of procrastinate's internal ``procrastinate_defer_jobs_v1`` that db/queue.py calls.
"""

from __future__ import annotations

import asyncio
import datetime
import importlib
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from db import queue
from db.models import Workspace
from jobs.app import TASK_MODULES, opened, unregistered
from jobs.app import app as procrastinate_app


async def job_status(engine: AsyncEngine, job_id: int) -> str | None:
    async with engine.connect() as conn:
        return await conn.scalar(
            text("SELECT status::text FROM procrastinate_jobs WHERE id = :id"), {"id": job_id}
        )


async def workspace_exists(engine: AsyncEngine, workspace_id: uuid.UUID) -> bool:
    async with engine.connect() as conn:
        return bool(
            await conn.scalar(text("SELECT count(*) FROM workspaces WHERE id = :id"), {"id": workspace_id})
        )


async def test_rollback_removes_both_row_and_job(session: AsyncSession, engine: AsyncEngine) -> None:
    workspace = Workspace(name="rolled back")
    session.add(workspace)
    await session.flush()
    job_id = await queue.defer(session, queue.Task.NOOP)
    assert job_id is not None
    await session.rollback()
    assert not await workspace_exists(engine, workspace.id)
    assert await job_status(engine, job_id) is None


async def test_commit_keeps_both_and_a_worker_runs_the_job(
    session: AsyncSession, engine: AsyncEngine, database_url: str
) -> None:
    workspace = Workspace(name="committed")
    session.add(workspace)
    await session.flush()
    job_id = await queue.defer(session, queue.Task.NOOP)
    assert job_id is not None
    # Not visible to others before the commit: no worker can start it early.
    assert await job_status(engine, job_id) is None
    await session.commit()
    assert await workspace_exists(engine, workspace.id)
    # Committed: the job exists (a worker already running on this database may have started it at once).
    assert await job_status(engine, job_id) in ("todo", "doing", "succeeded")

    async with opened(database_url) as app:
        await app.run_worker_async(queues=["workflows"], wait=False, install_signal_handlers=False)
    # (Another worker on this database, such as the live service's, may have taken it first.)
    for _ in range(100):
        if await job_status(engine, job_id) == "succeeded":
            break
        await asyncio.sleep(0.05)
    assert await job_status(engine, job_id) == "succeeded"


async def test_batch_defer_keeps_order_and_schedule(session: AsyncSession, engine: AsyncEngine) -> None:
    at = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    specs = [
        queue.JobSpec(task=queue.Task.HANDLE_HUMAN_INPUT_DEADLINES, schedule_at=at, args={"n": n})
        for n in range(5)
    ]
    ids = await queue.defer_jobs(session, specs)
    assert ids == sorted(ids)
    assert len(set(ids)) == 5
    rows = (
        await session.execute(
            text(
                "SELECT args->>'n', scheduled_at, queue_name FROM procrastinate_jobs WHERE id = ANY(:ids) ORDER BY id"
            ),
            {"ids": ids},
        )
    ).all()
    assert [r[0] for r in rows] == ["0", "1", "2", "3", "4"]
    assert all(r[1] == at and r[2] == "timers" for r in rows)
    await session.rollback()


async def test_queueing_lock_conflict_does_not_abort_the_transaction(session: AsyncSession) -> None:
    lock = f"lock-{uuid.uuid4()}"
    first = await queue.defer(session, queue.Task.NOOP, queueing_lock=lock)
    second = await queue.defer(session, queue.Task.NOOP, queueing_lock=lock)
    assert first is not None
    assert second is None
    assert await session.scalar(text("SELECT 1")) == 1  # the transaction is still usable
    await session.rollback()


def test_every_deferred_task_is_registered_on_its_queue() -> None:
    """``db.queue.Task`` is everything the code can defer (``defer`` and ``JobSpec`` take nothing else)."""
    for module in TASK_MODULES:
        importlib.import_module(module)
    assert unregistered(procrastinate_app.tasks) == []
    assert {t.queue for t in queue.Task} <= set(queue.QUEUES)


def test_a_missing_registration_is_found() -> None:
    """The check above can fail: drop one registration (as if jobs.mail were left out) and it names it."""
    for module in TASK_MODULES:
        importlib.import_module(module)
    tasks = dict(procrastinate_app.tasks)
    del tasks[queue.Task.SEND_HUMAN_INPUT_EMAIL]
    assert unregistered(tasks) == ["send_human_input_email: not registered (is its module in TASK_MODULES?)"]
    moved = dict(procrastinate_app.tasks)
    moved[queue.Task.INDEX_DOCUMENT] = procrastinate_app.tasks[queue.Task.NOOP]
    assert unregistered(moved) == ["index_document: registered on queue 'workflows', deferred to 'indexing'"]


def test_queues_are_named_for_workloads() -> None:
    assert queue.QUEUES == ("workflows", "timers", "indexing", "mail")


async def test_cancel_removes_only_jobs_not_started(session: AsyncSession, engine: AsyncEngine) -> None:
    at = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=7)
    waiting, running = await queue.defer_jobs(
        session,
        [
            queue.JobSpec(task=queue.Task.NOOP, schedule_at=at),
            queue.JobSpec(task=queue.Task.NOOP, schedule_at=at),
        ],
    )
    await session.execute(
        text("UPDATE procrastinate_jobs SET status = 'doing' WHERE id = :id"), {"id": running}
    )
    assert await queue.cancel_jobs(session, [waiting, running, 10**12]) == 1
    remaining = (
        await session.execute(
            text("SELECT id, status::text FROM procrastinate_jobs WHERE id = ANY(:ids)"),
            {"ids": [waiting, running]},
        )
    ).all()
    assert remaining == [(running, "doing")]
    await session.rollback()
