"""Document_chat_template.yml: an intent LLM, an old-style if-else, a four-class question classifier, knowledge
retrieval (single and multiple mode) from a dataset made through the dataset API, templates and context LLMs."""

from __future__ import annotations

import asyncio
import json

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import ADMIN_TOKEN
from tests.support.fake_openai import CHAT_PATH, FakeOpenAI
from tests.workflows.conftest import AppUnderTest, import_app
from tests.workflows.corpus.conftest import (
    corpus_text,
    needs_corpus,
    outcome,
    run_blocking,
    run_streaming,
    runs_corpus_file,
    system_message,
)

pytestmark = needs_corpus

# --- Document_chat_template.yml: llm -> if-else -> classifier (4 classes) -> retrieval -> template -> llm ----

DATASET_ID = "8c4620fa-15d7-464f-9cb9-561f1a59eb3f"  # the DSL's (a dataset of its author's Dify)
DOCS = {
    "install.txt": "安装 Dify：克隆仓库，进入 docker 目录，运行 docker compose up -d。",
    "architecture.txt": "Dify 的架构：API 服务、worker 和 web 前端，数据存放在 PostgreSQL 中。",
}


async def dataset_with_docs(client: AsyncTestClient[Litestar]) -> str:
    """A dataset of the default workspace (the imported apps' own) with DOCS, indexed, made via the dataset API."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    key = (await client.post("/console/api/datasets/api-keys", headers=admin)).json()["token"]
    headers = {"Authorization": f"Bearer {key}"}
    created = await client.post(
        "/v1/datasets", json={"name": "Dify docs", "indexing_technique": "high_quality"}, headers=headers
    )
    assert created.status_code == 200, created.text
    dataset_id = str(created.json()["id"])
    batches = []
    for name, text in DOCS.items():
        response = await client.post(
            f"/v1/datasets/{dataset_id}/document/create-by-text",
            json={
                "name": name,
                "text": text,
                "indexing_technique": "high_quality",
                "process_rule": {"mode": "automatic"},
            },
            headers=headers,
        )
        assert response.status_code == 200, response.text
        batches.append(response.json()["batch"])
    for batch in batches:
        for _ in range(600):
            status = await client.get(
                f"/v1/datasets/{dataset_id}/documents/{batch}/indexing-status", headers=headers
            )
            if status.json()["data"][0]["indexing_status"] == "completed":
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"document batch {batch} not indexed: {status.text}")
    return dataset_id


@pytest.fixture(scope="module")
def doc_chat_apps() -> dict[str, AppUnderTest]:
    return {}


@pytest.fixture
async def doc_chat(
    wf_client: AsyncTestClient[Litestar], doc_chat_apps: dict[str, AppUnderTest]
) -> AppUnderTest:
    """Document_chat_template.yml (imported once per module), its dataset id pointed at a dataset made here: an
    unknown dataset gives the retrieval nodes nothing (Dify skips unknown ids too), and the DSL's templates,
    which read ``result[0].content``, then fail with "list object has no element 0" (as Dify's Jinja2 does)."""
    if "app" not in doc_chat_apps:
        dataset_id = await dataset_with_docs(wf_client)
        text = corpus_text("Document_chat_template.yml")
        assert text.count(DATASET_ID) == 4
        doc_chat_apps["app"] = await import_app(wf_client, text.replace(DATASET_ID, dataset_id))
    return doc_chat_apps["app"]


def category(class_id: str, name: str) -> str:
    return json.dumps(
        {"keywords": ["dify"], "category_id": class_id, "category_name": name}, ensure_ascii=False
    )


COMMON = ["1720794829558", "1720797295568", "1720795218540", "1720795610192", "1720795163496"]
# class name and id; the retrieval, template, LLM and End nodes it routes to; the question asked
BRANCHES = [
    ("安装", "1", ["1720800425522", "1720796109721", "1720801890321", "1720796099103"], "如何安装 Dify？"),
    (
        "提问",
        "2",
        ["1720800677771", "1720796134308", "1720802221378", "1720796150141"],
        "Dify 怎么安装插件？",
    ),
    (
        "架构",
        "1720796069925",
        ["1720800734485", "1720796162653", "1720802239924", "1720796175251"],
        "Dify 的架构是什么？",
    ),
    (
        "其他",
        "1720839653345",
        ["1720839679262", "1720839693289", "1720839738650", "1720839772247"],
        "Dify 的架构是开源的吗？",
    ),
]


@runs_corpus_file("Document_chat_template.yml")
@pytest.mark.parametrize(("name", "class_id", "route", "question"), BRANCHES, ids=[b[0] for b in BRANCHES])
async def test_document_chat_template(
    wf_client: AsyncTestClient[Litestar],
    llm: FakeOpenAI,
    doc_chat: AppUnderTest,
    name: str,
    class_id: str,
    route: list[str],
    question: str,
) -> None:
    intent = f"需要查询文档。关键词：{name}"
    llm.add_rule(f"用户的问题是：{question}\n", intent)
    llm.add_rule(f'["{intent}', category(class_id, name))  # the classifier's input object starts ["<query>
    llm.add_rule(
        f"属于 {name} 的问题", f"回答（{name}）", where="any"
    )  # the answering LLM: a system prompt only
    expected_doc = DOCS["architecture.txt" if "架构" in question else "install.txt"]
    retrieval, template, _, _ = route

    events = await run_streaming(wf_client, doc_chat, {"input": question})
    assert outcome(events)["status"] == "succeeded", outcome(events)["error"]
    assert outcome(events)["outputs"] == {"output": f"回答（{name}）"}
    nodes = {e["data"]["node_id"]: e["data"] for e in events if e["event"] == "node_finished"}
    assert list(nodes) == COMMON + route  # one branch of the if-else, one class of the classifier
    assert nodes["1720795610192"]["outputs"]["selected_case_id"] == "true"
    assert nodes["1720795163496"]["outputs"]["class_name"] == name
    assert nodes["1720795163496"]["outputs"]["class_id"] == class_id
    assert nodes[retrieval]["inputs"] == {"query": question}
    hits = nodes[retrieval]["outputs"]["result"]
    assert hits[0]["content"] == expected_doc
    assert hits[0]["metadata"]["dataset_name"] == "Dify docs"
    assert nodes[template]["outputs"]["output"].startswith(f"属于 {name} 的问题\n结果：\n{expected_doc}")
    intent_call, _classify, answer = llm.bodies(CHAT_PATH)
    assert intent_call["messages"][-1]["content"].startswith(f"用户的问题是：{question}\n请理解并分析意图")
    assert [m["role"] for m in answer["messages"]] == ["system"]
    assert f"<context>\n属于 {name} 的问题\n结果：\n{expected_doc}" in system_message(answer)


async def test_document_chat_template_not_about_dify(
    wf_client: AsyncTestClient[Litestar], llm: FakeOpenAI, doc_chat: AppUnderTest
) -> None:
    llm.add_rule("用户的问题是：今天天气怎么样", "询问结束。关键词：天气")

    data = await run_blocking(wf_client, doc_chat, {"input": "今天天气怎么样"})
    assert data["status"] == "succeeded", data["error"]
    assert data["outputs"] == {"output": "你的问题 今天天气怎么样 不属于dify文档的相关内容，请重新提问。"}
    assert data["total_steps"] == 6  # start, template, llm, if-else, template, end
    assert len(llm.bodies(CHAT_PATH)) == 1


async def test_document_chat_template_with_its_unknown_dataset(
    wf_client: AsyncTestClient[Litestar], llm: FakeOpenAI
) -> None:
    """Imported unchanged, the DSL names a dataset that does not exist here: the retrieval node skips it (as
    Dify skips unknown ids) and finds nothing, and the template's ``arg2[0].content`` fails the run."""
    intent = "需要查询文档。关键词：安装"
    llm.add_rule("用户的问题是：如何安装 Dify？\n", intent)
    llm.add_rule(f'["{intent}', category("1", "安装"))
    app = await import_app(wf_client, corpus_text("Document_chat_template.yml"))

    events = await run_streaming(wf_client, app, {"input": "如何安装 Dify？"})
    nodes = {e["data"]["node_id"]: e["data"] for e in events if e["event"] == "node_finished"}
    assert nodes["1720800425522"]["status"] == "succeeded"
    assert nodes["1720800425522"]["outputs"] == {"result": []}
    assert nodes["1720796109721"]["status"] == "failed"
    assert outcome(events)["status"] == "failed"
    assert (
        outcome(events)["error"]
        == 'Node "Template 2" run failed: template error: list object has no element 0'
    )
