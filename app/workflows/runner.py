"""Driving the engine from the database: load a run's snapshot, run the engine, persist every step.

``advance_run`` is the whole job of the ``advance_workflow_run`` task. It is idempotent (DESIGN.md rule 3): a
finished or stopped run is left alone, a paused run resumes only once every pause is resolved, and a run whose
previous attempt died mid-step continues from its last committed step. Jobs of one run never overlap: they are
deferred with the procrastinate lock ``run:<id>``.
"""

from __future__ import annotations

import asyncio
import datetime
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import structlog
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import utcnow
from app.workflows import run_store
from app.workflows.engine.core import Engine, Limits, NodeRun, Outcome, RunState
from app.workflows.engine.errors import RunStopped
from app.workflows.engine.graph import Graph
from app.workflows.engine.nodes.base import NodeResult, Ports, RunInfo
from app.workflows.run_store import Event
from app.workflows.views import node_finished_data, node_started_data, run_finished_data, run_started_data
from db.models import Workflow, WorkflowRun, workflow_pauses

log = structlog.get_logger()

#: Streamed text is written to the event log in small batches, not one transaction per token.
CHUNK_FLUSH_SECONDS = 0.05


def _ts(epoch: float | None) -> datetime.datetime | None:
    return None if epoch is None else datetime.datetime.fromtimestamp(epoch, datetime.UTC)


#: Called in the transaction that records a node's pause; returns events to append (e.g. human_input_required).
PauseHook = Callable[[AsyncSession, WorkflowRun, NodeRun], Awaitable[list[Event]]]


