"""The engine's listener in the worker: what a run did since its last checkpoint (events, node executions,
opened and consumed pauses, large values), buffered and committed as one write at the I/O boundaries the engine
names (``checkpoint``), and the run's last write (``final_write``). ``app.workflows.runner`` loads runs and drives
the engine with it.
"""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import utcnow
from app.workflows.engine.errors import RunStopped
from app.workflows.engine.nodes.base import Ports
from app.workflows.engine.state import HANDOFF, Limits, NodeRun, Outcome, RunState
from app.workflows.engine.statuses import NodeStatus, RunStatus
from app.workflows.runs import store, transitions
from app.workflows.runs.pause_rows import Pause
from app.workflows.runs.pauses import Extensions, PauseKinds, RunEnd
from app.workflows.runs.store import Event, RunRow, Write
from app.workflows.runs.values import Stash
from app.workflows.views import (
    node_finished_data,
    node_identity,
    node_started_data,
    run_started_data,
    scope_metadata,
)

log = structlog.get_logger()

#: Streamed text is written to the event log in small batches, not one transaction per token; but the first chunk
#: a node streams is written at once (the client's time to first token: a batch would hold it back).
CHUNK_FLUSH_SECONDS = 0.05
#: Container start nodes: no events, no execution rows (Dify shows nothing of them).
START_TYPES = ("iteration-start", "loop-start")


class Runtime(msgspec.Struct, kw_only=True):
    """What running a workflow needs from its process (built once by the worker)."""

    ports: Ports
    extensions: Extensions
    limits: Limits = Limits()
    clock: Callable[[], float] = time.time


def _ts(epoch: float | None) -> datetime.datetime | None:
    return None if epoch is None else datetime.datetime.fromtimestamp(epoch, datetime.UTC)


