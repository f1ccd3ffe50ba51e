"""Corpus files of LLM, code, if-else, variable-aggregator and iteration nodes: SEO_Slug_Generator.yml,
json-repair.yml, translation_workflow.yml, dify_course_demo.yml."""

from __future__ import annotations

import json
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.support.fake_openai import CHAT_PATH, FakeOpenAI
from tests.workflows.conftest import import_app
from tests.workflows.corpus.conftest import (
    corpus_text,
    finished_nodes,
    needs_corpus,
    outcome,
    run_blocking,
    run_streaming,
    runs_corpus_file,
    system_message,
)

pytestmark = needs_corpus

# --- SEO_Slug_Generator.yml: start -> llm -> end --------------------------------------------------

SLUG_TITLE = "How to Train Your Dragon in 10 Days: A Beginner's Guide!"
SLUG = "train-your-dragon-in-10-days-beginners-guide"


@runs_corpus_file("SEO_Slug_Generator.yml")
async def test_seo_slug_generator(wf_client: AsyncTestClient[Litestar], llm: FakeOpenAI) -> None:
    llm.add_rule(SLUG_TITLE, SLUG)
    app = await import_app(wf_client, corpus_text("SEO_Slug_Generator.yml"))

    data = await run_blocking(wf_client, app, {"title": SLUG_TITLE})
    assert data["status"] == "succeeded", data["error"]
    assert data["outputs"] == {"output": SLUG}
    assert data["total_steps"] == 3
    (body,) = llm.bodies(CHAT_PATH)
    assert body["model"] == "deepseek-chat"
    assert body["temperature"] == 1
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert system_message(body).startswith("This GPT will convert input titles or content into SEO-friendly")
    assert body["messages"][1]["content"] == SLUG_TITLE

    events = await run_streaming(wf_client, app, {"title": SLUG_TITLE})
    chunks = [e["data"] for e in events if e["event"] == "text_chunk"]
    assert "".join(c["text"] for c in chunks) == SLUG
    assert len(chunks) == 1  # one word: one chunk
    assert {tuple(c["from_variable_selector"]) for c in chunks} == {("1721110597868", "text")}
    assert outcome(events)["status"] == "succeeded"
    assert outcome(events)["outputs"] == {"output": SLUG}


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
    assert code["inputs"] == {"llm_string": "[1, 2, 3"}
    assert code["outputs"] == {"result": "[1, 2, 3]"}
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
    assert data["outputs"] == {"output": IMPROVED}
    assert data["total_steps"] == 7
    translate, suggest, edit = llm.bodies(CHAT_PATH)
    # the DSL's own slip: its system prompt says "from {{source_text}}", not "from {{source_lang}}"
    assert system_message(translate).startswith(
        "You are an expert linguist, specializing in translation from Hello everyone, here is the report. to French"
    )
    assert f"<TRANSLATION>\n{TRANSLATION}\n</TRANSLATION>" in system_message(suggest)
    assert "colloquially" not in system_message(suggest)
    assert suggest["temperature"] == 1
    assert f"<TRANSLATION>\n{TRANSLATION}\n</TRANSLATION>" in edit["messages"][1]["content"]
    assert f"<EXPERT_SUGGESTIONS>\n{SUGGESTIONS}\n</EXPERT_SUGGESTIONS>" in edit["messages"][1]["content"]

    # with a country: the "false" branch, and the aggregator passes that branch's text on
    llm.requests.clear()
    events = await run_streaming(wf_client, app, {**inputs, "country": "Canada"})
    assert outcome(events)["status"] == "succeeded"
    assert outcome(events)["outputs"] == {"output": IMPROVED_CANADA}
    nodes = finished_nodes(events)
    assert "EXPERT_SUGGESTIONS" not in nodes
    assert nodes["EXPERT_SUGGESTIONS_WITH_COUNTRY"]["status"] == "succeeded"
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


