"""The `llm` node through the real engine and the real HTTP client, against the fake OpenAI server on loopback."""

from __future__ import annotations

from typing import Any

import pytest

from app.workflows.engine.errors import NodeConfigError, NodeRunError
from app.workflows.engine.nodes import NODE_TYPES
from app.workflows.engine.nodes.base import Ports
from app.workflows.engine.nodes.llm import LLMNode
from app.workflows.llm import OpenAIChat
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_openai_fixture import fake_openai_fixture  # noqa: F401
from tests.support.processes import free_port
from tests.support.templates import InProcessTemplates
from tests.workflows.engine.helpers import edge, graph, node, run_graph

REGISTRY = {**NODE_TYPES, "llm": LLMNode}


def ports(fake: FakeOpenAI, **options: Any) -> Ports:
    return Ports(llm=OpenAIChat(fake.base_url, **options), templates=InProcessTemplates())


def llm(prompt_template: Any, mode: str = "chat", **data: Any) -> dict[str, Any]:
    model = {"provider": "openai", "name": "gpt-4o", "mode": mode, "completion_params": {"temperature": 0.2}}
    return node(
        "llm", "llm", model={**model, **data.pop("model", {})}, prompt_template=prompt_template, **data
    )


def flow(llm_node: dict[str, Any], *, fail_branch: bool = False) -> Any:
    nodes = [
        node("start", "start", variables=[{"variable": "name", "type": "text-input", "required": False}]),
        llm_node,
        node("end", "end", outputs=[{"variable": "text", "value_selector": ["llm", "text"]}]),
    ]
    edges = [edge("start", "llm"), edge("llm", "end")]
    if fail_branch:
        nodes.append(
            node("sorry", "end", outputs=[{"variable": "error", "value_selector": ["llm", "error_message"]}])
        )
        edges.append(edge("llm", "sorry", "fail-branch"))
    return graph(nodes, edges)


USER = [{"role": "user", "text": "Hi {{#start.name#}}"}]


