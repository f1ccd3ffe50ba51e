"""The punctual worker's question "when is my next job due?" (jobs/punctual.py), asked on a real database.

The end-to-end timing (a worker with a 5 s poll starts a scheduled job on time) is in
tests/workflows/test_lifecycle.py; this checks the race that made a deadline wait for the poll: a job that
falls due between the worker's last fetch and its question must still be answered."""

from __future__ import annotations

import datetime
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from db import urls
from jobs.punctual import next_due_query


async def test_a_job_due_since_the_last_look_is_answered_and_one_due_before_it_is_not(
    private_database: str,
) -> None:
    engine = create_async_engine(urls.asyncpg(private_database))
    queue_name = f"punctual-{uuid.uuid4().hex[:8]}"
    try:
        async with engine.begin() as conn:
            now = await conn.scalar(text("SELECT clock_timestamp()"))
            assert isinstance(now, datetime.datetime)
            for seconds in (-5, -0.2, 30):
                await conn.execute(
                    text(
                        "INSERT INTO procrastinate_jobs (queue_name, task_name, args, scheduled_at, status) "
                        "VALUES (:queue, 'noop', '{}', :at, 'todo')"
                    ),
                    {"queue": queue_name, "at": now + datetime.timedelta(seconds=seconds)},
                )
        next_due = next_due_query(async_sessionmaker(engine), [queue_name])
        looked = now - datetime.timedelta(seconds=1)  # the worker's last fetch began 1 s ago
        # due 0.2 s ago, after that fetch: answered (in the past: the worker fetches again at once)
        assert await next_due(looked) == now - datetime.timedelta(seconds=0.2)
        # a fetch that began after it: only the later job is left to wait for (the one due 5 s ago, before any
        # of these looks, was not fetchable then and must not make the worker spin)
        assert await next_due(now) == now + datetime.timedelta(seconds=30)
        assert await next_due(now + datetime.timedelta(seconds=60)) is None
    finally:
        await engine.dispose()
