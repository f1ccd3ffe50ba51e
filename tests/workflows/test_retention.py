"""Retention: old finished runs lose their events, node executions and stored values in bounded batches (the run
row stays, marked purged; its event stream answers 410); resolved forms of finished runs, old app files and
finished queue jobs are deleted; anything still in use is kept."""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.files.retention import purge_app_files
from app.human_input.retention import purge_resolved_forms
from app.workflows.runs.retention import purge_run_history
from db import queue
from db.batches import in_batches
from db.models import HumanInputDelivery, HumanInputForm, HumanInputRecipient, UploadFile
from tests.workflows.conftest import import_app

ECHO = """
version: 0.5.0
kind: app
app: {name: Echo, mode: workflow}
workflow:
  graph:
    nodes:
      - {id: start, data: {type: start, title: Start, variables: [{variable: text, type: paragraph, required: true}]}}
      - {id: tpl, data: {type: template-transform, title: T, template: "{{ text }}!", variables: [{variable: text, value_selector: [start, text]}]}}
      - {id: end, data: {type: end, title: End, outputs: [{variable: out, value_selector: [tpl, output]}]}}
    edges:
      - {id: e1, source: start, target: tpl}
      - {id: e2, source: tpl, target: end}
"""

PAUSING = """
version: 0.5.0
kind: app
app: {name: Pausing, mode: workflow}
workflow:
  graph:
    nodes:
      - {id: start, data: {type: start, title: Start, variables: []}}
      - {id: ask, data: {type: test-pause, title: Ask}}
      - {id: end, data: {type: end, title: End, outputs: []}}
    edges:
      - {id: e1, source: start, target: ask}
      - {id: e2, source: ask, target: end, sourceHandle: approve}
"""

BIG = "x" * 40_000  # over the inline limit: stored once in workflow_run_values


async def history(engine: AsyncEngine, run_id: str) -> tuple[int, int, int]:
    async with engine.connect() as conn:
        counts = []
        for table in ("workflow_run_events", "workflow_node_executions", "workflow_run_values"):
            counts.append(
                int(await conn.scalar(text(f"SELECT count(*) FROM {table} WHERE run_id = :r"), {"r": run_id}))
            )
    return counts[0], counts[1], counts[2]


async def test_old_finished_runs_lose_their_history_in_batches(
    wf_client: AsyncTestClient[Litestar], wf_engine: AsyncEngine
) -> None:
    echo = await import_app(wf_client, ECHO)
    old = []
    for _ in range(5):
        answer = await wf_client.post(
            "/v1/workflows/run",
            json={"inputs": {"text": BIG}, "response_mode": "blocking", "user": "u"},
            headers=echo.headers,
        )
        assert answer.json()["data"]["status"] == "succeeded", answer.text
        old.append(answer.json()["workflow_run_id"])
    recent = (
        await wf_client.post(
            "/v1/workflows/run",
            json={"inputs": {"text": BIG}, "response_mode": "blocking", "user": "u"},
            headers=echo.headers,
        )
    ).json()["workflow_run_id"]
    pausing = await import_app(wf_client, PAUSING)
    paused = (
        await wf_client.post(
            "/v1/workflows/run",
            json={"inputs": {}, "response_mode": "blocking", "user": "u"},
            headers=pausing.headers,
        )
    ).json()
    assert paused["data"]["status"] == "paused"
    async with wf_engine.begin() as conn:
        await conn.execute(
            text("UPDATE workflow_runs SET finished_at = now() - interval '40 days' WHERE id = ANY(:ids)"),
            {"ids": [uuid.UUID(r) for r in old]},
        )
        await conn.execute(
            text("UPDATE workflow_runs SET created_at = now() - interval '40 days' WHERE id = :id"),
            {"id": uuid.UUID(paused["workflow_run_id"])},
        )
    events, executions, values = await history(wf_engine, old[0])
    assert events >= 6
    assert executions == 3
    assert values >= 1

    sessions = async_sessionmaker(wf_engine, expire_on_commit=False)
    batches: list[int] = []

    async def batch(session: AsyncSession, limit: int) -> int:
        batches.append(await purge_run_history(session, older_than_days=30, limit=limit))
        return batches[-1]

    assert await in_batches(sessions, batch, limit=2) == 5
    assert batches == [2, 2, 1]  # bounded transactions: two runs each, then the rest
    for run_id in old:
        assert await history(wf_engine, run_id) == (0, 0, 0)
    assert (await history(wf_engine, recent))[0] > 0
    assert (await history(wf_engine, paused["workflow_run_id"]))[0] > 0
    async with wf_engine.connect() as conn:
        marked = await conn.scalar(
            text("SELECT count(*) FROM workflow_runs WHERE purged_at IS NOT NULL AND id = ANY(:ids)"),
            {"ids": [uuid.UUID(r) for r in [*old, recent, paused["workflow_run_id"]]]},
        )
    assert marked == 5

    # What the API answers for a purged run: the run itself as before, its event stream 410.
    shown = await wf_client.get(f"/v1/workflows/run/{old[0]}", headers=echo.headers)
    assert shown.status_code == 200, shown.text
    assert shown.json()["status"] == "succeeded"
    assert shown.json()["outputs"] == {"out": BIG + "!"}
    assert json.loads(shown.json()["inputs"]) == {"text": BIG}  # Dify: the inputs as a JSON string
    gone = await wf_client.get(f"/v1/workflow/{old[0]}/events", headers=echo.headers)
    assert gone.status_code == 410, gone.text
    assert gone.json()["code"] == "run_events_purged"
    assert gone.json()["status"] == 410
    logs = await wf_client.get("/v1/workflows/logs", headers=echo.headers)
    assert old[0] in {entry["workflow_run"]["id"] for entry in logs.json()["data"]}
    kept = await wf_client.get(f"/v1/workflow/{recent}/events", headers=echo.headers)
    assert kept.status_code == 200
    assert "workflow_finished" in kept.text


