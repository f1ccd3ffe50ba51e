"""The run lifecycle's costs and plumbing: commits per run, storage per input byte, batched resumes, the punctual
worker, and the pause-kind boundary between the workflows package and human input.

Commits and storage are counted on a private database with no worker: the test calls the runner itself."""

from __future__ import annotations

import ast
import asyncio
import datetime
import random
import string
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from app.settings import Settings
from app.wiring import extensions
from app.workflows import services
from app.workflows.engine.nodes.base import Ports
from app.workflows.recorder import Runtime
from app.workflows.runner import advance_run
from db import queue, urls
from tests.conftest import SECRET_KEY
from tests.human_input.test_human_input import approval_dsl
from tests.support.processes import spawn, stop
from tests.workflows.conftest import import_app

ROOT = Path(__file__).resolve().parents[2]

TRIVIAL = """
version: 0.5.0
kind: app
app: {name: Trivial, mode: workflow}
workflow:
  graph:
    nodes:
      - {id: start, data: {type: start, title: Start, variables: [{variable: name, type: paragraph, required: true}]}}
      - {id: tpl, data: {type: template-transform, title: T, template: "Hello {{ name|length }}", variables: [{variable: name, value_selector: [start, name]}]}}
      - {id: end, data: {type: end, title: End, outputs: [{variable: out, value_selector: [tpl, output]}]}}
    edges:
      - {id: e1, source: start, target: tpl}
      - {id: e2, source: tpl, target: end}
"""

WITH_IO = """
version: 0.5.0
kind: app
app: {name: With I/O, mode: workflow}
workflow:
  graph:
    nodes:
      - {id: start, data: {type: start, title: Start, variables: []}}
      - {id: a, data: {type: template-transform, title: A, template: "a", variables: []}}
      - {id: slow, data: {type: test-slow, title: Slow, seconds: 0.05}}
      - {id: b, data: {type: template-transform, title: B, template: "b", variables: []}}
      - {id: end, data: {type: end, title: End, outputs: [{variable: s, value_selector: [slow, done]}]}}
    edges:
      - {id: e1, source: start, target: a}
      - {id: e2, source: a, target: slow}
      - {id: e3, source: slow, target: b}
      - {id: e4, source: b, target: end}
"""


class CountedEngine:
    """An engine on a private database that counts the transactions committed through it."""

    def __init__(self, database_url: str) -> None:
        self.engine = create_async_engine(urls.asyncpg(database_url))
        self.commits = 0
        event.listen(self.engine.sync_engine, "commit", self._committed)

    def _committed(self, _connection: Any) -> None:
        self.commits += 1

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        return async_sessionmaker(self.engine, expire_on_commit=False)


@pytest.fixture
async def counted(private_database: str) -> AsyncIterator[CountedEngine]:
    counted = CountedEngine(private_database)
    yield counted
    await counted.engine.dispose()


def runtime() -> Runtime:
    return Runtime(ports=Ports(), extensions=extensions(Settings(secret_key=SECRET_KEY)))


async def start(counted: CountedEngine, dsl: str, inputs: dict[str, Any]) -> uuid.UUID:
    async with counted.sessions() as session:
        app = await services.import_app(session, dsl, None)
        run_id = (await services.start_run(session, app.id, inputs, "u")).id
        await session.commit()
    return run_id


async def test_a_run_of_pure_nodes_is_one_worker_commit(counted: CountedEngine) -> None:
    run_id = await start(counted, TRIVIAL, {"name": "world"})
    before = counted.commits
    assert await advance_run(counted.sessions, run_id, runtime()) == "succeeded"
    assert counted.commits - before == 1
    async with counted.engine.connect() as conn:
        events = [
            r[0]
            for r in await conn.execute(
                text("SELECT event FROM workflow_run_events WHERE run_id = :r ORDER BY seq"), {"r": run_id}
            )
        ]
        outputs = await conn.scalar(text("SELECT outputs FROM workflow_runs WHERE id = :r"), {"r": run_id})
    assert outputs == {"out": "Hello 5"}
    assert events == ["workflow_started", *["node_started", "node_finished"] * 3, "workflow_finished"]


