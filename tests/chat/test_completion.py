"""Completion apps (chatflow spec 6.1): a ``mode: completion`` DSL imported, answered blocking and streaming with
Dify's completion shapes (checked by the contract plugin), stopped, and kept off the chat routes; other modes
answer the completion routes with 400 ``app_unavailable``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient, TestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.asgi import create_app
from app.errors import SluiceError
from app.settings import Settings
from app.workflows import completion_dsl, dsl
from db import urls
from tests.chat.conftest import events, import_app
from tests.support.fake_openai import FakeOpenAI

TRANSLATOR = """
version: 0.1.5
kind: app
app: {name: Translator, mode: completion, icon: "🤖", icon_background: "#FFEAD5", description: Translates}
model_config:
  model: {provider: openai, name: fake-chat, mode: chat, completion_params: {temperature: 0.2}}
  pre_prompt: "Translate into {{language}}: {{text}}"
  prompt_type: simple
  user_input_form:
    - text-input: {variable: language, label: Language, required: true, max_length: 20}
    - paragraph: {variable: text, label: Text, required: true}
  more_like_this: {enabled: false}
  opening_statement: ''
  dataset_configs: {retrieval_model: multiple, datasets: {datasets: []}}
"""


async def complete(
    client: AsyncTestClient[Litestar], headers: dict[str, str], mode: str = "blocking", **body: Any
) -> Any:
    payload = {"inputs": {"language": "French", "text": "good morning"}, "user": "ann", "response_mode": mode}
    return await client.post("/v1/completion-messages", json={**payload, **body}, headers=headers)


async def test_a_completion_app_answers_blocking_and_streaming(
    client: AsyncTestClient[Litestar], fake_llm: FakeOpenAI
) -> None:
    app = await import_app(client, TRANSLATOR)
    info = await client.get("/v1/info", headers=app.headers)
    assert info.json()["mode"] == "completion"
    parameters = (await client.get("/v1/parameters", headers=app.headers)).json()
    assert [
        (kind, item["variable"]) for entry in parameters["user_input_form"] for kind, item in entry.items()
    ] == [
        ("text-input", "language"),
        ("paragraph", "text"),
    ]

    blocking = await complete(client, app.headers)
    assert blocking.status_code == 200, blocking.text
    body = blocking.json()
    assert body["event"] == "message"
    assert body["mode"] == "completion"
    assert "conversation_id" not in body
    assert body["answer"] == "echo: Translate into French: good morning"
    assert body["metadata"]["usage"]["total_tokens"] > 0
    assert body["task_id"] != body["message_id"] == body["id"]
    sent = fake_llm.bodies()[-1]
    assert sent["messages"] == [{"role": "user", "content": "Translate into French: good morning"}]
    assert sent["temperature"] == 0.2

    streamed = await complete(client, app.headers, "streaming", query="please")
    assert streamed.status_code == 200
    assert streamed.headers["content-type"].startswith("text/event-stream")
    got = events(streamed.text)
    assert {e["event"] for e in got} <= {"message", "message_end"}
    assert got[-1]["event"] == "message_end"
    assert all("conversation_id" not in e for e in got)
    assert "".join(e["answer"] for e in got if e["event"] == "message") == "echo: please"
    assert fake_llm.bodies()[-1]["messages"] == [
        {"role": "system", "content": "Translate into French: good morning"},
        {"role": "user", "content": "please"},
    ]

    # the inputs are checked before anything runs
    missing = await complete(client, app.headers, inputs={"language": "French"})
    assert missing.status_code == 400, missing.text
    assert missing.json()["code"] == "invalid_param", missing.text

    # a completion app is not a chat app, and its messages make no listed conversations
    chat = await client.post(
        "/v1/chat-messages", json={"inputs": {}, "query": "hi", "user": "ann"}, headers=app.headers
    )
    assert chat.status_code == 400
    assert chat.json()["code"] == "not_chat_app"


async def test_a_stop_ends_a_streaming_completion_mid_answer(
    client: AsyncTestClient[Litestar], fake_llm: FakeOpenAI, chat_settings: Settings
) -> None:
    app = await import_app(client, TRANSLATOR)
    fake_llm.queue_reply(chunks=[f"w{i} " for i in range(20)], chunk_delay=0.5)  # ten seconds of answer

    def stream() -> Any:  # the in-process client blocks its loop: the stream runs in a thread of its own
        with TestClient(app=create_app(chat_settings, configure_logs=False)) as other:
            body = {
                "inputs": {"language": "Latin", "text": "hi"},
                "user": "ann",
                "response_mode": "streaming",
            }
            return other.post("/v1/completion-messages", json=body, headers=app.headers)

    started = time.monotonic()
    streaming = asyncio.create_task(asyncio.to_thread(stream))
    engine = create_async_engine(urls.asyncpg(chat_settings.database_url))
    try:
        run_id = None
        for _ in range(200):
            await asyncio.sleep(0.05)
            async with engine.connect() as conn:
                run_id = await conn.scalar(
                    text("SELECT workflow_run_id FROM messages WHERE app_id = :app"), {"app": app.app_id}
                )
            if run_id is not None and fake_llm.bodies():
                break
        assert run_id is not None
        assert not streaming.done()
        other = await client.post(
            f"/v1/completion-messages/{run_id}/stop", json={"user": "bob"}, headers=app.headers
        )
        assert other.json() == {"result": "success"}  # another user's stop: success, and nothing stops
        await asyncio.sleep(1.0)
        assert not streaming.done()
        stop = await client.post(
            f"/v1/completion-messages/{run_id}/stop", json={"user": "ann"}, headers=app.headers
        )
        assert stop.status_code == 200
        assert stop.json() == {"result": "success"}
        streamed = await asyncio.wait_for(streaming, 30)
    finally:
        await engine.dispose()
    assert time.monotonic() - started < 9  # well before the model's ten seconds
    got = events(streamed.text)
    assert got[-1]["event"] == "message_end"
    assert got[-1]["task_id"] == str(run_id)
    partial = "".join(e["answer"] for e in got if e["event"] == "message")
    assert partial.startswith("w0 ")
    assert "w19" not in partial


async def test_stop_and_the_other_modes(client: AsyncTestClient[Litestar]) -> None:
    app = await import_app(client, TRANSLATOR)
    done = await complete(client, app.headers)
    task = done.json()["task_id"]
    # Dify answers success whatever the task (only the sender's stop flag would apply); a finished run stays as is
    for task_id, user in (("not-a-uuid", "ann"), (task, "bob"), (task, "ann")):
        stop = await client.post(
            f"/v1/completion-messages/{task_id}/stop", json={"user": user}, headers=app.headers
        )
        assert stop.status_code == 200, stop.text
        assert stop.json() == {"result": "success"}, stop.text
    missing_user = await client.post(f"/v1/completion-messages/{task}/stop", json={}, headers=app.headers)
    assert missing_user.status_code == 400

    workflow = await import_app(
        client,
        """
