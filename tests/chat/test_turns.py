"""A chat turn end to end: blocking and streaming, memory reaching the model, a conversation variable counting
turns, the stored messages and conversations."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.chat.naming import NAME_PROMPT
from app.workflows.runs import event_log
from tests.chat.conftest import chat, events, import_app, names
from tests.support.fake_openai import FakeOpenAI

COUNTER = """
version: 0.1.5
kind: app
app: {name: Counter, mode: advanced-chat}
workflow:
  conversation_variables:
    - {id: 3f0a8a43-8b5d-4ad1-9f43-0e8f1d2c4b11, name: turns, value_type: number, value: 0, description: turns so far, selector: [conversation, turns]}
    - {id: 9b2b6f31-1c0e-4bb8-a2a7-1d9c9e7f5c22, name: topics, value_type: "array[string]", value: [], description: '', selector: [conversation, topics]}
  features:
    opening_statement: "Hello {{name}}"
    retriever_resource: {enabled: true}
  graph:
    nodes:
      - id: start
        data:
          type: start
          title: Start
          variables:
            - {variable: name, label: Name, type: text-input, required: true, max_length: 20}
      - id: llm
        data:
          type: llm
          title: LLM
          model: {provider: openai, name: fake-chat, mode: chat, completion_params: {}}
          prompt_template:
            - {role: system, text: "You talk to {{#start.name#}}."}
          memory:
            window: {enabled: true, size: 10}
            query_prompt_template: "{{#sys.query#}}"
      - id: count
        data:
          type: assigner
          title: Count
          version: '2'
          items:
            - {variable_selector: [conversation, turns], input_type: constant, operation: +=, value: 1}
            - {variable_selector: [conversation, topics], input_type: variable, operation: append, value: [sys, query]}
      - id: answer
        data:
          type: answer
          title: Answer
          answer: "{{#llm.text#}} (turn {{#conversation.turns#}}, dialogue {{#sys.dialogue_count#}})"
    edges:
      - {id: e1, source: start, target: llm}
      - {id: e2, source: llm, target: count}
      - {id: e3, source: count, target: answer}
"""


async def test_three_turns_with_memory_and_a_counting_variable(
    client: AsyncTestClient[Litestar], fake_llm: FakeOpenAI
) -> None:
    app = await import_app(client, COUNTER)
    first = await chat(client, app, "What is a sluice?", inputs={"name": "Ada"})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["event"] == "message"
    assert body["mode"] == "advanced-chat"
    assert body["answer"] == "echo: What is a sluice? (turn 1, dialogue 1)"
    assert body["metadata"]["usage"]["total_tokens"] > 0
    assert body["metadata"]["retriever_resources"] == []
    conversation = body["conversation_id"]

    second = await chat(client, app, "And a lock?", inputs={"name": "Ada"}, conversation_id=conversation)
    assert second.json()["answer"] == "echo: And a lock? (turn 2, dialogue 2)", second.text
    streamed = await chat(
        client, app, "Which is older?", inputs={"name": "Ada"}, conversation_id=conversation, mode="streaming"
    )
    assert streamed.status_code == 200
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert streamed.text.startswith("event: ping")
    got = events(streamed.text)
    assert [e["event"] for e in got][:1] == ["workflow_started"]
    assert [e["event"] for e in got][-2:] == ["message_end", "workflow_finished"]
    answer = "".join(e["answer"] for e in got if e["event"] == "message")
    assert answer == "echo: Which is older? (turn 3, dialogue 3)"
    assert {e["conversation_id"] for e in got} == {conversation}
    assert len({e["message_id"] for e in got}) == 1
    assert len({e["created_at"] for e in got}) == 1

    # the model saw the earlier turns, each with the answer streamed back
    messages = fake_llm.bodies(unless=NAME_PROMPT)[-1]["messages"]
    assert messages == [
        {"role": "system", "content": "You talk to Ada."},
        {"role": "user", "content": "What is a sluice?"},
        {"role": "assistant", "content": "echo: What is a sluice? (turn 1, dialogue 1)"},
        {"role": "user", "content": "And a lock?"},
        {"role": "assistant", "content": "echo: And a lock? (turn 2, dialogue 2)"},
        {"role": "user", "content": "Which is older?"},
    ]

    listed = await client.get(
        "/v1/messages", params={"conversation_id": conversation, "user": "alice"}, headers=app.headers
    )
    assert listed.status_code == 200, listed.text
    assert [m["query"] for m in listed.json()["data"]] == [
        "What is a sluice?",
        "And a lock?",
        "Which is older?",
    ]
    assert all(m["status"] == "normal" for m in listed.json()["data"])

    variables = await client.get(
        f"/v1/conversations/{conversation}/variables", params={"user": "alice"}, headers=app.headers
    )
    assert variables.status_code == 200, variables.text
    by_name = {v["name"]: v for v in variables.json()["data"]}
    assert by_name["turns"]["value"] == "3"
    assert by_name["turns"]["value_type"] == "number"
    assert by_name["topics"]["value"] == "['What is a sluice?', 'And a lock?', 'Which is older?']"

    conversations = await client.get("/v1/conversations", params={"user": "alice"}, headers=app.headers)
    assert conversations.status_code == 200, conversations.text
    (row,) = conversations.json()["data"]
    assert row["id"] == conversation
    assert row["inputs"] == {"name": "Ada"}
    assert row["introduction"] == "Hello Ada"


async def test_streaming_names_every_event_in_the_chat_envelope(client: AsyncTestClient[Litestar]) -> None:
    app = await import_app(client, COUNTER)
    streamed = await chat(client, app, "hi", inputs={"name": "Bo"}, mode="streaming")
    got = names(streamed.text)
    assert got[0] == "workflow_started"
    assert "node_started" in got
    assert "message" in got
    assert "text_chunk" not in got


STREAMER = """
version: 0.1.5
kind: app
app: {name: Streamer, mode: advanced-chat}
workflow:
  graph:
    nodes:
      - {id: start, data: {type: start, title: Start, variables: []}}
      - id: llm
        data:
          type: llm
          title: LLM
          model: {provider: openai, name: fake-chat, mode: chat, completion_params: {}}
          prompt_template:
            - {role: user, text: "{{#sys.query#}}"}
      - {id: answer, data: {type: answer, title: Answer, answer: "{{#llm.text#}}"}}
    edges:
      - {id: e1, source: start, target: llm}
      - {id: e2, source: llm, target: answer}
