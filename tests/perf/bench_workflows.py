"""`just bench workflows`: blocking start->template->end runs through the real API and worker, side by side
with the raw procrastinate no-op job baseline and `/healthz`, at a few concurrency levels; streaming
time-to-first-event; commits per run; how much a 1 MiB input grows the tables; and, at c=16, the CPU time
one blocking run and one no-op job cost in each process (API, worker, PostgreSQL, the bench itself), which is
what the runs/jobs ratio is made of on a machine whose cores are all busy. Everything runs in one go on one
database, so the ratios are comparable.

Commits are counted with ``pg_stat_database.xact_commit`` of the bench database: N sequential runs, minus the
commits the idle processes make over the same time (heartbeats, polls), divided by N. The same is measured for
no-op jobs (the bench's defer, procrastinate's fetch and finish): a run's total minus a no-op job's is what the
API's create and the worker's own transactions add beyond the queue's.
"""

from __future__ import annotations

import asyncio
import random
import string
import time
from typing import Any

import httpx
import psutil
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from db import queue, urls
from tests.perf.bench_queue import throughput
from tests.perf.harness import Processes, Row, median, percentile, report, run_with_processes

LEVELS = (1, 4, 16)
RUNS_PER_LEVEL = {1: 60, 4: 160, 16: 320}
QUEUE_JOBS = 1000
COMMIT_RUNS = 30
TARGET_RATIO_C16 = 0.5
TARGET_P50_C1_MS = 15.0
TARGET_GROWTH_MIB = 3.0
BIG_INPUT_BYTES = 1024 * 1024

LENGTH_APP = """
version: 0.5.0
kind: app
app: {name: Big input, mode: workflow}
workflow:
  graph:
    nodes:
      - {id: start, data: {type: start, title: Start, variables: [{variable: text, type: paragraph, required: true}]}}
      - {id: tpl, data: {type: template-transform, title: T, template: "{{ text|length }}", variables: [{variable: text, value_selector: [start, text]}]}}
      - {id: end, data: {type: end, title: End, outputs: [{variable: length, value_selector: [tpl, output]}]}}
    edges:
      - {id: e1, source: start, target: tpl}
      - {id: e2, source: tpl, target: end}
"""
TABLES = (
    "workflow_runs",
    "workflow_run_events",
    "workflow_node_executions",
    "workflow_run_values",
    "procrastinate_jobs",
)

TEMPLATE_APP = """
version: 0.5.0
kind: app
app: {name: Bench, mode: workflow}
workflow:
  graph:
    nodes:
      - {id: start, data: {type: start, title: Start, variables: [{variable: name, type: text-input, required: true}]}}
      - {id: tpl, data: {type: template-transform, title: T, template: "Hello {{ name }}", variables: [{variable: name, value_selector: [start, name]}]}}
      - {id: end, data: {type: end, title: End, outputs: [{variable: out, value_selector: [tpl, output]}]}}
    edges:
      - {id: e1, source: start, target: tpl}
      - {id: e2, source: tpl, target: end}
"""


async def _timed(total: int, concurrency: int, call: Any) -> tuple[float, list[float]]:
    """Run ``call()`` ``total`` times with ``concurrency`` in flight; returns (per second, latencies in ms)."""
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            queue.get_nowait()
            began = time.perf_counter()
            await call()
            latencies.append((time.perf_counter() - began) * 1000)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - began), latencies


