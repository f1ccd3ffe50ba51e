"""LLM node memory (chatflow spec 7.5) through the engine and the real HTTP client, with a history port in memory."""

from __future__ import annotations

from typing import Any

from app.workflows.engine.nodes import NODE_TYPES
from app.workflows.engine.nodes.base import Ports, RunInfo
from app.workflows.engine.nodes.llm_common import HistoryMessage
from app.workflows.llm import OpenAIChat
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_openai_fixture import fake_openai_fixture  # noqa: F401
from tests.workflows.engine.helpers import edge, graph, node, run_graph

TURNS = [HistoryMessage(query=f"q{i}", answer=f"a{i}") for i in range(1, 4)]


class History:
    def __init__(self, turns: list[HistoryMessage], context_tokens: int = 0) -> None:
        self.turns, self.context_tokens = turns, context_tokens
        self.asked: list[tuple[str, str, int]] = []

    async def messages(self, run: RunInfo, conversation_id: str, limit: int) -> list[HistoryMessage]:
        self.asked.append((run.run_id, conversation_id, limit))
        return self.turns[-(limit - 1) :] if limit > 1 else []


def flow(memory: Any, prompt: Any, mode: str = "chat") -> Any:
    model = {"provider": "openai", "name": "m", "mode": mode, "completion_params": {}}
    return graph(
        [
            node("start", "start", variables=[]),
            node("llm", "llm", model=model, prompt_template=prompt, memory=memory),
            node("end", "end", outputs=[{"variable": "text", "value_selector": ["llm", "text"]}]),
        ],
        [edge("start", "llm"), edge("llm", "end")],
    )


async def run(fake: FakeOpenAI, g: Any, history: History, **system: Any) -> list[dict[str, Any]]:
    pools = {"sys": {"query": "now?", "conversation_id": "c-1", **system}}
    outcome, _, _ = await run_graph(
        g, ports=Ports(llm=OpenAIChat(fake.base_url), history=history), registry=NODE_TYPES, pools=pools
    )
    assert outcome.status == "succeeded", outcome.error
    return list(fake.bodies()[-1]["messages"])


SYSTEM = [{"role": "system", "text": "Be brief."}]


async def test_window_history_then_the_query(fake_openai: FakeOpenAI) -> None:
    history = History(TURNS)
    memory = {"window": {"enabled": True, "size": 3}, "role_prefix": {"user": "", "assistant": ""}}
    messages = await run(fake_openai, flow(memory, SYSTEM), history)
    assert history.asked == [("run-1", "c-1", 3)]  # the window counts the current turn: two earlier turns
    assert messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "a2"},
        {"role": "user", "content": "q3"},
        {"role": "assistant", "content": "a3"},
        {"role": "user", "content": "now?"},
    ]


async def test_query_prompt_template_and_no_window(fake_openai: FakeOpenAI) -> None:
    history = History(TURNS[:1])
    memory = {"window": {"enabled": False, "size": 2}, "query_prompt_template": "Q: {{#sys.query#}}"}
    messages = await run(fake_openai, flow(memory, SYSTEM), history)
    assert history.asked[0][2] == 500
    assert messages[-1] == {"role": "user", "content": "Q: now?"}
    assert messages[1:3] == [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"}]


async def test_without_memory_no_history_and_no_query(fake_openai: FakeOpenAI) -> None:
    history = History(TURNS)
    messages = await run(fake_openai, flow(None, SYSTEM), history)
    assert messages == [{"role": "system", "content": "Be brief."}]
    assert history.asked == []


async def test_budget_drops_the_oldest_messages(fake_openai: FakeOpenAI) -> None:
    long = [HistoryMessage(query="x" * 12000, answer="old"), HistoryMessage(query="recent", answer="yes")]
    messages = await run(fake_openai, flow({"window": {"enabled": False}}, SYSTEM), History(long))
    contents = [m["content"] for m in messages]
    assert "x" * 12000 not in contents
    assert contents[1:] == ["old", "recent", "yes", "now?"]


async def test_completion_mode_histories_and_query(fake_openai: FakeOpenAI) -> None:
    memory = {"window": {"enabled": True, "size": 2}, "role_prefix": {"user": "Human", "assistant": "AI"}}
    prompt = {"text": "Chat:\n{{#histories#}}\nHuman: #sys.query#\nAI:"}
    messages = await run(fake_openai, flow(memory, prompt, mode="completion"), History(TURNS))
    assert messages == [{"role": "user", "content": "Chat:\nHuman: q3\nAI: a3\nHuman: now?\nAI:"}]


async def test_completion_mode_without_role_prefix_fails(fake_openai: FakeOpenAI) -> None:
    memory = {"window": {"enabled": True, "size": 2}}
    g = flow(memory, {"text": "{{#histories#}}"}, mode="completion")
    pools = {"sys": {"query": "now?", "conversation_id": "c-1"}}
    outcome, _, _ = await run_graph(
        g, ports=Ports(llm=OpenAIChat(fake_openai.base_url), history=History(TURNS)), pools=pools
    )
    assert outcome.status == "failed"
    assert "Memory role prefix is required" in (outcome.error or "")
