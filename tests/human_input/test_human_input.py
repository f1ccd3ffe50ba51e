"""Human-input forms end to end with a real worker: submit, node timeout, global timeout, parallel forms,
stop, and the races (double submit, submit against the deadline)."""

from __future__ import annotations

import asyncio
import datetime
import random
import uuid
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.errors import SluiceError
from app.human_input import services as forms
from app.settings import Settings
from app.wiring import extensions
from app.workflows import services as workflows
from db.models import HumanInputForm, WorkflowRun
from tests.conftest import SECRET_KEY
from tests.workflows.conftest import import_app, sse_events


def approval_dsl(timeout: str = "", parallel: bool = False) -> str:
    second = (
        """
      - id: ask2
        data:
          type: human-input
          title: Second opinion
          form_content: "Second look"
          inputs: [{type: text_input, output_variable_name: note}]
          user_actions: [{id: approve, title: Approve}]
"""
        if parallel
        else ""
    )
    second_edges = (
        """
      - {id: p1, source: start, target: ask2}
      - {id: p2, source: ask2, target: done, sourceHandle: approve}
"""
        if parallel
        else ""
    )
    return f"""
version: 0.5.0
kind: app
app: {{name: Approval, mode: workflow}}
workflow:
  graph:
    nodes:
      - id: start
        data: {{type: start, title: Start, variables: [{{variable: doc, type: text-input, required: true}}]}}
      - id: ask
        data:
          type: human-input
          title: Approve?
          form_content: "Please review **{{{{#start.doc#}}}}**. Comment: {{{{#$output.comment#}}}}"
          inputs: [{{type: paragraph, output_variable_name: comment, default: {{type: constant, value: "fine"}}}}]
          user_actions: [{{id: approve, title: Approve, button_style: primary}}, {{id: reject, title: Reject}}]
          {timeout}
{second}
      - id: done
        data: {{type: end, title: Done, outputs: [{{variable: action, value_selector: [ask, __action_id]}}, {{variable: comment, value_selector: [ask, comment]}}, {{variable: content, value_selector: [ask, __rendered_content]}}]}}
      - id: late
        data: {{type: end, title: Late, outputs: [{{variable: action, value_selector: [ask, __action_id]}}, {{variable: timed_out, value_selector: [start, doc]}}]}}
    edges:
      - {{id: e1, source: start, target: ask}}
      - {{id: e2, source: ask, target: done, sourceHandle: approve}}
      - {{id: e3, source: ask, target: done, sourceHandle: reject}}
      - {{id: e4, source: ask, target: late, sourceHandle: __timeout}}
{second_edges}
"""


