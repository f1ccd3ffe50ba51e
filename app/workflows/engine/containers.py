"""Iteration and loop: a container runs its sub-graph round after round, each round in a child engine.

A round's child engine shares the run's root (steps and time limits are the run's, node events reach the same
listener tagged ``iteration_id``/``iteration_index`` or ``loop_id``/``loop_index``) and keeps its state inside the
container's ``ContainerState`` in the run state, so a checkpoint holds finished rounds and rounds in progress and
a crash continues there, like any other node.

* iteration: one round per item, on a layer over the pool (``[id, "item"]``, ``[id, "index"]``; rounds never see
  each other's outputs; conversation variables written in a round are copied back). Sequential, or up to
  ``parallel_nums`` rounds at once (``MAX_PARALLEL_LIMIT`` caps it); outputs in input order; the error modes and
  ``flatten_output`` of nodes spec §3.4.
* loop: rounds on the run's own pool; loop variables at ``[id, label]`` persist across rounds; body outputs are
  cleared before each round; stops when a break condition holds after a round, when a ``loop-end`` node ran, or
  after ``loop_count`` rounds (``LOOP_NODE_MAX_COUNT`` caps it), with Dify's events and quirks (§4.4).

The engine imports this module; this module uses the engine only through the instance it is given.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from app.workflows.engine.errors import NodeRunError, RunStopped
from app.workflows.engine.nodes.base import NodeResult
from app.workflows.engine.state import ContainerState, Listener, RunState
from app.workflows.engine.statuses import NodeStatus, RunStatus
from app.workflows.engine.variables import CONVERSATION, VariablePool

if TYPE_CHECKING:
    from app.workflows.engine.core import Engine
    from app.workflows.engine.nodes.iteration import IterationNode
    from app.workflows.engine.nodes.loop import LoopNode

_MISSING = object()


async def run_container(engine: Engine, node_id: str, listener: Listener) -> NodeResult:
    from app.workflows.engine.nodes.iteration import IterationNode

    node = engine.nodes[node_id]
    if isinstance(node, IterationNode):
        return await _iteration(engine, node, listener)
    return await _loop(engine, node, listener)  # type: ignore[arg-type]


def _base_event(engine: Engine, node_id: str) -> dict[str, Any]:
    spec = engine.graph.nodes[node_id]
    return {
        "id": node_id,
        "node_id": node_id,
        "node_type": spec.type,
        "title": spec.title,
        "created_at": int(engine.clock()),
        "extras": {},
    }


async def _round(
    engine: Engine, node_id: str, state: RunState, pool: VariablePool, scope: dict[str, Any]
) -> Any:
    """Run one round to its end; returns the child engine's Outcome (stopped runs raise RunStopped)."""
    child = engine.child(engine.graph.subgraphs[node_id], state, pool, scope)
    outcome = await child.run(_Scoped(engine.listener, engine.root))
    if outcome.status == RunStatus.STOPPED:
        raise RunStopped("the run was stopped")
    return outcome


class _Scoped:
    """A round's listener: everything goes to the run's listener, with the run's (root) state."""

    def __init__(self, listener: Listener, root: Engine) -> None:
        self.listener, self.root = listener, root

    async def node_started(self, run: Any, state: RunState) -> bool:
        return await self.listener.node_started(run, self.root.state)

    async def node_finished(self, run: Any, state: RunState) -> bool:
        return await self.listener.node_finished(run, self.root.state)

    async def text_chunk(self, node_id: str, text: str, selector: list[str]) -> None:
        await self.listener.text_chunk(node_id, text, selector)

    async def checkpoint(self, state: RunState) -> bool:
        return await self.listener.checkpoint(self.root.state)

    async def event(self, name: str, data: dict[str, Any]) -> None:
        await self.listener.event(name, data)


def _container(engine: Engine, node_id: str) -> ContainerState:
    node_state = engine.state.nodes[node_id]
    if node_state.container is None:
        node_state.container = ContainerState(started_at=engine.clock())
    return node_state.container


# --- iteration ------------------------------------------------------------------------------------------------


