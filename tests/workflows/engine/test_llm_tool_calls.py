"""The LLM port's tool calls: offered tools in the request, calls read back whole or assembled from stream
deltas (interleaved, without ``index``, arguments as an object), and non-streamed calls."""

from __future__ import annotations

import json
from typing import Any

from app.workflows.engine.nodes.base import ToolCall
from app.workflows.llm import OpenAIChat
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_openai_fixture import fake_openai_fixture  # noqa: F401

MESSAGES = [{"role": "user", "content": "Paris, 3 nights"}]
TOOL = {
    "type": "function",
    "function": {"name": "extract_parameters", "description": "d", "parameters": {"type": "object"}},
}


def sse(*chunks: dict[str, Any]) -> str:
    return "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"


def delta(calls: list[dict[str, Any]], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"tool_calls": calls}, "finish_reason": finish}]}


async def test_streamed_tool_call_is_assembled(fake_openai: FakeOpenAI) -> None:
    arguments = {"city": "Paris", "nights": 3, "note": "a long enough value to be cut in many pieces"}
    fake_openai.queue_reply(tool_calls=[{"arguments": arguments}])
    reply = await OpenAIChat(fake_openai.base_url).chat(
        "m", MESSAGES, {"tools": "ignored"}, tools=[TOOL], tool_choice="auto"
    )
    assert reply.text == ""
    assert reply.finish_reason == "tool_calls"
    assert len(reply.tool_calls) == 1
    call = reply.tool_calls[0]
    assert call.name == "extract_parameters"
    assert call.id.startswith("call_")
    assert json.loads(call.arguments) == arguments
    body = fake_openai.bodies()[-1]
    assert body["tools"] == [TOOL]
    assert body["tool_choice"] == "auto"
    assert body["stream"] is True


async def test_non_streamed_call_reads_the_whole_message(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue_reply("thinking aloud", tool_calls=[{"name": "a", "arguments": "{}"}, {"name": "b"}])
    reply = await OpenAIChat(fake_openai.base_url).chat("m", MESSAGES, {}, tools=[TOOL], stream=False)
    assert reply.text == "thinking aloud"
    assert [c.name for c in reply.tool_calls] == ["a", "b"]
    assert reply.tool_calls[0].arguments == "{}"
    assert reply.usage.total_tokens > 0
    body = fake_openai.bodies()[-1]
    assert body["stream"] is False
    assert "stream_options" not in body
    assert fake_openai.requests[-1].headers["accept"] == "application/json"


async def test_interleaved_deltas_are_kept_apart_by_index(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue_raw(
        sse(
            delta([{"index": 0, "id": "c0", "type": "function", "function": {"name": "f", "arguments": ""}}]),
            delta(
                [{"index": 1, "id": "c1", "type": "function", "function": {"name": "g", "arguments": '{"b"'}}]
            ),
            delta([{"index": 0, "function": {"arguments": '{"a": '}}]),
            delta([{"index": 1, "function": {"arguments": ": 2}"}}]),
            delta([{"index": 0, "function": {"arguments": "1}"}}], "tool_calls"),
        )
    )
    reply = await OpenAIChat(fake_openai.base_url).chat("m", MESSAGES, {}, tools=[TOOL])
    assert reply.tool_calls == [ToolCall("c0", "f", '{"a": 1}'), ToolCall("c1", "g", '{"b": 2}')]


async def test_deltas_without_index_and_object_arguments(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue_raw(
        sse(
            delta([{"id": "x", "function": {"name": "f", "arguments": '{"a"'}}]),
            delta([{"function": {"arguments": ": 1}"}}]),
            delta([{"id": "y", "function": {"name": "g", "arguments": {"b": "é"}}}]),
        )
    )
    reply = await OpenAIChat(fake_openai.base_url).chat("m", MESSAGES, {}, tools=[TOOL])
    assert reply.tool_calls == [ToolCall("x", "f", '{"a": 1}'), ToolCall("y", "g", '{"b": "é"}')]


def test_models_without_tool_calls() -> None:
    assert OpenAIChat("http://127.0.0.1:9/v1").supports_tool_calls("gpt-4o")
    some = OpenAIChat("http://127.0.0.1:9/v1", no_tool_models=["llama3.2:1b"])
    assert not some.supports_tool_calls("llama3.2:1b")
    assert some.supports_tool_calls("gpt-4o")
    assert not OpenAIChat("http://127.0.0.1:9/v1", no_tool_models=["*"]).supports_tool_calls("gpt-4o")