async def start_paused(
    client: AsyncTestClient[Litestar], headers: dict[str, str], doc: str = "the plan"
) -> dict[str, Any]:
    response = await client.post(
        "/v1/workflows/run",
        json={"inputs": {"doc": doc}, "response_mode": "blocking", "user": "u"},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["status"] == "paused", data
    return data  # type: ignore[no-any-return]


async def wait_status(
    engine: AsyncEngine,
    run_id: str | uuid.UUID,
    *,
    not_in: tuple[str, ...] = ("running", "paused"),
    timeout: float = 30,
) -> WorkflowRun:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        async with AsyncSession(engine) as session:
            run = await session.get(WorkflowRun, uuid.UUID(str(run_id)))
        assert run is not None
        if run.status not in not_in:
            return run
        assert asyncio.get_running_loop().time() < deadline, f"run still {run.status}"
        await asyncio.sleep(0.05)


async def test_submit_resumes_along_the_chosen_action(
    wf_client: AsyncTestClient[Litestar], wf_engine: AsyncEngine
) -> None:
    app = await import_app(wf_client, approval_dsl())
    paused = await start_paused(wf_client, app.headers)
    node = paused["paused_nodes"][0]
    assert node["node_id"] == "ask"
    assert node["pause_type"]["type"] == "human_input"
    token = node["pause_type"]["form_token"]
    assert len(token) >= 43
    assert node["pause_type"]["form_url"].endswith(f"/form/{token}")

    form = (await wf_client.get(f"/v1/form/human_input/{token}", headers=app.headers)).json()
    assert form["form_content"] == "Please review **the plan**. Comment: {{#$output.comment#}}"
    assert form["resolved_default_values"] == {"comment": "fine"}
    assert [a["id"] for a in form["user_actions"]] == ["approve", "reject"]
    details = (
        await wf_client.get(f"/v1/workflows/run/{paused['id']}/pause-details", headers=app.headers)
    ).json()
    assert details["paused_nodes"][0]["pause_type"]["form_token"] == token
    assert details["paused_at"]

    ok = await wf_client.post(
        f"/v1/form/human_input/{token}",
        json={"inputs": {"comment": "ship it"}, "action": "approve", "user": "ann"},
        headers=app.headers,
    )
    assert ok.status_code == 200
    assert ok.json() == {}
    again = await wf_client.post(
        f"/api/form/human_input/{token}", json={"inputs": {"comment": "x"}, "action": "reject"}
    )
    assert again.status_code == 412
    assert again.json()["code"] == "human_input_form_submitted"

    run = await wait_status(wf_engine, paused["id"])
    assert run.status == "succeeded"
    assert run.outputs == {
        "action": "approve",
        "comment": "ship it",
        "content": "Please review **the plan**. Comment: ship it",
    }
    assert await pending_timers(wf_engine, paused["id"]) == 0  # one alarm for every deadline, no job per form
    names = [
        e["event"]
        for _, e in sse_events(
            (await wf_client.get(f"/v1/workflow/{paused['id']}/events", headers=app.headers)).text
        )
    ]
    assert (
        names.index("human_input_required")
        < names.index("workflow_paused")
        < names.index("human_input_form_filled")
    )
    assert names[-1] == "workflow_finished"


async def pending_timers(engine: AsyncEngine, run_id: str) -> int:
    """Deadline jobs queued beyond the one alarm all forms share: always 0 (no job per form any more)."""
    async with engine.connect() as conn:
        alarms = await conn.scalar(
            text(
                "SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo' "
                "AND task_name IN ('handle_human_input_deadlines', 'expire_human_input_form')"
            )
        )
    return max(0, int(alarms or 0) - 1)


async def test_form_errors(wf_client: AsyncTestClient[Litestar]) -> None:
    app, other = await import_app(wf_client, approval_dsl()), await import_app(wf_client, approval_dsl())
    token = (await start_paused(wf_client, app.headers))["paused_nodes"][0]["pause_type"]["form_token"]
    unknown = await wf_client.get("/api/form/human_input/notarealtoken")
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "not_found"
    assert (await wf_client.get(f"/v1/form/human_input/{token}", headers=other.headers)).status_code == 404
    assert (await wf_client.get(f"/api/form/human_input/{token}")).status_code == 200

    async def bad(body: dict[str, Any], field: str) -> None:
        response = await wf_client.post(f"/api/form/human_input/{token}", json=body)
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "invalid_form_data", response.text
        assert field in response.json()["message"]

    await bad({"inputs": {"comment": "x"}, "action": "maybe"}, "action")
    await bad({"inputs": {}, "action": "approve"}, "comment")
    await bad({"inputs": {"comment": "x", "extra": "y"}, "action": "approve"}, "extra")
    await bad({"inputs": {"comment": 5}, "action": "approve"}, "comment")


async def test_node_timeout_resumes_along_timeout_edge(
    wf_client: AsyncTestClient[Litestar], wf_engine: AsyncEngine
) -> None:
    app = await import_app(wf_client, approval_dsl("timeout: 1\n          timeout_unit: second"))
    paused = await start_paused(wf_client, app.headers, "late doc")
    token = paused["paused_nodes"][0]["pause_type"]["form_token"]
    run = await wait_status(wf_engine, paused["id"], timeout=10)
    assert run.status == "succeeded"
    assert run.outputs == {"action": "", "timed_out": "late doc"}
    async with AsyncSession(wf_engine) as session:
        form = await session.scalar(select(HumanInputForm).where(HumanInputForm.run_id == run.id))
    assert form is not None
    assert form.status == "timeout"
    late = await wf_client.post(
        f"/api/form/human_input/{token}", json={"inputs": {"comment": "x"}, "action": "approve"}
    )
    assert late.status_code == 412
    assert late.json()["code"] == "human_input_form_expired"
    assert await pending_timers(wf_engine, run.id) == 0  # the global-deadline timer went with the timeout
    names = [
        e["event"]
        for _, e in sse_events(
            (await wf_client.get(f"/v1/workflow/{run.id}/events", headers=app.headers)).text
        )
    ]
    assert "human_input_form_timeout" in names


async def _backdate(engine: AsyncEngine, run_id: str, *, node: bool, global_: bool) -> None:
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)
    values: dict[str, Any] = {}
    if node:
        values["expiration_time"] = past
    if global_:
        values["global_expiration_time"] = past
    async with AsyncSession(engine) as session:
        await session.execute(
            update(HumanInputForm).where(HumanInputForm.run_id == uuid.UUID(run_id)).values(**values)
        )
        await session.commit()


