"""The named transitions of a run: start, checkpoint, pause, finish, resolve, stop.

Each builds its events from ``app.workflows.views`` and goes through ``store.apply`` (the one compare-and-set)
in the caller's transaction, together with the job it needs (DESIGN.md rule 1)::

    start ──> running ──checkpoint──> running ──finish──> succeeded | partial-succeeded | failed
                 │  ▲                                  └─> stopped   (stop: from running or paused)
           pause │  │ resume (every pause resolved; the job that resolves the last one is deferred with it)
                 ▼  │
               paused ──stop──> stopped

The runner (``app/workflows/runner.py``) drives checkpoint, pause and finish; the API drives start and stop;
pause kinds (``runs/pauses.py``) drive resolve. Services never commit.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.workflows.engine.statuses import RunStatus
from app.workflows.runs import pause_rows, store
from app.workflows.runs.pauses import Extensions, RunEnd
from app.workflows.runs.store import ACTIVE, Event, RunRow, Write
from app.workflows.runs.values import Stash
from app.workflows.views import run_finished_data, run_started_data
from db import queue

#: Runs resumed by one job when many pauses are resolved at once (a storm of deadlines).
RESUME_BATCH = 50


def run_lock(run_id: uuid.UUID) -> str:
    """The procrastinate lock that keeps two jobs advancing one run from ever running at once."""
    return f"run:{run_id}"


def advance_job(run_id: uuid.UUID) -> queue.JobSpec:
    return queue.JobSpec(
        task=queue.Task.ADVANCE_WORKFLOW_RUN, args={"run_id": str(run_id)}, lock=run_lock(run_id)
    )


async def start(
    session: AsyncSession,
    *,
    run_id: uuid.UUID,
    app_id: uuid.UUID,
    workflow_id: uuid.UUID,
    inputs: Mapping[str, Any],
    user: str,
    state: Mapping[str, Any],
    created_at: datetime.datetime,
    alongside: store.Alongside | None = None,
) -> None:
    """A new ``running`` run with ``workflow_started``, and the job that runs it: both or neither (with the
    caller's ``alongside`` statement: all three or none). The inputs
    are stored once as given; the state and the event reference their large values (``runs/values.py``)."""
    stash = Stash()
    snapshot = {**state, "pool": stash.pool(state.get("pool") or {})}
    run = {"id": run_id, "workflow_id": workflow_id, "created_at": created_at}
    started = Event("workflow_started", run_started_data(_Run(run), stash.mapping(inputs)))
    await store.insert_run(
        session,
        {
            "id": run_id,
            "app_id": app_id,
            "workflow_id": workflow_id,
            "inputs": dict(inputs),
            "created_by": user,
            "state": snapshot,
        },
        started,
        stash.values,
        [advance_job(run_id)],
        alongside,
    )


class _Run:
    def __init__(self, fields: Mapping[str, Any]) -> None:
        self.id, self.workflow_id, self.created_at = fields["id"], fields["workflow_id"], fields["created_at"]


# --- the runner's transitions (writes the runner applies) -------------------------------------------------


def checkpoint(run_id: uuid.UUID, expected: tuple[RunStatus, ...], **changes: Any) -> Write:
    """The run goes on: what the engine did since the last checkpoint (events, executions, state)."""
    return Write(
        run_id=run_id, expected=expected, changes={"status": RunStatus.RUNNING, "paused_at": None, **changes}
    )


def pause(
    run: RunRow, write: Write, *, now: datetime.datetime, paused_nodes: list[str], totals: dict[str, Any]
) -> None:
    """Make ``write`` pause the run: status ``paused`` and ``workflow_paused`` last."""
    data = run_finished_data(
        run,
        status=RunStatus.PAUSED,
        outputs=totals["outputs"],
        error=None,
        elapsed=totals["elapsed_time"],
        tokens=totals["total_tokens"],
        steps=totals["total_steps"],
        exceptions=totals["exceptions_count"],
        finished_at=None,
    )
    write.changes.update(status=RunStatus.PAUSED, paused_at=now)
    write.events.append(Event("workflow_paused", {**data, "paused_nodes": paused_nodes}))


def finish(
    run: RunRow,
    write: Write,
    *,
    status: RunStatus,
    error: str | None,
    now: datetime.datetime,
    totals: dict[str, Any],
) -> None:
    """Make ``write`` end the run: final status, outputs, no state, ``workflow_finished`` last."""
    write.changes.update(status=status, error=error, finished_at=now, state=None, outputs=totals["outputs"])
    write.events.append(
        Event(
            "workflow_finished",
            run_finished_data(
                run,
                status=status,
                outputs=totals["outputs"],
                error=error,
                elapsed=totals["elapsed_time"],
                tokens=totals["total_tokens"],
                steps=totals["total_steps"],
                exceptions=totals["exceptions_count"],
                finished_at=now,
            ),
        )
    )


# --- resolve and stop (the API's and the pause kinds' transitions) -----------------------------------------


async def resolve(
    session: AsyncSession, items: Sequence[tuple[uuid.UUID, str, Mapping[str, Any], str]]
) -> set[uuid.UUID]:
    """Resolve paused nodes — ``(run, node, outputs, edge handle)`` each — and defer the resume of every run
    left with no open pause, in the caller's transaction. Returns the runs whose pause this call won (a pause
    already resolved is left as it was: the loser changes nothing)."""
    won, ready = await pause_rows.resolve(session, items)
    await defer_resumes(session, ready)
    return won


async def defer_resumes(session: AsyncSession, run_ids: Sequence[uuid.UUID]) -> None:
    """One run: its own advance job. Many (a storm of deadlines): jobs of up to ``RESUME_BATCH`` runs each,
    which continue every run as far as it goes without I/O in one transaction (``runner.resume_runs``)."""
    if len(run_ids) <= 1:
        await queue.defer_jobs(session, [advance_job(r) for r in run_ids])
        return
    await queue.defer_jobs(
        session,
        [
            queue.JobSpec(
                task=queue.Task.RESUME_WORKFLOW_RUNS,
                args={"run_ids": [str(r) for r in run_ids[i : i + RESUME_BATCH]]},
            )
            for i in range(0, len(run_ids), RESUME_BATCH)
        ],
    )


async def stop(
    session: AsyncSession,
    extensions: Extensions,
    run_ids: Sequence[uuid.UUID],
    error: str,
    now: datetime.datetime,
) -> set[uuid.UUID]:
    """Stop active runs: ``stopped`` (compare-and-set on running|paused), ``workflow_finished``, their open node
    executions ``stopped``, their pauses dropped and closed by their kinds — one transaction. A worker still
    running one fails its next checkpoint's compare-and-set and halts. Returns the runs this stopped (a run
    that had already ended is left alone)."""
    return await end_active(session, extensions, run_ids, RunStatus.STOPPED, error, now, clock_running=True)


async def end_active(
    session: AsyncSession,
    extensions: Extensions,
    run_ids: Sequence[uuid.UUID],
    status: RunStatus,
    error: str,
    now: datetime.datetime,
    *,
    clock_running: bool,
) -> set[uuid.UUID]:
    """End active runs from outside the engine as ``status`` with ``error`` (a stop; the recovery giving up on a
    run): the steps of :func:`stop`. ``clock_running``: a running run's elapsed time runs up to ``now``;
    otherwise the time its last checkpoint recorded stands. Returns the runs this ended."""
    runs = await store.lock_runs(session, run_ids)
    writes = []
    ends = []
    for run in runs.values():
        if run.status not in ACTIVE:
            continue
        elapsed = (
            (now - run.created_at).total_seconds()
            if clock_running and run.status == RunStatus.RUNNING
            else run.elapsed_time
        )
        write = Write(run_id=run.id, expected=ACTIVE, changes={"elapsed_time": elapsed})
        totals = {
            "outputs": run.outputs or {},
            "elapsed_time": elapsed,
            "total_tokens": run.total_tokens,
            "total_steps": run.total_steps,
            "exceptions_count": run.exceptions_count,
        }
        finish(run, write, status=status, error=error, now=now, totals=totals)
        writes.append(write)
        ends.append(RunEnd(run=run, status=status, outputs=run.outputs or {}, error=error))
    ended = await store.apply(session, writes)
    if ended:
        ordered = sorted(ended)
        await store.stop_open_executions(session, ordered, now)
        await extensions.kinds.close(session, await pause_rows.drop(session, ordered))
        await extensions.ended(session, [e for e in ends if e.run.id in ended])
    return ended
