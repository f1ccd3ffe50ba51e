"""The advanced-chat files of the corpus without tool or agent nodes, each answering chat messages through
``POST /v1/chat-messages`` (blocking, then a streaming second turn of the same conversation): Python_Coding_Prompt.yml,
Artifact.yml (LLM with memory -> answer), jieba.yml, matplotlib.yml (code -> answer), chart_demo.yml (http-request
-> code -> answer) and llm2o1.cn.yml (LLM -> parameter extractor -> iteration(code -> LLM) -> template -> LLM ->
answer).

The code nodes import jieba, matplotlib and numpy (the ``code`` extra); matplotlib needs a writable cache
directory at import, which the confined children do not have, so this module's service preloads it in the sandbox
(``CODE_SANDBOX_PRELOAD``), as the README tells operators to."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.settings import Settings
from tests.support.fake_openai import CHAT_PATH, FakeOpenAI
from tests.support.http_target import HttpTarget, Received, Reply
from tests.workflows.conftest import AppUnderTest, import_app
from tests.workflows.corpus.conftest import (
    chat_blocking,
    chat_streaming,
    corpus_text,
    finished_nodes,
    needs_corpus,
    runs_corpus_file,
    streamed_answer,
    system_message,
)

pytestmark = needs_corpus
#: The start of the naming prompt (app/chat/naming.py).
NAMING = "You give conversations short titles."


@pytest.fixture(scope="module")
def wf_settings(wf_settings: Settings) -> Settings:
    return msgspec.structs.replace(wf_settings, code_sandbox_preload=("matplotlib.pyplot", "numpy", "jieba"))


def turn_calls(llm: FakeOpenAI) -> list[dict[str, Any]]:
    """The model calls of the turns: without the background naming call a first turn schedules (it may come at
    any point of a slow run)."""
    return [b for b in llm.bodies(CHAT_PATH) if NAMING not in json.dumps(b["messages"], ensure_ascii=False)]


def roles(body: dict[str, Any]) -> list[str]:
    return [m["role"] for m in body["messages"]]


def answer_sources(events: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """Where each ``message`` chunk came from, consecutive repeats folded."""
    sources: list[tuple[str, ...]] = []
    for e in events:
        if e["event"] == "message":
            source = tuple(e["from_variable_selector"] or ())
            if not sources or sources[-1] != source:
                sources.append(source)
    return sources


async def two_turns(
    client: AsyncTestClient[Litestar], app: AppUnderTest, first: str, second: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A blocking first turn, then a streaming second turn of the same conversation."""
    body = await chat_blocking(client, app, first)
    events = await chat_streaming(client, app, second, conversation_id=body["conversation_id"])
    assert events[0]["conversation_id"] == body["conversation_id"]
    assert events[-1]["data"]["status"] == "succeeded", events[-1]
    return body, events


# --- Python_Coding_Prompt.yml and Artifact.yml: start -> llm (memory) -> answer ----------------------------------


@runs_corpus_file("Python_Coding_Prompt.yml")
async def test_python_coding_prompt(wf_client: AsyncTestClient[Litestar], llm: FakeOpenAI) -> None:
    llm.add_rule("How do I read a CSV?", "Use the csv module.")
    llm.add_rule("And with pandas?", "Use pandas.read_csv, then check df.dtypes.")
    app = await import_app(wf_client, corpus_text("Python_Coding_Prompt.yml"))

    body, events = await two_turns(wf_client, app, "How do I read a CSV?", "And with pandas?")
    assert body["answer"] == "Use the csv module."
    assert body["metadata"]["usage"]["total_tokens"] > 0
    assert body["metadata"]["retriever_resources"] == []
    assert streamed_answer(events) == "Use pandas.read_csv, then check df.dtypes."
    assert answer_sources(events) == [("llm", "text")]
    assert (
        len([e for e in events if e["event"] == "message"]) == 5
    )  # one chunk per word, as the model sent them
    end = events[-2]
    assert end["metadata"]["usage"]["completion_tokens"] == 5
    assert end["files"] == []

    first, second = turn_calls(llm)
    assert first["model"] == "deepseek-coder"
    assert first["temperature"] == 0
    assert system_message(first).startswith("You are an expert in Python development")
    # memory (window 10, no query template): the earlier turn, then the query as the last user message
    assert roles(first) == ["system", "user"]
    assert first["messages"][1]["content"] == "How do I read a CSV?"
    assert roles(second) == ["system", "user", "assistant", "user"]
    assert [m["content"] for m in second["messages"][1:]] == [
        "How do I read a CSV?",
        "Use the csv module.",
        "And with pandas?",
    ]


