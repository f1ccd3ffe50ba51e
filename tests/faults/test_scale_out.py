"""Two API processes and three workers on one database under load; one worker is killed with ``kill -9`` in the
middle. Every run ends exactly once: one ``workflow_finished`` each, no node event doubled for an execution, no
gap in any run's event sequence, every client answered."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from tests.faults.conftest import load, make_app
from tests.support.cluster import Cluster, run_report

#: A worker silent this long is dead (procrastinate beats every 10 s): two missed beats.
STALLED_SECONDS = 20


async def test_a_worker_killed_under_load_loses_and_doubles_nothing(
    private_database: str, tmp_path: Path
) -> None:
    app_id, token = await make_app(private_database)
    cluster = Cluster(
        private_database,
        tmp_path / "logs",
        apis=2,
        workers=3,
        # 3 workers of 4 slots for 12 clients: every worker holds jobs when one is killed (with 10 slots each,
        # two fast workers could take all the work and leave nothing for the kill to interrupt)
        env={
            "SLUICE_STALLED_JOB_SECONDS": str(STALLED_SECONDS),
            "SLUICE_RUN_RECOVERY_SECONDS": "5",
            "SLUICE_WORKER_CONCURRENCY": "4",
        },
    )
    try:
        cluster.wait_ready()
        driving = asyncio.create_task(load(cluster.urls, token, seconds=8, concurrency=12))
        await asyncio.sleep(3)
        cluster.kill_worker("worker-0")  # it holds jobs: 12 clients, 3 workers, every run waits a second
        outcomes = await driving
        for _ in range(120):
            report = run_report(private_database, [app_id])
            if report["active"] == 0:
                break
            await asyncio.sleep(1)
        statuses = Counter(o.status for o in outcomes)
        print(f"\n{len(outcomes)} runs: {dict(statuses)}; database: {report['statuses']}")
        assert report["active"] == 0, report
        assert report["ended_not_once"] == [], report
        assert report["doubled_node_events"] == [], report
        assert report["sequence_gaps"] == [], report
        assert report["statuses"] == {"succeeded": len(outcomes)}, (report, statuses)
        assert statuses == {200: len(outcomes)}, statuses
        assert None not in {o.run_id for o in outcomes}
        assert "stalled_job_retried" in cluster.log_text()  # the killed worker's runs were taken over
        assert all(alive for name, alive in cluster.alive().items()), cluster.alive()
    finally:
        cluster.stop()