async def sweep(engine: AsyncEngine) -> int:
    """What the periodic sweep does (the deadline alarm of these forms is days away)."""
    async with AsyncSession(engine) as session:
        handled = await forms.handle_deadlines(
            session, extensions(Settings(secret_key=SECRET_KEY)), forms.BATCH
        )
        await session.commit()
    return handled


async def test_global_timeout_stops_the_run_and_wins_over_the_node_deadline(
    wf_client: AsyncTestClient[Litestar], wf_engine: AsyncEngine
) -> None:
    app = await import_app(wf_client, approval_dsl("timeout: 2\n          timeout_unit: hour", parallel=True))
    paused = await start_paused(wf_client, app.headers)
    assert len(paused["paused_nodes"]) == 2
    await _backdate(wf_engine, paused["id"], node=True, global_=True)  # both deadlines passed: global wins
    assert await sweep(wf_engine) >= 1
    run = await wait_status(wf_engine, paused["id"], timeout=5)
    error = run.error or ""
    assert run.status == "stopped"
    assert "Approve?" in error or "Second opinion" in error
    assert "global timeout" in error
    async with AsyncSession(wf_engine) as session:
        statuses = sorted(
            (
                await session.execute(select(HumanInputForm.status).where(HumanInputForm.run_id == run.id))
            ).scalars()
        )
        node_statuses = set(
            (
                await session.execute(
                    text(
                        "SELECT status FROM workflow_node_executions WHERE run_id = :r AND node_id LIKE 'ask%'"
                    ),
                    {"r": run.id},
                )
            ).scalars()
        )
    assert statuses == ["expired", "expired"]
    assert node_statuses == {"stopped"}
    events = sse_events((await wf_client.get(f"/v1/workflow/{run.id}/events", headers=app.headers)).text)
    assert events[-1][1]["event"] == "workflow_finished"
    assert events[-1][1]["data"]["status"] == "stopped"
    assert [e["event"] for _, e in events].count("workflow_finished") == 1