async def test_an_io_node_adds_one_checkpoint(counted: CountedEngine) -> None:
    """start and `a` are recorded with `slow`'s start before it runs; `slow`'s end, `b`, `end` and the finish
    with the last commit: two commits for the whole run."""
    from app.workflows.engine import nodes as registry
    from tests.support.nodes import SlowNode

    registry.NODE_TYPES[SlowNode.type] = SlowNode
    try:
        run_id = await start(counted, WITH_IO, {})
        before = counted.commits
        assert await advance_run(counted.sessions, run_id, runtime()) == "succeeded"
        assert counted.commits - before == 2
    finally:
        registry.NODE_TYPES.pop(SlowNode.type, None)


async def relations_bytes(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(
            await conn.scalar(
                text(
                    "SELECT sum(pg_total_relation_size(c)) FROM unnest(ARRAY['workflow_runs', "
                    "'workflow_run_events', 'workflow_node_executions', 'workflow_run_values', "
                    "'workflow_pauses', 'procrastinate_jobs']::regclass[]) AS c"
                )
            )
            or 0
        )


async def test_a_large_input_is_stored_about_once(counted: CountedEngine) -> None:
    """1 MiB of incompressible text in, one run: the workflow tables grow by at most 3 MiB (they grew by 15.6 MiB
    when every step rewrote the state and every event copied the input)."""
    rng = random.Random(7)
    big = "".join(rng.choices(string.ascii_letters + string.digits + "+/", k=1024 * 1024))
    async with counted.sessions() as session:  # the app first: its DSL is not part of the measure
        app = await services.import_app(session, TRIVIAL, None)
        await session.commit()
    before = await relations_bytes(counted.engine)
    async with counted.sessions() as session:
        # over the default input caps on purpose: an operator may raise MAX_VARIABLE_SIZE this far
        wide = services.InputLimits(per_variable=2 * 1024 * 1024, total=4 * 1024 * 1024)
        run_id = (await services.start_run(session, app.id, {"name": big}, "u", limits=wide)).id
        await session.commit()
    assert await advance_run(counted.sessions, run_id, runtime()) == "succeeded"
    grown = await relations_bytes(counted.engine) - before
    assert grown <= 3 * 1024 * 1024, f"the tables grew by {grown / 1024 / 1024:.1f} MiB"
    # ... and the input still reads back whole wherever it is shown
    async with counted.sessions() as session:
        from app.workflows.runs import event_log

        _, stored = await event_log.status_and_events(session, run_id, 0)
        rows = await event_log.hydrate_events(session, run_id, stored)
    started = next(data for _, name, data in rows if name == "workflow_started")
    start_finished = next(
        data for _, name, data in rows if name == "node_finished" and data["node_id"] == "start"
    )
    assert started["inputs"]["name"] == big
    assert start_finished["outputs"]["name"] == big


def test_the_workflows_package_never_names_human_input() -> None:
    """Pause kinds plug in from their feature: app/workflows imports nothing of app/human_input."""
    offenders = []
    for path in (ROOT / "app" / "workflows").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.startswith("app.human_input")]
    assert offenders == []
    assert "human_input_forms" not in "".join(
        p.read_text() for p in (ROOT / "app" / "workflows").rglob("*.py")
    )