async def _iteration(engine: Engine, node: IterationNode, listener: Listener) -> NodeResult:
    node_id = node.id
    existing = engine.state.nodes[node_id].container
    if existing is None:
        items = engine.pool.get(node.iterator, _MISSING)
        if items is _MISSING:
            raise NodeRunError(f"iterator variable {node.iterator} not found")
        if items is None or items == []:
            return NodeResult(inputs={"iterator_selector": []}, outputs={"output": []})  # no events at all
        if not isinstance(items, list):
            raise NodeRunError(f"invalid iterator value: {items!r:.200}, please provide a list.")
        if engine.limits.iteration_max_items and len(items) > engine.limits.iteration_max_items:
            raise NodeRunError(
                f"the iteration has {len(items)} items, more than {engine.limits.iteration_max_items} "
                "(ITERATION_MAX_ITEMS)"
            )
        state = _container(engine, node_id)
        state.items = list(items)
    else:
        state = existing
    items = state.items or []
    if not state.started:
        state.started = True
        await listener.event(
            "iteration_started",
            {
                **_base_event(engine, node_id),
                "metadata": {"iteration_length": len(items)},
                "inputs": {"iterator_selector": items},
                "inputs_truncated": False,
            },
        )

    async def run_round(index: int) -> None:
        if index not in state.rounds:
            state.rounds[index] = RunState(pool={node_id: {"item": items[index], "index": index}})
            state.next_round = max(state.next_round, index + 1)
            await listener.event("iteration_next", {**_base_event(engine, node_id), "index": index})
        began = engine.clock()
        pool = VariablePool(state.rounds[index].pool, parent=engine.pool)
        outcome = await _round(
            engine, node_id, state.rounds[index], pool, {"iteration_id": node_id, "iteration_index": index}
        )
        state.durations[index] = round(engine.clock() - began, 6)
        state.tokens += state.rounds[index].tokens
        if outcome.status == RunStatus.FAILED:
            state.failed.append(index)
            state.outputs[index] = None
            if node.error_mode == "terminated":
                raise _RoundFailed(outcome.error or "iteration round failed")
        else:
            state.outputs[index] = pool.get(node.output)
            for name, value in pool.values.get(CONVERSATION, {}).items():  # Dify copies these back
                engine.pool.set(CONVERSATION, name, value)
        del state.rounds[index]

    # Rounds in progress at the last checkpoint first, then those never started (rounds start in index order,
    # so ``next_round`` is where the never-started ones begin).
    todo = [*sorted(state.rounds), *range(state.next_round, len(items))]
    try:
        if node.is_parallel:
            await _parallel(todo, run_round, min(node.parallel_nums, engine.limits.max_parallel))
        else:
            for index in todo:
                await run_round(index)
    except _RoundFailed as failure:
        await _iteration_completed(engine, node_id, state, NodeStatus.FAILED, None)
        raise NodeRunError(str(failure), "IterationNodeError") from None
    output = _shape(node, state, len(items))
    await _iteration_completed(engine, node_id, state, NodeStatus.SUCCEEDED, output)
    return NodeResult(
        inputs={"iterator_selector": items},
        outputs={"output": output},
        process_data={"iteration_duration_map": {str(k): v for k, v in state.durations.items()}},
        tokens=state.tokens,
    )


class _RoundFailed(Exception):
    pass


async def _parallel(indexes: list[int], run_round: Any, width: int) -> None:
    """Up to ``width`` rounds at once; the first failure (terminated mode) cancels the others."""
    gate = asyncio.Semaphore(max(1, width))

    async def gated(index: int) -> None:
        async with gate:
            await run_round(index)

    tasks = [asyncio.create_task(gated(i)) for i in indexes]
    try:
        for finished in asyncio.as_completed(tasks):
            await finished
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _shape(node: IterationNode, state: ContainerState, count: int) -> list[Any]:
    outputs = [state.outputs.get(i) for i in range(count)]
    if node.error_mode == "remove-abnormal-output":
        outputs = [o for o in outputs if o is not None]  # Dify's quirk: a legitimate None goes too
    if node.flatten:
        present = [o for o in outputs if o is not None]
        if present and all(isinstance(o, list) for o in present):
            return [item for o in present for item in o]
    return outputs


async def _iteration_completed(
    engine: Engine, node_id: str, state: ContainerState, status: NodeStatus, output: list[Any] | None
) -> None:
    elapsed = engine.clock() - (state.started_at or engine.clock())
    await engine.listener.event(
        "iteration_completed",
        {
            **_base_event(engine, node_id),
            "outputs": {
                "output": output
                if output is not None
                else [state.outputs.get(i) for i in sorted(state.outputs)]
            },
            "outputs_truncated": False,
            "inputs": {"iterator_selector": state.items or []},
            "inputs_truncated": False,
            "status": status,
            "error": None,  # Dify sends null here even when the iteration failed
            "elapsed_time": round(elapsed, 6),
            "total_tokens": state.tokens,
            "execution_metadata": {
                "total_tokens": state.tokens,
                "iteration_duration_map": {str(k): v for k, v in sorted(state.durations.items())},
            },
            "finished_at": int(engine.clock()),
            "steps": len(state.items or []),
        },
    )


