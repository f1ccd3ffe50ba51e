"""The workflow Service API against a real worker: blocking and streaming runs, pause/resume, stop, logs, SSE."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from app.settings import Settings
from app.workflows import services
from app.workflows.runs import event_log, transitions
from db import urls
from db.models import WorkflowNodeExecution
from tests.conftest import ADMIN_TOKEN
from tests.workflows.conftest import import_app, sse_events

GREETER = """
version: 0.1.5
kind: app
app: {name: Greeter, mode: workflow}
workflow:
  graph:
    nodes:
      - id: start
        data: {type: start, title: Start, variables: [{variable: name, label: Name, type: text-input, required: true, max_length: 20}]}
      - id: end
        data: {type: end, title: End, outputs: [{variable: greeting, value_selector: [start, name]}]}
    edges:
      - {id: e1, source: start, target: end}
"""

APPROVAL = """
version: 0.5.0
kind: app
app: {name: Approval, mode: workflow}
workflow:
  graph:
    nodes:
      - id: start
        data: {type: start, title: Start, variables: []}
      - id: ask_a
        data: {type: test-pause, title: Ask A, reason: first}
      - id: ask_b
        data: {type: test-pause, title: Ask B, reason: second}
      - id: end
        data: {type: end, title: End, outputs: [{variable: a, value_selector: [ask_a, answer]}, {variable: b, value_selector: [ask_b, answer]}]}
    edges:
      - {id: e1, source: start, target: ask_a}
      - {id: e2, source: start, target: ask_b}
      - {id: e3, source: ask_a, target: end, sourceHandle: approve}
      - {id: e4, source: ask_b, target: end, sourceHandle: approve}
"""

SLOW = """
version: 0.5.0
kind: app
app: {name: Slow, mode: workflow}
workflow:
  graph:
    nodes:
      - id: start
        data: {type: start, title: Start, variables: []}
      - id: slow
        data: {type: test-slow, title: Slow, seconds: 8}
      - id: end
        data: {type: end, title: End, outputs: []}
    edges:
      - {id: e1, source: start, target: slow}
      - {id: e2, source: slow, target: end}