async def test_chunks_stream_in_order_and_usage_is_recorded(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue_reply(
        "Hello there, Ada!", usage={"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    )
    outcome, rec, state = await run_graph(
        flow(llm(USER)), {"name": "Ada"}, ports=ports(fake_openai), registry=REGISTRY
    )
    assert outcome.status == "succeeded"
    assert outcome.outputs == {"text": "Hello there, Ada!"}
    assert rec.chunks == [("llm", "Hello "), ("llm", "there, "), ("llm", "Ada!")]
    result = next(r.result for r in rec.finished if r.node.id == "llm")
    assert result is not None
    assert result.tokens == 10
    assert state.tokens == 10
    assert result.outputs["usage"]["total_tokens"] == 10
    assert result.outputs["finish_reason"] == "stop"
    assert result.process_data["usage"]["prompt_tokens"] == 7
    assert result.process_data["model_mode"] == "chat"
    body = fake_openai.bodies()[-1]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0.2


async def test_model_map_renames_and_other_names_pass_through(fake_openai: FakeOpenAI) -> None:
    mapped = ports(fake_openai, model_map={"gpt-4o": "llama3.2:1b"}, api_key="sk-test")
    await run_graph(flow(llm(USER)), ports=mapped, registry=REGISTRY)
    await run_graph(flow(llm(USER, model={"name": "qwen2.5"})), ports=mapped, registry=REGISTRY)
    assert [b["model"] for b in fake_openai.bodies()] == ["llama3.2:1b", "qwen2.5"]
    assert fake_openai.requests[0].headers["authorization"] == "Bearer sk-test"


async def test_prompts_are_rendered_with_variables_and_context(fake_openai: FakeOpenAI) -> None:
    prompt = [
        {"role": "system", "text": "Answer from this:\n{{#context#}}"},
        {"role": "user", "text": "I am {{#start.name#}}. {{#sys.user_id#}}"},
    ]
    results = [
        {"content": "Sluice runs on Postgres.", "metadata": {}},
        {"content": "{{#start.name#}} stays literal."},
    ]
    g = flow(llm(prompt, context={"enabled": True, "variable_selector": ["kb", "result"]}))
    outcome, rec, _ = await run_graph(
        g, {"name": "Ada"}, ports=ports(fake_openai), registry=REGISTRY, pools={"kb": {"result": results}}
    )
    context = "Sluice runs on Postgres.\n{{#start.name#}} stays literal."
    assert fake_openai.bodies()[-1]["messages"] == [
        {"role": "system", "content": f"Answer from this:\n{context}"},
        {"role": "user", "content": "I am Ada. user-1"},
    ]
    assert outcome.outputs == {"text": "echo: I am Ada. user-1"}
    result = next(r.result for r in rec.finished if r.node.id == "llm")
    assert result is not None
    assert result.inputs == {"#context#": context}
    assert result.process_data["prompts"][1] == {"role": "user", "text": "I am Ada. user-1", "files": []}


async def test_jinja2_prompts_use_their_variables(fake_openai: FakeOpenAI) -> None:
    prompt = [{"role": "user", "text": "", "edition_type": "jinja2", "jinja2_text": "{{ who | upper }}!"}]
    jinja = {"jinja2_variables": [{"variable": "who", "value_selector": ["start", "name"]}]}
    outcome, _, _ = await run_graph(
        flow(llm(prompt, prompt_config=jinja)), {"name": "ada"}, ports=ports(fake_openai), registry=REGISTRY
    )
    assert outcome.outputs == {"text": "echo: ADA!"}


async def test_completion_mode_sends_one_user_message(fake_openai: FakeOpenAI) -> None:
    g = flow(llm({"text": "Summarise {{#start.name#}}"}, mode="completion"))
    outcome, rec, _ = await run_graph(g, {"name": "this"}, ports=ports(fake_openai), registry=REGISTRY)
    assert outcome.outputs == {"text": "echo: Summarise this"}
    assert fake_openai.bodies()[-1]["messages"] == [{"role": "user", "content": "Summarise this"}]
    result = next(r.result for r in rec.finished if r.node.id == "llm")
    assert result is not None
    assert result.process_data["model_mode"] == "completion"


async def test_server_error_fails_the_node(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue_error(500, "the model fell over")
    outcome, rec, state = await run_graph(flow(llm(USER)), ports=ports(fake_openai), registry=REGISTRY)
    assert outcome.status == "failed"
    assert state.nodes["llm"].status == "failed"
    run = next(r for r in rec.finished if r.node.id == "llm")
    assert "HTTP 500" in (run.error or "")
    assert "the model fell over" in (run.error or "")
    assert run.error_type == "InvokeServerUnavailableError"


async def test_server_error_takes_the_fail_branch(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue_error(429, "slow down")
    g = flow(llm(USER, error_strategy="fail-branch"), fail_branch=True)
    outcome, _, state = await run_graph(g, ports=ports(fake_openai), registry=REGISTRY)
    assert outcome.status == "partial-succeeded"
    assert state.nodes["end"].status == "skipped"
    assert "HTTP 429" in outcome.outputs["error"]
    assert "slow down" in outcome.outputs["error"]


async def test_retry_after_a_server_error_succeeds(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue_error(500)
    retry = {"enabled": True, "max_retries": 2, "retry_interval": 10}
    outcome, _, state = await run_graph(
        flow(llm(USER, retry_config=retry)), {"name": "Ada"}, ports=ports(fake_openai), registry=REGISTRY
    )
    assert outcome.status == "succeeded"
    assert outcome.outputs == {"text": "echo: Hi Ada"}
    assert state.nodes["llm"].retries == 1
    assert len(fake_openai.bodies()) == 2


async def test_retry_config_in_difys_spelling(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue_error(500, times=2)
    retry = {"retry_enabled": True, "max_retries": 2, "retry_interval": 1}
    outcome, _, state = await run_graph(
        flow(llm(USER, retry_config=retry)), {"name": "Ada"}, ports=ports(fake_openai), registry=REGISTRY
    )
    assert outcome.status == "succeeded"
    assert state.nodes["llm"].retries == 2
    assert len(fake_openai.bodies()) == 3


async def test_no_llm_configured_fails_the_node() -> None:
    outcome, _, _ = await run_graph(flow(llm(USER)), ports=Ports(), registry=REGISTRY)
    assert outcome.status == "failed"
    assert "no LLM configured" in (outcome.error or "")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"model": {"name": ""}}, "model.name is required"),
        ({"prompt_template": {"text": "x"}}, "must be a list of messages"),
        ({"prompt_template": [{"role": "robot", "text": "x"}]}, "prompt_template"),
        ({"model": {"mode": "completion"}}, "must be an object with text"),
        (
            {"prompt_template": [{"role": "user", "edition_type": "jinja2", "jinja2_text": "{{ x"}]},
            "jinja2_text",
        ),
        (
            {"model": {"completion_params": {"response_format": "json_schema", "json_schema": "{"}}},
            "json_schema is not valid JSON",
        ),
    ],
)
def test_invalid_config_is_refused(data: dict[str, Any], message: str) -> None:
    spec = graph([llm(data.pop("prompt_template", USER), **data)], []).nodes["llm"]
    with pytest.raises(NodeConfigError, match=message):
        LLMNode(spec)


# --- the client on its own -------------------------------------------------------------------------


async def test_client_errors_are_readable(fake_openai: FakeOpenAI) -> None:
    client = OpenAIChat(fake_openai.base_url, timeout=0.3)
    fake_openai.queue_error(401, "bad key")
    with pytest.raises(NodeRunError, match=r"HTTP 401 for model 'm': bad key") as info:
        await client.chat("m", [{"role": "user", "content": "x"}], {})
    assert info.value.error_type == "InvokeAuthorizationError"
    fake_openai.queue_raw("data: {not json\n\n")
    with pytest.raises(NodeRunError, match="malformed JSON"):
        await client.chat("m", [{"role": "user", "content": "x"}], {})
    fake_openai.queue_reply("late", delay=1.0)
    with pytest.raises(NodeRunError, match=r"timed out after 0\.3 s") as info:
        await client.chat("m", [{"role": "user", "content": "x"}], {})
    # The endpoint is the operator's: run errors (shown to API callers) never carry its address.
    assert "127.0.0.1" not in str(info.value)
    assert "/v1" not in str(info.value)
    port = free_port()
    closed = OpenAIChat(f"http://127.0.0.1:{port}/v1")
    with pytest.raises(NodeRunError, match="failed") as info:
        await closed.chat("m", [{"role": "user", "content": "x"}], {})
    assert info.value.error_type == "InvokeConnectionError"
    assert str(port) not in str(info.value)
    assert "127.0.0.1" not in str(info.value)


async def test_client_reads_a_non_streaming_reply(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue_raw(
        '{"model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": "whole"},'
        ' "finish_reason": "length"}], "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}',
        media_type="application/json",
    )
    chunks: list[str] = []

    async def collect(text: str) -> None:
        chunks.append(text)

    reply = await OpenAIChat(fake_openai.base_url).chat("m", [{"role": "user", "content": "x"}], {}, collect)
    assert (reply.text, reply.finish_reason, reply.usage.total_tokens, chunks) == (
        "whole",
        "length",
        2,
        ["whole"],
    )