async def test_parallel_forms_both_outcomes_applied(
    wf_client: AsyncTestClient[Litestar], wf_engine: AsyncEngine
) -> None:
    app = await import_app(wf_client, approval_dsl(parallel=True))
    paused = await start_paused(wf_client, app.headers)
    tokens = {n["node_id"]: n["pause_type"]["form_token"] for n in paused["paused_nodes"]}
    assert set(tokens) == {"ask", "ask2"}
    r1 = await wf_client.post(
        f"/api/form/human_input/{tokens['ask2']}", json={"inputs": {"note": "n"}, "action": "approve"}
    )
    assert r1.status_code == 200
    await asyncio.sleep(0.3)
    assert (
        await wait_status(wf_engine, paused["id"], not_in=("running",))
    ).status == "paused"  # one form still open
    r2 = await wf_client.post(
        f"/api/form/human_input/{tokens['ask']}", json={"inputs": {"comment": "c"}, "action": "reject"}
    )
    assert r2.status_code == 200
    run = await wait_status(wf_engine, paused["id"])
    assert run.status == "succeeded"
    assert run.outputs is not None
    assert run.outputs["action"] == "reject"


async def test_stop_closes_the_forms(wf_client: AsyncTestClient[Litestar], wf_engine: AsyncEngine) -> None:
    app = await import_app(wf_client, approval_dsl())
    paused = await start_paused(wf_client, app.headers)
    token = paused["paused_nodes"][0]["pause_type"]["form_token"]
    assert (
        await wf_client.post(
            f"/v1/workflows/tasks/{paused['id']}/stop", json={"user": "u"}, headers=app.headers
        )
    ).status_code == 200
    response = await wf_client.post(
        f"/api/form/human_input/{token}", json={"inputs": {"comment": "x"}, "action": "approve"}
    )
    assert response.status_code == 412
    assert response.json()["code"] == "human_input_form_expired"
    assert (await wait_status(wf_engine, paused["id"])).status == "stopped"
    assert await pending_timers(wf_engine, paused["id"]) == 0


async def _start_many(engine: AsyncEngine, app_id: str, count: int) -> list[uuid.UUID]:
    async with AsyncSession(engine) as session:
        ids = [
            (await workflows.start_run(session, uuid.UUID(app_id), {"doc": f"d{i}"}, "u")).id
            for i in range(count)
        ]
        await session.commit()
    for run_id in ids:
        await wait_status(engine, run_id, not_in=("running",), timeout=60)
    return ids


async def _token(engine: AsyncEngine, settings: Settings, run_id: uuid.UUID) -> str:
    from app.human_input.forms import paused_nodes

    async with AsyncSession(engine) as session:
        nodes = await paused_nodes(session, settings, run_id)
    assert nodes
    assert nodes[0].pause_type is not None
    assert nodes[0].pause_type.form_token
    return nodes[0].pause_type.form_token


async def _submit(engine: AsyncEngine, token: str, action: str) -> str:
    async with AsyncSession(engine) as session:
        try:
            await forms.submit(session, token, {"comment": action}, action, "racer")
            await session.commit()
            return "ok"
        except SluiceError as exc:
            await session.rollback()
            return exc.code


async def test_double_submit_200_forms_exactly_one_wins_each(
    wf_client: AsyncTestClient[Litestar], wf_engine: AsyncEngine, wf_settings: Settings
) -> None:
    app = await import_app(wf_client, approval_dsl())
    runs = await _start_many(wf_engine, app.app_id, 200)
    tokens = [await _token(wf_engine, wf_settings, r) for r in runs]
    attempts = [(t, a) for t in tokens for a in ("approve", "reject")]
    random.shuffle(attempts)
    results = await asyncio.gather(*(_submit(wf_engine, t, a) for t, a in attempts))
    per_token: dict[str, list[str]] = {}
    for (token, _), result in zip(attempts, results, strict=True):
        per_token.setdefault(token, []).append(result)
    assert all(sorted(r) == ["human_input_form_submitted", "ok"] for r in per_token.values()), per_token
    for run_id in runs:
        run = await wait_status(wf_engine, run_id, timeout=60)
        assert run.status == "succeeded"
    async with wf_engine.connect() as conn:
        resumes = await conn.execute(
            text(
                "SELECT args->>'run_id', count(*) FROM procrastinate_jobs WHERE task_name = 'advance_workflow_run' "
                "AND args->>'run_id' = ANY(:ids) GROUP BY 1"
            ),
            {"ids": [str(r) for r in runs]},
        )
        counts = dict(resumes.all())
    assert len(counts) == 200
    assert set(counts.values()) == {2}  # the first run, and exactly one resume