"""


async def run_blocking(client: AsyncTestClient[Litestar], headers: dict[str, str], inputs: dict) -> dict:  # type: ignore[type-arg]
    response = await client.post(
        "/v1/workflows/run",
        json={"inputs": inputs, "response_mode": "blocking", "user": "u1"},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_blocking_run(wf_client: AsyncTestClient[Litestar]) -> None:
    app = await import_app(wf_client, GREETER)
    body = await run_blocking(wf_client, app.headers, {"name": "Ada"})
    assert body["workflow_run_id"] == body["task_id"] == body["data"]["id"]
    data = body["data"]
    assert data["status"] == "succeeded"
    assert data["outputs"] == {"greeting": "Ada"}
    assert data["total_steps"] == 2
    assert data["error"] is None
    assert isinstance(data["finished_at"], int)

    fetched = (await wf_client.get(f"/v1/workflows/run/{data['id']}", headers=app.headers)).json()
    # Dify returns the run's inputs as the JSON text it stores
    assert fetched["status"] == "succeeded"
    assert json.loads(fetched["inputs"]) == {"name": "Ada"}


async def test_a_named_version_runs_blocking_and_streaming(wf_client: AsyncTestClient[Litestar]) -> None:
    app = await import_app(wf_client, GREETER)
    version = (await run_blocking(wf_client, app.headers, {"name": "Ada"}))["data"]["workflow_id"]
    url = f"/v1/workflows/{version}/run"
    body = {"inputs": {"name": "Bo"}, "user": "u1"}
    blocking = await wf_client.post(url, json={**body, "response_mode": "blocking"}, headers=app.headers)
    assert blocking.status_code == 200, blocking.text
    assert blocking.json()["data"]["workflow_id"] == version
    assert blocking.json()["data"]["outputs"] == {"greeting": "Bo"}
    streamed = await wf_client.post(url, json={**body, "response_mode": "streaming"}, headers=app.headers)
    assert [data["event"] for _, data in sse_events(streamed.text)][-1] == "workflow_finished"
    unknown = await wf_client.post(f"/v1/workflows/{uuid.uuid4()}/run", json=body, headers=app.headers)
    assert unknown.status_code == 404, unknown.text


async def test_invalid_inputs_name_the_field(wf_client: AsyncTestClient[Litestar]) -> None:
    app = await import_app(wf_client, GREETER)
    missing = await wf_client.post(
        "/v1/workflows/run",
        json={"inputs": {}, "response_mode": "blocking", "user": "u"},
        headers=app.headers,
    )
    assert missing.status_code == 400
    assert missing.json()["code"] == "invalid_param"
    assert "name" in missing.json()["message"]
    too_long = await wf_client.post(
        "/v1/workflows/run",
        json={"inputs": {"name": "x" * 21}, "response_mode": "blocking", "user": "u"},
        headers=app.headers,
    )
    assert too_long.status_code == 400
    assert "at most 20" in too_long.json()["message"]


async def test_streaming_run_sends_every_event_with_ids(wf_client: AsyncTestClient[Litestar]) -> None:
    app = await import_app(wf_client, GREETER)
    response = await wf_client.post(
        "/v1/workflows/run",
        json={"inputs": {"name": "Bo"}, "response_mode": "streaming", "user": "u"},
        headers=app.headers,
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    names = [e["event"] for _, e in events]
    assert names == [
        "workflow_started",
        "node_started",
        "node_finished",
        "node_started",
        "node_finished",
        "workflow_finished",
    ]
    assert [i for i, _ in events] == [1, 2, 3, 4, 5, 6]
    finished = events[-1][1]
    assert finished["data"]["status"] == "succeeded"
    assert finished["data"]["outputs"] == {"greeting": "Bo"}
    assert events[2][1]["data"]["node_id"] == "start"
    assert events[2][1]["data"]["status"] == "succeeded"


async def test_a_published_version_runs_from_the_next_request_with_the_same_key(
    wf_client: AsyncTestClient[Litestar],
) -> None:
    """The key's lookup reads the app's latest version with it: a version published meanwhile is what the next
    run of the same key runs (and a named version still runs as named)."""
    app = await import_app(wf_client, GREETER)
    body = {"inputs": {"name": "Bo"}, "response_mode": "blocking", "user": "u"}
    first = await wf_client.post("/v1/workflows/run", json=body, headers=app.headers)
    assert first.json()["data"]["outputs"] == {"greeting": "Bo"}
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    renamed = GREETER.replace("outputs: [{variable: greeting,", "outputs: [{variable: salute,")
    published = await wf_client.post(
        f"/console/api/apps/{app.app_id}/workflows/publish", json={"yaml_content": renamed}, headers=admin
    )
    assert published.status_code == 200, published.text
    second = await wf_client.post("/v1/workflows/run", json=body, headers=app.headers)
    assert second.json()["data"]["outputs"] == {"salute": "Bo"}
    old = await wf_client.post(
        f"/v1/workflows/{first.json()['data']['workflow_id']}/run", json=body, headers=app.headers
    )
    assert old.status_code == 200, old.text
    assert old.json()["data"]["outputs"] == {"greeting": "Bo"}


async def test_a_stream_reads_events_page_by_page(
    wf_client: AsyncTestClient[Litestar], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A follower reads status and events in one statement, a page at a time: with a page of two events, a
    finished run still streams every event once, in order (a full page is followed by the next one)."""
    monkeypatch.setattr(event_log, "EVENTS_PAGE", 2)
    app = await import_app(wf_client, GREETER)
    response = await wf_client.post(
        "/v1/workflows/run",
        json={"inputs": {"name": "Bo"}, "response_mode": "blocking", "user": "u"},
        headers=app.headers,
    )
    run_id = response.json()["workflow_run_id"]
    replay = await wf_client.get(f"/v1/workflow/{run_id}/events", params={"user": "u"}, headers=app.headers)
    assert replay.status_code == 200, replay.text
    events = sse_events(replay.text)
    assert [i for i, _ in events] == [1, 2, 3, 4, 5, 6]
    assert events[-1][1]["event"] == "workflow_finished"


