"""A worker killed with `kill -9` mid-job: the periodic task notices the missing heartbeats and retries the job."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from db import urls
from jobs.app import opened
from jobs.maintenance import recover_stalled_jobs
from tests.support.processes import spawn, stop
from tests.support.tasks import hang_on_first_attempt


async def wait_for_status(engine: AsyncEngine, job_id: int, status: str, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        async with engine.connect() as conn:
            current = await conn.scalar(
                text("SELECT status::text FROM procrastinate_jobs WHERE id = :id"), {"id": job_id}
            )
        if current == status:
            return
        assert loop.time() < deadline, f"job {job_id} is {current!r}, expected {status!r} within {timeout} s"
        await asyncio.sleep(0.1)


async def test_killed_worker_job_is_retried_by_the_periodic_task(
    private_database: str, tmp_path: Path
) -> None:
    database_url = private_database
    engine = create_async_engine(urls.asyncpg(database_url))
    try:
        async with AsyncSession(engine) as session:
            await _kill_and_recover(session, engine, database_url, tmp_path)
    finally:
        await engine.dispose()


async def _kill_and_recover(
    session: AsyncSession, engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    async with opened(database_url):
        job_id = await hang_on_first_attempt.defer_async()

    env = {"DATABASE_URL": database_url, "SLUICE_WORKER_POLL_SECONDS": "0.1", "LOG_FORMAT": "json"}
    doomed = spawn(["-m", "tests.support.worker"], env, tmp_path / "doomed.log")
    survivor = None
    try:
        await wait_for_status(engine, job_id, "doing", timeout=30)
        # While its worker is alive and beating, the job is not stalled.
        async with opened(database_url) as app:
            assert job_id not in await recover_stalled_jobs(app, seconds_since_heartbeat=30)

        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
        await asyncio.sleep(1)
        assert (
            await session.scalar(
                text("SELECT status::text FROM procrastinate_jobs WHERE id = :id"), {"id": job_id}
            )
        ) == "doing"

        # A fresh worker; its periodic retry_stalled_jobs (every 15 s) finds the dead worker's job.
        survivor = spawn(
            ["-m", "tests.support.worker"],
            {**env, "SLUICE_STALLED_JOB_SECONDS": "2"},
            tmp_path / "survivor.log",
        )
        await wait_for_status(engine, job_id, "succeeded", timeout=60)
        async with engine.connect() as conn:
            attempts = await conn.scalar(
                text("SELECT attempts FROM procrastinate_jobs WHERE id = :id"), {"id": job_id}
            )
        assert attempts == 2  # the killed attempt, then the retry that finished
        assert "stalled_job_retried" in (tmp_path / "survivor.log").read_text()
    finally:
        if doomed.poll() is None:
            doomed.kill()
        if survivor is not None:
            assert stop(survivor) == 0