async def test_submit_racing_the_node_deadline_has_one_outcome(
    wf_client: AsyncTestClient[Litestar], wf_engine: AsyncEngine, wf_settings: Settings
) -> None:
    # 8 s: long enough for 40 runs to pause and hand out their tokens on a loaded machine before any deadline.
    app = await import_app(wf_client, approval_dsl("timeout: 8\n          timeout_unit: second"))
    runs = await _start_many(wf_engine, app.app_id, 40)
    async with AsyncSession(wf_engine) as session:
        rows = (
            await session.execute(
                select(HumanInputForm.run_id, HumanInputForm.expiration_time).where(
                    HumanInputForm.run_id.in_(runs)
                )
            )
        ).all()
    deadlines = {r.run_id: r.expiration_time for r in rows}
    tokens = {r: await _token(wf_engine, wf_settings, r) for r in runs}

    async def submit_near_deadline(run_id: uuid.UUID) -> str:
        at = deadlines[run_id] + datetime.timedelta(milliseconds=random.uniform(-50, 50))
        delay = (at - datetime.datetime.now(datetime.UTC)).total_seconds()
        await asyncio.sleep(max(0.0, delay))
        return await _submit(wf_engine, tokens[run_id], "approve")

    results = dict(zip(runs, await asyncio.gather(*(submit_near_deadline(r) for r in runs)), strict=True))
    for run_id in runs:
        run = await wait_status(wf_engine, run_id, timeout=30)
        async with AsyncSession(wf_engine) as session:
            form_status = await session.scalar(
                select(HumanInputForm.status).where(HumanInputForm.run_id == run_id)
            )
        assert run.status == "succeeded"
        assert run.outputs is not None
        if results[run_id] == "ok":
            assert form_status == "submitted"
            assert run.outputs["action"] == "approve"
        else:
            assert results[run_id] == "human_input_form_expired"
            assert form_status == "timeout"
            assert run.outputs["action"] == ""
            assert "timed_out" in run.outputs
    async with AsyncSession(wf_engine) as session:
        stuck = await session.scalar(
            select(func.count())
            .select_from(WorkflowRun)
            .where(WorkflowRun.id.in_(runs), WorkflowRun.status == "paused")
        )
    assert stuck == 0


async def test_one_sweep_batch_mixes_node_and_global_deadlines(
    wf_client: AsyncTestClient[Litestar], wf_engine: AsyncEngine
) -> None:
    app = await import_app(wf_client, approval_dsl("timeout: 2\n          timeout_unit: hour"))
    node_runs = [(await start_paused(wf_client, app.headers, f"n{i}"))["id"] for i in range(3)]
    global_run = (await start_paused(wf_client, app.headers, "g"))["id"]
    for run_id in node_runs:
        await _backdate(wf_engine, run_id, node=True, global_=False)
    await _backdate(wf_engine, global_run, node=False, global_=True)
    handled = await sweep(wf_engine)
    if handled != 4:  # the worker's own once-a-minute sweep got there first (it runs the same batch code)
        async with wf_engine.connect() as conn:
            waiting = await conn.scalar(
                text("SELECT count(*) FROM human_input_forms WHERE run_id = ANY(:r) AND status = 'waiting'"),
                {"r": [uuid.UUID(r) for r in [*node_runs, global_run]]},
            )
        assert waiting == 0, f"the sweep handled {handled} of 4 and {waiting} forms still wait"
    for run_id in node_runs:
        run = await wait_status(wf_engine, run_id)
        assert run.status == "succeeded"
        assert run.outputs == {"action": "", "timed_out": run.inputs["doc"]}
        assert await pending_timers(wf_engine, run_id) == 0
    assert (await wait_status(wf_engine, global_run)).status == "stopped"
    assert await sweep(wf_engine) == 0  # nothing is handled twice


