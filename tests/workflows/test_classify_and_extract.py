"""A question-classifier routing to parameter-extractors, run for real: DSL import, the worker, the Service API
(blocking and streaming) and the fake OpenAI server answering by rule, as a corpus DSL would be run.

The classifier is Document_chat_template.yml's; the extractors follow Text_to_Card_Iteration.yml and
llm2o1.cn.yml (function calling on one branch, prompt mode on the other).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import ADMIN_TOKEN
from tests.support.fake_openai import FakeOpenAI
from tests.workflows.conftest import import_app, sse_events

MODEL = {
    "provider": "deepseek",
    "name": "deepseek-chat",
    "mode": "chat",
    "completion_params": {"temperature": 0.2},
}
CLASSIFIER = {
    "type": "question-classifier",
    "title": "Question Classifier",
    "classes": [
        {"id": "1", "name": "安装"},
        {"id": "2", "name": "提问"},
        {"id": "1720796069925", "name": "架构"},
        {"id": "1720839653345", "name": "其他"},
    ],
    "instruction": "",
    "instructions": "",
    "topics": [],
    "model": MODEL,
    "query_variable_selector": ["start", "question"],
}
INSTALL = {
    "type": "parameter-extractor",
    "title": "Install details",
    "instruction": "Extract what the user wants to install.",
    "model": MODEL,
    "parameters": [
        {"name": "tool", "type": "string", "description": "the tool", "required": True},
        {"name": "version", "type": "number", "description": "its version", "required": False},
        {"name": "platforms", "type": "array[string]", "description": "platforms", "required": False},
    ],
    "query": ["start", "question"],
    "reasoning_mode": "function_call",
    "variables": [],
}
STEPS = {
    "type": "parameter-extractor",
    "title": "任务提取",
    "instruction": "提取内容中的步骤数组",
    "model": {**MODEL, "name": "gpt-4o-mini", "provider": "openai"},
    "parameters": [
        {"description": "提取内容中的步骤数组", "name": "steps", "required": True, "type": "array[object]"}
    ],
    "query": ["start", "question"],
    "reasoning_mode": "prompt",
    "variables": [],
}


def end(node_id: str, **outputs: list[str]) -> dict[str, Any]:
    variables = [{"variable": k, "value_selector": v} for k, v in outputs.items()]
    return {"id": node_id, "data": {"type": "end", "title": node_id, "outputs": variables}}


class NoAliases(yaml.SafeDumper):
    """Shared dicts written out each time: DSL import refuses YAML anchors and aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


DSL = yaml.dump(
    {
        "version": "0.1.5",
        "kind": "app",
        "app": {"name": "Classify and extract", "mode": "workflow"},
        "workflow": {
            "graph": {
                "nodes": [
                    {
                        "id": "start",
                        "data": {
                            "type": "start",
                            "title": "Start",
                            "variables": [
                                {"variable": "question", "label": "Q", "type": "paragraph", "required": True}
                            ],
                        },
                    },
                    {"id": "qc", "data": CLASSIFIER},
                    {"id": "install", "data": INSTALL},
                    {"id": "steps", "data": STEPS},
                    end(
                        "install_end",
                        cls=["qc", "class_name"],
                        tool=["install", "tool"],
                        version=["install", "version"],
                        platforms=["install", "platforms"],
                        ok=["install", "__is_success"],
                        reason=["install", "__reason"],
                    ),
                    end(
                        "steps_end",
                        cls=["qc", "class_name"],
                        steps=["steps", "steps"],
                        ok=["steps", "__is_success"],
                    ),
                    end("other_end", cls=["qc", "class_name"], id=["qc", "class_id"]),
                ],
                "edges": [
                    {"id": "e1", "source": "start", "target": "qc", "sourceHandle": "source"},
                    {"id": "e2", "source": "qc", "target": "install", "sourceHandle": "1"},
                    {"id": "e3", "source": "qc", "target": "steps", "sourceHandle": "2"},
                    {"id": "e4", "source": "qc", "target": "other_end", "sourceHandle": "1720796069925"},
                    {"id": "e5", "source": "qc", "target": "other_end", "sourceHandle": "1720839653345"},
                    {"id": "e6", "source": "install", "target": "install_end", "sourceHandle": "source"},
                    {"id": "e7", "source": "steps", "target": "steps_end", "sourceHandle": "source"},
                ],
            }
        },
    },
    allow_unicode=True,
    Dumper=NoAliases,
)

INSTALL_Q = "how do I install docker 24 on linux and mac?"
STEPS_Q = "what are the steps to back up postgres?"
DESIGN_Q = "explain the architecture"


def category(category_id: str) -> str:
    return json.dumps({"keywords": [], "category_id": category_id, "category_name": "?"})


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def llm_base_url(fake_llm: FakeOpenAI) -> str:
    return fake_llm.base_url


