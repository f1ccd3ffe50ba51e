"""A worker killed with `kill -9` in the middle of a run: after recovery the run finishes from its last
committed step, with no node execution or event doubled and none missing."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from app.workflows import services
from db import urls
from tests.conftest import new_database
from tests.support.processes import spawn, stop

CHAIN = """
version: 0.5.0
kind: app
app: {name: Chain, mode: workflow}
workflow:
  graph:
    nodes:
      - {id: start, data: {type: start, title: Start, variables: []}}
      - {id: quick, data: {type: template-transform, title: Quick, template: "q", variables: []}}
      - {id: slow, data: {type: test-slow, title: Slow, seconds: 2}}
      - {id: end, data: {type: end, title: End, outputs: [{variable: q, value_selector: [quick, output]}, {variable: s, value_selector: [slow, done]}]}}
    edges:
      - {id: e1, source: start, target: quick}
      - {id: e2, source: quick, target: slow}
      - {id: e3, source: slow, target: end}
"""


async def test_run_survives_a_killed_worker(server_url: str, tmp_path: Path) -> None:
    database_url = new_database(server_url)
    engine = create_async_engine(urls.asyncpg(database_url))
    env = {"DATABASE_URL": database_url, "SLUICE_WORKER_POLL_SECONDS": "0.1", "LOG_FORMAT": "json"}
    doomed = spawn(["-m", "tests.support.worker"], env, tmp_path / "doomed.log")
    survivor = None
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session:
            # test-slow is known to the test worker processes and to this one (tests/workflows/conftest.py)
            app = await services.import_app(session, CHAIN, None)
            run_id = (await services.start_run(session, app.id, {}, "u")).id
            await session.commit()

        async def slow_node_status() -> str | None:
            async with engine.connect() as conn:
                return await conn.scalar(
                    text(
                        "SELECT status FROM workflow_node_executions WHERE run_id = :r AND node_id = 'slow'"
                    ),
                    {"r": run_id},
                )

        for _ in range(200):
            if await slow_node_status() == "running":
                break
            await asyncio.sleep(0.05)
        assert await slow_node_status() == "running"
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()

        survivor = spawn(
            ["-m", "tests.support.worker"],
            {**env, "SLUICE_STALLED_JOB_SECONDS": "1"},
            tmp_path / "survivor.log",
        )
        for _ in range(600):
            async with engine.connect() as conn:
                status = await conn.scalar(
                    text("SELECT status FROM workflow_runs WHERE id = :r"), {"r": run_id}
                )
            if status != "running":
                break
            await asyncio.sleep(0.1)
        assert status == "succeeded"

        async with engine.connect() as conn:
            run = (
                await conn.execute(
                    text("SELECT outputs, last_event_seq FROM workflow_runs WHERE id = :r"), {"r": run_id}
                )
            ).one()
            nodes = (
                await conn.execute(
                    text(
                        "SELECT node_id, status FROM workflow_node_executions WHERE run_id = :r ORDER BY index"
                    ),
                    {"r": run_id},
                )
            ).all()
            seqs = [
                r[0]
                for r in await conn.execute(
                    text("SELECT seq FROM workflow_run_events WHERE run_id = :r ORDER BY seq"), {"r": run_id}
                )
            ]
            finished = await conn.scalar(
                text(
                    "SELECT count(*) FROM workflow_run_events WHERE run_id = :r AND event = 'workflow_finished'"
                ),
                {"r": run_id},
            )
        assert run.outputs == {"q": "q", "s": True}
        assert [(n.node_id, n.status) for n in nodes] == [
            ("start", "succeeded"),
            ("quick", "succeeded"),
            ("slow", "succeeded"),
            ("end", "succeeded"),
        ]
        assert seqs == list(range(1, run.last_event_seq + 1)) and finished == 1
        assert "stalled_job_retried" in (tmp_path / "survivor.log").read_text()
    finally:
        if doomed.poll() is None:
            doomed.kill()
        if survivor is not None:
            stop(survivor)
        await engine.dispose()
        from db import embedded

        embedded.drop_database(server_url, urls.database_name(database_url))