"""


async def test_the_first_token_is_written_at_once_not_held_for_the_next(
    client: AsyncTestClient[Litestar], fake_llm: FakeOpenAI, chat_engine: AsyncEngine
) -> None:
    """Streamed text is committed in batches (CHUNK_FLUSH_SECONDS), but a node's first chunk goes out at once: a
    model that sends its first token right away, then pauses, has that token reach the client before the pause
    ends (a separate commit of the event log), not with the next one."""
    app = await import_app(client, STREAMER)
    # the first token at once, the next a second later (a rule, not a scripted call: a naming call of an earlier
    # test's conversation may come in meanwhile, and would take a scripted reply)
    fake_llm.first_token_delay, fake_llm.token_interval = 0.001, 1.0
    fake_llm.add_rule("pause after the first word", "Sluices hold water.")
    try:
        streamed = await chat(client, app, "pause after the first word", mode="streaming")
    finally:
        fake_llm.first_token_delay, fake_llm.token_interval = 0.0, 0.0
    run_id = events(streamed.text)[0]["workflow_run_id"]
    async with chat_engine.connect() as conn:
        written = (
            await conn.execute(
                text(
                    "SELECT data->>'text', created_at FROM workflow_run_events "
                    "WHERE run_id = :run AND event = 'text_chunk' ORDER BY seq"
                ),
                {"run": run_id},
            )
        ).all()
    assert [t for t, _ in written] == ["Sluices ", "hold ", "water."]
    # created_at is the writing transaction's start: the first chunk's commit came a pause before the second's
    assert (written[1][1] - written[0][1]).total_seconds() >= 0.8


async def test_streamed_text_reaches_the_client_from_its_notices(
    client: AsyncTestClient[Litestar], fake_llm: FakeOpenAI, chat_engine: AsyncEngine, monkeypatch: Any
) -> None:
    """Each chunk of a slow model is its own commit (more than CHUNK_FLUSH_SECONDS apart), whose notice carries
    it: the stream sends it on without reading the event log back, so it reads the log fewer times than chunks
    were committed, and sends exactly what was stored, in order."""
    app = await import_app(client, STREAMER)
    reads = 0
    read = event_log.status_and_events

    async def counted(*args: Any) -> Any:
        nonlocal reads
        reads += 1
        return await read(*args)

    monkeypatch.setattr(event_log, "status_and_events", counted)
    words = "one two three four five six seven eight"
    fake_llm.first_token_delay, fake_llm.token_interval = 0.001, 0.1
    fake_llm.add_rule("count slowly", words)
    try:
        streamed = await chat(client, app, "count slowly", mode="streaming")
    finally:
        fake_llm.first_token_delay, fake_llm.token_interval = 0.0, 0.0
    sent = [e for e in events(streamed.text) if e["event"] == "message"]
    assert "".join(e["answer"] for e in sent) == words
    async with chat_engine.connect() as conn:
        written = list(
            await conn.scalars(
                text(
                    "SELECT data->>'text' FROM workflow_run_events "
                    "WHERE run_id = :run AND event = 'text_chunk' ORDER BY seq"
                ),
                {"run": sent[0]["task_id"]},
            )
        )
    assert [e["answer"] for e in sent] == written
    assert len(written) == len(words.split())  # each its own commit
    assert reads < len(written)


LISTENER = """
version: 0.1.5
kind: app
app: {name: Listener, mode: advanced-chat}
workflow:
  features:
    file_upload: {enabled: true, allowed_file_types: [document], allowed_file_upload_methods: [local_file], number_limits: 2}
  graph:
    nodes:
      - {id: start, data: {type: start, title: Start, variables: []}}
      - id: count
        data:
          type: template-transform
          title: Count
          template: "{{ files | length }} file(s): {{ files[0].filename }}"
          variables: [{variable: files, value_selector: [sys, files]}]
      - {id: answer, data: {type: answer, title: Answer, answer: "{{#count.output#}}"}}
    edges:
      - {id: e1, source: start, target: count}
      - {id: e2, source: count, target: answer}
