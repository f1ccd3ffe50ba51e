"""Against the live service (`python -m app up`, real HTTP): the upstream Dify Python SDK's ``ChatClient`` holds
a conversation with an advanced-chat app (blocking and streaming turns), lists, reads, rates, renames and deletes
it, and reads and sets its conversation variable."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from dify_client import ChatClient
from dify_client.exceptions import APIError

from tests.support.fake_openai import CHAT_PATH, FakeOpenAI
from tests.support.processes import LiveService

#: The live service's model server is shared by the session: queries unique to this module pick their answers.
TAG = uuid.uuid4().hex[:8]
FIRST, SECOND = f"What is a sluice? {TAG}", f"And a weir? {TAG}"
ANSWERS = {FIRST: "A gate that controls water.", SECOND: "A low dam across a river."}
USER = f"sdk-chat-{TAG}"

TUTOR = """
version: 0.1.5
kind: app
app: {name: Tutor, mode: advanced-chat}
workflow:
  conversation_variables:
    - {id: 5d1c7f3e-2a4b-4c8d-9e0f-1a2b3c4d5e6f, name: turns, value_type: number, value: 0, description: '', selector: [conversation, turns]}
  graph:
    nodes:
      - id: start
        data: {type: start, title: Start, variables: []}
      - id: llm
        data:
          type: llm
          title: Tutor
          model: {provider: openai, name: gpt-4o-mini, mode: chat, completion_params: {}}
          prompt_template:
            - {role: system, text: You explain waterways.}
          memory: {window: {enabled: true, size: 5}}
      - id: count
        data:
          type: assigner
          title: Count
          version: '2'
          items:
            - {variable_selector: [conversation, turns], input_type: constant, operation: +=, value: 1}
      - id: answer
        data: {type: answer, title: Answer, answer: "{{#llm.text#}}"}
    edges:
      - {id: e1, source: start, target: llm}
      - {id: e2, source: llm, target: count}
      - {id: e3, source: count, target: answer}
