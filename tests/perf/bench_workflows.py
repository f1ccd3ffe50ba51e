"""`just bench workflows`: blocking start->template->end runs through the real API and worker, side by side
with the raw procrastinate no-op job baseline and `/healthz`, at a few concurrency levels; and streaming
time-to-first-event. Everything runs in one go on one database, so the ratios are comparable.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import create_async_engine

from db import urls
from tests.perf.bench_queue import throughput
from tests.perf.harness import Processes, Row, median, percentile, report, run_with_processes

LEVELS = (1, 4, 16)
RUNS_PER_LEVEL = {1: 60, 4: 160, 16: 320}
QUEUE_JOBS = 1000

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
            for level in LEVELS:
                total = RUNS_PER_LEVEL[level]
                h_rate, h_lat = await _timed(total * 5, level, healthz)
                q_rate = await throughput(engine, QUEUE_JOBS)
                w_rate, w_lat = await _timed(total, level, blocking_run)
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
                        f"runs/jobs = {w_rate / q_rate:.2f}",
                    ),
                    Row(
                        f"c={level:<2} /healthz p50 / p99",
                        f"{median(h_lat):.2f} / {percentile(h_lat, 99):.2f}",
                        "ms",
                        f"{h_rate:,.0f} req/s",
                    ),
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
        finally:
            await engine.dispose()
    return rows


def main(args: list[str]) -> dict[str, Any]:
    rows = run_with_processes(measure, Processes)
    report("workflows", rows, {"levels": LEVELS, "runs_per_level": RUNS_PER_LEVEL})
    return {"rows": rows}
