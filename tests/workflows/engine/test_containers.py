"""Iteration and loop (nodes spec §3, §4): rounds, order under parallelism, error modes, flatten, events, loop
variables, break conditions, loop-end, limits, steps, and continuing a container from a checkpoint."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, ClassVar

import msgspec
import pytest

from app.workflows.engine.errors import NodeRunError
from app.workflows.engine.nodes import NODE_TYPES
from app.workflows.engine.nodes.base import Node, NodeContext, NodeResult
from app.workflows.engine.state import Limits, RunState
from tests.workflows.engine.helpers import Recorder, edge, graph, node, run_graph


class Work(Node):
    """Test node inside containers: outputs ``f(item)``; sleeps per item; fails on ``fail_on`` items."""

    type = "test-work"
    running: ClassVar[int] = 0
    most: ClassVar[int] = 0
    calls: ClassVar[list[Any]] = []

    def configure(self, data: Mapping[str, Any]) -> None:
        self.source = data.get("source") or []
        self.fail_on = data.get("fail_on") or []
        self.sleep = data.get("sleep", 0)
        self.listify = data.get("listify", False)

    async def run(self, ctx: NodeContext) -> NodeResult:
        item = ctx.pool.get(self.source)
        Work.calls.append(item)
        Work.running += 1
        Work.most = max(Work.most, Work.running)
        try:
            if self.sleep:
                await asyncio.sleep(self.sleep * (3 - (item % 3) if isinstance(item, int) else 1))
            if item in self.fail_on:
                raise NodeRunError(f"no good: {item}")
            value = [item, item] if self.listify else f"<{item}>"
            return NodeResult(outputs={"out": value})
        finally:
            Work.running -= 1


REGISTRY = {**NODE_TYPES, Work.type: Work}


@pytest.fixture(autouse=True)
def reset_work() -> None:
    Work.running = Work.most = 0
    Work.calls = []


def iteration_graph(items: Any, **options: Any) -> Any:
    work = {"source": ["it", "item"], **options.pop("work", {})}
    return graph(
        [
            node("start", "start", variables=[]),
            node("src", "template-transform", template="x", variables=[]),
            {
                "id": "it",
                "data": {
                    "type": "iteration",
                    "title": "It",
                    "iterator_selector": ["src", "items"],
                    "output_selector": ["w", "out"],
                    "start_node_id": "itstart",
                    **options,
                },
            },
            {"id": "itstart", "parentId": "it", "data": {"type": "iteration-start", "title": ""}},
            {
                "id": "w",
                "parentId": "it",
                "data": {"type": "test-work", "title": "W", "iteration_id": "it", **work},
            },
            node("end", "end", outputs=[{"variable": "out", "value_selector": ["it", "output"]}]),
        ],
        [edge("start", "src"), edge("src", "it"), edge("itstart", "w"), edge("it", "end")],
    )


async def iterate(items: Any, **options: Any) -> tuple[Any, Recorder, RunState]:
    limits = options.pop("limits", Limits())
    g = iteration_graph(items, **options)
    state = options.pop("state", None)
    return await run_graph(g, registry=REGISTRY, limits=limits, state=state, pools={"src": {"items": items}})


async def test_sequential_iteration_outputs_and_events() -> None:
    outcome, rec, _ = await iterate([1, 2, 3])
    assert outcome.status == "succeeded"
    assert outcome.outputs == {"out": ["<1>", "<2>", "<3>"]}
    names = [n for n, _ in rec.events]
    assert names == ["iteration_started", *["iteration_next"] * 3, "iteration_completed"]
    started = rec.events[0][1]
    assert started["id"] == "it"
    assert started["metadata"] == {"iteration_length": 3}
    assert started["inputs"] == {"iterator_selector": [1, 2, 3]}
    assert [d["index"] for n, d in rec.events if n == "iteration_next"] == [0, 1, 2]
    completed = rec.events[-1][1]
    assert completed["status"] == "succeeded"
    assert completed["error"] is None
    assert completed["steps"] == 3
    assert set(completed["execution_metadata"]["iteration_duration_map"]) == {"0", "1", "2"}
    inner = [r for r in rec.finished if r.node.id == "w"]
    assert [r.scope for r in inner] == [{"iteration_id": "it", "iteration_index": i} for i in range(3)]
    assert len({r.state.execution_id for r in inner}) == 3  # one execution per round
    # the container and its start node report through their own events only
    assert all(r.silent for r in rec.finished if r.node.id in ("it", "itstart"))
    assert rec.order.index("iteration_next") < rec.order.index("started:w")


async def test_parallel_rounds_finish_out_of_order_and_output_in_input_order() -> None:
    outcome, rec, _ = await iterate(list(range(9)), is_parallel=True, parallel_nums=3, work={"sleep": 0.01})
    assert outcome.outputs == {"out": [f"<{i}>" for i in range(9)]}
    assert Work.most == 3  # three rounds at once, never more
    finished_items = [r.scope["iteration_index"] for r in rec.finished if r.node.id == "w"]
    assert finished_items != sorted(finished_items)  # they really did finish out of order


async def test_parallel_width_is_capped_by_max_parallel_limit() -> None:
    await iterate(
        list(range(8)), is_parallel=True, parallel_nums=8, work={"sleep": 0.01}, limits=Limits(max_parallel=2)
    )
    assert Work.most == 2


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("continue-on-error", ["<1>", None, "<3>"]),
        ("remove-abnormal-output", ["<1>", "<3>"]),
    ],
)
async def test_error_modes_that_go_on(mode: str, expected: list[Any]) -> None:
    outcome, _, _ = await iterate([1, 2, 3], error_handle_mode=mode, work={"fail_on": [2]})
    assert outcome.status == "succeeded"
    assert outcome.outputs == {"out": expected}


@pytest.mark.parametrize("parallel", [False, True])
async def test_terminated_mode_fails_the_iteration(parallel: bool) -> None:
    outcome, rec, _ = await iterate([1, 2, 3, 4], is_parallel=parallel, work={"fail_on": [2]})
    assert outcome.status == "failed"
    assert "no good: 2" in (outcome.error or "")
    completed = rec.events[-1]
    assert completed[0] == "iteration_completed"
    assert completed[1]["status"] == "failed"
    if not parallel:
        assert Work.calls == [1, 2]  # nothing after the failed round


async def test_flatten_output() -> None:
    outcome, _, _ = await iterate([1, 2], work={"listify": True})
    assert outcome.outputs == {"out": [1, 1, 2, 2]}
    outcome, _, _ = await iterate([1, 2], work={"listify": True}, flatten_output=False)
    assert outcome.outputs == {"out": [[1, 1], [2, 2]]}


async def test_empty_none_and_bad_iterators() -> None:
    for empty in ([], None):
        outcome, rec, _ = await iterate(empty)
        assert outcome.outputs == {"out": []}
        assert rec.events == []  # no iteration events at all
    outcome, _, _ = await iterate("not a list")
    assert outcome.status == "failed"
    assert "invalid iterator value" in (outcome.error or "")
    outcome, _, _ = await iterate(list(range(5)), limits=Limits(iteration_max_items=3))
    assert outcome.status == "failed"
    assert "ITERATION_MAX_ITEMS" in (outcome.error or "")


async def test_inner_nodes_count_as_steps() -> None:
    # start, src, it, 10 rounds of w = 13 steps; a limit of 8 stops it inside the rounds
    outcome, _, state = await iterate(list(range(10)), limits=Limits(max_steps=8))
    assert outcome.status == "failed"
    assert state.steps == 8


async def test_an_iteration_continues_from_a_checkpoint() -> None:
    """The run state at a checkpoint holds finished rounds and rounds in progress: a new engine on that state
    (a crash, a retried job) runs only what is left."""

    class Crash(Recorder):
        async def node_finished(self, run: Any, state: RunState) -> bool:
            await super().node_finished(run, state)
            if run.node.id == "w" and run.scope["iteration_index"] == 1:
                self.saved = msgspec.json.decode(
                    msgspec.json.encode(state), type=RunState
                )  # what a commit keeps
                return False
            return True

    crash = Crash()
    g = iteration_graph([1, 2, 3, 4])
    await run_graph(g, registry=REGISTRY, recorder=crash, pools={"src": {"items": [1, 2, 3, 4]}})
    assert Work.calls == [1, 2]
    container = crash.saved.nodes["it"].container
    assert container is not None
    assert container.outputs == {0: "<1>"}
    assert 1 in container.rounds
    Work.calls = []
    outcome, rec, _ = await run_graph(g, registry=REGISTRY, state=crash.saved)
    assert outcome.status == "succeeded"
    assert outcome.outputs == {"out": ["<1>", "<2>", "<3>", "<4>"]}
    assert Work.calls == [3, 4]  # round 1's node had finished (its round had not): no round runs twice
    assert [n for n, _ in rec.events].count("iteration_started") == 0  # already recorded before the crash


async def test_nested_iterations() -> None:
    g = graph(
        [
            node("start", "start", variables=[]),
            node("src", "template-transform", template="x", variables=[]),
            {
                "id": "outer",
                "data": {
                    "type": "iteration",
                    "title": "O",
                    "iterator_selector": ["src", "rows"],
                    "output_selector": ["inner", "output"],
                    "flatten_output": False,
                    "start_node_id": "os",
                },
            },
            {"id": "os", "parentId": "outer", "data": {"type": "iteration-start", "title": ""}},
            {
                "id": "inner",
                "parentId": "outer",
                "data": {
                    "type": "iteration",
                    "title": "I",
                    "iterator_selector": ["outer", "item"],
                    "output_selector": ["w", "out"],
                    "start_node_id": "is",
                    "flatten_output": False,
                    "iteration_id": "outer",
                },
            },
            {"id": "is", "parentId": "inner", "data": {"type": "iteration-start", "title": ""}},
            {
                "id": "w",
                "parentId": "inner",
                "data": {"type": "test-work", "title": "W", "source": ["inner", "item"]},
            },
            node("end", "end", outputs=[{"variable": "out", "value_selector": ["outer", "output"]}]),
        ],
        [
            edge("start", "src"),
            edge("src", "outer"),
            edge("os", "inner"),
            edge("is", "w"),
            edge("outer", "end"),
        ],
    )
    outcome, _, _ = await run_graph(
        g,
        registry=REGISTRY,
        pools={"src": {"rows": [[1, 2], [3]]}},
    )
    assert outcome.outputs == {"out": [["<1>", "<2>"], ["<3>"]]}


# --- loop -----------------------------------------------------------------------------------------------------


def loop_graph(*, count: int = 10, breaks: list[dict[str, Any]] | None = None, with_end: bool = False) -> Any:
    body = [
        {"id": "ls", "parentId": "lp", "data": {"type": "loop-start", "title": ""}},
        {
            "id": "inc",
            "parentId": "lp",
            "data": {
                "type": "assigner",
                "version": "2",
                "title": "Inc",
                "loop_id": "lp",
                "items": [
                    {
                        "variable_selector": ["lp", "i"],
                        "operation": "+=",
                        "input_type": "constant",
                        "value": 1,
                    }
                ],
            },
        },
    ]
    edges = [edge("start", "lp"), edge("ls", "inc"), edge("lp", "end")]
    if with_end:
        body.append(
            {"id": "stop", "parentId": "lp", "data": {"type": "loop-end", "title": "Stop", "loop_id": "lp"}}
        )
        edges.append(edge("inc", "stop"))
    return graph(
        [
            node("start", "start", variables=[]),
            {
                "id": "lp",
                "data": {
                    "type": "loop",
                    "title": "Loop",
                    "loop_count": count,
                    "start_node_id": "ls",
                    "logical_operator": "and",
                    "break_conditions": breaks or [],
                    "loop_variables": [
                        {"label": "i", "var_type": "number", "value_type": "constant", "value": "0"}
                    ],
                },
            },
            *body,
            node(
                "end",
                "end",
                outputs=[
                    {"variable": "i", "value_selector": ["lp", "i"]},
                    {"variable": "rounds", "value_selector": ["lp", "loop_round"]},
                ],
            ),
        ],
        edges,
    )


I_AT_LEAST_3 = [
    {"variable_selector": ["lp", "i"], "comparison_operator": "≥", "value": "3", "varType": "number"}
]


async def test_loop_counts_until_its_break_condition() -> None:
    outcome, rec, _ = await run_graph(loop_graph(breaks=I_AT_LEAST_3))
    assert outcome.status == "succeeded"
    assert outcome.outputs == {"i": 3, "rounds": 3}
    names = [n for n, _ in rec.events]
    assert names == ["loop_started", "loop_next", "loop_next", "loop_completed"]
    completed = rec.events[-1][1]
    meta = completed["execution_metadata"]
    assert meta["completed_reason"] == "loop_break"
    assert completed["steps"] == 10  # Dify: the configured count
    assert meta["loop_variable_map"] == {"0": {"i": 1}, "1": {"i": 2}, "2": {"i": 3}}
    assert [r.scope["loop_index"] for r in rec.finished if r.node.id == "inc"] == [0, 1, 2]


async def test_loop_runs_its_count_and_emits_the_extra_next() -> None:
    outcome, rec, _ = await run_graph(loop_graph(count=2))
    assert outcome.outputs == {"i": 2, "rounds": 2}
    assert [d["index"] for n, d in rec.events if n == "loop_next"] == [1, 2]  # Dify's quirk: one past the end
    assert rec.events[-1][1]["execution_metadata"]["completed_reason"] == "loop_completed"


async def test_loop_end_node_stops_after_its_round() -> None:
    outcome, rec, _ = await run_graph(loop_graph(with_end=True))
    assert outcome.outputs == {"i": 1, "rounds": 1}
    assert rec.events[-1][1]["execution_metadata"]["completed_reason"] == "loop_completed"


async def test_loop_condition_met_before_the_first_round_runs_none() -> None:
    met = [{"variable_selector": ["lp", "i"], "comparison_operator": "≥", "value": "0", "varType": "number"}]
    outcome, rec, _ = await run_graph(loop_graph(breaks=met))
    assert outcome.outputs == {"i": 0, "rounds": None}
    assert rec.events == []


async def test_loop_count_is_clamped_by_loop_node_max_count() -> None:
    outcome, _, _ = await run_graph(loop_graph(count=1000), limits=Limits(loop_max_count=5))
    assert outcome.outputs == {"i": 5, "rounds": 5}


class IoWork(Work):
    """``Work`` that waits on the outside world: the engine checkpoints before it starts."""

    type = "test-io-work"
    performs_io: ClassVar[bool] = True


class Committing(Recorder):
    """A Listener shaped like the runner's: events wait in a buffer, a checkpoint takes the buffer and the state
    and then awaits its "commit" (a transaction); what is committed, in commit order, is what clients see."""

    def __init__(self) -> None:
        super().__init__()
        self.buffer: list[str] = []
        self.committed: list[str] = []
        self.snapshots: list[int] = []  # steps of the state each commit stored, in commit order
        self.in_flight = self.most_in_flight = 0

    async def node_started(self, run: Any, state: RunState) -> bool:
        self.buffer.append(f"started:{run.node.id}")
        return await super().node_started(run, state)

    async def event(self, name: str, data: dict[str, Any]) -> None:
        self.buffer.append(name)
        await super().event(name, data)

    async def checkpoint(self, state: RunState) -> bool:
        events, self.buffer, steps = self.buffer, [], state.steps
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.02 if "iteration_started" in events else 0.001)  # a slow first commit
            self.committed += events
            self.snapshots.append(steps)
        finally:
            self.in_flight -= 1
        return True


@pytest.mark.parametrize("parallel", [True, False])
async def test_checkpoints_never_overlap(parallel: bool) -> None:
    """Parallel rounds (and a branch running beside the container) each ask for checkpoints: one at a time, or a
    later commit overtakes an earlier one: events reach clients out of order (inner nodes before
    ``iteration_started``) and the run keeps an older state than the one already written."""
    g = iteration_graph(
        [1, 2, 3], is_parallel=parallel, parallel_nums=3, work={"type": IoWork.type, "sleep": 0.001}
    )
    rec = Committing()
    outcome, _, _ = await run_graph(
        g, registry={**REGISTRY, IoWork.type: IoWork}, recorder=rec, pools={"src": {"items": [1, 2, 3]}}
    )
    assert outcome.status == "succeeded"
    assert outcome.outputs == {"out": ["<1>", "<2>", "<3>"]}
    assert rec.most_in_flight == 1
    assert rec.committed.index("iteration_started") < rec.committed.index("started:w")
    assert rec.snapshots == sorted(rec.snapshots)
