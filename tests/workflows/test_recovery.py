"""The sweep for runs nobody advances: a running (or resolved, paused) run whose job failed gets a new advance
job; a run with a job waiting or running, or with a pause still open, is left alone; one whose jobs failed too
often fails with ``workflow_finished`` instead of being retried forever. No worker here: the tests look at what
the sweep defers."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.clock import utcnow
from app.settings import Settings
from app.wiring import extensions
from app.workflows import services
from app.workflows.runs import pause_rows, store, transitions
from app.workflows.runs.recovery import recover_orphaned_runs

ECHO = """
version: 0.5.0
kind: app
app: {name: Echo, mode: workflow}
workflow:
  graph:
    nodes:
      - {id: start, data: {type: start, title: Start, variables: []}}
      - {id: end, data: {type: end, title: End, outputs: []}}
    edges:
      - {id: e1, source: start, target: end}
"""


async def start(engine: AsyncEngine) -> uuid.UUID:
    async with AsyncSession(engine, expire_on_commit=False) as session:
        app = await services.import_app(session, ECHO, None)
        run = await services.start_run(session, app.id, {}, "u")
        await session.commit()
    return run.id


async def jobs_of(engine: AsyncEngine, run_id: uuid.UUID) -> list[str]:
    async with engine.connect() as conn:
        return list(
            await conn.scalars(
                text("SELECT status::text FROM procrastinate_jobs WHERE lock = :l ORDER BY id"),
                {"l": transitions.run_lock(run_id)},
            )
        )


async def lose_jobs(engine: AsyncEngine, run_id: uuid.UUID) -> None:
    """As if the run's job had failed (the database went away under it) a while ago."""
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE procrastinate_jobs SET status = 'failed' WHERE lock = :l"),
            {"l": transitions.run_lock(run_id)},
        )
        await conn.execute(
            text("UPDATE workflow_runs SET updated_at = now() - interval '5 minutes' WHERE id = :r"),
            {"r": run_id},
        )


async def sweep(engine: AsyncEngine, max_failed: int = 3) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    async with async_sessionmaker(engine, expire_on_commit=False)() as session, session.begin():
        return await recover_orphaned_runs(
            session, extensions(Settings()), quiet_seconds=60, max_failed_jobs=max_failed, now=utcnow()
        )


async def test_a_run_whose_job_failed_gets_a_new_one(wf_engine: AsyncEngine) -> None:
    run_id = await start(wf_engine)
    assert await jobs_of(wf_engine, run_id) == ["todo"]
    assert run_id not in (await sweep(wf_engine))[0]  # its job is waiting: not orphaned
    await lose_jobs(wf_engine, run_id)
    retried, failed = await sweep(wf_engine)
    assert run_id in retried
    assert not failed
    assert await jobs_of(wf_engine, run_id) == ["failed", "todo"]
    assert run_id not in (await sweep(wf_engine))[0]  # handed a job once, not again while it waits


async def test_a_recently_touched_run_is_left_alone(wf_engine: AsyncEngine) -> None:
    run_id = await start(wf_engine)
    async with wf_engine.begin() as conn:
        await conn.execute(
            text("UPDATE procrastinate_jobs SET status = 'failed' WHERE lock = :l"),
            {"l": transitions.run_lock(run_id)},
        )
    assert run_id not in (await sweep(wf_engine))[0]  # quiet for less than the recovery window


async def test_a_run_whose_jobs_keep_failing_fails(wf_engine: AsyncEngine) -> None:
    run_id = await start(wf_engine)
    for _ in range(2):  # its first job and the sweep's first retry fail: retried each time
        await lose_jobs(wf_engine, run_id)
        retried, failed = await sweep(wf_engine)
        assert run_id in retried
        assert not failed
    await lose_jobs(wf_engine, run_id)  # the third failure
    retried, failed = await sweep(wf_engine)
    assert failed == [run_id]
    assert run_id not in retried
    async with wf_engine.connect() as conn:
        status, error = (
            await conn.execute(text("SELECT status, error FROM workflow_runs WHERE id = :r"), {"r": run_id})
        ).one()
        last = (
            await conn.execute(
                text(
                    "SELECT event, data FROM workflow_run_events WHERE run_id = :r ORDER BY seq DESC LIMIT 1"
                ),
                {"r": run_id},
            )
        ).one()
    assert status == "failed"
    assert "failed 3 times" in error
    assert last.event == "workflow_finished"
    assert last.data["status"] == "failed"


async def test_paused_runs_are_recovered_only_once_every_pause_is_resolved(wf_engine: AsyncEngine) -> None:
    run_id = await start(wf_engine)
    async with AsyncSession(wf_engine, expire_on_commit=False) as session, session.begin():
        run = (await store.lock_runs(session, [run_id]))[run_id]
        write = transitions.checkpoint(run_id, ("running",))
        transitions.pause(
            run,
            write,
            now=utcnow(),
            paused_nodes=["end"],
            totals={
                "outputs": {},
                "elapsed_time": 0,
                "total_tokens": 0,
                "total_steps": 1,
                "exceptions_count": 0,
            },
        )
        write.opened.append(
            pause_rows.Pause(
                run_id=run_id, node_id="end", execution_id=uuid.uuid4(), kind="test-manual", request={}
            )
        )
        assert await store.apply(session, [write]) == {run_id}
    await lose_jobs(wf_engine, run_id)
    assert run_id not in (await sweep(wf_engine))[0]  # waiting for someone: nothing to advance
    async with AsyncSession(wf_engine, expire_on_commit=False) as session, session.begin():
        await pause_rows.resolve(session, [(run_id, "end", {}, "source")])  # resolved, but its resume is lost
    await lose_jobs(wf_engine, run_id)
    assert run_id in (await sweep(wf_engine))[0]
