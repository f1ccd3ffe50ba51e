"""`question-classifier` through the real engine and HTTP client, against the fake OpenAI server on loopback.

The node config is the one of the shared DSL corpus (Document_chat_template.yml, node 1720795163496).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from app.workflows.engine.errors import NodeConfigError
from app.workflows.engine.nodes.base import Ports
from app.workflows.engine.nodes.question_classifier import QuestionClassifierNode, Unreadable, read_answer
from app.workflows.llm import OpenAIChat
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_openai_fixture import fake_openai_fixture  # noqa: F401
from tests.workflows.engine.helpers import Recorder, edge, graph, node, run_graph

QC: dict[str, Any] = {
    "classes": [
        {"id": "1", "name": "安装"},
        {"id": "2", "name": "提问"},
        {"id": "1720796069925", "name": "架构"},
        {"id": "1720839653345", "name": "其他"},
    ],
    "desc": "",
    "instruction": "",
    "instructions": "",
    "model": {
        "completion_params": {
            "frequency_penalty": 0.5,
            "presence_penalty": 0.5,
            "temperature": 0.2,
            "top_p": 0.75,
        },
        "mode": "chat",
        "name": "deepseek-chat",
        "provider": "deepseek",
    },
    "query_variable_selector": ["1720795218540", "text"],
    "selected": False,
    "topics": [],
}
QUESTION = "怎么用 docker 部署?"
POOLS = {"1720795218540": {"text": QUESTION}, "src": {"topic": "Postgres", "who": "ops"}}
BRANCHES = {"1": "install", "2": "ask", "1720796069925": "design", "1720839653345": "other"}


def flow(qc: dict[str, Any], *, fail_branch: bool = False, branches: dict[str, str] = BRANCHES) -> Any:
    nodes = [node("start", "start", variables=[]), node("qc", "question-classifier", **qc)]
    edges = [edge("start", "qc")]
    for handle, target in branches.items():
        nodes.append(
            node(target, "end", outputs=[{"variable": "class", "value_selector": ["qc", "class_name"]}])
        )
        edges.append(edge("qc", target, handle))
    if fail_branch:
        nodes.append(
            node("sorry", "end", outputs=[{"variable": "error", "value_selector": ["qc", "error_message"]}])
        )
        edges.append(edge("qc", "sorry", "fail-branch"))
    return graph(nodes, edges)


async def classify(fake: FakeOpenAI, qc: dict[str, Any] = QC, **kwargs: Any) -> tuple[Any, Recorder, Any]:
    ports = Ports(llm=OpenAIChat(fake.base_url))
    return await run_graph(flow(qc, **kwargs), ports=ports, pools=POOLS)


def answer(category_id: Any, name: str = "x", **extra: Any) -> str:
    return json.dumps({"keywords": ["k"], "category_id": category_id, "category_name": name, **extra})


def taken(state: Any) -> list[str]:
    return [
        target
        for target in BRANCHES.values()
        if state.nodes.get(target) and state.nodes[target].status == "succeeded"
    ]


async def test_prompt_structure_and_the_chosen_branch(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue_reply(f"```json\n{answer('1720796069925', '架构')}\n```")
    outcome, rec, state = await classify(fake_openai)
    body = fake_openai.bodies()[-1]
    assert body["model"] == "deepseek-chat"
    assert body["temperature"] == 0.2
    assert body["top_p"] == 0.75
    assert body["frequency_penalty"] == 0.5
    assert "tools" not in body
    messages = body["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    system = messages[0]["content"]
    for section in ("### Job Description", "### Task", "### Format", "### Constraint", "### Memory"):
        assert section in system
    assert "<histories>\n\n</histories>" in system
    for example in (messages[2]["content"], messages[4]["content"]):
        assert example.startswith("```json\n")
        assert "category_id" in json.loads(example[8:-4])
    assert (
        '"input_text": ["The service was poor and the food took ages to arrive."]' in messages[3]["content"]
    )
    categories = json.dumps(
        [{"category_id": c["id"], "category_name": c["name"]} for c in QC["classes"]], ensure_ascii=False
    )
    assert messages[-1]["content"] == (
        f'{{"input_text": ["{QUESTION}"],\n"categories": {categories},\n"classification_instructions": [""]}}'
    )
    assert "安装" in messages[-1]["content"]  # non-ASCII kept as is

    assert outcome.status == "succeeded"
    assert taken(state) == ["design"]
    assert outcome.outputs == {"class": "架构"}
    assert [state.nodes[n].status for n in ("install", "ask", "other")] == ["skipped"] * 3
    run = next(r for r in rec.finished if r.node.id == "qc")
    assert run.result is not None
    assert run.result.edge_source_handle == "1720796069925"
    usage = run.result.outputs["usage"]
    assert run.result.outputs == {
        "class_name": "架构",
        "class_label": "CLASS 3",
        "class_id": "1720796069925",
        "usage": usage,
    }
    assert usage["total_tokens"] == run.result.tokens == state.tokens > 0
    assert run.result.inputs == {
        "query": QUESTION,
        "model_provider": "deepseek",
        "model_name": "deepseek-chat",
    }
    assert run.result.process_data["finish_reason"] == "stop"
    assert len(run.result.process_data["prompts"]) == 6
    assert rec.chunks == []  # the classifier's answer is not streamed to listeners


@pytest.mark.parametrize(
    ("reply", "branch"),
    [
        (answer("2"), "ask"),
        (answer(2), "ask"),  # a number where the id is "2" (Dify would fall back to the first class)
        (answer("no-such-class"), "install"),  # unknown id: the first class
        ('{"category_id": "2"}', "install"),  # Dify needs both keys, else the first class
        ('{"mood": "sunny"}', "install"),
        (f"[{answer('2')}]", "ask"),  # a one-object list is unwrapped
        (f"{answer('2')}\n{answer('1')}", "ask"),  # two objects: the first (Dify: "Extra data", issue 42006)
        (f"<think>maybe {answer('1')}</think>\n{answer('1720839653345')}", "other"),
        ('`"just a string"`', "install"),  # JSON, but not an object: the first class
        (f"[{answer('2')}, {answer('1')}]", "ask"),  # Dify starts at the first "{": "Extra data" there
    ],
)
async def test_answers_choose_a_branch(fake_openai: FakeOpenAI, reply: str, branch: str) -> None:
    fake_openai.queue_reply(reply)
    outcome, _, state = await classify(fake_openai)
    assert outcome.status == "succeeded"
    assert taken(state) == [branch]


@pytest.mark.parametrize(
    ("reply", "error_type", "message"),
    [
        ("I think it is about installing.", "ValueError", "could not find json block in the output."),
        ('{"category_id": "2", }', "OutputParserError", "got invalid json object. error: "),
        ('{"category_id": "2", ', "ValueError", "could not find json block in the output."),
        ('["1", "2"]', "OutputParserError", "got invalid return object. obj:['1', '2']"),
    ],
)
async def test_unreadable_answers_fail_the_node(
    fake_openai: FakeOpenAI, reply: str, error_type: str, message: str
) -> None:
    fake_openai.queue_reply(reply, usage={"prompt_tokens": 40, "completion_tokens": 2, "total_tokens": 42})
    outcome, rec, state = await classify(fake_openai)
    assert outcome.status == "failed"
    assert state.nodes["qc"].status == "failed"
    run = next(r for r in rec.finished if r.node.id == "qc")
    assert run.error_type == error_type
    assert (run.error or "").startswith(message)
    assert state.tokens == 42
    assert taken(state) == []


async def test_fail_branch_takes_over_from_every_class(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue_reply("no idea", usage={"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7})
    outcome, _, state = await classify(fake_openai, {**QC, "error_strategy": "fail-branch"}, fail_branch=True)
    assert outcome.status == "partial-succeeded"
    assert state.nodes["sorry"].status == "succeeded"
    assert taken(state) == []
    assert outcome.outputs == {"error": "could not find json block in the output."}
    assert state.tokens == 7


async def test_model_errors_fail_and_retries_are_ignored(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue_error(503, "overloaded", times=3)
    retry = {"retry_enabled": True, "max_retries": 2, "retry_interval": 1}
    outcome, rec, state = await classify(fake_openai, {**QC, "retry_config": retry})
    run = next(r for r in rec.finished if r.node.id == "qc")
    assert outcome.status == "failed"
    assert run.error_type == "InvokeServerUnavailableError"
    assert len(fake_openai.bodies()) == 1
    assert state.nodes["qc"].retries == 0


async def test_templates_in_names_and_instruction_but_not_in_the_query(fake_openai: FakeOpenAI) -> None:
    classes = [{"id": "a", "name": "About {{#src.topic#}}", "label": "topic"}, {"id": "b", "name": "Other"}]
    qc = {
        **QC,
        "classes": classes,
        "instruction": "Asked by {{#src.who#}}",
        "query_variable_selector": ["q", "text"],
    }
    fake_openai.queue_reply(answer("a"))
    ports = Ports(llm=OpenAIChat(fake_openai.base_url))
    pools = {**POOLS, "q": {"text": 'say "{{#src.who#}}"'}}
    outcome, rec, _ = await run_graph(
        flow(qc, branches={"a": "install", "b": "ask"}), ports=ports, pools=pools
    )
    last = fake_openai.bodies()[-1]["messages"][-1]["content"]
    assert '"category_name": "About Postgres"' in last
    assert '"classification_instructions": ["Asked by ops"]' in last
    assert '"input_text": ["say "{{#src.who#}}""]' in last  # raw, unescaped, and never read as a template
    run = next(r for r in rec.finished if r.node.id == "qc")
    assert run.result is not None
    assert run.result.outputs["class_name"] == "About Postgres"
    assert run.result.outputs["class_label"] == "topic"
    assert outcome.outputs == {"class": "About Postgres"}


async def test_completion_mode_is_one_prompt(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue_reply(answer("2"))
    qc = {**QC, "model": {**QC["model"], "mode": "completion"}, "instruction": "be brief"}
    _, rec, state = await classify(fake_openai, qc)
    (message,) = fake_openai.bodies()[-1]["messages"]
    text = message["content"]
    assert message["role"] == "user"
    assert text.endswith("### User Input\n" + text.split("### User Input\n")[1])
    assert "<example>\nUser:{" in text
    assert "\nAssistant:{" in text
    assert "</example>" in text
    assert f'{{"input_text": ["{QUESTION}"], "categories": ' in text
    assert text.endswith("### Assistant Output\n")
    assert '"classification_instructions": ["be brief"]}' in text
    assert taken(state) == ["ask"]
    run = next(r for r in rec.finished if r.node.id == "qc")
    assert run.result is not None
    assert run.result.process_data["prompts"] == [{"role": "user", "text": text}]


async def test_a_class_without_an_edge_ends_the_path(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue_reply(answer("1720839653345"))
    outcome, _, state = await classify(fake_openai, branches={"1": "install", "2": "ask"})
    assert outcome.status == "succeeded"
    assert taken(state) == []
    assert outcome.outputs == {}


def test_config() -> None:
    with pytest.raises(NodeConfigError, match="classes must list at least one class"):
        QuestionClassifierNode(
            graph([node("qc", "question-classifier", **{**QC, "classes": []})], []).nodes["qc"]
        )
    with pytest.raises(NodeConfigError, match=r"model\.name is required"):
        QuestionClassifierNode(
            graph([node("qc", "question-classifier", **{**QC, "model": {}})], []).nodes["qc"]
        )
    numeric = {
        **QC,
        "classes": [{"id": 1, "name": 2}],
        "retry_config": {"retry_enabled": True, "max_retries": 2},
    }
    qc = QuestionClassifierNode(graph([node("qc", "question-classifier", **numeric)], []).nodes["qc"])
    assert (qc.classes[0].id, qc.classes[0].name, qc.retry.enabled, qc.branching) == ("1", "2", False, True)


def test_read_answer_bounds_its_work_on_hostile_text() -> None:
    assert read_answer("```json\n" + answer("1") + "\n```") == json.loads(answer("1"))
    for hostile in ("[" * 100_000 + "]", "[" * 900 + '"' + "x" * 100_000 + "]"):
        started = time.perf_counter()
        with pytest.raises(Unreadable, match="invalid json"):
            read_answer(hostile)
        assert time.perf_counter() - started < 2
