"""Every ending of a turn reaches the client (chatflow spec 1.5, 9): failure, stop, pause (and its resumption in
the same message), annotation reply; and everything checkable is a 4xx before any stream opens."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from app.chat import turns
from app.chat.naming import NAME_PROMPT
from app.chat.schemas import ChatRequest
from app.files.run_inputs import FileContext
from app.files.signing import FileSigner
from app.settings import Settings
from app.tenancy.services import KeyContext
from db import urls
from db.models import AnnotationSetting, Message, WorkflowRun
from tests.chat.conftest import chat, events, import_app, names
from tests.support.fake_openai import FakeOpenAI

SIMPLE = """
version: 0.1.5
kind: app
app: {name: Simple, mode: advanced-chat}
workflow:
  conversation_variables:
    - {id: 5d1f8a43-8b5d-4ad1-9f43-0e8f1d2c4b11, name: turns, value_type: number, value: 0, selector: [conversation, turns]}
  graph:
    nodes:
      - id: start
        data: {type: start, title: Start, variables: [{variable: topic, label: Topic, type: text-input, required: false, max_length: 10}]}
      - id: hello
        data: {type: answer, title: Hello, answer: "Thinking... "}
      - id: count
        data:
          type: assigner
          title: Count
          version: '2'
          items: [{variable_selector: [conversation, turns], input_type: constant, operation: +=, value: 1}]
      - id: llm
        data:
          type: llm
          title: LLM
          model: {provider: openai, name: fake-chat, mode: chat, completion_params: {}}
          prompt_template: [{role: user, text: "{{#sys.query#}}"}]
      - id: answer
        data: {type: answer, title: Answer, answer: "{{#llm.text#}}"}
    edges:
      - {id: e0, source: start, target: hello}
      - {id: e1, source: hello, target: count}
      - {id: e2, source: count, target: llm}
      - {id: e3, source: llm, target: answer}
"""

HUMAN = """
version: 0.5.0
kind: app
app: {name: Ask, mode: advanced-chat}
workflow:
  graph:
    nodes:
      - id: start
        data: {type: start, title: Start, variables: []}
      - id: before
        data: {type: answer, title: Before, answer: "Let me check. "}
      - id: ask
        data:
          type: human-input
          title: Approve?
          form_content: "Answer {{#sys.query#}}?"
          inputs: [{type: paragraph, output_variable_name: comment}]
          user_actions: [{id: approve, title: Approve}]
      - id: after
        data: {type: answer, title: After, answer: "Approved: {{#ask.comment#}}"}
    edges:
      - {id: e1, source: start, target: before}
      - {id: e2, source: before, target: ask}
      - {id: e3, source: ask, target: after, sourceHandle: approve}
