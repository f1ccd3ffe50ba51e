"""The workflow-mode files of the shared DSL corpus, run end to end as a Dify user would run them.

Each file is imported unchanged through the console API (except where a comment says which URL or dataset id is
rewritten, and why), run through the Service API (``POST /v1/workflows/run``, blocking and streaming) by a real
worker, with code nodes in the real sandbox, http-request nodes sent to a loopback server through the SSRF
guard (this module's settings allow 127.0.0.0/8, as an operator would for an internal service), and LLM calls
answered by the fake OpenAI-compatible server from rules keyed on each prompt's content. The assertions follow
the values through the graph: what each LLM was asked, what code nodes, templates, branches and iterations made
of the canned answers, and what reached the End node.

Which corpus files run, and which test shows it, is listed in ``docs/dsl-corpus-runs.toml``; ``python -m app
dsl-report`` turns that list into ``docs/dsl-corpus.md`` and the last test here keeps the list true.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.settings import Settings
from app.workflows import dsl
from tests.conftest import ADMIN_TOKEN, SECRET_KEY
from tests.support.corpus import CORPUS, ROOT
from tests.support.fake_openai import CHAT_PATH, FakeOpenAI
from tests.support.http_target import HttpTarget, Received, Reply
from tests.workflows.conftest import AppUnderTest, import_app, sse_events

pytestmark = pytest.mark.skipif(CORPUS is None, reason="the shared DSL corpus (../shared/dsl) is not present")

RUNS_LIST = ROOT / "docs" / "dsl-corpus-runs.toml"
USER = "corpus-user"
F = TypeVar("F", bound=Callable[..., Any])


def runs_corpus_file(name: str) -> Callable[[F], F]:
    """Mark a test as the one that shows corpus file ``name`` running (checked against the runs list)."""

    def mark(fn: F) -> F:
        fn.corpus_file = name  # type: ignore[attr-defined]
        return fn

    return mark


def corpus_text(name: str) -> str:
    assert CORPUS is not None
    return (CORPUS / name).read_text()


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def llm_base_url(fake_llm: FakeOpenAI) -> str:
    return fake_llm.base_url


@pytest.fixture(scope="module")
def wf_settings(wf_database: str, tmp_path_factory: pytest.TempPathFactory, llm_base_url: str) -> Settings:
    return Settings(
        database_url=wf_database,
        data_dir=tmp_path_factory.mktemp("wf-corpus"),
        admin_token=ADMIN_TOKEN,
        log_level="WARNING",
        worker_poll_seconds=0.1,
        openai_api_base=llm_base_url,
        secret_key=SECRET_KEY,
        ssrf_proxy_allow_private_networks=("127.0.0.0/8",),  # the http-request nodes' loopback target
    )


@pytest.fixture(scope="module")
def target() -> Iterator[HttpTarget]:
    with HttpTarget("127.0.0.1") as server:
        yield server


@pytest.fixture
def llm(fake_llm: FakeOpenAI, target: HttpTarget) -> Iterator[FakeOpenAI]:
    """The fake LLM with no rules yet (each test adds the answers its file needs); the HTTP target reset."""
    fake_llm.reset()
    target.reset()
    yield fake_llm
    fake_llm.reset()


# --- running -------------------------------------------------------------------------------------


async def run_blocking(
    client: AsyncTestClient[Litestar], app: AppUnderTest, inputs: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(
        "/v1/workflows/run",
        json={"inputs": inputs, "response_mode": "blocking", "user": USER},
        headers=app.headers,
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def run_streaming(
    client: AsyncTestClient[Litestar], app: AppUnderTest, inputs: dict[str, Any]
) -> list[dict[str, Any]]:
    response = await client.post(
        "/v1/workflows/run",
        json={"inputs": inputs, "response_mode": "streaming", "user": USER},
        headers=app.headers,
    )
    assert response.status_code == 200, response.text
    events = [event for _, event in sse_events(response.text)]
    assert events[0]["event"] == "workflow_started" and events[-1]["event"] == "workflow_finished"
    return events


def finished_nodes(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``node_finished`` data by node title (inner nodes of iterations: the last round's)."""
    return {e["data"]["title"]: e["data"] for e in events if e["event"] == "node_finished"}