async def test_many_resolutions_resume_in_batches(
    wf_client: AsyncTestClient[Litestar], wf_engine: AsyncEngine
) -> None:
    """Thirty deadlines passing together: the runs resume through batch jobs (not one job each); a batched run
    that reaches an I/O node is handed to its own job and still finishes once."""
    timeout = "timeout: 1\n          timeout_unit: second"
    app = await import_app(wf_client, approval_dsl(timeout))
    async with AsyncSession(wf_engine) as session:
        ids = [
            (await services.start_run(session, uuid.UUID(app.app_id), {"doc": f"d{i}"}, "u")).id
            for i in range(30)
        ]
        await session.commit()
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        async with wf_engine.connect() as conn:
            active = await conn.scalar(
                text(
                    "SELECT count(*) FROM workflow_runs WHERE id = ANY(:ids) AND status IN ('running', 'paused')"
                ),
                {"ids": ids},
            )
        if not active:
            break
        assert asyncio.get_running_loop().time() < deadline, f"{active} runs still active"
        await asyncio.sleep(0.1)
    async with wf_engine.connect() as conn:
        statuses = {
            r[0]
            for r in await conn.execute(
                text("SELECT status FROM workflow_runs WHERE id = ANY(:ids)"), {"ids": ids}
            )
        }
        batches = await conn.scalar(
            text(
                "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'resume_workflow_runs' "
                "AND EXISTS (SELECT 1 FROM jsonb_array_elements_text(args->'run_ids') r WHERE r = ANY(:ids))"
            ),
            {"ids": [str(i) for i in ids]},
        )
        finished = await conn.scalar(
            text(
                "SELECT count(*) FROM workflow_run_events WHERE run_id = ANY(:ids) AND event = 'workflow_finished'"
            ),
            {"ids": ids},
        )
    assert statuses == {"succeeded"}
    assert finished == 30
    assert batches
    assert batches < 30  # the timeouts of one alarm pass were resumed together


@pytest.mark.parametrize("busy", [False, True], ids=["idle", "busy"])
async def test_a_worker_wakes_when_its_next_scheduled_job_is_due(
    private_database: str, tmp_path: Path, busy: bool
) -> None:
    """With a 5 s poll, a job scheduled 1.5 s ahead still starts on time: the worker sets a timer for it, idle or
    while another job runs (busy, it asks a moment later: ``jobs.punctual.BUSY_QUESTION_DELAY``). (A worker
    process of its own: two workers in one process would share procrastinate's App and its connector.)"""
    env = {
        "DATABASE_URL": private_database,
        "SLUICE_WORKER_POLL_SECONDS": "5",
        "SLUICE_SECRET_KEY": SECRET_KEY,
    }
    worker = spawn(["-m", "tests.support.worker"], env, tmp_path / "worker.log")
    engine = create_async_engine(urls.asyncpg(private_database))
    try:
        for _ in range(100):  # until the worker is up (its heartbeat row exists) and has gone idle
            async with engine.connect() as conn:
                if await conn.scalar(text("SELECT count(*) FROM procrastinate_workers")):
                    break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        if busy:  # a job that runs for the rest of the test holds a slot of the worker
            async with engine.begin() as conn:
                hanging = await conn.scalar(
                    text(
                        "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status) "
                        "VALUES ('workflows', 'test_hang_on_first_attempt', '{}', 'todo') RETURNING id"
                    )
                )
            for _ in range(50):
                async with engine.connect() as conn:
                    status = await conn.scalar(
                        text("SELECT status FROM procrastinate_jobs WHERE id = :id"), {"id": hanging}
                    )
                if status == "doing":
                    break
                await asyncio.sleep(0.1)
            assert status == "doing"
        async with AsyncSession(engine) as session:
            due = await session.scalar(text("SELECT clock_timestamp() + interval '1.5 seconds'"))
            assert isinstance(due, datetime.datetime)
            job_id = await queue.defer(session, queue.Task.NOOP, schedule_at=due)
            await session.commit()
        for _ in range(100):
            async with engine.connect() as conn:
                started = await conn.scalar(
                    text("SELECT min(at) FROM procrastinate_events WHERE job_id = :id AND type = 'started'"),
                    {"id": job_id},
                )
            if started is not None:
                break
            await asyncio.sleep(0.1)
        assert started is not None, "the job never started"
        late = (started - due).total_seconds()
        assert -0.05 <= late < 0.5, (
            f"started {late:.3f} s after it was due (the poll would make it up to 5 s)"
        )
    finally:
        stop(worker)
        await engine.dispose()
