"""A worker killed with `kill -9` in the middle of a run: after recovery the run finishes once, from its last
checkpoint, with one event stream: no ``node_started``/``node_finished`` doubled for an execution, none
missing, sequence numbers without a gap.

Two places to die: inside a node that waits on the outside world (its ``node_started`` was committed at the
checkpoint before it; the recovered run re-runs it under the same execution id without a second start), and
inside a long segment of pure nodes (nothing of it was committed; the recovered run runs it again)."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from app.workflows import services
from db import embedded, urls
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

#: Forty pure nodes, each busy for a while: one long segment without I/O. (A template with a loop was the busy
#: node once; such templates now render in the sandbox, which makes them I/O nodes.)
PURE_NODES = 40


def pure_chain() -> str:
    nodes = [
        f"      - {{id: t{i}, data: {{type: test-busy, title: T{i}, ms: 25, "
        f"value: '{{{{#{'start' if i == 0 else f't{i - 1}'}.{'x' if i == 0 else 'output'}#}}}}'}}}}"
        for i in range(PURE_NODES)
    ]
    edges = [
        f"      - {{id: e{i}, source: {'start' if i == 0 else f't{i - 1}'}, target: t{i}}}"
        for i in range(PURE_NODES)
    ]
    return f"""
version: 0.5.0
kind: app
app: {{name: Pure chain, mode: workflow}}
workflow:
  graph:
    nodes:
      - {{id: start, data: {{type: start, title: Start, variables: [{{variable: x, type: text-input, required: true}}]}}}}
{chr(10).join(nodes)}
      - {{id: end, data: {{type: end, title: End, outputs: [{{variable: out, value_selector: [t{PURE_NODES - 1}, output]}}]}}}}
    edges:
{chr(10).join(edges)}
      - {{id: e-end, source: t{PURE_NODES - 1}, target: end}}
"""


@pytest.fixture
async def crash_db(server_url: str) -> AsyncIterator[tuple[str, AsyncEngine]]:
    database_url = new_database(server_url)
    engine = create_async_engine(urls.asyncpg(database_url))
    try:
        yield database_url, engine
    finally:
        await engine.dispose()
        embedded.drop_database(server_url, urls.database_name(database_url))


async def _kill_then_recover(
    database_url: str,
    engine: AsyncEngine,
    tmp_path: Path,
    dsl: str,
    inputs: dict[str, str],
    in_the_middle: Callable[[uuid.UUID], Awaitable[bool]],
) -> uuid.UUID:
    """Start a run on a worker, kill the worker once ``in_the_middle`` says so, let another finish the run."""
    env = {"DATABASE_URL": database_url, "SLUICE_WORKER_POLL_SECONDS": "0.1", "LOG_FORMAT": "json"}
    doomed = spawn(["-m", "tests.support.worker"], env, tmp_path / "doomed.log")
    survivor = None
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session:
            # test-slow is known to the test worker processes and to this one (tests/workflows/conftest.py)
            app = await services.import_app(session, dsl, None)
            run_id = (await services.start_run(session, app.id, inputs, "u")).id
            await session.commit()
        for _ in range(400):
            if await in_the_middle(run_id):
                break
            await asyncio.sleep(0.02)
        assert await in_the_middle(run_id), "the run never reached the point to kill at"
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
        assert "stalled_job_retried" in (tmp_path / "survivor.log").read_text()
        return run_id
    finally:
        if doomed.poll() is None:
            doomed.kill()
        if survivor is not None:
            stop(survivor)


async def _one_event_stream(engine: AsyncEngine, run_id: uuid.UUID) -> list[tuple[str, str]]:
    """Checks the run's events form one stream; returns its (event, node id) sequence."""
    async with engine.connect() as conn:
        last = await conn.scalar(
            text("SELECT last_event_seq FROM workflow_runs WHERE id = :r"), {"r": run_id}
        )
        rows = (
            await conn.execute(
                text(
                    "SELECT seq, event, data->>'id' AS execution, data->>'node_id' AS node "
                    "FROM workflow_run_events WHERE run_id = :r ORDER BY seq"
                ),
                {"r": run_id},
            )
        ).all()
    assert [r.seq for r in rows] == list(range(1, last + 1))  # no gap, nothing doubled
    per_execution = Counter(
        (r.event, r.execution) for r in rows if r.event in ("node_started", "node_finished")
    )
    doubled = {key: n for key, n in per_execution.items() if n > 1}
    assert not doubled, f"events doubled after the crash: {doubled}"
    started = {e for (event, e) in per_execution if event == "node_started"}
    finished = {e for (event, e) in per_execution if event == "node_finished"}
    assert started == finished  # every execution started once and finished once
    assert [r.event for r in rows].count("workflow_finished") == 1
    return [(r.event, r.node) for r in rows]


