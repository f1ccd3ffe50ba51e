"""Answer streaming in advanced-chat runs (chatflow spec 7.4): sessions, their order, segments in template order."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, ClassVar

import msgspec

from app.workflows.engine.building import initial_state
from app.workflows.engine.core import Engine
from app.workflows.engine.nodes import NODE_TYPES
from app.workflows.engine.nodes.base import Node, NodeContext, NodeResult, Ports, RunInfo
from app.workflows.engine.response import markdown
from app.workflows.engine.state import RunState
from tests.workflows.engine.helpers import Recorder, edge, graph, node

CHAT = RunInfo(run_id="run-1", app_id="app-1", workflow_id="wf-1", user_id="u", mode="advanced-chat")


class Streamer(Node):
    """``test-stream``: streams ``chunks`` as ``text`` (yielding between them), like an LLM node."""

    type = "test-stream"
    performs_io: ClassVar[bool] = True

    def configure(self, data: Mapping[str, Any]) -> None:
        self.chunks = [str(c) for c in data.get("chunks", [])]
        self.pause = float(data.get("pause", 0.0))

    async def run(self, ctx: NodeContext) -> NodeResult:
        for chunk in self.chunks:
            await asyncio.sleep(self.pause)
            await ctx.stream(chunk, [self.id, "text"])
        return NodeResult(outputs={"text": "".join(self.chunks)})


REGISTRY = {**NODE_TYPES, Streamer.type: Streamer}
START = node("start", "start", variables=[{"variable": "n", "type": "number", "required": False}])


async def run_chat(nodes: list[dict[str, Any]], edges: list[dict[str, Any]], **inputs: Any) -> Recorder:
    g = graph(nodes, edges)
    state = initial_state(
        inputs, {"query": "hi", "conversation_id": "c1"}, "start", conversation={"turns": 2}
    )
    recorder = Recorder()
    outcome = await Engine(g, state, Ports(), CHAT, registry=REGISTRY).run(recorder)
    assert outcome.status == "succeeded", outcome.error
    return recorder


def texts(recorder: Recorder) -> str:
    return "".join(text for _, text in recorder.chunks)


async def test_literal_then_streamed_llm_then_literal_in_template_order() -> None:
    rec = await run_chat(
        [
            START,
            node("llm", "test-stream", chunks=["Hel", "lo"], pause=0.01),
            node("ans", "answer", answer="A: {{#llm.text#}} (turn {{#conversation.turns#}})"),
        ],
        [edge("start", "llm"), edge("llm", "ans")],
    )
    assert rec.chunks[0] == ("ans", "A: ")  # the literal goes out before the model answered
    assert [c for _, c in rec.chunks] == ["A: ", "Hel", "lo", " (turn ", "2", ")"]


async def test_parallel_answers_never_interleave_and_keep_dsl_order() -> None:
    # Both answers become certain as soon as the start finishes: DSL order decides; the second one's model
    # streams meanwhile and is held back until the first session is done.
    rec = await run_chat(
        [
            START,
            node("slow", "test-stream", chunks=["a1", "a2", "a3"], pause=0.03),
            node("fast", "test-stream", chunks=["b1", "b2"], pause=0.0),
            node("first", "answer", answer="[{{#slow.text#}}]"),
            node("second", "answer", answer="<{{#fast.text#}}>"),
        ],
        [edge("start", "slow"), edge("start", "fast"), edge("slow", "first"), edge("fast", "second")],
    )
    assert texts(rec) == "[a1a2a3]<b1b2>"
    assert ("first", "[") == rec.chunks[0]


async def test_only_the_taken_branch_answers() -> None:
    cases = [
        {
            "case_id": "big",
            "logical_operator": "and",
            "conditions": [
                {
                    "variable_selector": ["start", "n"],
                    "comparison_operator": ">",
                    "value": "5",
                    "varType": "number",
                }
            ],
        }
    ]
    nodes = [
        START,
        node("branch", "if-else", cases=cases),
        node("yes", "answer", answer="big {{#start.n#}}"),
        node("no", "answer", answer="small"),
    ]
    edges = [edge("start", "branch"), edge("branch", "yes", "big"), edge("branch", "no", "false")]
    assert texts(await run_chat(nodes, edges, n=7)) == "big 7"
    assert texts(await run_chat(nodes, edges, n=1)) == "small"


async def test_a_slow_non_streaming_variable_holds_back_the_rest() -> None:
    rec = await run_chat(
        [
            START,
            node("tpl", "template-transform", template="T", variables=[]),
            node("llm", "test-stream", chunks=["x", "y"]),
            node("ans", "answer", answer="{{#tpl.output#}}-{{#llm.text#}}"),
        ],
        [edge("start", "tpl"), edge("start", "llm"), edge("tpl", "ans"), edge("llm", "ans")],
    )
    assert texts(rec) == "T-xy"


async def test_an_answer_after_another_answer_waits_for_it() -> None:
    rec = await run_chat(
        [
            START,
            node("one", "answer", answer="one "),
            node("llm", "test-stream", chunks=["m"], pause=0.01),
            node("two", "answer", answer="two {{#llm.text#}}"),
        ],
        [edge("start", "one"), edge("one", "llm"), edge("llm", "two")],
    )
    assert texts(rec) == "one two m"


async def test_outputs_answer_and_markdown_values() -> None:
    g = graph(
        [
            START,
            node(
                "code",
                "template-transform",
                template="ignored",
                variables=[],
            ),
            node(
                "ans",
                "answer",
                answer="{{#sys.query#}}|{{#conversation.flag#}}|{{#conversation.obj#}}|{{#conversation.list#}}",
            ),
        ],
        [edge("start", "code"), edge("code", "ans")],
    )
    state = initial_state(
        {}, {"query": "q"}, "start", conversation={"flag": True, "obj": {"a": 1}, "list": ["x", "y"]}
    )
    rec = Recorder()
    outcome = await Engine(g, state, Ports(), CHAT, registry=REGISTRY).run(rec)
    expected = 'q|True|{\n  "a": 1\n}|- x\n- y'
    assert texts(rec) == expected
    assert outcome.outputs == {"answer": expected, "files": []}
    assert markdown(3.5) == "3.5"
    assert markdown(None) == ""
    assert markdown([{"a": 1}]) == "- {'a': 1}"


async def test_workflow_runs_stream_sources_directly_and_answers_not_at_all() -> None:
    g = graph(
        [
            START,
            node("llm", "test-stream", chunks=["p", "q"]),
            node("ans", "answer", answer="{{#llm.text#}}"),
        ],
        [edge("start", "llm"), edge("llm", "ans")],
    )
    rec = Recorder()
    workflow = msgspec.structs.replace(CHAT, mode="workflow")
    await Engine(g, initial_state({}, {}, "start"), Ports(), workflow, registry=REGISTRY).run(rec)
    assert rec.chunks == [("llm", "p"), ("llm", "q")]


async def test_a_rerun_source_does_not_repeat_what_was_sent() -> None:
    """After a crash the source streams again from the start: characters already sent are skipped."""
    g = graph(
        [
            START,
            node("llm", "test-stream", chunks=["ab", "cd", "ef"]),
            node("ans", "answer", answer="{{#llm.text#}}"),
        ],
        [edge("start", "llm"), edge("llm", "ans")],
    )
    state = initial_state({}, {}, "start")
    first = Recorder()

    class Crash(Exception):
        pass

    async def crash_after_cd(node_id: str, text: str, selector: list[str]) -> None:
        first.chunks.append((node_id, text))
        if text == "cd":
            raise Crash

    first.text_chunk = crash_after_cd  # type: ignore[method-assign]
    try:
        await Engine(g, state, Ports(), CHAT, registry=REGISTRY).run(first)
    except Crash:
        pass
    # what a checkpoint would have saved, loaded again: the node was running
    saved = msgspec.convert(msgspec.to_builtins(state), RunState)
    saved.nodes["llm"].status = "running"
    second = Recorder()
    await Engine(g, saved, Ports(), CHAT, registry=REGISTRY).run(second)
    assert texts(first) + texts(second) == "abcdef"
