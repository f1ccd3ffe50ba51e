"""The engine's scheduling: sequence, branches and skip propagation, joins, failures, limits, pause/resume."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, ClassVar

import pytest

from app.workflows.engine.errors import GraphError, InputError
from app.workflows.engine.nodes import NODE_TYPES
from app.workflows.engine.nodes.base import Node, NodeContext, NodeResult
from app.workflows.engine.state import Limits
from tests.workflows.engine.helpers import Recorder, edge, graph, node, run_graph


class Echo(Node):
    """Test node: outputs ``value`` (rendered), optionally chooses a handle, fails, sleeps or pauses."""

    type = "test-echo"
    branching: ClassVar[bool] = True
    calls: ClassVar[dict[str, int]] = {}

    def configure(self, data: Mapping[str, Any]) -> None:
        self.value, self.handle = data.get("value", ""), data.get("handle", "source")
        self.fail_times, self.sleep, self.pauses = (
            data.get("fail_times", 0),
            data.get("sleep", 0),
            data.get("pause"),
        )

    async def run(self, ctx: NodeContext) -> NodeResult:
        calls = Echo.calls[self.id] = Echo.calls.get(self.id, 0) + 1
        if self.sleep:
            await asyncio.sleep(self.sleep)
        if calls <= self.fail_times:
            raise RuntimeError(f"{self.id} broke (call {calls})")
        if self.pauses:
            return NodeResult(pause={"reason": "test"})
        return NodeResult(outputs={"value": ctx.pool.render(str(self.value))}, edge_source_handle=self.handle)


REGISTRY = {**NODE_TYPES, Echo.type: Echo}


@pytest.fixture(autouse=True)
def reset_calls() -> None:
    Echo.calls.clear()


def start(*variables: dict[str, Any]) -> dict[str, Any]:
    return node("start", "start", variables=list(variables))


def end(*outputs: tuple[str, list[str]]) -> dict[str, Any]:
    return node("end", "end", outputs=[{"variable": v, "value_selector": s} for v, s in outputs])


async def test_sequence_passes_variables() -> None:
    g = graph(
        [
            start({"variable": "name", "type": "text-input"}),
            node("a", "test-echo", value="hi {{#start.name#}}"),
            end(("out", ["a", "value"])),
        ],
        [edge("start", "a"), edge("a", "end")],
    )
    outcome, rec, state = await run_graph(g, {"name": "Ada"}, registry=REGISTRY)
    assert outcome.status == "succeeded"
    assert outcome.outputs == {"out": "hi Ada"}
    assert rec.started == ["start", "a", "end"]
    assert state.steps == 3
    assert [r.state.index for r in rec.finished] == [1, 2, 3]
    assert rec.finished[1].state.predecessor == "start"


async def test_branch_skips_the_other_side_and_the_skip_propagates() -> None:
    g = graph(
        [
            start(),
            node("choose", "test-echo", handle="yes"),
            node("y", "test-echo", value="Y"),
            node("n", "test-echo", value="N"),
            node("n2", "test-echo", value="N2"),
            node("join", "test-echo", value="{{#y.value#}}{{#n2.value#}}"),
            end(("out", ["join", "value"])),
        ],
        [
            edge("start", "choose"),
            edge("choose", "y", "yes"),
            edge("choose", "n", "no"),
            edge("n", "n2"),
            edge("y", "join"),
            edge("n2", "join"),
            edge("join", "end"),
        ],
    )
    outcome, rec, state = await run_graph(g, registry=REGISTRY)
    assert outcome.status == "succeeded"
    assert outcome.outputs == {"out": "Y"}
    assert "n" not in rec.started
    assert "n2" not in rec.started
    assert state.nodes["n"].status == state.nodes["n2"].status == "skipped"
    assert rec.started.count("join") == 1


async def test_parallel_branches_run_concurrently_and_join_waits_for_both() -> None:
    g = graph(
        [
            start(),
            node("a", "test-echo", value="A", sleep=0.2),
            node("b", "test-echo", value="B", sleep=0.2),
            node("j", "test-echo", value="{{#a.value#}}+{{#b.value#}}"),
            end(("out", ["j", "value"])),
        ],
        [edge("start", "a"), edge("start", "b"), edge("a", "j"), edge("b", "j"), edge("j", "end")],
    )
    loop = asyncio.get_running_loop()
    began = loop.time()
    outcome, rec, _ = await run_graph(g, registry=REGISTRY)
    assert outcome.outputs == {"out": "A+B"}
    assert loop.time() - began < 0.38  # both slept at once
    assert rec.started.index("j") > max(rec.started.index("a"), rec.started.index("b"))


async def test_failure_without_strategy_fails_the_run() -> None:
    g = graph(
        [start(), node("a", "test-echo", fail_times=9, title="Broken"), end()],
        [edge("start", "a"), edge("a", "end")],
    )
    outcome, rec, state = await run_graph(g, registry=REGISTRY)
    assert outcome.status == "failed"
    assert 'Node "Broken" run failed' in (outcome.error or "")
    assert state.nodes["a"].status == "failed"
    assert "end" not in rec.started


async def test_fail_branch_and_default_value() -> None:
    g = graph(
        [
            start(),
            node("a", "test-echo", fail_times=9, error_strategy="fail-branch"),
            node("ok", "test-echo", value="ok"),
            node("handler", "test-echo", value="handled: {{#a.error_message#}}"),
            node(
                "b",
                "test-echo",
                fail_times=9,
                error_strategy="default-value",
                default_value=[{"key": "value", "type": "string", "value": "fallback"}],
            ),
            end(("h", ["handler", "value"]), ("b", ["b", "value"])),
        ],
        [
            edge("start", "a"),
            edge("a", "ok"),
            edge("a", "handler", "fail-branch"),
            edge("handler", "b"),
            edge("ok", "b"),
            edge("b", "end"),
        ],
    )
    outcome, _rec, state = await run_graph(g, registry=REGISTRY)
    assert outcome.status == "partial-succeeded"
    assert outcome.outputs == {"h": "handled: a broke (call 1)", "b": "fallback"}
    assert state.nodes["a"].status == state.nodes["b"].status == "exception"
    assert state.nodes["ok"].status == "skipped"


async def test_retries_then_success() -> None:
    g = graph(
        [
            start(),
            node(
                "a",
                "test-echo",
                value="v",
                fail_times=2,
                retry_config={"enabled": True, "max_retries": 2, "retry_interval": 1},
            ),
            end(("v", ["a", "value"])),
        ],
        [edge("start", "a"), edge("a", "end")],
    )
    outcome, _, state = await run_graph(g, registry=REGISTRY)
    assert outcome.status == "succeeded"
    assert state.nodes["a"].retries == 2
    assert Echo.calls["a"] == 3


async def test_retries_exhausted_fail() -> None:
    g = graph(
        [
            start(),
            node(
                "a",
                "test-echo",
                fail_times=5,
                retry_config={"enabled": True, "max_retries": 1, "retry_interval": 1},
            ),
            end(),
        ],
        [edge("start", "a"), edge("a", "end")],
    )
    outcome, _, _ = await run_graph(g, registry=REGISTRY)
    assert outcome.status == "failed"
    assert Echo.calls["a"] == 2


async def test_step_and_time_limits() -> None:
    chain = [start(), *[node(f"n{i}", "test-echo") for i in range(5)], end()]
    edges = [edge("start", "n0"), *[edge(f"n{i}", f"n{i + 1}") for i in range(4)], edge("n4", "end")]
    outcome, _, _ = await run_graph(graph(chain, edges), registry=REGISTRY, limits=Limits(max_steps=3))
    assert outcome.status == "failed"
    assert "Max steps 3" in (outcome.error or "")
    slow = graph([start(), node("a", "test-echo", sleep=5), end()], [edge("start", "a"), edge("a", "end")])
    outcome, _, state = await run_graph(slow, registry=REGISTRY, limits=Limits(max_seconds=0.2))
    assert outcome.status == "failed"
    assert "Max execution time" in (outcome.error or "")
    assert state.nodes["a"].status == "stopped"


async def test_stop_reported_by_the_listener_halts_the_run() -> None:
    chain = graph(
        [start(), node("a", "test-echo"), node("b", "test-echo"), end()],
        [edge("start", "a"), edge("a", "b"), edge("b", "end")],
    )
    outcome, rec, _ = await run_graph(chain, registry=REGISTRY, recorder=Recorder(stop_after=2))
    assert outcome.status == "stopped"
    assert "b" not in rec.started


async def test_pause_and_resume_keep_execution_ids() -> None:
    g = graph(
        [
            start(),
            node("ask", "test-echo", pause=True),
            node("other", "test-echo", value="o"),
            node("after", "test-echo", value="{{#ask.answer#}}"),
            end(("a", ["after", "value"]), ("o", ["other", "value"])),
        ],
        [
            edge("start", "ask"),
            edge("start", "other"),
            edge("ask", "after", "approve"),
            edge("after", "end"),
            edge("other", "end"),
        ],
    )
    outcome, _rec, state = await run_graph(g, registry=REGISTRY)
    assert outcome.status == "paused"
    assert outcome.paused_nodes == ["ask"]
    assert state.nodes["other"].status == "succeeded"  # the parallel branch went as far as it could
    paused_id = state.nodes["ask"].execution_id

    resolution = NodeResult(outputs={"answer": "yes"}, edge_source_handle="approve")
    outcome, rec2, state = await run_graph(g, registry=REGISTRY, state=state, resolutions={"ask": resolution})
    assert outcome.status == "succeeded"
    assert outcome.outputs == {"a": "yes", "o": "o"}
    assert rec2.finished[0].node.id == "ask"
    assert rec2.finished[0].state.execution_id == paused_id
    assert "ask" not in rec2.started  # not run again

    # A second resume of the same pause is harmless: nothing is paused any more.
    outcome, rec3, _ = await run_graph(g, registry=REGISTRY, state=state, resolutions={"ask": resolution})
    assert outcome.status == "succeeded"
    assert rec3.finished == []


async def test_start_inputs_are_validated() -> None:
    g = graph(
        [
            start(
                {"variable": "q", "type": "text-input", "max_length": 3},
                {"variable": "n", "type": "number", "required": False},
                {"variable": "s", "type": "select", "options": ["a", "b"], "required": False},
            ),
            end(),
        ],
        [edge("start", "end")],
    )
    with pytest.raises(InputError, match="q: is required"):
        await run_graph(g, {})
    with pytest.raises(InputError, match="q: must be at most 3"):
        await run_graph(g, {"q": "long"})
    with pytest.raises(InputError, match="n: must be a number"):
        await run_graph(g, {"q": "ok", "n": "x"})
    with pytest.raises(InputError, match="s: must be one of"):
        await run_graph(g, {"q": "ok", "s": "c"})
    outcome, _, state = await run_graph(g, {"q": "ok", "n": "4"})
    assert outcome.status == "succeeded"
    assert state.pool["start"]["n"] == 4


def test_graph_checks() -> None:
    with pytest.raises(GraphError, match="no start node"):
        graph([node("a", "end")], []).start_node()
    with pytest.raises(GraphError, match="unknown node 'ghost'"):
        graph([start()], [edge("start", "ghost")])
    cyclic = graph(
        [start(), node("a", "end"), node("b", "end")], [edge("start", "a"), edge("a", "b"), edge("b", "a")]
    )
    with pytest.raises(GraphError, match="cycle: a -> b -> a"):
        cyclic.check_acyclic()


async def test_stop_seen_while_a_node_streams_halts_at_once() -> None:
    from app.workflows.engine.errors import RunStopped

    class Streamer(Node):
        type = "test-stream"

        async def run(self, ctx: NodeContext) -> NodeResult:
            for word in ["a", "b", "c"]:
                await ctx.stream(word, [self.id, "text"])
            return NodeResult(outputs={"text": "abc"})

    class StopOnChunk(Recorder):
        async def text_chunk(self, node_id: str, text: str, selector: list[str]) -> None:
            await super().text_chunk(node_id, text, selector)
            raise RunStopped("stopped")

    g = graph([start(), node("s", "test-stream"), end()], [edge("start", "s"), edge("s", "end")])
    outcome, rec, state = await run_graph(
        g, registry={**REGISTRY, "test-stream": Streamer}, recorder=StopOnChunk()
    )
    assert outcome.status == "stopped"
    assert rec.chunks == [("s", "a")]
    assert state.nodes["s"].status == "stopped"
    assert "end" not in rec.started