"""


async def test_files_of_a_turn_become_sys_files_and_the_message_files(
    client: AsyncTestClient[Litestar],
) -> None:
    """``files`` (uploads of ``POST /v1/files/upload``) reach the graph as ``sys.files`` and the message keeps them
    (``belongs_to: user``); a file of another user, or one that does not exist, is a 400 before any stream."""
    app = await import_app(client, LISTENER)
    uploaded = await client.post(
        "/v1/files/upload",
        files={"file": ("notes.txt", b"tides and locks", "text/plain")},
        data={"user": "alice"},
        headers=app.headers,
    )
    assert uploaded.status_code == 201, uploaded.text
    mapping = {"type": "document", "transfer_method": "local_file", "upload_file_id": uploaded.json()["id"]}

    body = (await chat(client, app, "read this", files=[mapping])).json()
    assert body["answer"] == "1 file(s): notes.txt", body
    listed = await client.get(
        "/v1/messages",
        params={"conversation_id": body["conversation_id"], "user": "alice"},
        headers=app.headers,
    )
    (message,) = listed.json()["data"]
    (file,) = message["message_files"]
    assert file["filename"] == "notes.txt"
    assert file["belongs_to"] == "user"
    assert file["url"]

    for who, sent in (("bob", mapping), ("alice", {**mapping, "upload_file_id": str(uuid.uuid4())})):
        refused = await chat(client, app, "read this", user=who, files=[sent], mode="streaming")
        assert refused.status_code == 400, refused.text
        assert refused.json()["code"] == "invalid_param", refused.text
        assert refused.json()["message"] == "Invalid upload file"


async def test_turns_reuse_the_workers_open_connection_to_the_model(
    client: AsyncTestClient[Litestar], fake_llm: FakeOpenAI
) -> None:
    """The worker keeps its connection to the model endpoint open between calls: the next turn's model call
    goes out without a new connect (or, to a real provider, a new TLS handshake)."""
    app = await import_app(client, COUNTER)
    conversation = None
    for query in ("one", "two", "three"):
        answer = await chat(client, app, query, inputs={"name": "Ada"}, conversation_id=conversation)
        assert answer.status_code == 200, answer.text
        conversation = answer.json()["conversation_id"]
    peers = [r.peer for r in fake_llm.requests if r.path.endswith("/chat/completions")]
    assert len(peers) == 3
    assert len(set(peers)) == 1, peers