"""


async def message_row(settings: Settings, message_id: str) -> Message:
    engine = create_async_engine(urls.asyncpg(settings.database_url or ""))
    try:
        async with AsyncSession(engine) as session:
            found = await session.get(Message, uuid.UUID(message_id))
            assert found is not None
            return found
    finally:
        await engine.dispose()


async def variables_of(client: AsyncTestClient[Litestar], app: Any, conversation: str) -> dict[str, Any]:
    listed = await client.get(
        f"/v1/conversations/{conversation}/variables", params={"user": "alice"}, headers=app.headers
    )
    return {v["name"]: v["value"] for v in listed.json()["data"]}


async def test_a_failing_node_ends_with_error_and_writes_no_variable(
    client: AsyncTestClient[Litestar], fake_llm: FakeOpenAI, chat_settings: Settings
) -> None:
    app = await import_app(client, SIMPLE)
    # no naming job: it would be the model call that takes the queued errors below
    ok = (await chat(client, app, "first", auto_generate_name=False)).json()
    conversation = ok["conversation_id"]
    assert (await variables_of(client, app, conversation)) == {"turns": "1"}

    fake_llm.queue_error(500, "the model fell over")
    streamed = await chat(client, app, "second", conversation_id=conversation, mode="streaming")
    got = events(streamed.text)
    assert [e["event"] for e in got][-2:] == ["workflow_finished", "error"]
    assert got[-2]["data"]["status"] == "failed"
    error = got[-1]
    assert error["code"] == "invalid_param"
    assert error["status"] == 400
    assert "task_id" not in error
    assert error["message"].startswith("Run failed: ")
    assert "fell over" in error["message"]
    assert "message_end" not in [e["event"] for e in got]
    message = await message_row(chat_settings, got[0]["message_id"])
    assert message.status == "error"
    assert message.answer == ""
    assert "fell over" in (message.error or "")
    assert (await variables_of(client, app, conversation)) == {"turns": "1"}  # the failed turn wrote nothing

    fake_llm.queue_error(500, "down again")
    blocking = await chat(client, app, "third", conversation_id=conversation)
    assert blocking.status_code == 400
    assert blocking.json()["code"] == "invalid_param"
    assert blocking.json()["message"].startswith("Run failed: ")


async def test_requests_that_cannot_start_a_turn_are_4xx_before_any_stream(
    client: AsyncTestClient[Litestar],
) -> None:
    app = await import_app(client, SIMPLE)
    conversation = (await chat(client, app, "hello")).json()["conversation_id"]
    cases: list[tuple[dict[str, Any], int, str, str]] = [
        ({"query": ""}, 400, "invalid_param", "query is required"),
        ({"query": "\x00"}, 400, "invalid_param", "query is required"),
        ({"conversation_id": "not-a-uuid"}, 400, "invalid_param", "conversation_id must be a valid UUID"),
        ({"conversation_id": str(uuid.uuid4())}, 404, "not_found", "Conversation Not Exists."),
        ({"conversation_id": conversation, "user": "mallory"}, 404, "not_found", "Conversation Not Exists."),
        ({"inputs": {"topic": "x" * 11}}, 400, "invalid_param", "topic"),
        ({"workflow_id": "nope"}, 400, "bad_request", "Invalid workflow_id format: 'nope'. "),
        ({"workflow_id": str(uuid.uuid4())}, 404, "not_found", "Workflow not found with id: "),
        ({"response_mode": "sometimes"}, 400, "invalid_param", "response_mode"),
        (
            {"files": [{"type": "document", "transfer_method": "local_file", "upload_file_id": "x"}]},
            400,
            "",
            "",
        ),
    ]
    for change, status, code, text in cases:
        body = {"inputs": {}, "query": "q", "user": "alice", "response_mode": "streaming", **change}
        response = await client.post("/v1/chat-messages", json=body, headers=app.headers)
        if change.get("files"):  # file upload is off in this app: files are ignored, the turn runs
            assert response.status_code == 200
            assert "message_end" in names(response.text)
            continue
        assert response.status_code == status, (change, response.text)
        assert response.headers["content-type"].startswith("application/json")
        assert response.json()["code"] == code, (
            change,
            response.json(),
        )
        assert text in response.json()["message"], (
            change,
            response.json(),
        )
    missing = await client.post("/v1/chat-messages", json={"inputs": {}, "user": "a"}, headers=app.headers)
    assert missing.status_code == 400
    assert "query" in missing.json()["message"]
    no_user = await client.post("/v1/chat-messages", json={"inputs": {}, "query": "q"}, headers=app.headers)
    assert no_user.status_code == 400
    assert "user" in no_user.json()["message"]


async def test_a_workflow_app_is_not_a_chat_app_and_back(client: AsyncTestClient[Litestar]) -> None:
    workflow = await import_app(client, SIMPLE.replace("mode: advanced-chat", "mode: workflow"))
    refused = await chat(client, workflow, "q")
    assert refused.status_code == 400
    assert refused.json()["code"] == "not_chat_app"
    listed = await client.get("/v1/conversations", headers=workflow.headers)
    assert listed.status_code == 400
    assert listed.json()["code"] == "not_chat_app"
    chat_app = await import_app(client, SIMPLE)
    run = await client.post("/v1/workflows/run", json={"inputs": {}, "user": "u"}, headers=chat_app.headers)
    assert run.status_code == 400
    assert run.json()["code"] == "not_workflow_app"
    completion = await client.post(
        "/v1/completion-messages", json={"inputs": {}, "user": "u"}, headers=chat_app.headers
    )
    assert completion.status_code == 400
    assert completion.json()["code"] == "app_unavailable"


async def test_a_second_turn_while_one_runs_is_refused(
    client: AsyncTestClient[Litestar], fake_llm: FakeOpenAI, chat_settings: Settings
) -> None:
    app = await import_app(client, SIMPLE)
    conversation = (await chat(client, app, "hello")).json()["conversation_id"]
    fake_llm.queue_reply("slow answer", delay=3.0)
    # The first turn is started through the service: the test client serves one request at a time.
    engine = create_async_engine(urls.asyncpg(chat_settings.database_url or ""))
    try:
        async with AsyncSession(engine) as session:
            key = KeyContext(
                key_id=uuid.uuid4(),
                type="app",
                workspace_id=(await session.scalar(select(Message.app_id).limit(0))) or uuid.uuid4(),
                app_id=uuid.UUID(app.app_id),
                app_mode="advanced-chat",
            )
            from db.models import App

            found = await session.get(App, uuid.UUID(app.app_id))
            assert found is not None
            key = KeyContext(
                key_id=key.key_id,
                type="app",
                workspace_id=found.workspace_id,
                app_id=found.id,
                app_mode=found.mode,
            )
            request = ChatRequest(query="slow one", inputs={}, user="alice", conversation_id=conversation)
            turn = await turns.start_turn(session, key, request, FileContext(FileSigner(None, "")), None)
            await session.commit()
        busy = await chat(client, app, "meanwhile", conversation_id=conversation, mode="streaming")
        assert busy.status_code == 409, busy.text
        assert busy.json()["code"] == "conversation_busy", busy.text
        other = await chat(client, app, "another conversation is fine")
        assert other.status_code == 200
        for _ in range(200):
            async with AsyncSession(engine) as session:
                run = await session.get(WorkflowRun, turn.run_id)
            if run is not None and run.status == "succeeded":
                break
            await asyncio.sleep(0.05)
        after = await chat(client, app, "now", conversation_id=conversation)
        assert after.status_code == 200
        assert after.json()["answer"].endswith("echo: now")
    finally:
        await engine.dispose()


async def test_a_turn_pauses_for_a_person_and_resumes_in_the_same_message(
    client: AsyncTestClient[Litestar], chat_settings: Settings
) -> None:
    app = await import_app(client, HUMAN)
    streamed = await chat(client, app, "the plan", mode="streaming")
    got = events(streamed.text)
    assert [e["event"] for e in got][-2:] == ["human_input_required", "workflow_paused"]
    message_id, run_id = got[0]["message_id"], got[0]["workflow_run_id"]
    assert "".join(e["answer"] for e in got if e["event"] == "message") == "Let me check. "
    paused = await message_row(chat_settings, message_id)
    assert paused.status == "paused"
    assert paused.answer == "Let me check. "
    token = got[-2]["data"]["form_token"]
    assert token
    assert got[-2]["conversation_id"] == got[0]["conversation_id"]

    history = await client.get(
        "/v1/messages",
        params={"conversation_id": got[0]["conversation_id"], "user": "alice"},
        headers=app.headers,
    )
    (item,) = history.json()["data"]
    assert item["status"] == "paused"
    assert item["extra_contents"][0]["type"] == "human_input"
    assert item["extra_contents"][0]["submitted"] is False
    assert item["extra_contents"][0]["form_definition"]["form_token"] == token

    blocked = await chat(client, app, "meanwhile", conversation_id=got[0]["conversation_id"])
    assert blocked.status_code == 409  # the paused turn goes on first

    submitted = await client.post(
        f"/v1/form/human_input/{token}",
        json={"inputs": {"comment": "go"}, "action": "approve", "user": "alice"},
        headers=app.headers,
    )
    assert submitted.status_code == 200, submitted.text
    foreign = await client.get(
        f"/v1/workflow/{run_id}/events", params={"user": "mallory"}, headers=app.headers
    )
    assert foreign.status_code == 404
    followed = await client.get(
        f"/v1/workflow/{run_id}/events", params={"user": "alice"}, headers=app.headers
    )
    assert followed.status_code == 200
    all_events = events(followed.text)
    kinds = [e["event"] for e in all_events]
    assert kinds[-2:] == ["message_end", "workflow_finished"]
    assert "human_input_form_filled" in kinds
    assert [e["data"]["reason"] for e in all_events if e["event"] == "workflow_started"] == [
        "initial",
        "resumption",
    ]
    assert {e["message_id"] for e in all_events} == {message_id}
    assert {e.get("task_id") for e in all_events} == {run_id}
    assert "".join(e["answer"] for e in all_events if e["event"] == "message") == "Let me check. Approved: go"
    done = await message_row(chat_settings, message_id)
    assert done.status == "normal"
    assert done.answer == "Let me check. Approved: go"
    history = await client.get(
        "/v1/messages",
        params={"conversation_id": got[0]["conversation_id"], "user": "alice"},
        headers=app.headers,
    )
    content = history.json()["data"][0]["extra_contents"][0]
    assert content["submitted"] is True
    assert content["form_submission_data"]["action_id"] == "approve"


async def test_a_paused_turn_in_blocking_mode_and_its_stop(client: AsyncTestClient[Litestar]) -> None:
    app = await import_app(client, HUMAN)
    paused = await chat(client, app, "plan B")
    assert paused.status_code == 200, paused.text
    body = paused.json()
    assert body["event"] == "workflow_paused"
    assert body["answer"] == "Let me check. "
    assert body["data"]["status"] == "paused"
    assert body["data"]["paused_nodes"] == ["ask"]
    (reason,) = body["data"]["reasons"]
    assert reason["TYPE"] == "human_input_required"
    assert reason["node_id"] == "ask"
    assert reason["form_token"]
    run_id = body["workflow_run_id"]
    assert body["task_id"] == run_id

    ignored = await client.post(
        f"/v1/chat-messages/{run_id}/stop", json={"user": "mallory"}, headers=app.headers
    )
    assert ignored.status_code == 200
    assert ignored.json() == {"result": "success"}
    # Another user's stop did nothing: the turn is still paused (its event stream would wait for the person).
    still = await client.get(f"/v1/workflows/run/{run_id}", headers=app.headers)
    assert still.status_code == 200, still.text
    assert still.json()["status"] == "paused", still.text

    stopped = await client.post(
        f"/v1/chat-messages/{run_id}/stop", json={"user": "alice"}, headers=app.headers
    )
    assert stopped.status_code == 200
    assert stopped.json() == {"result": "success"}
    replay = events(
        (
            await client.get(f"/v1/workflow/{run_id}/events", params={"user": "alice"}, headers=app.headers)
        ).text
    )
    assert [e["event"] for e in replay][-2:] == ["workflow_finished", "message_end"]
    assert replay[-2]["data"]["status"] == "stopped"
    assert replay[-2]["data"]["error"] == "Stopped by user."
    form = await client.get(f"/v1/form/human_input/{reason['form_token']}", headers=app.headers)
    assert form.status_code in (404, 412)  # the stopped turn's form is closed
    for odd in ("not-a-task", str(uuid.uuid4())):
        answer = await client.post(
            f"/v1/chat-messages/{odd}/stop", json={"user": "alice"}, headers=app.headers
        )
        assert answer.status_code == 200
        assert answer.json() == {"result": "success"}


async def test_an_annotation_answers_without_running_the_flow(
    client: AsyncTestClient[Litestar], chat_settings: Settings, fake_llm: FakeOpenAI
) -> None:
    app = await import_app(client, SIMPLE)
    created = await client.post(
        "/v1/apps/annotations",
        json={"question": "What are your hours?", "answer": "Nine to five."},
        headers=app.headers,
    )
    assert created.status_code in (200, 201), created.text
    engine = create_async_engine(urls.asyncpg(chat_settings.database_url or ""))
    try:
        enabled = await client.post(
            "/v1/apps/annotation-reply/enable",
            json={
                "score_threshold": 0.9,
                "embedding_provider_name": "local",
                "embedding_model_name": "static-64",
            },
            headers=app.headers,
        )
        assert enabled.status_code == 200, enabled.text
        for _ in range(200):
            async with AsyncSession(engine) as session:
                setting = await session.scalar(
                    select(AnnotationSetting).where(AnnotationSetting.app_id == uuid.UUID(app.app_id))
                )
            if setting is not None and setting.enabled:
                break
            await asyncio.sleep(0.05)
        assert setting is not None
        assert setting.enabled
        calls = len(fake_llm.bodies(unless=NAME_PROMPT))
        streamed = await chat(client, app, "What are your hours?", mode="streaming")
        assert names(streamed.text) == ["message", "message_end"], streamed.text
        assert events(streamed.text)[0]["answer"] == "Nine to five."
        blocking = (await chat(client, app, "What are your hours?")).json()
        assert blocking["answer"] == "Nine to five."
        assert "annotation_reply" not in blocking["metadata"]
        assert len(fake_llm.bodies(unless=NAME_PROMPT)) == calls  # no model was asked
        conversation = blocking["conversation_id"]
        assert (await variables_of(client, app, conversation)) == {}  # the graph never ran
        async with AsyncSession(engine) as session:
            await session.execute(
                update(AnnotationSetting)
                .where(AnnotationSetting.app_id == uuid.UUID(app.app_id))
                .values(enabled=False)
            )
            await session.commit()
    finally:
        await engine.dispose()