version: 0.1.5
kind: app
app: {name: Flow, mode: workflow}
workflow:
  graph:
    nodes:
      - {id: start, data: {type: start, title: Start, variables: []}}
      - {id: end, data: {type: end, title: End, outputs: []}}
    edges: [{id: e, source: start, target: end}]
""",
    )
    for path in ("/v1/completion-messages", "/v1/completion-messages/x/stop"):
        refused = await client.post(path, json={"inputs": {}, "user": "ann"}, headers=workflow.headers)
        assert refused.status_code == 400, refused.text
        assert refused.json()["code"] == "app_unavailable", refused.text


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"model": None}, "model_config.model"),
        ({"dataset_configs": {"datasets": {"datasets": [{"dataset": {"id": "x"}}]}}}, "dataset_configs"),
        ({"agent_mode": {"enabled": True}}, "agent_mode"),
        ({"prompt_type": "advanced"}, "prompt_type"),
        ({"user_input_form": [{"slider": {"variable": "x"}}]}, "slider"),
    ],
)
def test_model_configs_it_cannot_run_are_refused_by_name(change: dict[str, Any], named: str) -> None:
    config = {"model": {"provider": "openai", "name": "m"}, "pre_prompt": "{{x}}", **change}
    with pytest.raises(SluiceError, match=named):
        completion_dsl.completion_graph(config)


def test_the_pre_prompt_names_only_form_variables() -> None:
    graph = completion_dsl.completion_graph(
        {
            "model": {"provider": "openai", "name": "m"},
            "pre_prompt": "{{a}} and {{b}}",
            "user_input_form": [{"text-input": {"variable": "a", "label": "A"}}],
        }
    )
    by_id = {n["id"]: n["data"] for n in graph["nodes"]}
    assert by_id["llm"]["prompt_template"] == [{"role": "user", "text": "{{#start.a#}} and {{b}}"}]
    assert by_id["llm_query"]["prompt_template"] == [
        {"role": "system", "text": "{{#start.a#}} and {{b}}"},
        {"role": "user", "text": "{{#sys.query#}}"},
    ]


def test_a_completion_dsl_without_its_model_config_is_refused() -> None:
    with pytest.raises(SluiceError, match="model_config"):
        dsl.parse(TRANSLATOR.split("model_config:")[0])
    parsed = dsl.parse(TRANSLATOR)
    assert parsed.mode == "completion"
    assert {n["id"] for n in parsed.graph["nodes"]} >= {
        "start",
        "llm",
        "answer",
    }