async def _run_of(engine: AsyncEngine, status: str) -> tuple[uuid.UUID, uuid.UUID]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT id, app_id FROM workflow_runs WHERE status = :s ORDER BY created_at LIMIT 1"),
                {"s": status},
            )
        ).one()
    return row.id, row.app_id


async def _form(
    session: AsyncSession, run: tuple[uuid.UUID, uuid.UUID], status: str, resolved_days_ago: int
) -> uuid.UUID:
    now = datetime.datetime.now(datetime.UTC)
    form = HumanInputForm(
        run_id=run[0],
        app_id=run[1],
        node_id="ask",
        node_title="Ask",
        execution_id=uuid.uuid4(),
        status=status,
        form_content="?",
        inputs=[],
        resolved_default_values={},
        user_actions=[],
        global_expiration_time=now + datetime.timedelta(days=7),
        resolved_at=None if status == "waiting" else now - datetime.timedelta(days=resolved_days_ago),
    )
    session.add(form)
    await session.flush()
    delivery = HumanInputDelivery(form_id=form.id, method="webapp", config={})
    session.add(delivery)
    await session.flush()
    session.add(
        HumanInputRecipient(
            form_id=form.id,
            delivery_id=delivery.id,
            kind="webapp",
            nonce=uuid.uuid4().bytes,
            token_hash=uuid.uuid4().bytes,
        )
    )
    await session.flush()
    return form.id


async def test_resolved_forms_of_finished_runs_are_deleted(
    wf_client: AsyncTestClient[Litestar], wf_engine: AsyncEngine
) -> None:
    echo = await import_app(wf_client, ECHO)
    await wf_client.post(
        "/v1/workflows/run",
        json={"inputs": {"text": "a"}, "response_mode": "blocking", "user": "u"},
        headers=echo.headers,
    )
    pausing = await import_app(wf_client, PAUSING)
    await wf_client.post(
        "/v1/workflows/run",
        json={"inputs": {}, "response_mode": "blocking", "user": "u"},
        headers=pausing.headers,
    )
    finished, active = await _run_of(wf_engine, "succeeded"), await _run_of(wf_engine, "paused")
    sessions = async_sessionmaker(wf_engine, expire_on_commit=False)
    async with sessions() as session, session.begin():
        old_done = await _form(session, finished, "submitted", 40)
        old_timeout = await _form(session, finished, "timeout", 40)
        recent_done = await _form(session, finished, "submitted", 3)
        waiting = await _form(session, finished, "waiting", 0)
        of_active_run = await _form(session, active, "expired", 40)
    assert (
        await in_batches(sessions, lambda s, n: purge_resolved_forms(s, older_than_days=30, limit=n), limit=1)
        >= 2
    )
    async with wf_engine.connect() as conn:
        left = set(await conn.scalars(text("SELECT id FROM human_input_forms")))
        orphans = await conn.scalar(
            text(
                "SELECT count(*) FROM human_input_recipients r "
                "WHERE NOT EXISTS (SELECT 1 FROM human_input_forms f WHERE f.id = r.form_id)"
            )
        )
        deliveries = await conn.scalar(
            text("SELECT count(*) FROM human_input_deliveries WHERE form_id = ANY(:ids)"),
            {"ids": [old_done, old_timeout]},
        )
    assert old_done not in left
    assert old_timeout not in left
    assert {recent_done, waiting, of_active_run} <= left
    assert orphans == 0
    assert deliveries == 0