# --- loop -----------------------------------------------------------------------------------------------------


async def _loop(engine: Engine, node: LoopNode, listener: Listener) -> NodeResult:
    node_id = node.id
    count = (
        min(node.loop_count, engine.limits.loop_max_count)
        if engine.limits.loop_max_count
        else node.loop_count
    )
    state = engine.state.nodes[node_id].container
    if state is None:
        for label, value in node.initial_values(engine.pool).items():
            engine.pool.set(node_id, label, value)
        try:
            done_before = node.broken(engine.pool)
        except Exception:  # an evaluation error before the first round counts as "not met"
            done_before = False
        if done_before or count == 0:
            return NodeResult(outputs={})
        state = _container(engine, node_id)
    if not state.started:
        state.started = True
        await listener.event(
            "loop_started",
            {
                **_base_event(engine, node_id),
                "metadata": {"loop_length": count},
                "inputs": {"loop_count": count, **_variables(engine, node)},
                "inputs_truncated": False,
            },
        )
    body = set(engine.graph.subgraphs[node_id].all_nodes())
    loop_ends = {n for n in body if engine.nodes[n].type == "loop-end"}
    while state.next_round < count:
        index = state.next_round
        if index not in state.rounds:
            for member in body:  # nothing stale from the previous round leaks into this one
                engine.pool.values.pop(member, None)
            state.rounds[index] = RunState()
        began = engine.clock()
        outcome = await _round(
            engine, node_id, state.rounds[index], engine.pool, {"loop_id": node_id, "loop_index": index}
        )
        state.durations[index] = round(engine.clock() - began, 6)
        state.tokens += state.rounds[index].tokens
        ended = any(
            state.rounds[index].nodes.get(n) is not None
            and state.rounds[index].nodes[n].status == NodeStatus.SUCCEEDED
            for n in loop_ends
        )
        del state.rounds[index]
        state.next_round = index + 1
        state.variables[index] = _variables(engine, node)
        if outcome.status == RunStatus.FAILED:
            state.reason = "error"
            await _loop_completed(
                engine, node_id, state, count, NodeStatus.FAILED, _loop_outputs(engine, node, state)
            )
            raise NodeRunError(outcome.error or "loop round failed", "LoopNodeError")
        if ended:
            state.reason = "loop_completed"  # Dify reports a loop-end node this way
            break
        try:
            broken = node.broken(engine.pool)
        except Exception as exc:  # after a round, an evaluation error fails the loop
            state.reason = "error"
            await _loop_completed(
                engine, node_id, state, count, NodeStatus.FAILED, _loop_outputs(engine, node, state)
            )
            raise NodeRunError(f"break condition: {exc}", "LoopNodeError") from None
        if broken:
            state.reason = "loop_break"
            break
        await listener.event(
            "loop_next", {**_base_event(engine, node_id), "index": index + 1, "pre_loop_output": {}}
        )
    state.reason = state.reason or "loop_completed"
    outputs = _loop_outputs(engine, node, state)
    await _loop_completed(engine, node_id, state, count, NodeStatus.SUCCEEDED, outputs)
    return NodeResult(
        inputs={"loop_count": count},
        outputs=outputs,
        process_data={"loop_duration_map": {str(k): v for k, v in state.durations.items()}},
        tokens=state.tokens,
    )


def _variables(engine: Engine, node: LoopNode) -> dict[str, Any]:
    return {var.label: engine.pool.get([node.id, var.label]) for var in node.variables}


def _loop_outputs(engine: Engine, node: LoopNode, state: ContainerState) -> dict[str, Any]:
    return {**_variables(engine, node), "loop_round": state.next_round}


async def _loop_completed(
    engine: Engine,
    node_id: str,
    state: ContainerState,
    count: int,
    status: NodeStatus,
    outputs: dict[str, Any],
) -> None:
    elapsed = engine.clock() - (state.started_at or engine.clock())
    await engine.listener.event(
        "loop_completed",
        {
            **_base_event(engine, node_id),
            "outputs": outputs,
            "outputs_truncated": False,
            "inputs": {"loop_count": count},
            "inputs_truncated": False,
            "status": status,
            "error": None,
            "elapsed_time": round(elapsed, 6),
            "total_tokens": state.tokens,
            "execution_metadata": {
                "total_tokens": state.tokens,
                "completed_reason": state.reason,
                "loop_duration_map": {str(k): v for k, v in sorted(state.durations.items())},
                "loop_variable_map": {str(k): v for k, v in sorted(state.variables.items())},
            },
            "finished_at": int(engine.clock()),
            "steps": count,  # Dify reports the configured count, not the rounds run
        },
    )
