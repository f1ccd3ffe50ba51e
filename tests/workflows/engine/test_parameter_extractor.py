"""`parameter-extractor` through the real engine and HTTP client, against the fake OpenAI server on loopback.

Node configs are the ones of the shared DSL corpus (Text_to_Card_Iteration, llm2o1.cn, Deep_Researcher).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.workflows.engine.errors import NodeConfigError
from app.workflows.engine.nodes.base import NodeResult, Ports
from app.workflows.engine.nodes.parameter_extractor import NOT_EXTRACTED, ParameterExtractorNode
from app.workflows.engine.nodes.parameter_extractor_prompts import TOOL_NAME
from app.workflows.llm import OpenAIChat
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_openai_fixture import fake_openai_fixture  # noqa: F401
from tests.workflows.engine.helpers import Recorder, edge, graph, node, run_graph

# Text_to_Card_Iteration.yml, node 1721731782529 (query from an http-request node's body)
CARD: dict[str, Any] = {
    "desc": "",
    "instruction": "提取URL的值",
    "model": {
        "completion_params": {"temperature": 0.7},
        "mode": "chat",
        "name": "doubao",
        "provider": "volcengine_maas",
    },
    "parameters": [
        {"description": "提取生成的图片链接", "name": "image_url", "required": False, "type": "string"}
    ],
    "query": ["1721710297246", "body"],
    "reasoning_mode": "prompt",
    "selected": False,
    "variables": [],
}
# llm2o1.cn.yml, node 1727188958486
STEPS: dict[str, Any] = {
    **CARD,
    "instruction": '提取内容中的步骤数组，示例如下： \n[ \n\t{ \n\t\t"name": "步骤名称", \n\t\t"content": "任务描述" \n\t} \n]',  # noqa: RUF001 (the corpus text, fullwidth punctuation included)
    "model": {
        "completion_params": {"temperature": 0.7},
        "mode": "chat",
        "name": "gpt-4o-mini",
        "provider": "openai",
    },
    "parameters": [
        {"description": "提取内容中的步骤数组", "name": "steps", "required": True, "type": "array[object]"}
    ],
    "query": ["llm", "text"],
}
# Deep_Researcher_On_Dify_.yml, node 1739191349072 (an instruction that reads another node's output)
KEYWORDS: dict[str, Any] = {
    **CARD,
    "instruction": "提取{{#1739112773493.subtitle1#}}中的2~6个关键词",
    "model": {
        "completion_params": {"temperature": 0.7},
        "mode": "chat",
        "name": "gemini-2.0-flash-exp",
        "provider": "google",
    },
    "parameters": [
        {
            "description": "提取语段中值得查询的2~6个关键词",
            "name": "Keyword1",
            "required": False,
            "type": "array[string]",
        }
    ],
    "query": ["1739112773493", "subtitle1"],
}
MIXED = [
    {"name": "city", "type": "string", "description": "the city", "required": True},
    {"name": "nights", "type": "number", "description": "how many nights", "required": False},
    {"name": "breakfast", "type": "bool", "description": "breakfast wanted", "required": False},
    {
        "name": "room",
        "type": "select",
        "options": ["single", "double"],
        "description": "room",
        "required": False,
    },
    {"name": "guests", "type": "array[string]", "description": "guest names", "required": False},
]
POOLS = {
    "1721710297246": {"body": "Your card is ready: https://img.example/card.png"},
    "llm": {"text": "Step 1: plan. Step 2: build."},
    "1739112773493": {"subtitle1": "Postgres as a queue"},
    "src": {"text": "Paris for 3 nights, breakfast please, for Ada and Bob. {{#sys.user_id#}}"},
}


def extractor(config: dict[str, Any], **data: Any) -> dict[str, Any]:
    return node("pe", "parameter-extractor", **{**config, **data})


def flow(pe: dict[str, Any], *, fail_branch: bool = False) -> Any:
    nodes = [node("start", "start", variables=[]), pe, node("end", "end", outputs=[])]
    edges = [edge("start", "pe"), edge("pe", "end")]
    if fail_branch:
        nodes.append(
            node("sorry", "end", outputs=[{"variable": "error", "value_selector": ["pe", "error_message"]}])
        )
        edges.append(edge("pe", "sorry", "fail-branch"))
    return graph(nodes, edges)


async def extract(
    fake: FakeOpenAI, pe: dict[str, Any], *, no_tool_models: tuple[str, ...] = (), **kwargs: Any
) -> tuple[NodeResult, Recorder, Any]:
    ports = Ports(llm=OpenAIChat(fake.base_url, no_tool_models=no_tool_models))
    _, rec, state = await run_graph(flow(pe, **kwargs), ports=ports, pools=POOLS)
    run = next(r for r in rec.finished if r.node.id == "pe")
    assert run.result is not None, run.error
    return run.result, rec, state


def mixed(**data: Any) -> dict[str, Any]:
    model = {"provider": "openai", "name": "gpt-4o", "mode": "chat", "completion_params": {}}
    base = {"parameters": MIXED, "query": ["src", "text"], "instruction": "", "model": model}
    return extractor(CARD, **{**base, **data})


# --- prompts ----------------------------------------------------------------------------------------


async def test_prompt_mode_chat_structure_and_outputs(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue_reply('```json\n{"image_url": "https://img.example/card.png"}\n```')
    result, _, state = await extract(fake_openai, extractor(CARD))
    body = fake_openai.bodies()[-1]
    assert "tools" not in body
    assert body["stream"] is False
    assert body["temperature"] == 0.7
    assert body["model"] == "doubao"
    messages = body["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    system = messages[0]["content"]
    assert "<instructions>\n提取URL的值\n</instructions>" in system
    assert "<histories>\n\n</histories>" in system
    schema = {
        "type": "object",
        "properties": {"image_url": {"description": "提取生成的图片链接", "type": "string"}},
        "required": [],
    }
    last = messages[-1]["content"]
    assert last.startswith("### Structure")
    assert f"<structure>\n{json.dumps(schema)}\n</structure>" in last
    assert "\\u63d0\\u53d6" in last  # the schema keeps JSON's default escaping, as Dify sends it
    assert "<text>\nYour card is ready: https://img.example/card.png\n</text>" in last
    assert json.loads(messages[2]["content"]) == {"location": "San Francisco"}
    assert json.loads(messages[4]["content"]) == {"food": "apple pie"}
    assert "<structure>" in messages[1]["content"]
    assert "<text>" in messages[3]["content"]

    usage = result.outputs["__usage"]
    assert result.outputs == {
        "__is_success": 1,
        "__reason": None,
        "__usage": usage,
        "image_url": "https://img.example/card.png",
    }
    assert usage["total_tokens"] == result.tokens > 0
    assert state.tokens == result.tokens
    assert result.inputs["query"] == POOLS["1721710297246"]["body"]
    assert result.inputs["instruction"] == "提取URL的值"
    assert result.inputs["model_name"] == "doubao"
    assert result.inputs["files"] == []
    assert result.process_data["function"] == {}
    assert result.process_data["tool_call"] is None
    assert result.process_data["llm_text"].startswith("```json")
    assert result.process_data["model_mode"] == "chat"
    assert [p["role"] for p in result.process_data["prompts"]] == [m["role"] for m in messages]


async def test_function_calling_sends_the_tool_and_reads_the_call(fake_openai: FakeOpenAI) -> None:
    fake_openai.add_rule("Paris for 3 nights", tool_calls=[{"arguments": {"city": "Paris", "nights": 3}}])
    result, _, _ = await extract(fake_openai, mixed(reasoning_mode=None))
    body = fake_openai.bodies()[-1]
    (tool,) = body["tools"]
    assert tool["type"] == "function"
    assert tool["function"]["name"] == TOOL_NAME
    schema = tool["function"]["parameters"]
    assert schema["required"] == ["city"]
    assert list(schema["properties"]) == [p["name"] for p in MIXED]
    assert schema["properties"]["breakfast"] == {"description": "breakfast wanted", "type": "boolean"}
    assert schema["properties"]["room"] == {
        "description": "room",
        "type": "string",
        "enum": ["single", "double"],
    }
    assert schema["properties"]["guests"] == {
        "description": "guest names",
        "type": "array",
        "items": {"type": "string"},
    }
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system"] + ["user", "assistant", "tool", "assistant"] * 2 + ["user"]
    example_call = body["messages"][2]["tool_calls"][0]
    assert example_call["function"] == {"name": TOOL_NAME, "arguments": '{"location": "San Francisco"}'}
    assert body["messages"][3]["tool_call_id"] == example_call["id"]
    assert "extract_parameters" in body["messages"][0]["content"]
    last = body["messages"][-1]["content"]
    assert "<context>\nParis for 3 nights" in last
    assert f"<structure>\n{json.dumps(schema)}\n</structure>" in last

    # The model left out three optional parameters: valid values, but Dify's exact-count rule fails it.
    assert result.outputs["__is_success"] == 0
    assert result.outputs["__reason"] == "Invalid number of parameters"
    assert {k: result.outputs[k] for k in ("city", "nights", "breakfast", "room", "guests")} == {
        "city": "Paris",
        "nights": 3,
        "breakfast": False,
        "room": "",
        "guests": [],
    }
    assert result.process_data["function"] == tool
    assert result.process_data["tool_call"]["function"]["arguments"] == '{"city": "Paris", "nights": 3}'


async def test_function_calling_all_parameters_succeeds(fake_openai: FakeOpenAI) -> None:
    arguments = {"city": "Paris", "nights": 3, "breakfast": True, "room": "double", "guests": ["Ada", "Bob"]}
    fake_openai.queue_reply(tool_calls=[{"arguments": arguments}, {"arguments": {"city": "ignored"}}])
    result, _, _ = await extract(fake_openai, mixed(reasoning_mode="function_call"))
    assert result.outputs["__is_success"] == 1
    assert result.outputs["__reason"] is None
    assert {k: result.outputs[k] for k in arguments} == arguments  # the first call wins


async def test_models_without_tool_calls_use_prompt_mode(fake_openai: FakeOpenAI) -> None:
    await extract(fake_openai, mixed(reasoning_mode="function_call"), no_tool_models=("gpt-4o",))
    body = fake_openai.bodies()[-1]
    assert "tools" not in body
    assert body["messages"][-1]["content"].startswith("### Structure")


async def test_completion_mode_is_one_prompt_ending_in_a_json_fence(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue_reply('{"image_url": "u"}\n```')
    pe = extractor(CARD, model={**CARD["model"], "mode": "completion"}, reasoning_mode="function_call")
    result, _, _ = await extract(fake_openai, pe)
    (message,) = fake_openai.bodies()[-1]["messages"]
    assert message["role"] == "user"
    assert message["content"].endswith(
        "### Answer\nI always output one valid JSON object and nothing else.\n```JSON"
    )
    assert "<information to be extracted>\n{" in message["content"]
    assert "<text>\nYour card" in message["content"]
    assert "tools" not in fake_openai.bodies()[-1]
    assert result.outputs["image_url"] == "u"
    assert result.process_data["model_mode"] == "completion"
    assert result.process_data["prompts"] == [{"role": "user", "text": message["content"]}]


async def test_instruction_is_templated_but_the_query_is_not(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue_reply('{"Keyword1": ["Postgres", "queue"]}')
    result, _, _ = await extract(fake_openai, extractor(KEYWORDS))
    system = fake_openai.bodies()[-1]["messages"][0]["content"]
    assert "<instructions>\n提取Postgres as a queue中的2~6个关键词\n</instructions>" in system
    assert result.outputs["Keyword1"] == ["Postgres", "queue"]
    assert result.outputs["__is_success"] == 1

    fake_openai.queue_reply("{}")
    await extract(fake_openai, mixed(reasoning_mode="prompt", instruction="for {{#sys.user_id#}}"))
    messages = fake_openai.bodies()[-1]["messages"]
    assert "for user-1" in messages[0]["content"]
    assert "{{#sys.user_id#}}" in messages[-1]["content"]
    assert "user-1" not in messages[-1]["content"]


async def test_completion_param_templates_are_resolved(fake_openai: FakeOpenAI) -> None:
    model = {**CARD["model"], "completion_params": {"temperature": "{{#src.t#}}", "stop": ["END"]}}
    ports = Ports(llm=OpenAIChat(fake_openai.base_url))
    await run_graph(flow(extractor(CARD, model=model)), ports=ports, pools={**POOLS, "src": {"t": "0.25"}})
    body = fake_openai.bodies()[-1]
    assert body["temperature"] == 0.25
    assert body["stop"] == ["END"]


# --- reading and judging the answer -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "reason", "values"),
    [
        (  # all present and valid
            '{"city": "Paris", "nights": 3, "breakfast": true, "room": "single", "guests": ["Ada"]}',
            None,
            {"city": "Paris", "nights": 3, "breakfast": True, "room": "single", "guests": ["Ada"]},
        ),
        (  # an extra key: the exact-count rule fails it, values are still cleaned
            '{"city": "Paris", "nights": 3, "breakfast": true, "room": "single", "guests": [], "x": 1}',
            "Invalid number of parameters",
            {"city": "Paris", "nights": 3, "breakfast": True, "room": "single", "guests": []},
        ),
        (  # the required city missing while the count matches
            '{"x": "Paris", "nights": 3, "breakfast": true, "room": "single", "guests": []}',
            "Parameter city is required",
            {"city": "", "nights": 3, "breakfast": True, "room": "single", "guests": []},
        ),
        (  # a numeric string is a wrong type, but the transformation still makes it a number
            '{"city": "Paris", "nights": "12", "breakfast": 1, "room": "double", "guests": ["Ada", 7]}',
            "Invalid value for parameter nights, expected segment type: number, actual_type: string, "
            "python_type: <class 'str'>, value: 12",
            {"city": "Paris", "nights": 12, "breakfast": True, "room": "double", "guests": ["Ada"]},
        ),
        (  # an array element of the wrong type (arrays are checked element by element)
            '{"city": "Paris", "nights": 2.5, "breakfast": false, "room": "single", "guests": ["Ada", 7]}',
            "Invalid value for parameter guests, expected segment type: array[string], actual_type: array[any], "
            "python_type: <class 'list'>, value: ['Ada', 7]",
            {"city": "Paris", "nights": 2.5, "breakfast": False, "room": "single", "guests": ["Ada"]},
        ),
        (  # a select value outside its options
            '{"city": "Paris", "nights": true, "breakfast": false, "room": "suite", "guests": []}',
            "Invalid `select` value for parameter room",
            {"city": "Paris", "nights": 1, "breakfast": False, "room": "suite", "guests": []},
        ),
        (  # two JSON objects: the first one is the answer (Dify issue 42006)
            'Sure! {"city": "Paris", "nights": 1, "breakfast": false, "room": "single", "guests": []} '
            'and also {"city": "Rome"}',
            None,
            {"city": "Paris", "nights": 1, "breakfast": False, "room": "single", "guests": []},
        ),
        (  # a "}" inside a string does not end the object
            'Here: [{"city": "Pa}ris", "nights": 1, "breakfast": false, "room": "single", "guests": []}]',
            None,
            {"city": "Pa}ris", "nights": 1, "breakfast": False, "room": "single", "guests": []},
        ),
        (  # garbage: defaults for scalars, arrays absent, so the count rule wins over "Failed to extract"
            "I cannot help with that.",
            "Invalid number of parameters",
            {"city": "", "nights": 0, "breakfast": False, "room": "", "guests": []},
        ),
    ],
)
async def test_answers_are_validated_and_cleaned(
    fake_openai: FakeOpenAI, answer: str, reason: str | None, values: dict[str, Any]
) -> None:
    fake_openai.queue_reply(answer)
    result, rec, _ = await extract(fake_openai, mixed(reasoning_mode="prompt"))
    assert rec.status("pe") == "succeeded"
    assert result.outputs["__reason"] == reason
    assert result.outputs["__is_success"] == (0 if reason else 1)
    assert {k: v for k, v in result.outputs.items() if not k.startswith("__")} == values


async def test_garbage_without_arrays_reports_the_failed_extraction(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue_reply("no json here, only {broken")
    result, _, _ = await extract(fake_openai, extractor(CARD))
    assert result.outputs["__reason"] == NOT_EXTRACTED
    assert result.outputs["__is_success"] == 0
    assert result.outputs["image_url"] == ""


async def test_unreadable_tool_arguments_fail_the_count_rule(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue_reply(tool_calls=[{"arguments": "city=Paris"}])
    result, _, _ = await extract(fake_openai, extractor(CARD, reasoning_mode="function_call"))
    assert result.outputs["__reason"] == "Invalid number of parameters"
    assert result.outputs["image_url"] == ""


async def test_required_array_of_objects(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue_reply('{"steps": [{"name": "plan", "content": "x"}, "stray", {"name": "build"}]}')
    result, _, _ = await extract(fake_openai, extractor(STEPS))
    assert result.outputs["steps"] == [{"name": "plan", "content": "x"}, {"name": "build"}]
    assert result.outputs["__reason"].startswith(
        "Invalid value for parameter steps, expected segment type: array[object]"
    )


# --- failures, error strategies, retries ------------------------------------------------------------


async def test_model_failure_fails_the_node_and_retries_are_ignored(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue_error(500, "down", times=2)
    retry = {"retry_enabled": True, "max_retries": 3, "retry_interval": 1}
    ports = Ports(llm=OpenAIChat(fake_openai.base_url))
    outcome, rec, state = await run_graph(flow(extractor(CARD, retry_config=retry)), ports=ports, pools=POOLS)
    assert outcome.status == "failed"
    assert state.nodes["pe"].status == "failed"
    run = next(r for r in rec.finished if r.node.id == "pe")
    assert run.error_type == "InvokeServerUnavailableError"
    assert "down" in (run.error or "")
    assert len(fake_openai.bodies()) == 1
    assert state.nodes["pe"].retries == 0


async def test_fail_branch_and_default_value(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue_error(429, "slow down")
    ports = Ports(llm=OpenAIChat(fake_openai.base_url))
    g = flow(extractor(CARD, error_strategy="fail-branch"), fail_branch=True)
    outcome, _, state = await run_graph(g, ports=ports, pools=POOLS)
    assert outcome.status == "partial-succeeded"
    assert state.nodes["end"].status == "skipped"
    assert "slow down" in outcome.outputs["error"]

    fake_openai.queue_error(429, "slow down")
    defaults = [{"key": "image_url", "type": "string", "value": "none"}]
    g = flow(extractor(CARD, error_strategy="default-value", default_value=defaults))
    outcome, _, state = await run_graph(g, ports=ports, pools=POOLS)
    assert outcome.status == "partial-succeeded"
    assert state.nodes["end"].status == "succeeded"
    assert state.pool["pe"]["image_url"] == "none"
    assert state.pool["pe"]["error_type"] == "InvokeRateLimitError"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"model": {"name": ""}}, "model.name is required"),
        ({"query": None}, "query must be a variable selector"),
        ({"parameters": [{"name": "__reason", "type": "string"}]}, "reserved"),
        ({"parameters": [{"name": "", "type": "string"}]}, "name is required"),
        ({"parameters": [{"name": "f", "type": "file"}]}, "type 'file' is not allowed"),
        ({"reasoning_mode": "telepathy"}, "reasoning_mode"),
    ],
)
def test_invalid_config_is_refused(data: dict[str, Any], message: str) -> None:
    spec = graph([extractor(CARD, **data)], []).nodes["pe"]
    with pytest.raises(NodeConfigError, match=message):
        ParameterExtractorNode(spec)


def test_legacy_types_are_normalised() -> None:
    params = [{"name": "b", "type": "bool"}, {"name": "s", "type": "select", "options": ["x"]}]
    pe = ParameterExtractorNode(graph([extractor(CARD, parameters=params)], []).nodes["pe"])
    assert [p.type for p in pe.parameters] == ["boolean", "string"]
    assert pe.retry.enabled is False