@pytest.fixture
def rules(fake_llm: FakeOpenAI) -> Iterator[FakeOpenAI]:
    """Canned answers, as a corpus run would set them: the classifier's input object starts ``["<question>``,
    the function-calling extractor's context ``<context>\\n<question>``, the prompt-mode one ``<text>\\n``."""
    fake_llm.reset()
    fake_llm.add_rule(f'["{INSTALL_Q}', category("1"))
    fake_llm.add_rule(f'["{STEPS_Q}', f"```json\n{category('2')}\n```")
    fake_llm.add_rule(
        f'["{DESIGN_Q}', f"<think>the user means {category('2')}</think>{category('1720796069925')}"
    )
    arguments = {"tool": "docker", "version": "24", "platforms": ["linux", "mac"]}
    fake_llm.add_rule(f"<context>\n{INSTALL_Q}", tool_calls=[{"arguments": arguments}])
    fake_llm.add_rule(f"<text>\n{STEPS_Q}", '{"steps": [{"name": "dump", "content": "pg_dump"}]}')
    yield fake_llm
    fake_llm.reset()


async def run(client: AsyncTestClient[Litestar], headers: dict[str, str], question: str, mode: str) -> Any:
    response = await client.post(
        "/v1/workflows/run",
        json={"inputs": {"question": question}, "response_mode": mode, "user": "u1"},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    return response.json() if mode == "blocking" else sse_events(response.text)


async def test_function_calling_branch(wf_client: AsyncTestClient[Litestar], rules: FakeOpenAI) -> None:
    app = await import_app(wf_client, DSL)
    data = (await run(wf_client, app.headers, INSTALL_Q, "blocking"))["data"]
    assert data["status"] == "succeeded", data
    # "24" arrives as a string: the type check fails (__is_success 0), the transformation still gives 24
    assert data["outputs"] == {
        "cls": "安装",
        "tool": "docker",
        "version": 24,
        "platforms": ["linux", "mac"],
        "ok": 0,
        "reason": "Invalid value for parameter version, expected segment type: number, actual_type: string, "
        "python_type: <class 'str'>, value: 24",
    }
    classify, extract = rules.bodies()
    assert "tools" not in classify
    assert classify["stream"] is True
    assert extract["tools"][0]["function"]["name"] == "extract_parameters"
    assert extract["stream"] is False
    assert data["total_steps"] == 4
    assert data["total_tokens"] > 0


async def test_prompt_mode_branch_streamed(wf_client: AsyncTestClient[Litestar], rules: FakeOpenAI) -> None:
    app = await import_app(wf_client, DSL)
    events = [e for _, e in await run(wf_client, app.headers, STEPS_Q, "streaming")]
    finished = {e["data"]["node_id"]: e["data"] for e in events if e["event"] == "node_finished"}
    assert list(finished) == ["start", "qc", "steps", "steps_end"]
    qc = finished["qc"]
    assert qc["outputs"]["class_id"] == "2"
    assert qc["outputs"]["class_name"] == "提问"
    assert qc["outputs"]["class_label"] == "CLASS 2"
    assert qc["node_type"] == "question-classifier"
    steps = finished["steps"]
    assert steps["outputs"]["__is_success"] == 1
    assert steps["outputs"]["steps"] == [{"name": "dump", "content": "pg_dump"}]
    assert steps["process_data"]["function"] == {}
    assert steps["process_data"]["model_mode"] == "chat"
    tokens = qc["execution_metadata"]["total_tokens"] + steps["execution_metadata"]["total_tokens"]
    workflow = events[-1]["data"]
    assert workflow["status"] == "succeeded"
    assert workflow["total_tokens"] == tokens > 0
    assert workflow["outputs"] == {"cls": "提问", "steps": [{"name": "dump", "content": "pg_dump"}], "ok": 1}
    assert "tools" not in rules.bodies()[-1]


async def test_think_blocks_are_ignored_and_unused_branches_skipped(
    wf_client: AsyncTestClient[Litestar], rules: FakeOpenAI
) -> None:
    app = await import_app(wf_client, DSL)
    data = (await run(wf_client, app.headers, DESIGN_Q, "blocking"))["data"]
    assert data["status"] == "succeeded"
    assert data["outputs"] == {"cls": "架构", "id": "1720796069925"}
    assert len(rules.bodies()) == 1
    assert data["total_steps"] == 3


async def test_an_unreadable_classification_fails_the_run(
    wf_client: AsyncTestClient[Litestar], rules: FakeOpenAI
) -> None:
    app = await import_app(wf_client, DSL)
    rules.queue_reply("Sorry, I can only chat.")
    data = (await run(wf_client, app.headers, INSTALL_Q, "blocking"))["data"]
    assert data["status"] == "failed"
    assert "could not find json block in the output." in data["error"]
    assert data["total_tokens"] > 0


async def test_bad_node_configs_are_refused_at_import(wf_client: AsyncTestClient[Litestar]) -> None:
    no_classes = DSL.replace("classes:", "old_classes:")
    for yaml_text, message in (
        (DSL.replace("type: array[string]", "type: file"), "type 'file' is not allowed"),
        (DSL.replace("reasoning_mode: prompt", "reasoning_mode: telepathy"), "reasoning_mode"),
        (no_classes, "classes must list at least one class"),
    ):
        response = await wf_client.post(
            "/console/api/apps/imports",
            json={"mode": "yaml-content", "yaml_content": yaml_text},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert response.status_code == 400, response.text
        assert message in response.json()["message"], response.text