"""


@pytest.fixture(scope="module")
def chat_key(live_service: LiveService) -> str:
    admin = {"Authorization": f"Bearer {live_service.admin_token}"}
    with httpx.Client(base_url=live_service.base_url, headers=admin) as http:
        imported = http.post("/console/api/apps/imports", json={"yaml_content": TUTOR})
        assert imported.status_code == 200, imported.text
        return str(http.post(f"/console/api/apps/{imported.json()['app_id']}/api-keys").json()["token"])


@pytest.fixture
def answers(session_llm: FakeOpenAI) -> Iterator[None]:
    rules = list(session_llm.rules)
    for query, answer in ANSWERS.items():
        session_llm.add_rule(query, answer)
    yield
    session_llm.rules[:] = rules


def data_events(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]


def test_dify_sdk_chat_client_holds_a_conversation(
    live_service: LiveService, chat_key: str, session_llm: FakeOpenAI, answers: None
) -> None:
    client = ChatClient(chat_key, base_url=f"{live_service.base_url}/v1")

    first = client.create_chat_message({}, FIRST, USER).json()
    assert first["event"] == "message"
    assert first["answer"] == ANSWERS[FIRST]
    assert first["metadata"]["usage"]["total_tokens"] > 0
    conversation = first["conversation_id"]

    streamed = client.create_chat_message({}, SECOND, USER, "streaming", conversation)
    assert streamed.headers["content-type"].startswith("text/event-stream")
    events = data_events(streamed)
    assert events[0]["event"] == "workflow_started"
    assert events[-1]["event"] == "workflow_finished"
    assert events[-2]["event"] == "message_end"
    assert events[-2]["metadata"]["usage"]["total_tokens"] > 0
    assert "".join(e["answer"] for e in events if e["event"] == "message") == ANSWERS[SECOND]
    assert {e["conversation_id"] for e in events} == {conversation}
    second_id = events[-2]["id"]
    # memory: the second call carried the first turn
    turns = [b for b in session_llm.bodies(CHAT_PATH) if b["messages"][-1]["content"] == SECOND]
    assert [m["content"] for m in turns[-1]["messages"][1:]] == [FIRST, ANSWERS[FIRST], SECOND]

    listed = client.get_conversations(USER).json()
    assert [c["id"] for c in listed["data"]] == [conversation]
    assert listed["has_more"] is False
    messages = client.get_conversation_messages(USER, conversation).json()
    assert [(m["query"], m["answer"]) for m in messages["data"]] == list(ANSWERS.items())
    assert messages["data"][1]["id"] == second_id

    assert client.message_feedback(second_id, "like", USER).json() == {"result": "success"}
    messages = client.get_conversation_messages(USER, conversation).json()
    assert messages["data"][1]["feedback"] == {"rating": "like"}

    variables = client.get_conversation_variables(conversation, USER).json()
    (turns_var,) = variables["data"]
    assert (turns_var["name"], turns_var["value"]) == ("turns", "2")
    updated = client.update_conversation_variable(conversation, turns_var["id"], 10, USER).json()
    assert updated["value"] == "10"

    renamed = client.rename_conversation(conversation, "Waterways", False, USER).json()
    assert renamed["id"] == conversation
    assert renamed["name"] == "Waterways"
    assert client.get_conversations(USER).json()["data"][0]["name"] == "Waterways"

    # another end user of the app sees none of it
    with pytest.raises(APIError) as refused:
        client.get_conversation_messages("someone-else", conversation)
    assert refused.value.status_code == 404
    assert client.get_conversations("someone-else").json()["data"] == []

    assert client.delete_conversation(conversation, USER).status_code == 204
    assert client.get_conversations(USER).json()["data"] == []
    with pytest.raises(APIError) as gone:
        client.get_conversation_messages(USER, conversation)
    assert gone.value.status_code == 404


def test_a_stop_mid_stream_ends_the_turn_with_its_partial_answer(
    live_service: LiveService, chat_key: str, session_llm: FakeOpenAI
) -> None:
    """The SDK's ``stop_message`` while the model streams: the open stream ends at once with Dify's stop group
    (``workflow_finished`` stopped, then ``message_end``), and the message keeps the answer streamed so far."""
    client = ChatClient(chat_key, base_url=f"{live_service.base_url}/v1")
    # A slow model: a rule and the fake's pace, not a scripted call (a naming call may come in and take it).
    query = f"Tell me slowly {TAG}"
    session_llm.add_rule(query, "one two three four five six seven eight", times=1)
    session_llm.first_token_delay, session_llm.token_interval = 0.001, 1.0
    user = f"stopper-{TAG}"
    body = {
        "inputs": {},
        "query": query,
        "user": user,
        "response_mode": "streaming",
        "auto_generate_name": False,
    }
    try:
        stream_and_stop(live_service, chat_key, client, body, user)
    finally:
        session_llm.first_token_delay, session_llm.token_interval = 0.0, 0.0


def stream_and_stop(
    live_service: LiveService, chat_key: str, client: ChatClient, body: dict[str, Any], user: str
) -> None:
    with (
        httpx.Client(timeout=30) as http,
        http.stream(
            "POST",
            f"{live_service.base_url}/v1/chat-messages",
            json=body,
            headers={"Authorization": f"Bearer {chat_key}"},
        ) as response,
    ):
        assert response.status_code == 200
        lines = response.iter_lines()
        seen: list[dict[str, Any]] = []
        for line in lines:
            if line.startswith("data: "):
                seen.append(json.loads(line[6:]))
                if seen[-1]["event"] == "message" and seen[-1]["answer"]:
                    break  # the model is answering now
        stop_sent = time.monotonic()
        task_id = seen[-1]["task_id"]
        assert client.stop_message(task_id, user).json() == {"result": "success"}
        rest = [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
    assert time.monotonic() - stop_sent < 3  # not when the model is done (8 s)
    assert [e["event"] for e in rest[-2:]] == ["workflow_finished", "message_end"]
    finished = rest[-2]["data"]
    assert finished["status"] == "stopped"
    assert finished["error"] == "Stopped by user."
    partial = "".join(e["answer"] for e in seen + rest if e["event"] == "message")
    assert partial
    assert "eight" not in partial
    (message,) = client.get_conversation_messages(user, seen[0]["conversation_id"]).json()["data"]
    assert message["answer"] == partial
    assert message["status"] == "normal"
