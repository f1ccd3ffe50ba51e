"""The fake OpenAI server itself: scripted replies, errors and embeddings behave as the tests rely on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.support.fake_openai import FakeOpenAI, embed
from tests.support.fake_openai_fixture import fake_openai_fixture  # noqa: F401


def test_chat_echoes_then_follows_the_script(fake_openai: FakeOpenAI) -> None:
    url = f"{fake_openai.base_url}/chat/completions"
    body = {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}
    reply = httpx.post(url, json=body).json()
    assert reply["choices"][0]["message"]["content"] == "echo: hi"
    assert reply["usage"]["total_tokens"] == 3
    fake_openai.queue_reply("scripted", times=2)
    fake_openai.queue_error(503, "down")
    assert [httpx.post(url, json=body).status_code for _ in range(4)] == [200, 200, 503, 200]
    assert httpx.post(url, json={"model": "m"}).status_code == 400
    assert len(fake_openai.bodies()) == 6
    assert fake_openai.bodies()[0] == body


def test_embeddings_are_deterministic_unit_vectors(fake_openai: FakeOpenAI) -> None:
    url = f"{fake_openai.base_url}/embeddings"
    one = httpx.post(url, json={"model": "e", "input": "alpha"}).json()
    assert one["data"][0]["embedding"] == embed("alpha")
    assert len(embed("alpha")) == 16
    two = httpx.post(url, json={"model": "e", "input": ["alpha", "beta"], "dimensions": 40}).json()
    vectors = [d["embedding"] for d in two["data"]]
    assert vectors == [embed("alpha", 40), embed("beta", 40)]
    assert vectors[0] != vectors[1]
    assert abs(sum(v * v for v in vectors[0]) - 1) < 1e-9
    fake_openai.queue_error(429, path="/v1/embeddings")
    response = httpx.post(url, json={"model": "e", "input": "x"})
    assert response.status_code == 429
    assert response.json()["error"]["message"] == "fake error 429"


def _chat(fake: FakeOpenAI, **body: Any) -> httpx.Response:
    payload = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **body}
    return httpx.post(f"{fake.base_url}/chat/completions", json=payload)


TOOLS = [{"type": "function", "function": {"name": "extract_parameters", "parameters": {"type": "object"}}}]


def test_tool_calls_whole_and_streamed(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue_reply(tool_calls=[{"arguments": {"city": "Paris"}}], times=2)
    whole = _chat(fake_openai, tools=TOOLS).json()["choices"][0]
    call = whole["message"]["tool_calls"][0]
    assert whole["finish_reason"] == "tool_calls"
    assert whole["message"]["content"] is None
    assert call["type"] == "function"
    assert call["function"] == {
        "name": "extract_parameters",
        "arguments": '{"city": "Paris"}',
    }
    streamed = _chat(fake_openai, tools=TOOLS, stream=True)
    deltas = [
        json.loads(line[6:])["choices"][0]
        for line in streamed.text.splitlines()
        if line.startswith("data: {")
    ]
    calls = [d["delta"]["tool_calls"][0] for d in deltas if "tool_calls" in d["delta"]]
    assert calls[0]["function"]["name"] == "extract_parameters"
    assert calls[0]["id"].startswith("call_")
    assert len(calls) > 2
    assert all("name" not in c["function"] and "id" not in c for c in calls[1:])
    assert "".join(c["function"]["arguments"] for c in calls) == '{"city": "Paris"}'
    assert deltas[-1]["finish_reason"] == "tool_calls"


def test_rules_answer_by_last_user_message(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.add_rule("weather", "sunny", times=1)
    fake_openai.add_rule("weather", tool_calls=[{"name": "lookup", "arguments": {"q": "w"}}])
    fake_openai.add_rule("system words", "seen", where="any")
    assert (
        _chat(fake_openai, messages=[{"role": "user", "content": "the weather?"}]).json()["choices"][0][
            "message"
        ]["content"]
        == "sunny"
    )
    # the one-shot rule is used up; without tools the next rule's arguments are the text
    second = _chat(fake_openai, messages=[{"role": "user", "content": "the weather?"}]).json()
    assert second["choices"][0]["message"]["content"] == '{"q": "w"}'
    third = _chat(fake_openai, messages=[{"role": "user", "content": "weather"}], tools=TOOLS).json()
    assert third["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "lookup"
    earlier = [{"role": "user", "content": "weather"}, {"role": "user", "content": "other"}]
    assert _chat(fake_openai, messages=earlier).json()["choices"][0]["message"]["content"] == "echo: other"
    system = [{"role": "system", "content": "system words"}, {"role": "user", "content": "x"}]
    assert _chat(fake_openai, messages=system).json()["choices"][0]["message"]["content"] == "seen"
    fake_openai.queue_reply("scripted wins")
    assert _chat(fake_openai, messages=system).json()["choices"][0]["message"]["content"] == "scripted wins"
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps([{"contains": "from file", "text": "loaded"}]))
    fake_openai.load_rules(rules)
    reply = _chat(fake_openai, messages=[{"role": "user", "content": "from file"}]).json()
    assert reply["choices"][0]["message"]["content"] == "loaded"
    fake_openai.reset()
    assert fake_openai.rules == []
    assert fake_openai.requests == []


def test_tool_messages_and_tools_are_checked_like_openai(fake_openai: FakeOpenAI) -> None:
    orphan = [{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "c1", "content": "ok"}]
    assert _chat(fake_openai, messages=orphan).status_code == 400
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    answered = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        {"role": "user", "content": "y"},
    ]
    assert _chat(fake_openai, messages=answered).status_code == 200
    assert _chat(fake_openai, tools=[{"type": "function", "function": {}}]).status_code == 400
    assert _chat(fake_openai, tools=[{"function": {"name": "f"}}]).status_code == 400
    assert _chat(fake_openai, tools=[]).status_code == 400
    bad_args = [
        {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": {}}}]}
    ]
    assert _chat(fake_openai, messages=bad_args).status_code == 400