def outcome(events: list[dict[str, Any]]) -> dict[str, Any]:
    finished: dict[str, Any] = events[-1]["data"]
    return finished


def user_messages(bodies: list[dict[str, Any]]) -> list[str]:
    return [m["content"] for b in bodies for m in b["messages"] if m["role"] == "user"]


def system_message(body: dict[str, Any]) -> str:
    return str(next(m["content"] for m in body["messages"] if m["role"] == "system"))


async def upload(client: AsyncTestClient[Litestar], app: AppUnderTest, name: str, data: bytes) -> str:
    response = await client.post(
        "/v1/files/upload", files={"file": (name, data, "text/csv")}, data={"user": USER}, headers=app.headers
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


# --- SEO_Slug_Generator.yml: start -> llm -> end --------------------------------------------------

SLUG_TITLE = "How to Train Your Dragon in 10 Days: A Beginner's Guide!"
SLUG = "train-your-dragon-in-10-days-beginners-guide"


@runs_corpus_file("SEO_Slug_Generator.yml")
async def test_seo_slug_generator(wf_client: AsyncTestClient[Litestar], llm: FakeOpenAI) -> None:
    llm.add_rule(SLUG_TITLE, SLUG)
    app = await import_app(wf_client, corpus_text("SEO_Slug_Generator.yml"))

    data = await run_blocking(wf_client, app, {"title": SLUG_TITLE})
    assert data["status"] == "succeeded", data["error"]
    assert data["outputs"] == {"output": SLUG} and data["total_steps"] == 3
    (body,) = llm.bodies(CHAT_PATH)
    assert body["model"] == "deepseek-chat" and body["temperature"] == 1
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert system_message(body).startswith("This GPT will convert input titles or content into SEO-friendly")
    assert body["messages"][1]["content"] == SLUG_TITLE

    events = await run_streaming(wf_client, app, {"title": SLUG_TITLE})
    chunks = [e["data"] for e in events if e["event"] == "text_chunk"]
    assert "".join(c["text"] for c in chunks) == SLUG and len(chunks) == 1  # one word: one chunk
    assert {tuple(c["from_variable_selector"]) for c in chunks} == {("1721110597868", "text")}
    assert outcome(events)["status"] == "succeeded" and outcome(events)["outputs"] == {"output": SLUG}


# --- json-repair.yml: start -> code (json_repair in the sandbox) -> end ----------------------------


@runs_corpus_file("json-repair.yml")
async def test_json_repair(wf_client: AsyncTestClient[Litestar], llm: FakeOpenAI) -> None:
    app = await import_app(wf_client, corpus_text("json-repair.yml"))
    broken = """{"name": "张三", "tags": ['a', 'b',], "ok": True"""

    data = await run_blocking(wf_client, app, {"llm_string": broken})
    assert data["status"] == "succeeded", data["error"]
    # ensure_ascii=False in the DSL's code: the Chinese text stays as it is
    assert data["outputs"] == {"output": '{"name": "张三", "tags": ["a", "b"], "ok": true}'}

    events = await run_streaming(wf_client, app, {"llm_string": "[1, 2, 3"})
    code = finished_nodes(events)["代码执行"]
    assert code["inputs"] == {"llm_string": "[1, 2, 3"} and code["outputs"] == {"result": "[1, 2, 3]"}
    assert outcome(events)["outputs"] == {"output": "[1, 2, 3]"}
    assert llm.bodies(CHAT_PATH) == []


# --- translation_workflow.yml: llm -> if-else (country empty?) -> one of two llms -> aggregator -> llm ----

TRANSLATION = "Bonjour tout le monde, voici le rapport."
SUGGESTIONS = "1. Use 'Salut' instead of 'Bonjour' for a friendlier tone."
SUGGESTIONS_CANADA = "1. In Québec, prefer 'Allô' in speech."
IMPROVED = "Salut tout le monde, voici le rapport."
IMPROVED_CANADA = "Allô tout le monde, voici le rapport."


def translation_rules(llm: FakeOpenAI) -> None:
    # The editing LLM's user prompt holds the suggestions: answer by which suggestions reached it.
    llm.add_rule(f"<EXPERT_SUGGESTIONS>\n{SUGGESTIONS_CANADA}", IMPROVED_CANADA)
    llm.add_rule(f"<EXPERT_SUGGESTIONS>\n{SUGGESTIONS}", IMPROVED)
    llm.add_rule("please provide the French translation for this text", TRANSLATION)
    # The two suggestion LLMs have a system prompt only: match any message.
    llm.add_rule("colloquially spoken in Canada", SUGGESTIONS_CANADA, where="any")
    llm.add_rule("give constructive criticisms and helpful suggestions", SUGGESTIONS, where="any")


@runs_corpus_file("translation_workflow.yml")
async def test_translation_workflow(wf_client: AsyncTestClient[Litestar], llm: FakeOpenAI) -> None:
    translation_rules(llm)
    app = await import_app(wf_client, corpus_text("translation_workflow.yml"))
    inputs = {
        "source_lang": "English",
        "target_lang": "French",
        "source_text": "Hello everyone, here is the report.",
    }

    # no country (an optional input left out): the "true" branch, suggestions without a country
    data = await run_blocking(wf_client, app, inputs)
    assert data["status"] == "succeeded", data["error"]
    assert data["outputs"] == {"output": IMPROVED} and data["total_steps"] == 7
    translate, suggest, edit = llm.bodies(CHAT_PATH)
    # the DSL's own slip: its system prompt says "from {{source_text}}", not "from {{source_lang}}"
    assert system_message(translate).startswith(
        "You are an expert linguist, specializing in translation from Hello everyone, here is the report. to French"
    )
    assert f"<TRANSLATION>\n{TRANSLATION}\n</TRANSLATION>" in system_message(suggest)
    assert "colloquially" not in system_message(suggest) and suggest["temperature"] == 1
    assert f"<TRANSLATION>\n{TRANSLATION}\n</TRANSLATION>" in edit["messages"][1]["content"]
    assert f"<EXPERT_SUGGESTIONS>\n{SUGGESTIONS}\n</EXPERT_SUGGESTIONS>" in edit["messages"][1]["content"]

    # with a country: the "false" branch, and the aggregator passes that branch's text on
    llm.requests.clear()
    events = await run_streaming(wf_client, app, {**inputs, "country": "Canada"})
    assert outcome(events)["status"] == "succeeded" and outcome(events)["outputs"] == {
        "output": IMPROVED_CANADA
    }
    nodes = finished_nodes(events)
    assert (
        "EXPERT_SUGGESTIONS" not in nodes
        and nodes["EXPERT_SUGGESTIONS_WITH_COUNTRY"]["status"] == "succeeded"
    )
    assert nodes["COUNTRY IS NULL"]["outputs"]["result"] is False
    assert nodes["SUGGESTIONS"]["outputs"] == {"output": SUGGESTIONS_CANADA}
    assert len(llm.bodies(CHAT_PATH)) == 3
    assert "colloquially spoken in Canada" in system_message(llm.bodies(CHAT_PATH)[1])


# --- dify_course_demo.yml: llm -> code (parse the fenced JSON) -> iteration(code -> llm -> code) -> end ----

OUTLINE = [
    {"chapter": "第1章", "title": "入门", "contents": ["1.1 安装 Python", "1.2 第一个程序"]},
    {"chapter": "第2章", "title": "进阶", "contents": ["2.1 装饰器"]},
]
ARTICLES = {
    "入门 1.1 安装 Python": "从 python.org 下载安装包。",
    "入门 1.2 第一个程序": "print('hello')",
    "进阶 2.1 装饰器": "装饰器包装一个函数。",
}


@runs_corpus_file("dify_course_demo.yml")
async def test_dify_course_demo(wf_client: AsyncTestClient[Litestar], llm: FakeOpenAI) -> None:
    outline = "```json\n" + json.dumps(OUTLINE, ensure_ascii=False, indent=2) + "\n```"
    llm.add_rule("编写一个Python教程大纲", outline)
    for topic, article in ARTICLES.items():
        llm.add_rule(f"写一篇关于{topic} 的教程文章", article)
    app = await import_app(wf_client, corpus_text("dify_course_demo.yml"))
    expected = [
        {
            "info": {"chapter": c["chapter"], "title": c["title"], "subtitle": s},
            "course": ARTICLES[f"{c['title']} {s}"],
        }
        for c in OUTLINE
        for s in c["contents"]
    ]

    data = await run_blocking(wf_client, app, {"course_name": "Python"})
    assert data["status"] == "succeeded", data["error"]
    assert data["outputs"] == {"course_name": "Python", "course": expected}
    outline_call, *articles = llm.bodies(CHAT_PATH)
    assert outline_call["model"] == "o1-mini-2024-09-12" and outline_call["temperature"] == 0
    assert [m["role"] for m in outline_call["messages"]] == ["system", "user", "assistant"]
    assert [b["model"] for b in articles] == ["gpt-4o-mini"] * 3
    assert [system_message(b) for b in articles] == [
        "你是一个 Python 专家，正在写一篇关于 Python 的教程，每一个知识点要尽可能详尽，字数多一点。"
    ] * 3
    assert [b["messages"][-1]["content"].split(" 的教程文章")[0] for b in articles] == [
        f"写一篇关于{topic}" for topic in ARTICLES
    ]

    llm.requests.clear()
    events = await run_streaming(wf_client, app, {"course_name": "Python"})
    assert outcome(events)["status"] == "succeeded" and outcome(events)["outputs"]["course"] == expected
    kinds = [e["event"] for e in events if e["event"].startswith("iteration_")]
    assert kinds == ["iteration_started", *["iteration_next"] * 3, "iteration_completed"]
    started = next(e["data"] for e in events if e["event"] == "iteration_started")
    assert started["node_id"] == "1728217105363" and started["metadata"] == {"iteration_length": 3}
    assert [e["data"]["index"] for e in events if e["event"] == "iteration_next"] == [0, 1, 2]
    completed = next(e["data"] for e in events if e["event"] == "iteration_completed")
    assert completed["status"] == "succeeded" and completed["steps"] == 3
    assert completed["outputs"] == {"output": expected}
    inner = [e["data"] for e in events if e["event"] == "node_finished" and e["data"].get("iteration_id")]
    assert [(d["title"], d["execution_metadata"]["iteration_index"]) for d in inner] == [
        (title, i) for i in range(3) for title in ("转object", "LLM生成课程", "整合")
    ]
    to_object = [d for d in inner if d["title"] == "转object"]
    assert [d["outputs"] for d in to_object] == [e["info"] for e in expected]
    assert not any(
        e["data"].get("node_id") == "1728217105363" for e in events if e["event"].startswith("node_")
    )

    # an outline without the ```json fence: the code node returns "None" for an array[object] output
    llm.reset()
    llm.add_rule("编写一个Python教程大纲", json.dumps(OUTLINE, ensure_ascii=False))
    data = await run_blocking(wf_client, app, {"course_name": "Python"})
    assert data["status"] == "failed" and data["outputs"] == {}
    assert (
        data["error"]
        == (
            "Node \"转换成JSON\" run failed: Output result is not an array, got <class 'str'> instead."  # Dify's words
        )
    )


# --- Text_to_Card_Iteration.yml: template -> http-request (JSON body, api key) -> parameter-extractor -> end ----

CARD_URL = "https://cdn.imgrender.example/cards/ada-2024.png"


def imgrender(request: Received) -> Reply:
    """What api.imgrender.cn answers to ``POST /open/v1/pics``: the rendered picture's URL."""
    return Reply(
        200,
        [("Content-Type", "application/json")],
        json.dumps({"code": 0, "message": "success", "data": {"url": CARD_URL, "width": 300}}).encode(),
    )


@runs_corpus_file("Text_to_Card_Iteration.yml")
async def test_text_to_card(
    wf_client: AsyncTestClient[Litestar], llm: FakeOpenAI, target: HttpTarget
) -> None:
    target.route("/open/v1/pics", imgrender)
    # The extractor (prompt mode) reads the HTTP body inside <text></text>: answer with the URL found there.
    llm.add_rule(f'"url": "{CARD_URL}"', tool_calls=[{"arguments": {"image_url": CARD_URL}}])
    # The DSL posts to an internet service: send it to the loopback target instead.
    text = corpus_text("Text_to_Card_Iteration.yml")
    assert "url: https://api.imgrender.cn/open/v1/pics" in text
    app = await import_app(wf_client, text.replace("https://api.imgrender.cn", target.url("")))
    inputs = {"author": "Ada", "body_text": "数据即是力量"}

    data = await run_blocking(wf_client, app, inputs)
    assert data["status"] == "succeeded", data["error"]
    assert data["outputs"] == {"image_url": CARD_URL}
    (sent,) = target.requests
    assert (sent.method, sent.path) == ("POST", "/open/v1/pics")
    assert sent.header("Content-Type") == "application/json"
    assert sent.header("X-API-Key") == "282856915996906898.lqe1hPL1OpFHfNAoMc1PdOToeximcTrw"
    card = json.loads(sent.body)
    assert (card["width"], card["height"]) == (300, 800)
    assert [t["text"] for t in card["texts"]] == ["Ada", "数据即是力量"]
    (extract,) = llm.bodies(CHAT_PATH)
    assert extract["model"] == "doubao" and "tools" not in extract  # reasoning_mode: prompt
    assert "提取URL的值" in system_message(extract)

    events = await run_streaming(wf_client, app, inputs)
    nodes = finished_nodes(events)
    assert nodes["HTTP Request"]["outputs"]["status_code"] == 200
    assert json.loads(nodes["HTTP Request"]["outputs"]["body"])["data"]["url"] == CARD_URL
    assert nodes["Parameter Extractor"]["outputs"]["image_url"] == CARD_URL
    assert nodes["Parameter Extractor"]["outputs"]["__is_success"] == 1
    assert outcome(events)["outputs"] == {"image_url": CARD_URL}


# --- File_read.yml and runLLMCode.yml: a CSV upload, code nodes that look for it under /upload_files ----

CSV = b"name,age\nAda,36\nAlan,41\n"
# The DSLs' first code node searches /upload_files for a file of the upload's size: a folder that a custom Dify
# deployment mounted into its sandbox. Neither Dify's sandbox nor Sluice's has it (Sluice will not expose stored
# uploads to tenant code), so the node returns "None" and pandas, asked to read "None", fails inside the DSL's own
# try/except: the run succeeds with that message as its data sample, in Dify as here.
NO_CSV = "错误: [Errno 2] No such file or directory: 'None'"


def file_input(upload_id: str) -> dict[str, Any]:
    return {"type": "document", "transfer_method": "local_file", "upload_file_id": upload_id}


@runs_corpus_file("File_read.yml")
async def test_file_read(wf_client: AsyncTestClient[Litestar], llm: FakeOpenAI) -> None:
    app = await import_app(wf_client, corpus_text("File_read.yml"))
    upload_id = await upload(wf_client, app, "people.csv", CSV)

    data = await run_blocking(wf_client, app, {"File": file_input(upload_id)})
    assert data["status"] == "succeeded", data["error"]
    assert data["outputs"] == {"output": NO_CSV}

    events = await run_streaming(wf_client, app, {"File": file_input(upload_id)})
    nodes = finished_nodes(events)
    start = nodes["开始"]["outputs"]["File"]
    assert (start["filename"], start["size"], start["type"]) == ("people.csv", len(CSV), "document")
    assert nodes["获取文件路径"]["inputs"] == {"filesize": len(CSV)}  # the file dict's size, as selected
    assert nodes["获取文件路径"]["outputs"] == {"file_path": "None"}
    assert nodes["读取csv"]["inputs"] == {"file_path": "None"}
    assert outcome(events)["outputs"] == {"output": NO_CSV}


AVERAGE_CODE = "import pandas as pd\ndf = pd.read_csv('people.csv')\nprint(f\"平均年龄: {df['age'].mean()}\")"
STDOUT = "平均年龄: 38.5\n"


def dify_sandbox(request: Received) -> Reply:
    """What dify-sandbox answers to ``POST /v1/sandbox/run`` (its output is canned: nothing runs here)."""
    body = {"code": 0, "message": "success", "data": {"error": "", "stdout": STDOUT}}
    return Reply(200, [("Content-Type", "application/json")], json.dumps(body, ensure_ascii=False).encode())


@runs_corpus_file("runLLMCode.yml")
async def test_run_llm_code(
    wf_client: AsyncTestClient[Litestar], llm: FakeOpenAI, target: HttpTarget
) -> None:
    target.route("/v1/sandbox/run", dify_sandbox)
    llm.add_rule(
        "<UserMessage>\n算出平均年龄\n</UserMessage>", f"好的，代码如下：\n```python\n{AVERAGE_CODE}\n```\n"
    )
    # The DSL calls a dify-sandbox container by its compose host name: send it to the loopback target instead.
    text = corpus_text("runLLMCode.yml")
    assert "url: http://sandbox:8194/v1/sandbox/run" in text
    app = await import_app(wf_client, text.replace("http://sandbox:8194", target.url("")))
    upload_id = await upload(wf_client, app, "people.csv", CSV)
    inputs = {"File": file_input(upload_id), "query": "算出平均年龄"}

    data = await run_blocking(wf_client, app, inputs)
    assert data["status"] == "succeeded", data["error"]
    assert data["outputs"] == {"output": STDOUT}
    (ask,) = llm.bodies(CHAT_PATH)
    assert ask["model"] == "deepseek-coder"
    prompt = ask["messages"][1]["content"]
    assert "3、csv的数据路径为：None\n" in prompt
    assert f"<DataSample>{NO_CSV}</DataSample>" in prompt
    (sent,) = target.requests
    assert sent.header("X-Api-Key") == "dify-sandbox"
    # the code block, cut out of the answer and JSON-quoted by a code node, spliced into the JSON body
    assert json.loads(sent.body) == {"code": AVERAGE_CODE, "language": "python3"}

    events = await run_streaming(wf_client, app, inputs)
    nodes = finished_nodes(events)
    assert nodes["提取LLM中都代码"]["outputs"] == {"code": json.dumps(AVERAGE_CODE)}
    assert json.loads(nodes["sandbox 执行代码"]["outputs"]["body"])["data"]["stdout"] == STDOUT
    assert nodes["提取输出内容"]["outputs"] == {"result": STDOUT}
    assert outcome(events)["outputs"] == {"output": STDOUT}


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
    assert hits[0]["content"] == expected_doc and hits[0]["metadata"]["dataset_name"] == "Dify docs"
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


# --- the runs list --------------------------------------------------------------------------------


def test_runs_list_names_these_tests() -> None:
    """docs/dsl-corpus-runs.toml (read by ``python -m app dsl-report``) says which test runs which corpus file;
    every workflow-mode corpus file that imports is listed, as running or with the reason it does not."""
    assert CORPUS is not None
    listed = tomllib.loads(RUNS_LIST.read_text())["files"]
    module = sys.modules[__name__]
    here = f"{Path(__file__).resolve().relative_to(ROOT)}::"
    marked = {
        fn.corpus_file: name
        for name, fn in inspect.getmembers(module, inspect.isfunction)
        if hasattr(fn, "corpus_file")
    }
    shown_here = {
        file: entry["runs"].removeprefix(here)
        for file, entry in listed.items()
        if entry.get("runs", "").startswith(here)
    }
    assert shown_here == marked
    for file, entry in listed.items():
        assert (CORPUS / file).exists(), f"{file} is not in the corpus"
        assert bool(entry.get("runs")) != bool(entry.get("why_not")), f"{file}: give `runs` or `why_not`"
    for path in sorted(CORPUS.glob("*.yml")):
        try:
            parsed = dsl.parse(path.read_text())
        except dsl.InvalidDsl:
            continue
        if parsed.mode == "workflow":
            assert path.name in listed, (
                f"{path.name} imports but docs/dsl-corpus-runs.toml does not say if it runs"
            )
