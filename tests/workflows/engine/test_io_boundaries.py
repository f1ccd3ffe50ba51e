"""The checkpoint before a node that waits on the outside world (DESIGN.md rule 6).

A node that only asks (a model) sends its request while that checkpoint commits, and nothing it answers is used
— streamed, recorded, passed on — before the commit is done; when the commit finds the run stopped, the answer
is dropped and the run stops. A node that acts on the world (an HTTP request) is asked only after the commit.
The model's request leaves before the checkpoint begins (``engine/asking.py``), or the checkpoint waits for it
no longer than its head start. The listener here holds the first checkpoint open until the test lets it
finish, as a slow commit would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from app.workflows import llm as llm_module
from app.workflows.engine import asking
from app.workflows.engine.building import initial_state
from app.workflows.engine.core import Engine
from app.workflows.engine.nodes.base import LLMPort, LLMReply, LLMUsage, Ports, RunInfo
from app.workflows.engine.state import CHAT_MODE, Outcome, RunState
from app.workflows.llm import OpenAIChat
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_openai_fixture import fake_openai_fixture  # noqa: F401
from tests.support.http_target import HttpTarget
from tests.workflows.engine.helpers import Recorder, edge, graph, node, run_graph
from tests.workflows.engine.test_http_request_node import http
from tests.workflows.engine.test_http_request_node import ports as http_ports

MODEL = {"provider": "openai", "name": "gpt-4o", "mode": "chat", "completion_params": {}}


class SlowFirstCheckpoint(Recorder):
    """Its first checkpoint commits only when the test opens ``gate``; ``stopped``: that commit finds the run
    stopped (its compare-and-set lost)."""

    def __init__(self, *, stopped: bool = False) -> None:
        super().__init__()
        self.committing, self.gate, self.stopped = asyncio.Event(), asyncio.Event(), stopped
        self.order_at_commit: list[str] = []

    async def text_chunk(self, node_id: str, text: str, selector: list[str]) -> None:
        await super().text_chunk(node_id, text, selector)
        self.order.append(f"chunk:{node_id}")

    async def checkpoint(self, state: RunState) -> bool:
        first = not self.checkpoints
        await super().checkpoint(state)
        if first:
            self.committing.set()
            await self.gate.wait()
            self.order_at_commit = list(self.order)
        return not self.stopped


async def eventually(check: Any, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("never happened")


CHAT = RunInfo(run_id="run-1", app_id="app-1", workflow_id="wf-1", user_id="u", mode=CHAT_MODE)


async def chat_turn(llm: LLMPort, listener: Recorder) -> tuple[Outcome, RunState]:
    """A chat run (its answer streams live, chunk by chunk): start -> llm -> answer."""
    flow = graph(
        [
            node("start", "start", variables=[]),
            node("llm", "llm", model=MODEL, prompt_template=[{"role": "user", "text": "Hi"}]),
            node("answer", "answer", answer="{{#llm.text#}}"),
        ],
        [edge("start", "llm"), edge("llm", "answer")],
    )
    state = initial_state({}, {"query": "Hi", "conversation_id": "c1"}, "start")
    outcome = await Engine(flow, state, Ports(llm=llm), CHAT).run(listener)
    return outcome, state


async def test_a_model_is_asked_while_the_checkpoint_commits_and_its_answer_waits_for_it(
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.queue_reply("Hello there, Ada!")
    listener = SlowFirstCheckpoint()
    running = asyncio.create_task(chat_turn(OpenAIChat(fake_openai.base_url), listener))
    await asyncio.wait_for(listener.committing.wait(), 10)
    # The request went out while the checkpoint (with the model node's node_started) is still committing...
    await eventually(lambda: len(fake_openai.bodies()) == 1)
    await asyncio.sleep(0.3)  # ...and its whole answer arrived meanwhile: none of it is used yet
    assert listener.chunks == []
    assert "finished:llm" not in listener.order
    listener.gate.set()
    outcome, _ = await asyncio.wait_for(running, 10)
    assert outcome.status == "succeeded", outcome.error
    assert listener.order_at_commit == ["started:start", "finished:start", "started:llm"]
    assert listener.order.index("started:llm") < listener.order.index("chunk:llm")
    assert "".join(text for _, text in listener.chunks) == "Hello there, Ada!"


async def test_an_answer_that_arrives_for_a_stopped_run_is_dropped(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue_reply("Too late.")
    listener = SlowFirstCheckpoint(stopped=True)
    running = asyncio.create_task(chat_turn(OpenAIChat(fake_openai.base_url), listener))
    await asyncio.wait_for(listener.committing.wait(), 10)
    await eventually(lambda: len(fake_openai.bodies()) == 1)
    await asyncio.sleep(0.3)
    listener.gate.set()
    outcome, state = await asyncio.wait_for(running, 10)
    assert outcome.status == "stopped"
    assert listener.chunks == []
    assert "finished:llm" not in listener.order
    assert "text" not in state.pool.get("llm", {})


@pytest.fixture
def target() -> Iterator[HttpTarget]:
    with HttpTarget("127.0.0.1") as server:
        yield server


async def test_a_node_that_acts_on_the_world_is_asked_only_after_the_checkpoint(target: HttpTarget) -> None:
    flow = graph(
        [
            node("start", "start", variables=[]),
            http(target.url("/echo"), method="post"),
            node("end", "end", outputs=[{"variable": "status", "value_selector": ["http", "status_code"]}]),
        ],
        [edge("start", "http"), edge("http", "end")],
    )
    listener = SlowFirstCheckpoint()
    running = asyncio.create_task(run_graph(flow, ports=http_ports(), recorder=listener))
    await asyncio.wait_for(listener.committing.wait(), 10)
    await asyncio.sleep(0.3)
    assert target.requests == []  # not sent while the checkpoint before it commits
    listener.gate.set()
    outcome, _, _ = await asyncio.wait_for(running, 10)
    assert outcome.status == "succeeded"
    assert outcome.outputs == {"status": 200}
    assert len(target.requests) == 1


class AskingPort:
    """A model port that records when it sends (after yielding to the loop, as an HTTP client does) and answers
    when the test lets it; ``says_sent``: it reports the send, as ``OpenAIChat`` does."""

    def __init__(self, order: list[str], *, says_sent: bool) -> None:
        self.order, self.says_sent, self.answer = order, says_sent, asyncio.Event()

    async def chat(
        self, model: str, messages: list[dict[str, Any]], params: Any, on_chunk: Any = None, **_: Any
    ):
        for _ in range(3):
            await asyncio.sleep(0)
        self.order.append("request sent")
        if self.says_sent:
            asking.request_sent()
        await self.answer.wait()
        if on_chunk is not None:
            await on_chunk("Hi")
        return LLMReply(text="Hi", usage=LLMUsage())

    def supports_tool_calls(self, model: str) -> bool:
        return False


class OrderedCheckpoints(Recorder):
    async def checkpoint(self, state: RunState) -> bool:
        self.order.append("checkpoint")
        return await super().checkpoint(state)


async def test_the_checkpoint_ahead_of_a_model_begins_once_the_request_is_sent() -> None:
    listener = OrderedCheckpoints()
    port = AskingPort(listener.order, says_sent=True)
    running = asyncio.create_task(chat_turn(port, listener))
    await eventually(lambda: "checkpoint" in listener.order)
    assert listener.order[:5] == [
        "started:start",
        "finished:start",
        "started:llm",
        "request sent",
        "checkpoint",
    ]
    port.answer.set()
    outcome, _ = await asyncio.wait_for(running, 10)
    assert outcome.status == "succeeded", outcome.error
    assert listener.chunks == [("llm", "Hi")]


async def test_a_port_that_never_says_it_sent_holds_the_checkpoint_back_no_longer_than_its_head_start() -> (
    None
):
    listener = OrderedCheckpoints()
    port = AskingPort(listener.order, says_sent=False)
    running = asyncio.create_task(chat_turn(port, listener))
    await eventually(lambda: "checkpoint" in listener.order)  # while the request waits for its answer
    assert not port.answer.is_set()
    port.answer.set()
    outcome, _ = await asyncio.wait_for(running, 10)
    assert outcome.status == "succeeded", outcome.error


async def test_the_model_client_reports_its_request_sent_before_the_answer(
    fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[int] = []
    monkeypatch.setattr(llm_module, "request_sent", lambda: sent.append(len(fake_openai.bodies())))
    fake_openai.queue_reply("Later.", delay=0.5)
    asked = asyncio.create_task(
        OpenAIChat(fake_openai.base_url).chat("gpt-4o", [{"role": "user", "content": "Hi"}], {})
    )
    await eventually(lambda: bool(sent))
    assert not asked.done()  # reported while the answer is still to come
    reply = await asyncio.wait_for(asked, 10)
    assert reply.text == "Later."
    assert len(sent) == 1