async def test_killed_inside_an_io_node(crash_db: tuple[str, AsyncEngine], tmp_path: Path) -> None:
    database_url, engine = crash_db

    async def slow_node_running(run_id: uuid.UUID) -> bool:
        async with engine.connect() as conn:
            status = await conn.scalar(
                text("SELECT status FROM workflow_node_executions WHERE run_id = :r AND node_id = 'slow'"),
                {"r": run_id},
            )
        return status == "running"  # its node_started was committed at the checkpoint before it

    run_id = await _kill_then_recover(database_url, engine, tmp_path, CHAIN, {}, slow_node_running)
    async with engine.connect() as conn:
        outputs = await conn.scalar(text("SELECT outputs FROM workflow_runs WHERE id = :r"), {"r": run_id})
        nodes = (
            await conn.execute(
                text("SELECT node_id, status FROM workflow_node_executions WHERE run_id = :r ORDER BY index"),
                {"r": run_id},
            )
        ).all()
    assert outputs == {"q": "q", "s": True}
    assert [(n.node_id, n.status) for n in nodes] == [
        ("start", "succeeded"),
        ("quick", "succeeded"),
        ("slow", "succeeded"),
        ("end", "succeeded"),
    ]
    stream = await _one_event_stream(engine, run_id)
    assert stream.count(("node_started", "slow")) == 1
    assert stream.count(("node_finished", "slow")) == 1


async def test_killed_inside_a_segment_of_pure_nodes(
    crash_db: tuple[str, AsyncEngine], tmp_path: Path
) -> None:
    database_url, engine = crash_db

    async def segment_running(run_id: uuid.UUID) -> bool:
        # The worker took the job and has been inside the segment a little while (nothing of it is committed).
        async with engine.connect() as conn:
            doing = await conn.scalar(
                text(
                    "SELECT extract(epoch FROM now() - max(e.at)) FROM procrastinate_jobs j "
                    "JOIN procrastinate_events e ON e.job_id = j.id AND e.type = 'started' "
                    "WHERE j.args->>'run_id' = :r AND j.status = 'doing'"
                ),
                {"r": str(run_id)},
            )
        return doing is not None and float(doing) > 0.4

    run_id = await _kill_then_recover(
        database_url, engine, tmp_path, pure_chain(), {"x": "go"}, segment_running
    )
    async with engine.connect() as conn:
        outputs = await conn.scalar(text("SELECT outputs FROM workflow_runs WHERE id = :r"), {"r": run_id})
        executions = await conn.scalar(
            text("SELECT count(*) FROM workflow_node_executions WHERE run_id = :r AND status = 'succeeded'"),
            {"r": run_id},
        )
    assert outputs == {"out": "go"}
    assert executions == PURE_NODES + 2
    stream = await _one_event_stream(engine, run_id)
    assert [node for event, node in stream if event == "node_started"] == [
        "start",
        *[f"t{i}" for i in range(PURE_NODES)],
        "end",
    ]