class Recorder:
    """The engine's Listener: keeps what the engine did and commits it at checkpoints.

    ``session`` is the open transaction that loaded the run (its row locked): the first commit uses it. With
    ``batch`` the recorder never commits by itself (``resume_runs`` applies every run's write at once)."""

    def __init__(
        self,
        runtime: Runtime,
        sessions: async_sessionmaker[AsyncSession] | None,
        run: RunRow,
        *,
        session: AsyncSession | None,
        resuming: bool,
        resolved: set[str],
        batch: bool = False,
    ) -> None:
        self.runtime, self.sessions, self.run, self.session, self.batch = (
            runtime,
            sessions,
            run,
            session,
            batch,
        )
        self.expected: tuple[RunStatus, ...] = (RunStatus.PAUSED,) if resuming else (RunStatus.RUNNING,)
        self.resolved = resolved
        self.stash = Stash()
        self.events: list[Event] = []
        self.executions: dict[str, dict[str, Any]] = {}
        self.opened: list[Pause] = []
        self.consumed: list[str] = []
        self.stopped = False
        self.last_flush = time.monotonic()
        self.streaming: set[str] = set()  # nodes that streamed text already
        self.commits = 0
        self.state: RunState | None = None
        if resuming:
            inputs = self.stash.mapping(run.inputs)
            self.events.append(Event("workflow_started", run_started_data(run, inputs, reason="resumption")))

    # --- Listener ---------------------------------------------------------------------------------

    async def node_started(self, node_run: NodeRun, state: RunState) -> bool:
        self.state = state
        if not node_run.restarted and node_run.node.type not in START_TYPES:
            if not node_run.silent:
                self.events.append(Event("node_started", self._data(node_started_data(node_run))))
            self.executions[node_run.state.execution_id or ""] = self._execution(node_run)
        return not self.stopped

    async def node_finished(self, node_run: NodeRun, state: RunState) -> bool:
        self.state = state
        node_id = node_run.node.id
        if node_run.node.type in START_TYPES:
            return not self.stopped
        if not node_run.silent:
            self.events.append(Event("node_finished", self._data(node_finished_data(node_run))))
        self.executions[node_run.state.execution_id or ""] = self._execution(node_run)
        if node_run.state.status == NodeStatus.PAUSED:
            request = node_run.state.pause or {}
            self.opened.append(
                Pause(
                    run_id=self.run.id,
                    node_id=node_id,
                    execution_id=uuid.UUID(node_run.state.execution_id or str(uuid.uuid4())),
                    kind=str(request.get("kind") or ""),
                    request=request,
                )
            )
        elif node_id in self.resolved:
            self.consumed.append(node_id)  # the resolution is used up by the node it finished
        return not self.stopped

    async def text_chunk(self, node_id: str, text: str, selector: list[str]) -> None:
        self.events.append(Event("text_chunk", {"text": text, "from_variable_selector": selector}))
        first = node_id not in self.streaming
        self.streaming.add(node_id)
        due = first or time.monotonic() - self.last_flush >= CHUNK_FLUSH_SECONDS
        if not self.batch and due and self.state:
            await self.checkpoint(self.state)
        if self.stopped:
            raise RunStopped("the run was stopped")

    async def event(self, name: str, data: dict[str, Any]) -> None:
        """Container events (``iteration_next``...), their large values referenced."""
        self.events.append(Event(name, self._data(data)))

    async def checkpoint(self, state: RunState) -> bool:
        self.state = state
        if self.batch:
            raise RuntimeError("a batched resume never waits on I/O (the engine stops before it)")
        if not (self.events or self.executions or self.opened or self.consumed):
            return not self.stopped
        write = self.write(state)
        await self.commit(write)
        return not self.stopped

    # --- writes -----------------------------------------------------------------------------------

    def write(self, state: RunState, **changes: Any) -> Write:
        """What the recorder holds as one write, the state referencing its large values. Clears the buffer."""
        snapshot = msgspec.to_builtins(msgspec.structs.replace(state, pool={}))
        snapshot["pool"] = self.stash.pool(state.pool)
        write = transitions.checkpoint(
            self.run.id,
            self.expected,
            state=snapshot,
            total_steps=state.steps,
            total_tokens=state.tokens,
            exceptions_count=state.exceptions,
            elapsed_time=state.elapsed,
            **changes,
        )
        write.events, self.events = self.events, []
        write.executions, self.executions = list(self.executions.values()), {}
        write.opened, self.opened = self.opened, []
        write.consumed, self.consumed = self.consumed, []
        write.values = self.stash.pending()
        return write

    async def commit(self, write: Write, *, end: RunEnd | None = None) -> bool:
        """Apply ``write`` in a transaction of its own (the loading one first) and commit it. False: the run was
        stopped meanwhile and nothing of it was written."""
        session = self.session
        self.session = None
        if session is None:
            assert self.sessions is not None
            session = self.sessions()
            if end is None and not (write.opened or write.consumed or write.values):
                # One statement (the compare-and-set with its events): its own transaction, no BEGIN/COMMIT
                # round trips. This is most checkpoints of a streaming answer.
                await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            else:
                await session.begin()
        try:
            if write.opened:
                # The kind's rows (forms...) must not outlive a lost compare-and-set: lock the run first.
                locked = await store.lock_runs(session, [self.run.id])
                if self.run.id not in locked or locked[self.run.id].status not in write.expected:
                    await session.rollback()
                    self.stopped = True
                    return False
                await open_pauses(
                    session, self.runtime.extensions.kinds, [write], {self.run.id: self.run.app_id}
                )
            if not await store.apply(session, [write]):
                await session.rollback()
                self.stopped = True
                return False
            if end is not None:
                if end.status in (RunStatus.FAILED, RunStatus.STOPPED):
                    await store.stop_open_executions(session, [self.run.id], utcnow())
                await self.runtime.extensions.ended(session, [end])
            await session.commit()
        finally:
            await session.close()
        self.commits += 1
        self.stash.mark_written(write.values)
        self.expected = (RunStatus.RUNNING,)
        self.last_flush = time.monotonic()
        return True

    def _data(self, data: dict[str, Any]) -> dict[str, Any]:
        """An event's data with its large values referenced."""
        for key in ("inputs", "process_data", "outputs"):
            if isinstance(data.get(key), dict):
                data[key] = self.stash.mapping(data[key])
        return data

    def _execution(self, node_run: NodeRun) -> dict[str, Any]:
        result, state = node_run.result, node_run.state
        return {
            **node_identity(node_run),
            "inputs": self.stash.mapping(result.inputs) if result else None,
            "process_data": self.stash.mapping(result.process_data) if result else None,
            "outputs": self.stash.mapping(result.outputs) if result else None,
            "status": state.status,
            "error": node_run.error,
            "elapsed_time": node_run.elapsed,
            "execution_metadata": {
                "total_tokens": result.tokens if result else 0,
                "retries": state.retries,
                **scope_metadata(node_run),
            },
            "finished_at": _ts(node_run.finished_at)
            if state.status not in (NodeStatus.RUNNING, NodeStatus.PAUSED)
            else None,
        }


async def open_pauses(
    session: AsyncSession, kinds: PauseKinds, writes: list[Write], app_ids: Mapping[uuid.UUID, uuid.UUID]
) -> None:
    """Let each pause's kind set it up; its events go right after the ``node_finished`` of the paused node."""
    pauses = [p for w in writes for p in w.opened]
    if not pauses:
        return
    added = await kinds.open(session, app_ids, pauses)
    for write in writes:
        if not any((write.run_id, p.node_id) in added for p in write.opened):
            continue
        events: list[Event] = []
        for event in write.events:
            events.append(event)
            if event.event == "node_finished" and event.data.get("status") == NodeStatus.PAUSED:
                events += added.get((write.run_id, str(event.data.get("node_id"))), [])
        write.events = events


def _totals(state: RunState, outcome: Outcome) -> dict[str, Any]:
    return {
        "outputs": outcome.outputs,
        "elapsed_time": state.elapsed,
        "total_tokens": state.tokens,
        "total_steps": state.steps,
        "exceptions_count": state.exceptions,
    }


def final_write(recorder: Recorder, state: RunState, outcome: Outcome, now: datetime.datetime) -> Write:
    """The recorder's last write: pause, finish, or (handoff) a checkpoint before the I/O node."""
    write = recorder.write(state)
    if outcome.status == RunStatus.PAUSED:
        transitions.pause(
            recorder.run, write, now=now, paused_nodes=outcome.paused_nodes, totals=_totals(state, outcome)
        )
    elif outcome.status != HANDOFF:
        transitions.finish(
            recorder.run,
            write,
            status=outcome.status,
            error=outcome.error,
            now=now,
            totals=_totals(state, outcome),
        )
    return write