class StepRecorder:
    """The engine's Listener: each step is one transaction guarded by the run's status (see run_store)."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], run: WorkflowRun, on_pause: PauseHook | None = None
    ) -> None:
        self.sessions, self.run_id, self.run, self.on_pause = sessions, run.id, run, on_pause
        self.lock = asyncio.Lock()
        self.chunks: list[Event] = []
        self.last_flush = time.monotonic()
        self.stopped = False

    async def node_started(self, node_run: NodeRun, state: RunState) -> bool:
        async with self.lock:
            await self._flush()
            async with self.sessions() as session, session.begin():
                if not await self._step(session, state, [Event("node_started", node_started_data(node_run))]):
                    return False
                await run_store.upsert_node_execution(session, self.run_id, self._execution(node_run))
            return True

    async def node_finished(self, node_run: NodeRun, state: RunState) -> bool:
        async with self.lock:
            await self._flush()
            async with self.sessions() as session, session.begin():
                if not await self._step(
                    session, state, [Event("node_finished", node_finished_data(node_run))]
                ):
                    return False
                await run_store.upsert_node_execution(session, self.run_id, self._execution(node_run))
                await self._record_pause(session, node_run)
            return True

    async def text_chunk(self, node_id: str, text: str, selector: list[str]) -> None:
        async with self.lock:
            self.chunks.append(Event("text_chunk", {"text": text, "from_variable_selector": selector}))
            if time.monotonic() - self.last_flush >= CHUNK_FLUSH_SECONDS:
                await self._flush()
            if self.stopped:
                raise RunStopped("the run was stopped")

    async def _flush(self) -> None:
        self.last_flush = time.monotonic()
        if not self.chunks or self.stopped:
            self.chunks.clear()
            return
        events, self.chunks = self.chunks, []
        async with self.sessions() as session, session.begin():
            if not await run_store.transition(session, self.run_id, ["running"], events):
                self.stopped = True

    async def _step(self, session: AsyncSession, state: RunState, events: list[Event]) -> bool:
        ok = await run_store.transition(
            session,
            self.run_id,
            ["running"],
            events,
            state=msgspec.to_builtins(state),
            total_steps=state.steps,
            total_tokens=state.tokens,
        )
        self.stopped = self.stopped or not ok
        return ok

    async def _record_pause(self, session: AsyncSession, node_run: NodeRun) -> None:
        node_id = node_run.node.id
        if node_run.state.status == "paused":
            await session.execute(
                workflow_pauses.insert().values(
                    run_id=self.run_id,
                    node_id=node_id,
                    execution_id=uuid.UUID(node_run.state.execution_id or str(uuid.uuid4())),
                    request=node_run.state.pause or {},
                )
            )
            if self.on_pause is not None:
                await run_store.append_events(
                    session, self.run_id, await self.on_pause(session, self.run, node_run)
                )
        else:  # a resolved pause is consumed by the step that finishes its node
            await session.execute(
                delete(workflow_pauses).where(
                    workflow_pauses.c.run_id == self.run_id, workflow_pauses.c.node_id == node_id
                )
            )

    def _execution(self, node_run: NodeRun) -> dict[str, Any]:
        result = node_run.result
        state = node_run.state
        return {
            "id": uuid.UUID(state.execution_id) if state.execution_id else uuid.uuid4(),
            "node_id": node_run.node.id,
            "node_type": node_run.node.type,
            "title": node_run.node.title,
            "index": state.index,
            "predecessor_node_id": state.predecessor,
            "inputs": result.inputs if result else None,
            "process_data": result.process_data if result else None,
            "outputs": result.outputs if result else None,
            "status": state.status,
            "error": node_run.error,
            "elapsed_time": node_run.elapsed,
            "execution_metadata": {"total_tokens": result.tokens if result else 0, "retries": state.retries},
            "finished_at": _ts(node_run.finished_at) if state.status not in ("running", "paused") else None,
        }


async def _load(
    sessions: async_sessionmaker[AsyncSession], run_id: uuid.UUID
) -> tuple[WorkflowRun, Workflow, dict[str, NodeResult]] | None:
    """Reload the run; resume it if it is paused with every pause resolved. None: nothing to do."""
    async with sessions() as session, session.begin():
        run = await session.get(WorkflowRun, run_id, with_for_update=True)
        if run is None:
            return None
        pauses = (
            await session.execute(select(workflow_pauses).where(workflow_pauses.c.run_id == run_id))
        ).all()
        if run.status == "paused":
            if any(p.resolved_at is None for p in pauses):
                return None  # still waiting for someone
            event = Event("workflow_started", run_started_data(run, reason="resumption"))
            if not await run_store.transition(
                session, run_id, ["paused"], [event], status="running", paused_at=None
            ):
                return None
            run.status = "running"
        elif run.status != "running":
            return None
        workflow = await session.get(Workflow, run.workflow_id)
        assert workflow is not None
        resolutions = {
            p.node_id: msgspec.convert(p.resolution, NodeResult) for p in pauses if p.resolved_at is not None
        }
        session.expunge_all()
        return run, workflow, resolutions


async def advance_run(
    sessions: async_sessionmaker[AsyncSession],
    run_id: uuid.UUID,
    ports: Ports,
    limits: Limits = Limits(),
    clock: Callable[[], float] = time.time,
    on_pause: PauseHook | None = None,
) -> str:
    """Run (or resume) a run until it finishes, fails, pauses or is stopped. Returns the resulting status."""
    loaded = await _load(sessions, run_id)
    if loaded is None:
        return "unchanged"
    run, workflow, resolutions = loaded
    state = msgspec.convert(run.state or {}, RunState)
    info = RunInfo(
        run_id=str(run.id), app_id=str(run.app_id), workflow_id=str(run.workflow_id), user_id=run.created_by
    )
    engine = Engine(Graph.from_dsl(workflow.graph), state, ports, info, limits, clock=clock)
    recorder = StepRecorder(sessions, run, on_pause)
    try:
        outcome = await engine.run(recorder, resolutions)
    except Exception as exc:
        # A bug or a broken dependency, not a node failure: the run fails visibly instead of staying
        # "running" with nobody working on it.
        log.exception("workflow_run_crashed", run_id=str(run_id))
        outcome = Outcome(
            status="failed", outputs=state.outputs, error=f"Internal error: {type(exc).__name__}: {exc}"
        )
        return await _finish(sessions, run, state, outcome)
    async with recorder.lock:
        await recorder._flush()
    if outcome.status == "stopped" or recorder.stopped:
        log.info("workflow_run_stopped_while_running", run_id=str(run_id))
        return "stopped"
    return await _finish(sessions, run, state, outcome)


async def _finish(
    sessions: async_sessionmaker[AsyncSession], run: WorkflowRun, state: RunState, outcome: Outcome
) -> str:
    now = utcnow()
    async with sessions() as session, session.begin():
        totals = {"total_steps": state.steps, "total_tokens": state.tokens, "elapsed_time": state.elapsed}
        if outcome.status == "paused":
            run.status, run.paused_at = "paused", now
            event = Event(
                "workflow_paused",
                {**run_finished_data(run, state, outcome, None), "paused_nodes": outcome.paused_nodes},
            )
            ok = await run_store.transition(
                session,
                run.id,
                ["running"],
                [event],
                status="paused",
                paused_at=now,
                state=msgspec.to_builtins(state),
                **totals,
            )
        else:
            run.status = outcome.status
            event = Event("workflow_finished", run_finished_data(run, state, outcome, now))
            ok = await run_store.transition(
                session,
                run.id,
                ["running"],
                [event],
                status=outcome.status,
                outputs=outcome.outputs,
                error=outcome.error,
                finished_at=now,
                exceptions_count=state.exceptions,
                state=None,
                **totals,
            )
            await run_store.stop_open_node_executions(session, run.id, now)
    return outcome.status if ok else "stopped"
