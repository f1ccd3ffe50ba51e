"""Crash safety: the worker is killed with `kill -9` while runs are being resumed and timers are firing. After
a restart every run reaches the state its form dictates; nothing is stuck and nothing is doubled."""

from __future__ import annotations

import asyncio
import random
import signal
import uuid
from pathlib import Path

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from app.clock import utcnow
from app.errors import SluiceError
from app.human_input import services as forms
from app.human_input.forms import paused_nodes
from app.settings import Settings
from app.workflows import services as workflows
from db import embedded, urls
from db.models import HumanInputForm, WorkflowRun
from tests.conftest import SECRET_KEY, new_database
from tests.human_input.test_human_input import approval_dsl
from tests.support.processes import spawn, stop

RUNS = 40
#: Long enough for 40 runs to pause on a loaded 2-core machine before the first deadline passes.
TIMEOUT_SECONDS = 8


async def test_kill_9_while_resuming_and_timing_out(server_url: str, tmp_path: Path) -> None:
    database_url = new_database(server_url)
    engine = create_async_engine(urls.asyncpg(database_url), pool_size=10)
    settings = Settings(database_url=database_url, secret_key=SECRET_KEY)
    env = {
        "DATABASE_URL": database_url,
        "SLUICE_WORKER_POLL_SECONDS": "0.1",
        "SLUICE_SECRET_KEY": SECRET_KEY,
        "LOG_FORMAT": "json",
    }
    doomed = spawn(["-m", "tests.support.worker"], env, tmp_path / "doomed.log")
    survivor = None
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session:
            app = await workflows.import_app(
                session, approval_dsl(f"timeout: {TIMEOUT_SECONDS}\n          timeout_unit: second"), None
            )
            runs = [
                (await workflows.start_run(session, app.id, {"doc": f"d{i}"}, "u")).id for i in range(RUNS)
            ]
            await session.commit()

        async def count(status: str) -> int:
            async with AsyncSession(engine) as session:
                return int(
                    await session.scalar(
                        select(func.count())
                        .select_from(WorkflowRun)
                        .where(WorkflowRun.id.in_(runs), WorkflowRun.status == status)
                    )
                    or 0
                )

        for _ in range(300):
            if await count("paused") == RUNS:
                break
            await asyncio.sleep(0.05)
        assert await count("paused") == RUNS

        submitted: set[uuid.UUID] = set()
        to_submit = random.sample(runs, RUNS // 2)
        for run_id in to_submit:  # half are answered; the other half will time out
            async with AsyncSession(engine, expire_on_commit=False) as session:
                token = (await paused_nodes(session, settings, run_id))[0].pause_type.form_token  # type: ignore[union-attr]
                try:
                    await forms.submit(session, token or "", {"comment": "yes"}, "approve", "u")
                    await session.commit()
                    submitted.add(run_id)
                except SluiceError:  # the deadline came first: then the timeout is its outcome
                    await session.rollback()
        # Kill the worker in the thick of it: resumes queued and running, deadlines about to fire.
        async with AsyncSession(engine) as session:
            first_deadline = await session.scalar(
                select(func.min(HumanInputForm.expiration_time)).where(HumanInputForm.run_id.in_(runs))
            )
        assert first_deadline is not None
        await asyncio.sleep(max(0.0, (first_deadline - utcnow()).total_seconds() - 0.2))
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()

        survivor = spawn(
            ["-m", "tests.support.worker"],
            {**env, "SLUICE_STALLED_JOB_SECONDS": "1"},
            tmp_path / "survivor.log",
        )
        for _ in range(600):
            if await count("succeeded") == RUNS:
                break
            await asyncio.sleep(0.1)

        async with AsyncSession(engine) as session:
            rows = (
                await session.execute(
                    select(WorkflowRun.id, WorkflowRun.status, WorkflowRun.outputs).where(
                        WorkflowRun.id.in_(runs)
                    )
                )
            ).all()
            form_status = dict(
                (
                    await session.execute(
                        select(HumanInputForm.run_id, HumanInputForm.status).where(
                            HumanInputForm.run_id.in_(runs)
                        )
                    )
                ).all()
            )
            asks = dict(
                (
                    await session.execute(
                        text(
                            "SELECT run_id, count(*) FROM workflow_node_executions WHERE run_id = ANY(:r) AND node_id = 'ask' GROUP BY run_id"
                        ),
                        {"r": runs},
                    )
                ).all()
            )
            finished = dict(
                (
                    await session.execute(
                        text(
                            "SELECT run_id, count(*) FROM workflow_run_events WHERE run_id = ANY(:r) AND event = 'workflow_finished' GROUP BY run_id"
                        ),
                        {"r": runs},
                    )
                ).all()
            )
            forms_per_run = dict(
                (
                    await session.execute(
                        text(
                            "SELECT run_id, count(*) FROM human_input_forms WHERE run_id = ANY(:r) GROUP BY run_id"
                        ),
                        {"r": runs},
                    )
                ).all()
            )
        assert len(rows) == RUNS
        for run_id, status, outputs in rows:
            assert status == "succeeded", (run_id, status)
            if run_id in submitted:
                assert form_status[run_id] == "submitted"
                assert outputs["action"] == "approve"
            else:
                assert form_status[run_id] == "timeout"
                assert outputs["action"] == ""
                assert "timed_out" in outputs
            assert asks[run_id] == 1
            assert finished[run_id] == 1
            assert forms_per_run[run_id] == 1
    finally:
        if doomed.poll() is None:
            doomed.kill()
        if survivor is not None:
            stop(survivor)
        await engine.dispose()
        embedded.drop_database(server_url, urls.database_name(database_url))
