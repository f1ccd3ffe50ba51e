"""Driving the engine from the database: load a run, run the engine, commit at I/O boundaries.

``advance_run`` is the whole job of ``advance_workflow_run``. One transaction locks the run, loads it and runs
the engine; nodes that do no I/O run back to back and are recorded (their events in order, their executions,
the state) in that same transaction, so a run of pure nodes costs the worker one commit. Where the run is about
to wait on the outside world, the engine asks for a checkpoint: the recorder commits what it holds (the I/O
node's ``node_started`` included) and later ones use transactions of their own. A run that pauses or ends
does so in the transaction of its last checkpoint.

It is idempotent (DESIGN.md rule 3): a finished or stopped run is left alone, a paused run resumes only once
every pause is resolved, and a run whose previous attempt died continues from its last checkpoint (pure nodes
are deterministic; a node that was running is run again under its execution id, without a second
``node_started``). Jobs of one run never overlap: they are deferred with the procrastinate lock ``run:<id>``.

``resume_runs`` continues many resolved runs in one transaction (a storm of deadlines): each goes as far as it
can without I/O; one that reaches an I/O node is handed to its own ``advance_run`` job in that transaction.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from typing import Any

import msgspec
import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import utcnow
from app.workflows.engine.building import build_nodes
from app.workflows.engine.core import Engine
from app.workflows.engine.graph import Graph
from app.workflows.engine.nodes.base import Node, NodeResult, RunInfo
from app.workflows.engine.state import CHAT_MODE, HANDOFF, Outcome, RunState
from app.workflows.engine.statuses import RunStatus
from app.workflows.recorder import Recorder, Runtime, final_write, open_pauses
from app.workflows.runs import event_log, store, transitions
from app.workflows.runs.pauses import RunEnd
from app.workflows.runs.store import RunRow, Write
from db import queue

log = structlog.get_logger()

# --- loading ----------------------------------------------------------------------------------------------


class Loaded(msgspec.Struct, kw_only=True):
    run: RunRow
    state: RunState
    resolutions: dict[str, NodeResult]
    resuming: bool


async def _load(session: AsyncSession, run_ids: list[uuid.UUID]) -> dict[uuid.UUID, Loaded]:
    """Lock the runs (id order) and load those to advance now: running ones, and paused ones with every pause
    resolved."""
    out = {}
    for run_id, (run, pauses) in (await store.lock_with_pauses(session, run_ids)).items():
        if run.status == RunStatus.PAUSED:
            if any(p.resolution is None for p in pauses):
                continue  # still waiting for someone
        elif run.status != RunStatus.RUNNING:
            continue
        state = msgspec.convert(await event_log.hydrate(session, run_id, run.state or {}), RunState)
        resolutions = {
            p.node_id: msgspec.convert(p.resolution, NodeResult) for p in pauses if p.resolution is not None
        }
        out[run_id] = Loaded(
            run=run, state=state, resolutions=resolutions, resuming=run.status == RunStatus.PAUSED
        )
    return out


class Built(msgspec.Struct, frozen=True):
    graph: Graph
    nodes: dict[str, Node]
    #: The app's mode (``advanced-chat`` runs stream their reply through Answer nodes).
    mode: str


#: Workflow versions never change: each process builds a version's graph and nodes once.
_BUILT: OrderedDict[uuid.UUID, Built] = OrderedDict()
_BUILT_MAX = 256


async def _graph(session: AsyncSession, workflow_id: uuid.UUID) -> Built:
    built = _BUILT.get(workflow_id)
    if built is None:
        row = (
            await session.execute(
                text(
                    "SELECT w.graph, a.mode FROM workflows w JOIN apps a ON a.id = w.app_id WHERE w.id = :id"
                ),
                {"id": workflow_id},
            )
        ).one()
        graph = Graph.from_dsl(row.graph)
        # A completion app runs as a one-turn chat: its answer streams through its Answer node the same way.
        mode = CHAT_MODE if row.mode == "completion" else row.mode
        built = _BUILT[workflow_id] = Built(graph=graph, nodes=build_nodes(graph), mode=mode)
        while len(_BUILT) > _BUILT_MAX:
            _BUILT.popitem(last=False)
    _BUILT.move_to_end(workflow_id)
    return built


def _engine(runtime: Runtime, loaded: Loaded, built: Built, **options: Any) -> Engine:
    run = loaded.run
    info = RunInfo(
        run_id=str(run.id),
        app_id=str(run.app_id),
        workflow_id=str(run.workflow_id),
        user_id=run.created_by,
        mode=built.mode,
    )
    return Engine(
        built.graph,
        loaded.state,
        runtime.ports,
        info,
        runtime.limits,
        clock=runtime.clock,
        nodes=built.nodes,
        **options,
    )


# --- one run ----------------------------------------------------------------------------------------------


async def advance_run(sessions: async_sessionmaker[AsyncSession], run_id: uuid.UUID, runtime: Runtime) -> str:
    """Run (or resume, or continue) one run until it finishes, fails, pauses or is stopped; returns the status
    it reached (``unchanged`` when there was nothing to do)."""
    session = sessions()
    await session.begin()
    try:
        loaded = (await _load(session, [run_id])).get(run_id)
        if loaded is None:
            await session.rollback()
            await session.close()
            return "unchanged"
        built = await _graph(session, loaded.run.workflow_id)
    except BaseException:
        await session.close()
        raise
    recorder = Recorder(
        runtime,
        sessions,
        loaded.run,
        session=session,
        resuming=loaded.resuming,
        resolved=set(loaded.resolutions),
    )
    engine = _engine(runtime, loaded, built)
    try:
        outcome = await engine.run(recorder, loaded.resolutions)
    except Exception as exc:
        # A bug or a broken dependency, not a node failure: the run fails visibly instead of staying "running"
        # with nobody working on it. What the recorder held is dropped; the failure is recorded on its own.
        log.exception("workflow_run_crashed", run_id=str(run_id))
        outcome = Outcome(
            status=RunStatus.FAILED,
            outputs=loaded.state.outputs,
            error=f"Internal error: {type(exc).__name__}",
        )
        recorder.events, recorder.executions, recorder.opened, recorder.consumed = [], {}, [], []
    try:
        if recorder.stopped or outcome.status == RunStatus.STOPPED:
            log.info("workflow_run_stopped_while_running", run_id=str(run_id))
            return RunStatus.STOPPED
        assert outcome.status != HANDOFF  # this engine does not stop before I/O
        write = final_write(recorder, loaded.state, outcome, utcnow())
        end = RunEnd(
            run=loaded.run,
            status=outcome.status,
            outputs=outcome.outputs,
            error=outcome.error,
            state=loaded.state,
            mode=built.mode,
        )
        if not await recorder.commit(write, end=end):
            return RunStatus.STOPPED
        return outcome.status
    finally:
        if recorder.session is not None:  # never committed (stopped early): release the lock
            await recorder.session.rollback()
            await recorder.session.close()


# --- many runs --------------------------------------------------------------------------------------------


async def resume_runs(
    sessions: async_sessionmaker[AsyncSession], run_ids: list[uuid.UUID], runtime: Runtime
) -> dict[uuid.UUID, str]:
    """Continue resolved runs together: one transaction locks them (id order), runs each as far as it goes
    without I/O, and applies every write at once; a run that reaches an I/O node gets its own advance job in
    that transaction. Returns each run's resulting status."""
    results: dict[uuid.UUID, str] = {}
    async with sessions() as session, session.begin():
        loaded = await _load(session, run_ids)
        writes: list[Write] = []
        ends: list[RunEnd] = []
        handed_off: list[uuid.UUID] = []
        failed: list[uuid.UUID] = []
        now = utcnow()
        for run_id, item in loaded.items():
            built = await _graph(session, item.run.workflow_id)
            recorder = Recorder(
                runtime,
                None,
                item.run,
                session=None,
                resuming=item.resuming,
                resolved=set(item.resolutions),
                batch=True,
            )
            try:
                outcome = await _engine(runtime, item, built, stop_before_io=True).run(
                    recorder, item.resolutions
                )
            except Exception as exc:
                log.exception("workflow_run_crashed", run_id=str(run_id))
                outcome = Outcome(
                    status=RunStatus.FAILED,
                    outputs=item.state.outputs,
                    error=f"Internal error: {type(exc).__name__}",
                )
                recorder.events, recorder.executions, recorder.opened, recorder.consumed = [], {}, [], []
            writes.append(final_write(recorder, item.state, outcome, now))
            results[run_id] = outcome.status
            if outcome.status == HANDOFF:
                handed_off.append(run_id)
            else:
                ends.append(
                    RunEnd(
                        run=item.run,
                        status=outcome.status,
                        outputs=outcome.outputs,
                        error=outcome.error,
                        state=item.state,
                        mode=built.mode,
                    )
                )
                if outcome.status == RunStatus.FAILED:
                    failed.append(run_id)
        await open_pauses(
            session, runtime.extensions.kinds, writes, {i.run.id: i.run.app_id for i in loaded.values()}
        )
        await store.apply(session, writes)  # every run is locked here: each compare-and-set wins
        if failed:
            await store.stop_open_executions(session, failed, now)
        await runtime.extensions.ended(session, ends)
        await queue.defer_jobs(session, [transitions.advance_job(r) for r in handed_off])
    return results
