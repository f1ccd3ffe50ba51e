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

import datetime
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import utcnow
from app.workflows.engine.core import (
    CHAT_MODE,
    HANDOFF,
    Engine,
    Limits,
    NodeRun,
    Outcome,
    RunState,
    build_nodes,
)
from app.workflows.engine.errors import RunStopped
from app.workflows.engine.graph import Graph
from app.workflows.engine.nodes.base import Node, NodeResult, Ports, RunInfo
from app.workflows.engine.statuses import NodeStatus, RunStatus
from app.workflows.runs import store, transitions
from app.workflows.runs.pauses import Extensions, PauseKinds, RunEnd
from app.workflows.runs.store import Event, Pause, RunRow, Write
from app.workflows.runs.values import Stash
from app.workflows.views import node_finished_data, node_started_data, run_started_data, scope_metadata
from db import queue

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
            "id": state.execution_id,
            "node_id": node_run.node.id,
            "node_type": node_run.node.type,
            "title": node_run.node.title,
            "index": state.index,
            "predecessor_node_id": state.predecessor,
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
        state = msgspec.convert(await store.hydrate(session, run_id, run.state or {}), RunState)
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
