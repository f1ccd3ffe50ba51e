"""Dify compatibility beyond single features: the conformance checker itself (what it refuses, what the
differences document lets through, and nothing more) and the paths Dify accepts under two spellings."""

from __future__ import annotations

import json

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.support.dify_contract import Contract, Tolerated, document_path

RUN_ID = "0193e0a6-3c3f-7a51-8000-000000000001"
EVENTS = f"/v1/workflow/{RUN_ID}/events"
DATASET = "/v1/datasets/0193e0a6-3c3f-7a51-8000-000000000002"
DOCUMENT = f"{DATASET}/documents/0193e0a6-3c3f-7a51-8000-000000000003"

#: Every path Dify's service API registers under two names (api/controllers/service_api/dataset/document.py and
#: hit_testing.py): both must reach the same handler.
SPELLINGS = [
    (f"{DATASET}/document/create_by_text", f"{DATASET}/document/create-by-text"),
    (f"{DATASET}/document/create_by_file", f"{DATASET}/document/create-by-file"),
    (f"{DOCUMENT}/update_by_text", f"{DOCUMENT}/update-by-text"),
    (f"{DOCUMENT}/update_by_file", f"{DOCUMENT}/update-by-file"),
    (f"{DATASET}/retrieve", f"{DATASET}/hit-testing"),
]


@pytest.fixture(scope="module")
def contract() -> Contract:
    if not document_path().exists():
        pytest.skip(f"{document_path()} is absent (../shared not present)")
    return Contract.load()


def sse(*events: dict[str, object]) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)


def message_event(event: str) -> dict[str, object]:
    return {
        "event": event,
        "task_id": RUN_ID,
        "message_id": RUN_ID,
        "conversation_id": RUN_ID,
        "id": RUN_ID,
        "answer": "hi",
        "created_at": 1,
        "metadata": {},
    }


def test_chat_events_on_the_run_events_stream_only_through_the_named_difference(contract: Contract) -> None:
    body = sse(message_event("message"), message_event("message_end"))
    _, found = contract.check("GET", EVENTS, 200, "text/event-stream", body)
    assert found == []
    # Without the entry (docs/dify-api-differences.md, chat-run-events) the chat events are violations.
    strict = Contract(contract.document, [t for t in contract.tolerated if t.id != "chat-run-events"])
    _, found = strict.check("GET", EVENTS, 200, "text/event-stream", body)
    assert [v.where for v in found] == ["$event[message].event", "$event[message_end].event"]
    # The added union checks its events: a `message` without its documented keys is still refused.
    _, found = contract.check("GET", EVENTS, 200, "text/event-stream", sse({"event": "message", "answer": 3}))
    assert found
    assert all(v.where.startswith("$event[message]") for v in found)
    # An event neither union names is refused.
    _, found = contract.check("GET", EVENTS, 200, "text/event-stream", sse({"event": "no_such_event"}))
    assert found


def test_the_extra_union_applies_to_its_operation_only(contract: Contract) -> None:
    body = sse(message_event("message"))
    _, found = contract.check("POST", "/v1/workflows/run", 200, "text/event-stream", body)
    assert [v.where for v in found] == ["$event[message].event"]


def test_a_busy_conversation_409_is_named_and_other_undocumented_statuses_are_not(contract: Contract) -> None:
    busy = json.dumps({"code": "conversation_busy", "message": "busy", "status": 409}).encode()
    assert contract.check("POST", "/v1/chat-messages", 409, "application/json", busy)[1] == []
    _, found = contract.check("POST", "/v1/chat-messages", 418, "application/json", busy)
    assert [v.where for v in found] == ["status"]
    strict = Contract(contract.document, [t for t in contract.tolerated if t.id != "conversation-busy-409"])
    assert [v.where for v in strict.check("POST", "/v1/chat-messages", 409, "application/json", busy)[1]] == [
        "status"
    ]


def test_an_allowlist_entry_without_events_adds_no_union(contract: Contract) -> None:
    entry = Tolerated("x", "GET /workflow/{workflow_run_id}/events", "200", "none", "test")
    plain = Contract(contract.document, [entry])
    op = plain.operation("GET", EVENTS)
    assert op is not None
    assert plain.stream_unions(op, 200) == ["ChunkWorkflowEvent"]
    assert contract.stream_unions(op, 200) == ["ChunkWorkflowEvent", "ChunkChatEvent"]


@pytest.mark.parametrize(("underscored", "dashed"), SPELLINGS)
async def test_both_spellings_reach_a_handler(
    client: AsyncTestClient[Litestar], underscored: str, dashed: str
) -> None:
    for path in (underscored, dashed):
        response = await client.post(path, json={})
        assert response.status_code == 401, (
            path,
            response.status_code,
            response.text,
        )  # routed, then refused
    misspelled = await client.post(underscored + "x", json={})
    assert misspelled.status_code == 404
