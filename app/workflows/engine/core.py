"""The engine: runs a graph from a state snapshot until it finishes, fails, pauses or is stopped.

Dify's semantics. Every edge is *unknown* until its source finishes, then *taken* (its handle is the one the
node chose: ``source``, an if-else case id, ``fail-branch``...) or *skipped*; which nodes that makes ready (and
skipped) is ``engine/readiness.py``. Ready nodes run concurrently; a node with several incoming edges (a join)
waits for all of them. What an engine is built from (nodes, the answer plan, a new run's state) is
``engine/building.py``.

The engine does no I/O of its own: nodes reach the outside only through ``Ports``, and every step is handed
to a ``Listener`` (the runner), which records it and may say the run was stopped meanwhile. Nodes that do no
I/O run back to back; the engine asks the listener for a ``checkpoint`` only where the run is about to wait on
the outside world (before a node that ``performs_io`` starts, and while only such nodes are running), so the
runner commits at those boundaries instead of per node. A node that was running when a previous attempt died
is run again under its execution id, without a second ``node_started`` (``NodeRun.restarted``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec

from app.workflows.engine.asking import Asks
from app.workflows.engine.building import build_nodes, response_plan
from app.workflows.engine.containers import run_container
from app.workflows.engine.errors import RunStopped
from app.workflows.engine.graph import Graph
from app.workflows.engine.listening import SerializedListener
from app.workflows.engine.nodes.base import (
    FAIL_BRANCH,
    ContainerNode,
    Node,
    NodeContext,
    NodeResult,
    Ports,
    RunInfo,
)
from app.workflows.engine.readiness import ready_nodes
from app.workflows.engine.response import ResponseCoordinator
from app.workflows.engine.state import (
    CHAT_MODE,
    HANDOFF,
    Limits,
    Listener,
    NodeRun,
    NodeState,
    Outcome,
    RunState,
)
from app.workflows.engine.statuses import SKIPPED, TAKEN, NodeStatus, RunStatus
from app.workflows.engine.variables import VariablePool


class _Stopped(Exception):
    pass


class Engine:
    listener: Listener
    #: The root engine's listener, one commit at a time (rounds of containers use their root's).
    serialized: SerializedListener

    def __init__(
        self,
        graph: Graph,
        state: RunState,
        ports: Ports,
        run: RunInfo,
        limits: Limits = Limits(),
        clock: Callable[[], float] = time.time,
        registry: Mapping[str, type[Node]] | None = None,
        *,
        nodes: Mapping[str, Node] | None = None,
        stop_before_io: bool = False,
        pool: VariablePool | None = None,
        root: Engine | None = None,
        scope: Mapping[str, Any] | None = None,
    ) -> None:
        self.graph, self.state, self.ports, self.run_info, self.limits, self.clock = (
            graph,
            state,
            ports,
            run,
            limits,
            clock,
        )
        # Nodes hold configuration only, so a runner may build them once per workflow version and share them.
        self.nodes = dict(nodes) if nodes is not None else build_nodes(graph, registry)
        self.stop_before_io = stop_before_io
        if pool is None:
            pool = VariablePool(state.pool)
            self.state.pool = pool.values  # one live pool: a checkpoint reads it as it is
        self.pool = pool
        #: The engine of the whole run (a round's child engine counts steps and checks limits there).
        self.root: Engine = root or self
        self.scope = dict(scope or {})
        self.session_started = self.clock()
        self.start_id = graph.start_node().id
        self.response: ResponseCoordinator | None = None
        #: A chat run's answer streams through the root engine's coordinator; inside a container (a child
        #: engine) answers reach the run's answer when they finish, and inner text chunks are not forwarded.
        self.quiet = run.mode == CHAT_MODE and root is not None
        if run.mode == CHAT_MODE and root is None:
            self.response = ResponseCoordinator(response_plan(graph, self.nodes), state.response, self.pool)
        self.restarted: set[str] = set()
        for node_id, node_state in state.nodes.items():
            if node_state.status == NodeStatus.RUNNING:  # the previous attempt died mid-node: run it again
                node_state.status = NodeStatus.PENDING
                self.restarted.add(node_id)

    # --- public ---------------------------------------------------------------------------------

    async def run(self, listener: Listener, resolutions: Mapping[str, NodeResult] | None = None) -> Outcome:
        """Run until nothing is runnable. ``resolutions`` finish paused nodes first (a resume)."""
        if self.root is self:  # rounds of containers use the root's listener: wrapped once, here
            listener = self.serialized = SerializedListener(listener)
        self.listener = listener
        session_started = self.session_started = (
            self.clock() if self.root is self else self.root.session_started
        )
        try:
            for node_id, result in (resolutions or {}).items():
                await self._resolve_pause(node_id, result, listener)
            return await self._loop(listener, session_started)
        except _Stopped:
            return Outcome(status=RunStatus.STOPPED, outputs=self.state.outputs, error="stopped")
        finally:
            self.state.elapsed += self.clock() - session_started

    # --- the loop -------------------------------------------------------------------------------

    async def _loop(self, listener: Listener, session_started: float) -> Outcome:
        running: dict[asyncio.Task[tuple[str, NodeResult | None, BaseException | None]], str] = {}
        #: a checkpoint committing while the nodes that only ask (models, retrieval) send their requests
        durable: asyncio.Task[bool] | None = None
        try:
            while True:
                ready = ready_nodes(self.graph, self.state, self.start_id)
                waiting_on_io = [n for n in ready if self.nodes[n].performs_io]
                for node_id in ready:
                    if node_id in waiting_on_io:
                        continue
                    if self.root.state.steps >= self.limits.max_steps:
                        return self._fail(f"Max steps {self.limits.max_steps} reached.")
                    await self._start(node_id, listener)
                    running[asyncio.create_task(self._execute(node_id, listener))] = node_id
                if waiting_on_io and self.stop_before_io:
                    if not running:
                        return Outcome(status=HANDOFF, outputs=self.state.outputs)
                elif waiting_on_io:
                    for node_id in waiting_on_io:
                        if self.root.state.steps >= self.limits.max_steps:
                            return self._fail(f"Max steps {self.limits.max_steps} reached.")
                        await self._start(node_id, listener)
                    # node_started is durable (and visible live) before the outside world is asked anything;
                    # a node that only asks sends its request while that commit is under way, and nothing it
                    # answers is used (streamed, recorded) before the commit is done.
                    if all(self.nodes[n].only_asks for n in waiting_on_io):
                        # ...and the requests go first: the checkpoint's commit waits until they are sent.
                        asks = Asks()
                        durable = await self.root.serialized.checkpoint_ahead(self.root.state, asks)
                        for node_id in waiting_on_io:
                            running[asks.start(self._execute(node_id, listener))] = node_id
                    else:
                        if not await listener.checkpoint(self.state):
                            raise _Stopped
                        for node_id in waiting_on_io:
                            running[asyncio.create_task(self._execute(node_id, listener))] = node_id
                if not running:
                    break
                if all(self.nodes[n].performs_io for n in running.values()):
                    # Only the outside world is left to wait on: what finished meanwhile becomes durable now.
                    if not await listener.checkpoint(self.state):
                        raise _Stopped
                remaining = self.limits.max_seconds - (
                    self.root.state.elapsed + self.clock() - session_started
                )
                if remaining <= 0:
                    return self._fail(f"Max execution time {self.limits.max_seconds:g}s reached.")
                done, _ = await asyncio.wait(running, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                if durable is not None:
                    stopped, durable = not await durable, None
                    if stopped:
                        raise _Stopped
                if not done:
                    return self._fail(f"Max execution time {self.limits.max_seconds:g}s reached.")
                for task in sorted(done, key=lambda t: self.state.nodes[running[t]].index):
                    node_id = running.pop(task)
                    try:
                        _, result, error = task.result()
                    except RunStopped:
                        self.state.nodes[node_id].status = NodeStatus.STOPPED
                        raise _Stopped from None
                    failure = await self._finish(node_id, result, error, listener)
                    if failure is not None:
                        return failure
        finally:
            for task in running:
                task.cancel()
            for node_id in running.values():
                self.state.nodes[node_id].status = NodeStatus.STOPPED
            if durable is not None:
                # The runner's last write must not overtake a commit still under way.
                await asyncio.wait([durable])
        paused = [n for n, s in self.state.nodes.items() if s.status == NodeStatus.PAUSED]
        if paused:
            return Outcome(status=RunStatus.PAUSED, outputs=self.state.outputs, paused_nodes=paused)
        if self.response is not None:
            await self.response.advance(self._status_of, self._emitter(listener), final=True)
        status = RunStatus.PARTIAL_SUCCEEDED if self.state.exceptions else RunStatus.SUCCEEDED
        return Outcome(status=status, outputs=self.state.outputs)

    def child(self, graph: Graph, state: RunState, pool: VariablePool, scope: Mapping[str, Any]) -> Engine:
        """The engine of one round of a container: the sub-graph, the round's state and pool, the same nodes,
        ports and limits, and this run's root (steps and time are the run's)."""
        return Engine(
            graph,
            state,
            self.ports,
            self.run_info,
            self.limits,
            self.clock,
            nodes=self.nodes,
            pool=pool,
            root=self.root,
            scope=scope,
        )

    def _fail(self, error: str) -> Outcome:
        return Outcome(status=RunStatus.FAILED, outputs=self.state.outputs, error=error)

    async def _start(self, node_id: str, listener: Listener) -> None:
        spec = self.graph.nodes[node_id]
        taken = [
            e.source for e in self.graph.incoming.get(node_id, []) if self.state.edges.get(e.id) == TAKEN
        ]
        previous = self.state.nodes.get(node_id)
        restarted = node_id in self.restarted and previous is not None and previous.execution_id is not None
        self.restarted.discard(node_id)
        if restarted:
            assert previous is not None
            # The same execution as the attempt that died: its start (and step) are already recorded.
            node_state = msgspec.structs.replace(previous, status=NodeStatus.RUNNING, started_at=self.clock())
        else:
            node_state = NodeState(
                status=NodeStatus.RUNNING,
                execution_id=(previous.execution_id if previous else None) or str(uuid.uuid4()),
                index=self.root.state.next_index,
                predecessor=taken[0] if taken else None,
                started_at=self.clock(),
            )
            self.root.state.next_index += 1
            self.root.state.steps += 1
        self.state.nodes[node_id] = node_state
        record = NodeRun(
            node=spec,
            state=node_state,
            performs_io=self.nodes[node_id].performs_io,
            restarted=restarted,
            scope=self.scope,
            silent=self.nodes[node_id].silent,
        )
        if not await listener.node_started(record, self.state):
            raise _Stopped
        if self.response is not None and spec.type == "answer":
            # An Answer node that runs is certain to run, whatever the path analysis said.
            self.response.activate(node_id)
            await self.response.advance(self._status_of, self._emitter(listener))

    async def _execute(
        self, node_id: str, listener: Listener
    ) -> tuple[str, NodeResult | None, BaseException | None]:
        node = self.nodes[node_id]
        if isinstance(node, ContainerNode):
            try:
                return node_id, await run_container(self, node_id, listener), None
            except (asyncio.CancelledError, RunStopped):
                raise
            except Exception as exc:
                return node_id, None, exc
        ctx = NodeContext(
            self.graph.nodes[node_id],
            self.pool,
            self.ports,
            self.run_info,
            self._stream_to(node_id, listener),
        )
        attempt = 0
        while True:
            try:
                return node_id, await node.run(ctx), None
            except (asyncio.CancelledError, RunStopped):
                raise
            except Exception as exc:  # a node failing is data for the error strategy, not a crash
                if node.retry.enabled and attempt < node.retry.max_retries:
                    attempt += 1
                    self.state.nodes[node_id].retries = attempt
                    await asyncio.sleep(max(0, node.retry.retry_interval) / 1000)
                    continue
                return node_id, None, exc

    async def _finish(
        self, node_id: str, result: NodeResult | None, error: BaseException | None, listener: Listener
    ) -> Outcome | None:
        """Apply one node's result; returns an Outcome when the run must end now (failure)."""
        node, spec = self.nodes[node_id], self.graph.nodes[node_id]
        node_state = self.state.nodes[node_id]
        record = NodeRun(
            node=spec,
            state=node_state,
            finished_at=self.clock(),
            performs_io=node.performs_io,
            scope=self.scope,
            silent=node.silent,
        )
        outcome: Outcome | None = None
        if error is None and result is not None and result.pause is not None:
            node_state.status = NodeStatus.PAUSED
            node_state.pause = result.pause
            record.result = result
        elif error is None and result is not None:
            self._succeed(node_id, result)
            record.result = result
        else:
            message = str(error) or type(error).__name__
            error_type = getattr(error, "error_type", type(error).__name__)
            tokens = getattr(error, "tokens", 0)
            record.error, record.error_type = message, error_type
            failed = getattr(error, "result", None)
            failed = failed if isinstance(failed, NodeResult) else None
            if node.error_strategy is None:
                node_state.status = NodeStatus.FAILED
                record.result = failed
                self.state.tokens += tokens
                outcome = self._fail(f'Node "{spec.title}" run failed: {message}')
            else:
                handled = NodeResult(
                    outputs={"error_message": message, "error_type": error_type}, tokens=tokens
                )
                if failed is not None:
                    handled.inputs, handled.process_data = failed.inputs, failed.process_data
                if node.error_strategy == "default-value":
                    handled.outputs = {**node.default_values, **handled.outputs}
                else:
                    handled.edge_source_handle = FAIL_BRANCH
                self._succeed(node_id, handled)
                node_state.status = NodeStatus.EXCEPTION
                self.state.exceptions += 1
                if self.root is not self:
                    self.root.state.exceptions += 1
                record.result = handled
        if not await listener.node_finished(record, self.state):
            raise _Stopped
        if self.response is not None and outcome is None:
            self.response.activate_certain(self.state.edges, self._status_of)
            await self.response.advance(self._status_of, self._emitter(listener))
        return outcome

    # --- answer streaming (advanced-chat) -----------------------------------------------------------

    def _status_of(self, node_id: str) -> NodeStatus | None:
        node_state = self.state.nodes.get(node_id)
        return node_state.status if node_state is not None else None

    def _emitter(self, listener: Listener) -> Callable[[str, list[str]], Awaitable[None]]:
        async def emit(text: str, selector: list[str]) -> None:
            await listener.text_chunk(selector[0], text, selector)

        return emit

    def _stream_to(self, node_id: str, listener: Listener) -> Callable[[str, list[str]], Awaitable[None]]:
        """Where a node's streamed text goes: to listeners as it is (workflow runs), or to the response
        coordinator, which forwards it when an Answer node's turn has come (chat runs)."""
        if self.quiet:
            return _drop_text
        if self.response is None:
            return lambda text, sel: listener.text_chunk(node_id, text, sel)
        response, emit = self.response, self._emitter(listener)

        async def stream(text: str, selector: list[str]) -> None:
            await response.chunk(selector, text, self._status_of, emit)

        return stream

    def _succeed(self, node_id: str, result: NodeResult) -> None:
        spec = self.graph.nodes[node_id]
        self.state.nodes[node_id].status = NodeStatus.SUCCEEDED
        self.state.nodes[node_id].pause = None
        self.pool.set_outputs(node_id, result.outputs)
        self.state.tokens += result.tokens
        if spec.type == "end":
            self.state.outputs.update(result.outputs)
        elif spec.type == "answer":  # inside a loop too: the run's answer grows round by round
            root = self.root.state
            root.answer += str(result.outputs.get("answer", ""))
            files = result.outputs.get("files")
            root.answer_files += files if isinstance(files, list) else []
            root.outputs = {"answer": root.answer, "files": root.answer_files}
        for edge in self.graph.outgoing.get(node_id, []):
            self.state.edges[edge.id] = TAKEN if edge.source_handle == result.edge_source_handle else SKIPPED

    async def _resolve_pause(self, node_id: str, result: NodeResult, listener: Listener) -> None:
        node_state = self.state.nodes.get(node_id)
        if node_state is None or node_state.status != NodeStatus.PAUSED:
            return  # already resolved by an earlier resume: harmless
        await self._finish(node_id, msgspec.structs.replace(result, pause=None), None, listener)


async def _drop_text(text: str, selector: list[str]) -> None:
    return None