async def test_events_replay_after_last_event_id(wf_client: AsyncTestClient[Litestar]) -> None:
    app = await import_app(wf_client, GREETER)
    run_id = (await run_blocking(wf_client, app.headers, {"name": "Cy"}))["data"]["id"]
    whole = sse_events((await wf_client.get(f"/v1/workflow/{run_id}/events", headers=app.headers)).text)
    assert [i for i, _ in whole] == [1, 2, 3, 4, 5, 6]
    rest = sse_events(
        (
            await wf_client.get(
                f"/v1/workflow/{run_id}/events", headers={**app.headers, "Last-Event-ID": "4"}
            )
        ).text
    )
    assert [i for i, _ in rest] == [5, 6]
    done = await wf_client.get(f"/v1/workflow/{run_id}/events", headers={**app.headers, "Last-Event-ID": "6"})
    assert done.status_code == 200
    assert sse_events(done.text) == []


async def test_pause_then_resume_each_branch_with_its_outcome(
    wf_client: AsyncTestClient[Litestar], wf_settings: Settings
) -> None:
    app = await import_app(wf_client, APPROVAL)
    paused = (await run_blocking(wf_client, app.headers, {}))["data"]
    assert paused["status"] == "paused"
    assert sorted(n["node_id"] for n in paused["paused_nodes"]) == [
        "ask_a",
        "ask_b",
    ]
    run_id = uuid.UUID(paused["id"])

    engine = create_async_engine(urls.asyncpg(wf_settings.database_url or ""))
    try:
        async with engine.connect() as conn:
            ids_before = dict(
                (
                    await conn.execute(
                        text(
                            "SELECT node_id, id FROM workflow_node_executions WHERE run_id = :r AND status = 'paused'"
                        ),
                        {"r": run_id},
                    )
                ).all()
            )
        async with AsyncSession(engine) as session:
            assert await transitions.resolve(session, [(run_id, "ask_a", {"answer": "yes A"}, "approve")])
            assert not await transitions.resolve(session, [(run_id, "ask_a", {"answer": "again"}, "approve")])
            await session.commit()
        await asyncio.sleep(0.5)
        status = (await wf_client.get(f"/v1/workflows/run/{run_id}", headers=app.headers)).json()["status"]
        assert status == "paused"  # ask_b is still open: no resume yet

        async with AsyncSession(engine) as session:
            assert await transitions.resolve(session, [(run_id, "ask_b", {"answer": "yes B"}, "approve")])
            await session.commit()
        for _ in range(400):  # until a final status: the resume passes through ``running``
            run = (await wf_client.get(f"/v1/workflows/run/{run_id}", headers=app.headers)).json()
            if run["status"] not in ("paused", "running"):
                break
            await asyncio.sleep(0.05)
        assert run["status"] == "succeeded"
        assert run["outputs"] == {"a": "yes A", "b": "yes B"}

        async with AsyncSession(engine) as session:
            rows = (
                (
                    await session.execute(
                        select(WorkflowNodeExecution).where(WorkflowNodeExecution.run_id == run_id)
                    )
                )
                .scalars()
                .all()
            )
        by_node = {r.node_id: r for r in rows}
        assert {n: str(by_node[n].id) for n in ids_before} == {
            n: str(i) for n, i in ids_before.items()
        }  # same ids
        assert all(r.status == "succeeded" for r in rows)
        assert len(rows) == 4
    finally:
        await engine.dispose()

    events = sse_events((await wf_client.get(f"/v1/workflow/{run_id}/events", headers=app.headers)).text)
    names = [e["event"] for _, e in events]
    assert names.count("workflow_paused") == 1
    assert names[-1] == "workflow_finished"
    resumed = [e for _, e in events if e["event"] == "workflow_started"]
    assert [e["data"]["reason"] for e in resumed] == ["initial", "resumption"]


async def test_stop_a_paused_run(wf_client: AsyncTestClient[Litestar]) -> None:
    app = await import_app(wf_client, APPROVAL)
    run_id = (await run_blocking(wf_client, app.headers, {}))["data"]["id"]
    stopped = await wf_client.post(
        f"/v1/workflows/tasks/{run_id}/stop", json={"user": "u1"}, headers=app.headers
    )
    assert stopped.status_code == 200
    assert stopped.json() == {"result": "success"}
    run = (await wf_client.get(f"/v1/workflows/run/{run_id}", headers=app.headers)).json()
    assert run["status"] == "stopped"
    assert run["error"]
    events = sse_events((await wf_client.get(f"/v1/workflow/{run_id}/events", headers=app.headers)).text)
    assert events[-1][1]["event"] == "workflow_finished"
    assert events[-1][1]["data"]["status"] == "stopped"
    again = await wf_client.post(
        f"/v1/workflows/tasks/{run_id}/stop", json={"user": "u1"}, headers=app.headers
    )
    assert again.status_code == 200  # stopping an ended run is a harmless no-op