async def _file(
    session: AsyncSession, app_id: uuid.UUID | None, workspace_id: uuid.UUID, **columns: Any
) -> uuid.UUID:
    upload = UploadFile(
        workspace_id=workspace_id,
        app_id=app_id,
        name="f.txt",
        extension="txt",
        mime_type="text/plain",
        size=1,
        content_hash=b"h",
        content=b"x",
        **columns,
    )
    session.add(upload)
    await session.flush()
    await session.execute(
        text("UPDATE upload_files SET created_at = now() - interval '40 days' WHERE id = :id"),
        {"id": upload.id},
    )
    return upload.id


async def test_old_app_files_are_deleted_unless_still_needed(
    wf_client: AsyncTestClient[Litestar], wf_engine: AsyncEngine
) -> None:
    pausing = await import_app(wf_client, PAUSING)
    quiet = await import_app(wf_client, ECHO)
    async with wf_engine.connect() as conn:
        workspace_id = await conn.scalar(
            text("SELECT workspace_id FROM apps WHERE id = :a"), {"a": pausing.app_id}
        )
    sessions = async_sessionmaker(wf_engine, expire_on_commit=False)
    async with sessions() as session, session.begin():
        unused = await _file(session, uuid.UUID(quiet.app_id), workspace_id, source="upload", created_by="u")
        maybe_input = await _file(
            session, uuid.UUID(pausing.app_id), workspace_id, source="upload", created_by="u"
        )
        knowledge = await _file(session, None, workspace_id, source="datasets")
    # A run of the pausing app starts after its upload and pauses: the upload may be among its inputs.
    paused = (
        await wf_client.post(
            "/v1/workflows/run",
            json={"inputs": {}, "response_mode": "blocking", "user": "u"},
            headers=pausing.headers,
        )
    ).json()
    async with sessions() as session, session.begin():
        of_active_run = await _file(
            session,
            uuid.UUID(pausing.app_id),
            workspace_id,
            source="tool",
            run_id=uuid.UUID(paused["workflow_run_id"]),
        )

    async def purge() -> set[uuid.UUID]:
        await in_batches(sessions, lambda s, n: purge_app_files(s, older_than_days=30, limit=n), limit=10)
        async with wf_engine.connect() as conn:
            return set(await conn.scalars(text("SELECT id FROM upload_files")))

    left = await purge()
    assert unused not in left
    assert {knowledge, maybe_input, of_active_run} <= left
    # Had the paused run started before the upload, the upload could not be among its inputs: it goes; the
    # run's own (node-produced) file stays while the run is active.
    async with wf_engine.begin() as conn:
        await conn.execute(
            text("UPDATE workflow_runs SET created_at = now() - interval '50 days' WHERE id = :id"),
            {"id": uuid.UUID(paused["workflow_run_id"])},
        )
    left = await purge()
    assert maybe_input not in left
    assert {knowledge, of_active_run} <= left


async def test_finished_jobs_are_deleted_after_their_windows(wf_engine: AsyncEngine) -> None:
    sessions = async_sessionmaker(wf_engine, expire_on_commit=False)
    far = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=365)
    async with sessions() as session, session.begin():
        ids = await queue.defer_jobs(
            session, [queue.JobSpec(task=queue.Task.NOOP, schedule_at=far, args={"n": i}) for i in range(6)]
        )
        cases = [  # status, age of its last event
            ("succeeded", "2 days"),
            ("succeeded", "1 hour"),
            ("failed", "2 days"),
            ("failed", "8 days"),
            ("cancelled", "8 days"),
            ("todo", "30 days"),
        ]
        for job_id, (status, age) in zip(ids, cases, strict=True):
            await session.execute(
                text(
                    "UPDATE procrastinate_jobs SET status = CAST(:s AS procrastinate_job_status) WHERE id = :id"
                ),
                {"s": status, "id": job_id},
            )
            await session.execute(
                text(f"UPDATE procrastinate_events SET at = now() - interval '{age}' WHERE job_id = :id"),
                {"id": job_id},
            )

    async def batch(session: AsyncSession, limit: int) -> int:
        return await queue.delete_finished_jobs(session, succeeded_hours=24, failed_days=7, limit=limit)

    await in_batches(sessions, batch, limit=2)
    async with wf_engine.connect() as conn:
        left = set(
            await conn.scalars(text("SELECT id FROM procrastinate_jobs WHERE id = ANY(:ids)"), {"ids": ids})
        )
    assert left == {ids[1], ids[2], ids[5]}