@runs_corpus_file("Artifact.yml")
async def test_artifact(wf_client: AsyncTestClient[Litestar], llm: FakeOpenAI) -> None:
    app = await import_app(wf_client, corpus_text("Artifact.yml"))
    for turn in range(3):  # the echo: the model repeats the query
        llm.add_rule(f"turn {turn}", f"answer {turn}")

    body = await chat_blocking(wf_client, app, "turn 0")
    assert body["answer"] == "answer 0"
    conversation = body["conversation_id"]
    assert (await chat_blocking(wf_client, app, "turn 1", conversation))["answer"] == "answer 1"
    events = await chat_streaming(wf_client, app, "turn 2", conversation)
    assert streamed_answer(events) == "answer 2"
    assert answer_sources(events) == [("llm", "text")]
    assert events[0]["data"]["inputs"]["sys.dialogue_count"] == 3

    *_, last = turn_calls(llm)
    assert last["model"] == "deepseek-v3-250324"
    assert [(m["role"], m["content"]) for m in last["messages"]] == [
        ("system", "你是一个小助手"),
        ("user", "turn 0"),
        ("assistant", "answer 0"),
        ("user", "turn 1"),
        ("assistant", "answer 1"),
        ("user", "turn 2"),  # query_prompt_template: {{#sys.query#}}
    ]
    messages = await wf_client.get(
        "/v1/messages", params={"conversation_id": conversation, "user": "corpus-user"}, headers=app.headers
    )
    assert [(m["query"], m["answer"]) for m in messages.json()["data"]] == [
        (f"turn {t}", f"answer {t}") for t in range(3)
    ]


# --- jieba.yml and matplotlib.yml: start -> code -> answer ----------------------------------------------------


@runs_corpus_file("jieba.yml")
async def test_jieba(wf_client: AsyncTestClient[Litestar], llm: FakeOpenAI) -> None:
    app = await import_app(wf_client, corpus_text("jieba.yml"))
    body, events = await two_turns(wf_client, app, "我来到北京清华大学", "他来到了网易杭研大厦")
    assert body["answer"] == "['我', '来到', '北京', '清华大学']"
    assert body["metadata"]["usage"]["total_tokens"] == 0
    assert streamed_answer(events) == "['他', '来到', '了', '网易', '杭研', '大厦']"
    assert answer_sources(events) == [("1732240797960", "output")]  # a code output: one chunk
    assert finished_nodes(events)["代码执行"]["inputs"] == {"input_content": "他来到了网易杭研大厦"}
    assert turn_calls(llm) == []  # no LLM node: the only model call is the naming one


@runs_corpus_file("matplotlib.yml")
async def test_matplotlib(wf_client: AsyncTestClient[Litestar], llm: FakeOpenAI) -> None:
    app = await import_app(wf_client, corpus_text("matplotlib.yml"))
    body, events = await two_turns(wf_client, app, "画一条正弦曲线", "再画一次")
    for answer in (body["answer"], streamed_answer(events)):
        head, _, rest = answer.partition("(data:image/png;base64,")
        assert head == "![描述文本]", answer[:80]
        assert rest.endswith(")\n"), answer[:80]
        png = base64.b64decode(rest[:-2])
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        assert struct.unpack(">II", png[16:24]) == (800, 600)  # figsize 8x6 at 100 dpi
    sources = answer_sources(events)
    assert sources == [("answer", "answer"), ("1732083953925", "result"), ("answer", "answer")]


# --- chart_demo.yml: start -> http-request (GET weather.cma.cn) -> code (echarts option) -> answer ----------------

CLIMATE = {
    "code": 0,
    "msg": "success",
    "data": {
        "beginYear": 1991,
        "endYear": 2020,
        "data": [
            {"month": 1, "maxTemp": 8.1, "minTemp": 0.9, "rainfall": 67.9},
            {"month": 2, "maxTemp": 10.6, "minTemp": 2.8, "rainfall": 70.5},
            {"month": 7, "maxTemp": 33.5, "minTemp": 25.8, "rainfall": 169.4},
        ],
    },
}


def climate(request: Received) -> Reply:
    """What weather.cma.cn answers to ``GET /api/climate?stationid=...``: monthly normals."""
    body = json.dumps(CLIMATE, ensure_ascii=False).encode()
    return Reply(200, [("Content-Type", "application/json; charset=utf-8")], body)


@runs_corpus_file("chart_demo.yml")
async def test_chart_demo(wf_client: AsyncTestClient[Litestar], llm: FakeOpenAI, target: HttpTarget) -> None:
    target.route("/api/climate", climate)
    # The DSL asks an internet service: send it to the loopback target instead.
    text = corpus_text("chart_demo.yml")
    assert "url: https://weather.cma.cn/api/climate?stationid=58367" in text
    app = await import_app(wf_client, text.replace("https://weather.cma.cn", target.url("")))

    body, events = await two_turns(wf_client, app, "杭州的气候", "再来一次")
    for answer in (body["answer"], streamed_answer(events)):
        assert answer.startswith("```echarts\n")
        assert answer.endswith("\n```")
        option = json.loads(answer[len("```echarts\n") : -len("\n```")])
        assert option["title"]["subtext"] == "1991年-2020年月平均气温和降水"
        assert option["xAxis"]["data"] == ["1月", "2月", "7月"]
        assert [s["data"] for s in option["series"]] == [
            [8.1, 10.6, 33.5],
            [0.9, 2.8, 25.8],
            [67.9, 70.5, 169.4],
        ]
    assert answer_sources(events) == [("1731568257888", "output")]
    assert [(r.method, r.path, r.query) for r in target.requests] == [
        ("GET", "/api/climate", {"stationid": ["58367"]})
    ] * 2
    assert finished_nodes(events)["获取天气数据"]["outputs"]["status_code"] == 200


