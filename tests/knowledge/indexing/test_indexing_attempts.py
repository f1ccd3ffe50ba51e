"""A document whose indexing kills its worker (here: ``kill -9`` while the worker parses it) is retried by the
stalled-job sweep, and after ``SLUICE_INDEXING_MAX_ATTEMPTS`` (3) deaths ends in ``error`` instead of taking down
worker after worker."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from db import embedded, urls
from jobs.app import opened
from jobs.maintenance import recover_stalled_jobs
from tests.conftest import new_database
from tests.knowledge.conftest import add_document, wait_for_status
from tests.knowledge.hostile_files import pdf_slow
from tests.knowledge.rows import make_dataset, make_workspace
from tests.support.processes import spawn, stop


async def test_a_document_that_kills_its_worker_three_times_ends_in_error(
    server_url: str, tmp_path: Path
) -> None:
    database_url = new_database(server_url)
    engine = create_async_engine(urls.asyncpg(database_url))
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    env = {"DATABASE_URL": database_url, "SLUICE_WORKER_POLL_SECONDS": "0.1", "LOG_FORMAT": "json"}
    workers = []

    async def job() -> tuple[str, int]:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT status::text, attempts FROM procrastinate_jobs WHERE task_name = 'index_document'"
                    )
                )
            ).one()
        return row[0], row[1]

    try:
        async with sessions() as session:
            dataset = await make_dataset(session, await make_workspace(session), technique="high_quality")
        document = await add_document(sessions, dataset, pdf_slow(30, 1024), name="killer.pdf")
        for death in range(3):
            worker = spawn(["-m", "tests.support.worker"], env, tmp_path / f"worker-{death}.log")
            workers.append(worker)
            for _ in range(300):
                if await job() == ("doing", death):
                    break
                await asyncio.sleep(0.1)
            assert await job() == ("doing", death)
            await asyncio.sleep(1.5)  # well inside the parse (~35 s)
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            await asyncio.sleep(1.0)
            async with opened(database_url) as app:
                recovered = await recover_stalled_jobs(app, seconds_since_heartbeat=0.5)
            # The killed worker's indexing job, once; a periodic job it was running at that moment (the deadline
            # sweep) may be recovered beside it.
            async with engine.connect() as conn:
                tasks = (
                    await conn.execute(
                        text("SELECT task_name FROM procrastinate_jobs WHERE id = ANY(:ids)"),
                        {"ids": recovered},
                    )
                ).scalars()
                assert [t for t in tasks if t == "index_document"] == ["index_document"]
            assert await job() == ("todo", death + 1)

        workers.append(spawn(["-m", "tests.support.worker"], env, tmp_path / "last.log"))
        done = await wait_for_status(sessions, document.id, timeout=60)
        assert done.indexing_status == "error"
        assert done.error == (
            "Indexing stopped: the worker processing this document stopped unexpectedly 3 times (killed, or out of "
            "memory; SLUICE_INDEXING_MAX_ATTEMPTS=3). Retry the document to try again."
        )
        for _ in range(50):
            if (await job())[0] == "succeeded":
                break
            await asyncio.sleep(0.1)
        assert (await job())[0] == "succeeded"  # the job ended: nothing left to retry
    finally:
        for worker in workers:
            stop(worker)
        await engine.dispose()
        embedded.drop_database(server_url, urls.database_name(database_url))
