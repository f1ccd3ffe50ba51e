"""A worker whose event loop is blocked for longer than the stalled-job threshold is busy, not dead: its heartbeat
comes from a thread, so the other workers do not retry its job while it still runs it (which would run the run
twice at once and double its node events)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.faults.conftest import make_app
from tests.support.cluster import Cluster, run_report

STALLED_SECONDS = 12  # procrastinate beats every 10 s
HOG_SECONDS = 30

HOG_APP = f"""
version: 0.5.0
kind: app
app: {{name: Hog, mode: workflow}}
workflow:
  graph:
    nodes:
      - {{id: start, data: {{type: start, title: Start, variables: []}}}}
      - {{id: hog, data: {{type: test-hog, title: Hog, seconds: {HOG_SECONDS}}}}}
      - {{id: end, data: {{type: end, title: End, outputs: [{{variable: done, value_selector: [hog, done]}}]}}}}
    edges:
      - {{id: e1, source: start, target: hog}}
      - {{id: e2, source: hog, target: end}}
"""


async def test_a_worker_with_a_blocked_loop_keeps_its_job(private_database: str, tmp_path: Path) -> None:

    app_id, token = await make_app(private_database, HOG_APP)
    cluster = Cluster(
        private_database,
        tmp_path / "logs",
        apis=1,
        workers=2,
        env={"SLUICE_STALLED_JOB_SECONDS": str(STALLED_SECONDS)},
    )
    try:
        cluster.wait_ready()
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=120) as http:
            answer = await http.post(
                f"{cluster.urls[0]}/v1/workflows/run",
                json={"inputs": {}, "response_mode": "blocking", "user": "u"},
            )
        assert answer.status_code == 200, answer.text
        assert answer.json()["data"]["status"] == "succeeded", answer.text
        await asyncio.sleep(2)
        report = run_report(private_database, [app_id])
        assert report["doubled_node_events"] == [], report
        assert report["ended_not_once"] == [], report
        assert "stalled_job_retried" not in cluster.log_text()
    finally:
        cluster.stop()