# --- llm2o1.cn.yml: llm (split) -> parameter-extractor -> iteration(code -> llm) -> template -> llm -> answer -------

QUESTION = "9.11 和 9.9 哪个大？"
STEPS = [
    {"name": "对齐小数位", "content": "把两个数写成相同的小数位数"},
    {"name": "逐位比较", "content": "从整数部分开始逐位比较"},
    {"name": "得出结论", "content": "说出哪个数更大"},
]
SPLIT = "步骤一 对齐小数位；步骤二 逐位比较；步骤三 得出结论。"
STEP_ANSWERS = {
    "对齐小数位": "- 对齐小数位：9.11 与 9.90",
    "逐位比较": "- 逐位比较：十分位 9 > 1",
    "得出结论": "- 得出结论：9.9 更大",
}
FINAL = "9.9 比 9.11 大。"


def o1_rules(llm: FakeOpenAI) -> None:
    llm.add_rule(QUESTION, SPLIT)  # 任务拆解: the query is the last user message (memory)
    # 任务提取 (prompt mode): the split text inside <text></text> becomes the steps array
    llm.add_rule(f"<text>\n{SPLIT}\n</text>", tool_calls=[{"arguments": {"steps": STEPS}}])
    for name, answer in STEP_ANSWERS.items():  # 执行任务: a system prompt alone, naming the step
        llm.add_rule(f"本轮任务名称：{name}，", answer, where="any")
    llm.add_rule("## 原问题", FINAL, where="any")  # 归纳答案: a system prompt alone


@runs_corpus_file("llm2o1.cn.yml")
async def test_llm2o1(wf_client: AsyncTestClient[Litestar], llm: FakeOpenAI) -> None:
    o1_rules(llm)
    app = await import_app(wf_client, corpus_text("llm2o1.cn.yml"))
    merged = "\n".join(STEP_ANSWERS.values())
    expected = f"## 问题分析步骤\n{merged}\n\n##  最终解答\n{FINAL}"

    body = await chat_blocking(wf_client, app, QUESTION)
    assert body["answer"] == expected
    split, extract, *steps, final = turn_calls(llm)
    assert (split["model"], split["temperature"]) == ("gpt-4o", 0.7)
    assert roles(split) == ["system", "user"]
    assert split["messages"][1]["content"] == QUESTION
    assert extract["model"] == "gpt-4o-mini"
    assert "tools" not in extract  # reasoning_mode: prompt
    assert [roles(s) for s in steps] == [["system"]] * 3
    assert [system_message(s).split("本轮任务名称：")[1].split("，")[0] for s in steps] == list(STEP_ANSWERS)
    assert all(f'"""{QUESTION}"""' in system_message(s) for s in steps)
    assert roles(final) == ["system"]
    assert merged in system_message(final)

    llm.requests.clear()
    events = await chat_streaming(wf_client, app, QUESTION, conversation_id=body["conversation_id"])
    assert events[-1]["data"]["status"] == "succeeded"
    assert streamed_answer(events) == expected
    assert answer_sources(events) == [
        ("answer", "answer"),
        ("1727189088392", "output"),
        ("answer", "answer"),
        ("1727189151263", "text"),
    ]
    kinds = [e["event"] for e in events if e["event"].startswith("iteration_")]
    assert kinds == ["iteration_started", *["iteration_next"] * 3, "iteration_completed"]
    nodes = finished_nodes(events)
    assert nodes["任务提取"]["outputs"]["steps"] == STEPS
    assert nodes["任务提取"]["outputs"]["__is_success"] == 1
    completed = next(e["data"] for e in events if e["event"] == "iteration_completed")
    assert completed["outputs"] == {"output": list(STEP_ANSWERS.values())}
    # The second turn's split call carries the first turn (its memory window is off: the whole conversation).
    split_again = turn_calls(llm)[0]
    assert [(m["role"], m["content"]) for m in split_again["messages"][1:]] == [
        ("user", QUESTION),
        ("assistant", expected),
        ("user", QUESTION),
    ]
    # The final answer streams as the model sends it: its chunks arrive after the template's one chunk.
    final_chunks = [e for e in events if e["event"] == "message" and e["from_variable_selector"][1] == "text"]
    assert [c["answer"] for c in final_chunks] == ["9.9 ", "比 ", "9.11 ", "大。"]