async def test_tokens_never_reach_logs_or_the_events_table(
    wf_client: AsyncTestClient[Litestar], wf_engine: AsyncEngine, capsys: Any
) -> None:
    """Logs name routes by template; events keep the form id and get the token back only where they are sent."""
    app = await import_app(wf_client, approval_dsl())
    paused = await start_paused(wf_client, app.headers)
    token = paused["paused_nodes"][0]["pause_type"]["form_token"]
    assert (await wf_client.get(f"/form/{token}")).status_code == 200
    assert (await wf_client.get(f"/api/form/human_input/{token}")).status_code == 200
    assert (await wf_client.get(f"/v1/form/human_input/{token}", headers=app.headers)).status_code == 200
    # A refused submission and a page for an unknown token-shaped path are logged too.
    refused = await wf_client.post(f"/api/form/human_input/{token}", json={"inputs": {}, "action": "no"})
    assert refused.status_code == 400
    assert (await wf_client.get(f"/form/{token[::-1]}")).status_code == 404
    ok = await wf_client.post(
        f"/v1/form/human_input/{token}",
        json={"inputs": {"comment": "ok"}, "action": "approve"},
        headers=app.headers,
    )
    assert ok.status_code == 200
    await wait_status(wf_engine, paused["id"])

    # The stream a client reads still carries the token and the link, rebuilt from the form id.
    streamed = sse_events(
        (await wf_client.get(f"/v1/workflow/{paused['id']}/events", headers=app.headers)).text
    )
    required = next(e["data"] for _, e in streamed if e["event"] == "human_input_required")
    assert required["form_token"] == token
    assert required["form_url"].endswith(f"/form/{token}")

    logged = capsys.readouterr()
    logs = logged.out + logged.err
    assert "request_finished" in logs
    assert "/form/{form_token}" in logs
    assert token not in logs
    assert token[::-1] not in logs
    async with wf_engine.connect() as conn:
        stored = await conn.scalar(
            text("SELECT count(*) FROM workflow_run_events WHERE run_id = :id AND data::text LIKE :t"),
            {"id": uuid.UUID(paused["id"]), "t": f"%{token}%"},
        )
        kept = await conn.scalar(
            text(
                "SELECT data FROM workflow_run_events WHERE run_id = :id AND event = 'human_input_required'"
            ),
            {"id": uuid.UUID(paused["id"])},
        )
    assert stored == 0
    assert kept["form_id"]
    assert "form_token" not in kept
    assert "form_url" not in kept


async def test_placeholders_from_run_inputs_stay_text(
    wf_client: AsyncTestClient[Litestar], wf_engine: AsyncEngine
) -> None:
    """A run input shaped like ``{{#$output.comment#}}`` is shown as text and never filled at submit: only the
    form definition's own placeholders are live."""
    app = await import_app(wf_client, approval_dsl())
    paused = await start_paused(wf_client, app.headers, doc="{{#$output.comment#}}")
    token = paused["paused_nodes"][0]["pause_type"]["form_token"]
    form = (await wf_client.get(f"/api/form/human_input/{token}")).json()
    content = form["form_content"]
    assert content.count("{{#$output.comment#}}") == 1  # the definition's own, at the end
    assert content.startswith("Please review **{{#\u200b$output.comment#}}**")
    ok = await wf_client.post(
        f"/api/form/human_input/{token}", json={"inputs": {"comment": "SECRET-VALUE"}, "action": "approve"}
    )
    assert ok.status_code == 200
    run = await wait_status(wf_engine, paused["id"])
    assert run.outputs is not None
    assert run.outputs["content"].count("SECRET-VALUE") == 1
    assert run.outputs["content"].startswith("Please review **{{#\u200b$output.comment#}}**")
    page = await wf_client.get(f"/form/{token}")
    assert "img-src 'self' data:" in page.headers["content-security-policy"]
