"""`just bench queue`: procrastinate's raw no-op job throughput and defer->start latency on this database.

The baseline every later feature is compared against. Jobs are deferred with db.queue (the same helper the
services use). Throughput: N jobs committed in one transaction, time from commit to the last one finished,
with one and with two worker processes. Latency: jobs committed one at a time at a steady rate, from the
``deferred`` to the ``started`` event (both stamped by PostgreSQL).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from db import queue, urls
from tests.perf.harness import Processes, Row, median, percentile, report, run_with_processes

THROUGHPUT_JOBS = 3000
ROUNDS = 3
LATENCY_JOBS = 300
LATENCY_INTERVAL_S = 0.01


async def _count(engine: AsyncEngine, status: str, since_id: int) -> int:
    async with engine.connect() as conn:
        return int(
            await conn.scalar(
                text(
                    "SELECT count(*) FROM procrastinate_jobs WHERE status = CAST(:s AS procrastinate_job_status) AND id > :id"
                ),
                {"s": status, "id": since_id},
            )
            or 0
        )


async def _max_id(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT coalesce(max(id), 0) FROM procrastinate_jobs")) or 0)


async def throughput(engine: AsyncEngine, jobs: int) -> float:
    since = await _max_id(engine)
    async with engine.begin() as conn:
        session = AsyncSession(bind=conn)
        await queue.defer_jobs(session, [queue.JobSpec(task=queue.Task.NOOP)] * jobs)
    started = time.perf_counter()
    while await _count(engine, "succeeded", since) < jobs:
        await asyncio.sleep(0.05)
    return jobs / (time.perf_counter() - started)


async def latency(engine: AsyncEngine, jobs: int, interval: float) -> list[float]:
    since = await _max_id(engine)
    for _ in range(jobs):
        async with engine.begin() as conn:
            await queue.defer(AsyncSession(bind=conn), queue.Task.NOOP)
        await asyncio.sleep(interval)
    while await _count(engine, "succeeded", since) < jobs:
        await asyncio.sleep(0.02)
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                """
                SELECT extract(epoch FROM s.at - d.at) * 1000
                FROM procrastinate_events d JOIN procrastinate_events s ON s.job_id = d.job_id
                WHERE d.type = 'deferred' AND s.type = 'started' AND d.job_id > :id
                """
            ),
            {"id": since},
        )
        return [float(r[0]) for r in rows]


async def measure(procs: Processes) -> list[Row]:
    engine = create_async_engine(urls.asyncpg(procs.database_url))
    rows: list[Row] = []
    try:
        procs.start_worker("worker", "--queue", "workflows")
        await asyncio.sleep(2)  # let it connect and LISTEN
        await throughput(engine, 200)  # warm-up
        one = median([await throughput(engine, THROUGHPUT_JOBS) for _ in range(ROUNDS)])
        lat = await latency(engine, LATENCY_JOBS, LATENCY_INTERVAL_S)
        procs.start_worker("worker-2", "--queue", "workflows")
        await asyncio.sleep(2)
        two = median([await throughput(engine, THROUGHPUT_JOBS) for _ in range(ROUNDS)])
        rows += [
            Row(
                "throughput, 1 worker process",
                round(one, 1),
                "jobs/s",
                f"median of {ROUNDS} x {THROUGHPUT_JOBS} no-op jobs",
            ),
            Row("throughput, 2 worker processes", round(two, 1), "jobs/s", f"ratio {two / one:.2f}x"),
            Row(
                "defer->start p50",
                round(median(lat), 2),
                "ms",
                f"{len(lat)} jobs, 1 every {LATENCY_INTERVAL_S * 1000:.0f} ms",
            ),
            Row("defer->start p99", round(percentile(lat, 99), 2), "ms"),
            Row("defer->start max", round(max(lat), 2), "ms"),
        ]
    finally:
        await engine.dispose()
    return rows


def main(args: list[str]) -> dict[str, Any]:
    rows = run_with_processes(measure, Processes, worker=False)
    report("queue", rows, {"throughput_jobs": THROUGHPUT_JOBS, "latency_jobs": LATENCY_JOBS})
    return {"rows": rows}
