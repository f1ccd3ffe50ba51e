"""PostgreSQL stops under load (its own embedded server, stopped and started with ``pg_ctl``) while two APIs and
two workers serve runs: every API answers 503 on ``/readyz`` (and 503 ``database_unavailable`` on the Service
API) while it is down and is ready again by itself once it is back; the workers notice, wait and start again in
their process; no process dies; afterwards no run is left running and none finished twice."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.faults.conftest import load, make_app
from tests.support.cluster import Cluster, OwnPostgres, run_report

DOWN_SECONDS = 6


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    server = OwnPostgres()
    try:
        yield server
    finally:
        server.close()


async def readiness(urls: list[str]) -> list[int]:
    async with httpx.AsyncClient(timeout=10) as http:
        return [(await http.get(u + "/readyz")).status_code for u in urls]


async def test_postgres_restarted_under_load(own_postgres: OwnPostgres, tmp_path: Path) -> None:
    from db import migrate

    migrate.upgrade(own_postgres.url)
    app_id, token = await make_app(own_postgres.url)
    cluster = Cluster(
        own_postgres.url,
        tmp_path / "logs",
        apis=2,
        workers=2,
        env={"SLUICE_RUN_RECOVERY_SECONDS": "3", "SLUICE_STALLED_JOB_SECONDS": "20"},
    )
    try:
        cluster.wait_ready()
        driving = asyncio.create_task(load(cluster.urls, token, seconds=DOWN_SECONDS + 12, concurrency=8))
        await asyncio.sleep(4)
        own_postgres.stop()
        down_at = time.monotonic()
        await asyncio.sleep(1)
        assert await readiness(cluster.urls) == [503, 503]
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=10) as http:
            refused = await http.post(
                f"{cluster.urls[0]}/v1/workflows/run",
                json={"inputs": {}, "response_mode": "blocking", "user": "u"},
            )
        assert refused.status_code == 503, refused.text
        assert refused.json()["code"] == "database_unavailable", refused.text
        await asyncio.sleep(max(0.0, DOWN_SECONDS - (time.monotonic() - down_at)))
        own_postgres.start()
        back_at = time.monotonic()
        while await readiness(cluster.urls) != [200, 200]:
            assert time.monotonic() - back_at < 30, "the APIs did not become ready again by themselves"
            await asyncio.sleep(0.2)
        ready_after = time.monotonic() - back_at
        outcomes = await driving
        for _ in range(120):
            report = run_report(own_postgres.url, [app_id])
            if report["active"] == 0:
                break
            await asyncio.sleep(1)
        statuses = Counter(o.status for o in outcomes)
        print(
            f"\nready {ready_after:.1f} s after the restart; clients: {dict(statuses)}; runs: {report['statuses']}"
        )
        assert report["active"] == 0, report
        assert report["ended_not_once"] == [], report
        assert report["doubled_node_events"] == [], report
        assert report["sequence_gaps"] == [], report
        assert set(report["statuses"]) == {"succeeded"}, report
        # While it was down, requests were refused with 503 (never a 500 or a hang); the rest succeeded.
        assert set(statuses) <= {200, 503, "stream_cut"}, statuses
        assert all(cluster.alive().values()), cluster.alive()
        logs = cluster.log_text()
        assert "worker_lost_database" in logs
        assert "worker_restarting" in logs
        assert "unhandled_exception" not in logs
    finally:
        cluster.stop()