async def test_stop_a_running_run(wf_client: AsyncTestClient[Litestar], wf_settings: Settings) -> None:
    app = await import_app(wf_client, SLOW)
    # Started through the service (Litestar's test client serves one request at a time, and this one would
    # block for the slow node); the HTTP start path is covered above.
    engine = create_async_engine(urls.asyncpg(wf_settings.database_url or ""))
    try:
        async with AsyncSession(engine) as session:
            run_id = (await services.start_run(session, uuid.UUID(app.app_id), {}, "u")).id
            await session.commit()
    finally:
        await engine.dispose()
    for _ in range(100):
        current = (await wf_client.get(f"/v1/workflows/run/{run_id}", headers=app.headers)).json()
        if current["total_steps"] >= 2:  # start done, the slow node started
            break
        await asyncio.sleep(0.05)
    assert current["status"] == "running"
    stopped = await wf_client.post(
        f"/v1/workflows/tasks/{run_id}/stop", json={"user": "u"}, headers=app.headers
    )
    assert stopped.status_code == 200
    await asyncio.sleep(0.3)
    run_now = (await wf_client.get(f"/v1/workflows/run/{run_id}", headers=app.headers)).json()
    assert run_now["status"] == "stopped"
    events = sse_events((await wf_client.get(f"/v1/workflow/{run_id}/events", headers=app.headers)).text)
    names = [e["event"] for _, e in events]
    assert names.count("workflow_finished") == 1
    assert names[-1] == "workflow_finished"
    assert events[-1][1]["data"]["status"] == "stopped"


async def test_logs_filter_and_paginate(wf_client: AsyncTestClient[Litestar]) -> None:
    app = await import_app(wf_client, GREETER)
    for name in ("one", "two", "three"):
        await run_blocking(wf_client, app.headers, {"name": name})
    page = (await wf_client.get("/v1/workflows/logs?limit=2", headers=app.headers)).json()
    assert page["total"] == 3
    assert len(page["data"]) == 2
    assert page["has_more"] is True
    assert page["data"][0]["workflow_run"]["status"] == "succeeded"
    found = (await wf_client.get("/v1/workflows/logs?keyword=two", headers=app.headers)).json()
    assert found["total"] == 1
    assert (await wf_client.get("/v1/workflows/logs?status=failed", headers=app.headers)).json()["total"] == 0
    bad = await wf_client.get("/v1/workflows/logs?status=weird", headers=app.headers)
    assert bad.status_code == 400


async def test_another_apps_run_is_not_found(wf_client: AsyncTestClient[Litestar]) -> None:
    mine, other = await import_app(wf_client, GREETER), await import_app(wf_client, GREETER)
    run_id = (await run_blocking(wf_client, mine.headers, {"name": "Di"}))["data"]["id"]
    assert (await wf_client.get(f"/v1/workflows/run/{run_id}", headers=other.headers)).status_code == 404
    assert (
        await wf_client.post(f"/v1/workflows/tasks/{run_id}/stop", json={}, headers=other.headers)
    ).status_code == 404
    assert (await wf_client.get(f"/v1/workflow/{run_id}/events", headers=other.headers)).status_code == 404


async def test_info_and_parameters(wf_client: AsyncTestClient[Litestar]) -> None:
    app = await import_app(wf_client, GREETER)
    params = (await wf_client.get("/v1/parameters", headers=app.headers)).json()
    assert params["user_input_form"] == [
        {"text-input": {"variable": "name", "label": "Name", "required": True, "max_length": 20}}
    ]
    info = (await wf_client.get("/v1/info", headers=app.headers)).json()
    assert info["name"] == "Greeter"
    assert info["mode"] == "workflow"