def course_rules(llm: FakeOpenAI) -> list[dict[str, Any]]:
    """The outline and article answers; the outputs the iteration makes of them."""
    llm.add_rule(
        "编写一个Python教程大纲", "```json\n" + json.dumps(OUTLINE, ensure_ascii=False, indent=2) + "\n```"
    )
    for topic, article in ARTICLES.items():
        llm.add_rule(f"写一篇关于{topic} 的教程文章", article)
    return [
        {
            "info": {"chapter": c["chapter"], "title": c["title"], "subtitle": s},
            "course": ARTICLES[f"{c['title']} {s}"],
        }
        for c in OUTLINE
        for s in c["contents"]
    ]


@runs_corpus_file("dify_course_demo.yml")
async def test_dify_course_demo(wf_client: AsyncTestClient[Litestar], llm: FakeOpenAI) -> None:
    expected = course_rules(llm)
    app = await import_app(wf_client, corpus_text("dify_course_demo.yml"))

    data = await run_blocking(wf_client, app, {"course_name": "Python"})
    assert data["status"] == "succeeded", data["error"]
    assert data["outputs"] == {"course_name": "Python", "course": expected}
    outline_call, *articles = llm.bodies(CHAT_PATH)
    assert outline_call["model"] == "o1-mini-2024-09-12"
    assert outline_call["temperature"] == 0
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
    assert outcome(events)["status"] == "succeeded"
    assert outcome(events)["outputs"]["course"] == expected
    kinds = [e["event"] for e in events if e["event"].startswith("iteration_")]
    assert kinds == ["iteration_started", *["iteration_next"] * 3, "iteration_completed"]
    started = next(e["data"] for e in events if e["event"] == "iteration_started")
    assert started["node_id"] == "1728217105363"
    assert started["metadata"] == {"iteration_length": 3}
    assert [e["data"]["index"] for e in events if e["event"] == "iteration_next"] == [0, 1, 2]
    completed = next(e["data"] for e in events if e["event"] == "iteration_completed")
    assert completed["status"] == "succeeded"
    assert completed["steps"] == 3
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
    assert data["status"] == "failed"
    assert data["outputs"] == {}
    dify_words = "Output result is not an array, got <class 'str'> instead."
    assert data["error"] == f'Node "转换成JSON" run failed: {dify_words}'


async def test_dify_course_demo_with_parallel_rounds(
    wf_client: AsyncTestClient[Litestar], llm: FakeOpenAI
) -> None:
    """The DSL's note says its full version iterates in parallel: with ``is_parallel`` set, the rounds' code and
    LLM nodes (each a checkpoint) overlap, the output keeps input order, and the stream stays in order."""
    expected = course_rules(llm)
    text = corpus_text("dify_course_demo.yml")
    parallel = text.replace(
        "        iterator_selector:\n",
        "        is_parallel: true\n        parallel_nums: 3\n        iterator_selector:\n",
    )
    assert parallel.count("is_parallel: true") == 1
    app = await import_app(wf_client, parallel)

    for _ in range(3):
        events = await run_streaming(wf_client, app, {"course_name": "Python"})
        assert outcome(events)["status"] == "succeeded"
        assert outcome(events)["outputs"]["course"] == expected
        names = [e["event"] for e in events if e["event"] != "text_chunk"]
        first_inner = min(i for i, e in enumerate(events) if e["data"].get("iteration_id"))
        last_inner = max(i for i, e in enumerate(events) if e["data"].get("iteration_id"))
        started = names.index("iteration_started")
        assert names[started : started + 4] == ["iteration_started", *["iteration_next"] * 3]
        assert events.index(next(e for e in events if e["event"] == "iteration_next")) < first_inner
        assert last_inner < events.index(next(e for e in events if e["event"] == "iteration_completed"))
        position = {(e["event"], e["data"].get("id")): i for i, e in enumerate(events)}
        for (kind, execution), at in position.items():  # every node finishes after it started
            if kind == "node_finished":
                assert position[("node_started", execution)] < at