async def xact_commits(engine: Any) -> int:
    async with engine.connect() as conn:
        return int(
            await conn.scalar(
                text("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
            )
            or 0
        )


async def next_xid(engine: Any) -> int:
    """The next transaction id PostgreSQL will assign (reading it assigns none). Only a transaction that writes
    takes an id, so the difference over an action counts its write transactions, whichever process made them."""
    async with engine.connect() as conn:
        return int(
            await conn.scalar(text("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint")) or 0
        )


async def commits_per(engine: Any, count: int, action: Any) -> tuple[float, float]:
    """``(commits, write transactions)`` per ``action()``: medians over ``count`` actions, each one alone, with a
    pause after it so that the queue's own finishing commit is counted too. ``commits`` is
    ``pg_stat_database.xact_commit`` (it also counts every single-statement read outside a transaction block:
    autocommit reads, pool pre-pings); ``write transactions`` counts the transaction ids assigned. The median
    ignores the odd periodic job or heartbeat that lands inside one measure."""
    commits, writes = [], []
    for _ in range(count):
        before, xid = await xact_commits(engine), await next_xid(engine)
        await action()
        await asyncio.sleep(0.2)
        writes.append(await next_xid(engine) - xid)
        commits.append(await xact_commits(engine) - before)
    return float(median(commits)), float(median(writes))


CPU_PARTS = ("api", "worker", "postgres", "bench")


def _cpu(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def cpu_seconds(procs: Processes) -> dict[str, float]:
    """CPU time used so far by the API and the worker (with their children), the PostgreSQL processes of this
    machine, and this bench process (the HTTP client and the no-op jobs' poller)."""
    out = {}
    for name in ("api", "worker"):
        root = psutil.Process(procs.procs[name].pid)
        out[name] = sum(_cpu(p) for p in (root, *root.children(recursive=True)))
    out["postgres"] = sum(
        _cpu(p) for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("postgres")
    )
    out["bench"] = _cpu(psutil.Process())
    return out


def cpu_row(label: str, before: dict[str, float], after: dict[str, float], count: int) -> Row:
    per = {k: (after[k] - before[k]) * 1000 / count for k in CPU_PARTS}
    return Row(
        label,
        round(sum(per.values()), 2),
        "ms CPU",
        " + ".join(f"{k} {per[k]:.2f}" for k in CPU_PARTS),
    )


async def table_bytes(engine: Any) -> int:
    async with engine.connect() as conn:
        return int(
            await conn.scalar(
                text("SELECT sum(pg_total_relation_size(c)) FROM unnest(CAST(:t AS regclass[])) AS c"),
                {"t": list(TABLES)},
            )
            or 0
        )


class WideInputs(Processes):
    """The bench's processes with the input caps raised past the 1 MiB input (MAX_VARIABLE_SIZE is 200 KiB)."""

    def env(self, **extra: str) -> dict[str, str]:
        wide = {
            "MAX_VARIABLE_SIZE": str(2 * BIG_INPUT_BYTES),
            "SLUICE_MAX_RUN_INPUTS_SIZE": str(4 * BIG_INPUT_BYTES),
        }
        return super().env(**wide, **extra)


async def measure(procs: Processes) -> list[Row]:
    rows: list[Row] = []
    admin = {"Authorization": "Bearer bench-admin"}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=procs.base_url, timeout=120, limits=limits) as http:
        imported = (
            await http.post("/console/api/apps/imports", json={"yaml_content": TEMPLATE_APP}, headers=admin)
        ).json()
        key = (await http.post(f"/console/api/apps/{imported['app_id']}/api-keys", headers=admin)).json()[
            "token"
        ]
        headers = {"Authorization": f"Bearer {key}"}

        async def blocking_run() -> None:
            r = await http.post(
                "/v1/workflows/run",
                json={"inputs": {"name": "b"}, "response_mode": "blocking", "user": "bench"},
                headers=headers,
            )
            assert r.status_code == 200 and r.json()["data"]["status"] == "succeeded", r.text

        async def healthz() -> None:
            assert (await http.get("/healthz")).status_code == 200

        async def first_event() -> None:
            async with http.stream(
                "POST",
                "/v1/workflows/run",
                json={"inputs": {"name": "s"}, "response_mode": "streaming", "user": "bench"},
                headers=headers,
            ) as r:
                async for line in r.aiter_lines():
                    if line.startswith("data: "):
                        break

        await _timed(20, 4, blocking_run)  # warm-up
        engine = create_async_engine(urls.asyncpg(procs.database_url))
        try:
            noop_ids: list[int] = []

            async def noop_job() -> None:
                async with engine.begin() as conn:
                    job_id = await queue.defer(AsyncSession(bind=conn), queue.Task.NOOP)
                assert job_id is not None
                noop_ids.append(job_id)
                while True:
                    async with engine.connect() as conn:
                        status = await conn.scalar(
                            text("SELECT status::text FROM procrastinate_jobs WHERE id = :id"), {"id": job_id}
                        )
                    if status == "succeeded":
                        return
                    await asyncio.sleep(0.005)

            per_run, writes_run = await commits_per(engine, COMMIT_RUNS, blocking_run)
            per_job, writes_job = await commits_per(engine, COMMIT_RUNS, noop_job)
            worker_writes = writes_run - writes_job
            rows += [
                Row(
                    "commits per blocking run (all processes)",
                    round(per_run, 2),
                    "commits",
                    "pg_stat_database.xact_commit, reads outside a transaction block included",
                ),
                Row(
                    "commits per no-op job (defer, fetch, finish)",
                    round(per_job, 2),
                    "commits",
                    "the queue's own",
                ),
                Row(
                    "write transactions per blocking run / per no-op job",
                    f"{writes_run:g} / {writes_job:g}",
                    "xids",
                    "transaction ids assigned (all processes)",
                ),
                Row(
                    "worker write transactions per trivial run",
                    round(worker_writes, 2),
                    "xids",
                    "run minus no-op job (the API's create takes the defer's place); target <= 2: "
                    + ("MET" if worker_writes <= 2 else "MISSED"),
                ),
            ]
            for level in LEVELS:
                total = RUNS_PER_LEVEL[level]
                h_rate, h_lat = await _timed(total * 5, level, healthz)
                cpu_before_jobs = cpu_seconds(procs)
                q_rate = await throughput(engine, QUEUE_JOBS)
                cpu_after_jobs = cpu_seconds(procs)
                w_rate, w_lat = await _timed(total, level, blocking_run)
                cpu_after_runs = cpu_seconds(procs)
                ratio = w_rate / q_rate
                target = ""
                if level == 16:
                    target = (
                        f"; target >= {TARGET_RATIO_C16}: {'MET' if ratio >= TARGET_RATIO_C16 else 'MISSED'}"
                    )
                elif level == 1:
                    p50 = median(w_lat)
                    target = f"; p50 target <= {TARGET_P50_C1_MS:g} ms: {'MET' if p50 <= TARGET_P50_C1_MS else 'MISSED'}"
                rows += [
                    Row(
                        f"c={level:<2} workflow runs/s (blocking)",
                        round(w_rate, 1),
                        "runs/s",
                        f"{total} runs",
                    ),
                    Row(
                        f"c={level:<2} workflow p50 / p99",
                        f"{median(w_lat):.1f} / {percentile(w_lat, 99):.1f}",
                        "ms",
                    ),
                    Row(
                        f"c={level:<2} raw no-op jobs/s (baseline)",
                        round(q_rate, 1),
                        "jobs/s",
                        f"runs/jobs = {ratio:.2f}{target}",
                    ),
                    Row(
                        f"c={level:<2} /healthz p50 / p99",
                        f"{median(h_lat):.2f} / {percentile(h_lat, 99):.2f}",
                        "ms",
                        f"{h_rate:,.0f} req/s",
                    ),
                ]
                if level == 16:  # what the ratio is made of: CPU per unit of work, by process
                    rows += [
                        cpu_row("c=16 CPU per no-op job", cpu_before_jobs, cpu_after_jobs, QUEUE_JOBS),
                        cpu_row("c=16 CPU per blocking run", cpu_after_jobs, cpu_after_runs, total),
                    ]
            for level in (1, 4):
                _, ttfe = await _timed(40 * level, level, first_event)
                rows.append(
                    Row(
                        f"c={level:<2} streaming time to first event p50 / p99",
                        f"{median(ttfe):.1f} / {percentile(ttfe, 99):.1f}",
                        "ms",
                    )
                )
            rows.append(await big_input(http, engine))
        finally:
            await engine.dispose()
    return rows


async def big_input(http: httpx.AsyncClient, engine: Any) -> Row:
    """One run with 1 MiB of incompressible text: how much the workflow tables grow."""
    admin = {"Authorization": "Bearer bench-admin"}
    imported = (
        await http.post("/console/api/apps/imports", json={"yaml_content": LENGTH_APP}, headers=admin)
    ).json()
    key = (await http.post(f"/console/api/apps/{imported['app_id']}/api-keys", headers=admin)).json()["token"]
    rng = random.Random(7)
    big = "".join(rng.choices(string.ascii_letters + string.digits + "+/", k=BIG_INPUT_BYTES))
    await asyncio.sleep(1.0)
    before = await table_bytes(engine)
    response = await http.post(
        "/v1/workflows/run",
        json={"inputs": {"text": big}, "response_mode": "blocking", "user": "bench"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.json()["data"]["outputs"] == {"length": str(BIG_INPUT_BYTES)}, response.text[:300]
    grown = (await table_bytes(engine) - before) / 1024 / 1024
    verdict = "MET" if grown <= TARGET_GROWTH_MIB else "MISSED"
    return Row(
        "1 MiB input: workflow tables grew by",
        round(grown, 2),
        "MiB",
        f"incompressible text; target <= {TARGET_GROWTH_MIB:g}: {verdict}",
    )


def main(args: list[str]) -> dict[str, Any]:
    rows = run_with_processes(measure, WideInputs)
    report("workflows", rows, {"levels": LEVELS, "runs_per_level": RUNS_PER_LEVEL})
    return {"rows": rows}
