"""Against the live service (`python -m app up`, real HTTP): the upstream Dify Python SDK, LLM streaming,
and an SSE client that disconnects mid-run and resumes with Last-Event-ID."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from dify_client import WorkflowClient

from tests.support.fake_openai import FakeOpenAI
from tests.support.processes import LiveService

STORY = """
version: 0.1.5
kind: app
app: {name: Storyteller, mode: workflow}
workflow:
  graph:
    nodes:
      - id: start
        data: {type: start, title: Start, variables: [{variable: topic, label: Topic, type: text-input, required: true}]}
      - id: llm
        data:
          type: llm
          title: Writer
          model: {provider: openai, name: gpt-4o-mini, mode: chat, completion_params: {temperature: 0.2}}
          prompt_template:
            - {role: system, text: You tell short stories.}
            - {role: user, text: "A story about {{#start.topic#}}"}
          context: {enabled: false}
      - id: end
        data: {type: end, title: End, outputs: [{variable: story, value_selector: [llm, text]}]}
    edges:
      - {id: e1, source: start, target: llm}
      - {id: e2, source: llm, target: end}
"""


@pytest.fixture(scope="module")
def app_key(live_service: LiveService) -> str:
    admin = {"Authorization": f"Bearer {live_service.admin_token}"}
    with httpx.Client(base_url=live_service.base_url, headers=admin) as http:
        imported = http.post("/console/api/apps/imports", json={"yaml_content": STORY})
        assert imported.status_code == 200, imported.text
        return str(http.post(f"/console/api/apps/{imported.json()['app_id']}/api-keys").json()["token"])


def sse_stream(response: httpx.Response) -> Any:
    """Yield (id, data) for each SSE message of a streaming httpx response (pings skipped)."""
    event_id, data = None, None
    for line in response.iter_lines():
        if line.startswith("id: "):
            event_id = int(line[4:])
        elif line.startswith("data: "):
            data = json.loads(line[6:])
        elif line == "" and data is not None:
            yield event_id, data
            event_id, data = None, None


def test_dify_sdk_runs_gets_lists_and_stops(
    live_service: LiveService, app_key: str, session_llm: FakeOpenAI
) -> None:
    client = WorkflowClient(app_key, base_url=f"{live_service.base_url}/v1")
    session_llm.queue_reply("Once upon a time, a lighthouse.")
    result = client.run({"topic": "lighthouses"}, response_mode="blocking", user="sdk-user").json()
    assert result["data"]["status"] == "succeeded", result
    assert result["data"]["outputs"] == {"story": "Once upon a time, a lighthouse."}
    assert result["data"]["total_tokens"] > 0
    run_id = result["workflow_run_id"]
    sent = session_llm.bodies()[-1]
    assert sent["messages"][-1]["content"] == "A story about lighthouses"
    assert sent["stream"] is True

    fetched = client.get_result(run_id).json()
    assert fetched["id"] == run_id
    assert fetched["status"] == "succeeded"
    logs = client.get_workflow_logs(status="succeeded", limit=5).json()
    assert run_id in [entry["id"] for entry in logs["data"]]

    # A slow model keeps the next run busy long enough to stop it.
    session_llm.queue_reply("a b c d e f g h", chunk_delay=1.0)
    with (
        httpx.Client(timeout=30) as http,
        http.stream(
            "POST",
            f"{live_service.base_url}/v1/workflows/run",
            json={"inputs": {"topic": "slow"}, "response_mode": "streaming", "user": "sdk-user"},
            headers={"Authorization": f"Bearer {app_key}"},
        ) as response,
    ):
        stream = sse_stream(response)
        for _, data in stream:
            if data["event"] == "text_chunk":  # the model is answering now
                break
        slow_run = data["workflow_run_id"]
        stop_sent = time.monotonic()
        assert client.stop(slow_run, "sdk-user").json() == {"result": "success"}
        rest = [data for _, data in stream]
    assert time.monotonic() - stop_sent < 3  # the stream ends at the stop, not when the model is done
    assert rest[-1]["event"] == "workflow_finished"
    assert rest[-1]["data"]["status"] == "stopped"
    assert client.get_result(slow_run).json()["status"] == "stopped"


def test_llm_tokens_stream_as_text_chunks(
    live_service: LiveService, app_key: str, session_llm: FakeOpenAI
) -> None:
    session_llm.queue_reply("alpha beta gamma")
    with (
        httpx.Client(timeout=30) as http,
        http.stream(
            "POST",
            f"{live_service.base_url}/v1/workflows/run",
            json={"inputs": {"topic": "greek"}, "response_mode": "streaming", "user": "u"},
            headers={"Authorization": f"Bearer {app_key}"},
        ) as response,
    ):
        events = [data for _, data in sse_stream(response)]
    chunks = "".join(e["data"]["text"] for e in events if e["event"] == "text_chunk")
    assert chunks == "alpha beta gamma"
    assert events[-1]["data"]["outputs"] == {"story": "alpha beta gamma"}


def test_sse_reconnect_with_last_event_id_misses_nothing(
    live_service: LiveService, app_key: str, session_llm: FakeOpenAI
) -> None:
    """Disconnect mid-run, reconnect with Last-Event-ID: every remaining event exactly once, in order; and the
    disconnect did not stop the run."""
    session_llm.queue_reply("one two three four five six", chunk_delay=0.15)
    headers = {"Authorization": f"Bearer {app_key}"}
    seen: list[tuple[int, str]] = []
    with httpx.Client(timeout=30) as http:
        with http.stream(
            "POST",
            f"{live_service.base_url}/v1/workflows/run",
            json={"inputs": {"topic": "reconnect"}, "response_mode": "streaming", "user": "u"},
            headers=headers,
        ) as response:
            for event_id, data in sse_stream(response):
                seen.append((event_id, data["event"]))
                run_id = data["workflow_run_id"]
                if data["event"] == "text_chunk":
                    break  # the client goes away mid-run
        time.sleep(0.5)
        last_id = seen[-1][0]
        with http.stream(
            "GET",
            f"{live_service.base_url}/v1/workflow/{run_id}/events",
            headers={**headers, "Last-Event-ID": str(last_id)},
        ) as response:
            resumed = [(event_id, data["event"]) for event_id, data in sse_stream(response)]
        with http.stream(
            "GET", f"{live_service.base_url}/v1/workflow/{run_id}/events", headers=headers
        ) as response:
            everything = [(event_id, data["event"]) for event_id, data in sse_stream(response)]

    assert seen + resumed == everything  # nothing lost, nothing twice, same order
    assert [i for i, _ in everything] == list(range(1, len(everything) + 1))
    assert everything[-1][1] == "workflow_finished"
    status = httpx.get(f"{live_service.base_url}/v1/workflows/run/{run_id}", headers=headers).json()["status"]
    assert status == "succeeded"
