"""Workflow apps and runs: import/publish/export DSL, start, look up, list and stop runs. Services never commit."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import InvalidParam, NotFound
from app.files.run_inputs import FileContext, resolve_run_files
from app.files.signing import FileSigner
from app.tenancy import services as tenancy
from app.workflows import dsl, run_store
from app.workflows.engine.core import initial_state
from app.workflows.engine.errors import InputError
from app.workflows.engine.graph import Graph
from app.workflows.engine.nodes import build_node
from app.workflows.engine.nodes.start import StartNode
from app.workflows.run_store import ACTIVE, Event
from app.workflows.views import run_started_data
from db import queue
from db.models import App, HumanInputForm, Workflow, WorkflowRun, workflow_pauses

ADVANCE_TASK = "advance_workflow_run"


def run_lock(run_id: uuid.UUID) -> str:
    """The procrastinate lock that keeps two jobs of one run from ever running at once."""
    return f"run:{run_id}"


# --- apps from DSL --------------------------------------------------------------------------------


async def import_app(session: AsyncSession, yaml_content: str, workspace_id: uuid.UUID | None) -> App:
    parsed = dsl.parse(yaml_content)
    app = await tenancy.create_app(session, parsed.name, parsed.mode, workspace_id, parsed.description)
    await _add_version(session, app, parsed)
    return app


async def publish(session: AsyncSession, app_id: uuid.UUID, yaml_content: str) -> Workflow:
    app = await tenancy.get_app(session, app_id)
    parsed = dsl.parse(yaml_content)
    if parsed.mode != app.mode:
        raise dsl.InvalidDsl(f"the DSL is a {parsed.mode!r} app but this app is {app.mode!r}")
    return await _add_version(session, app, parsed)


async def _add_version(session: AsyncSession, app: App, parsed: dsl.ParsedDsl) -> Workflow:
    # Locking the app row serialises concurrent publishes, so versions never collide.
    await session.execute(select(App.id).where(App.id == app.id).with_for_update())
    version = (
        await session.scalar(select(func.max(Workflow.version)).where(Workflow.app_id == app.id)) or 0
    ) + 1
    workflow = Workflow(app_id=app.id, version=version, graph=parsed.graph, dsl=parsed.doc)
    session.add(workflow)
    await session.flush()
    return workflow


async def published(
    session: AsyncSession, app_id: uuid.UUID, workflow_id: uuid.UUID | None = None
) -> Workflow:
    """The app's latest version, or the given one (which must belong to the app)."""
    query = select(Workflow).where(Workflow.app_id == app_id)
    if workflow_id is not None:
        query = query.where(Workflow.id == workflow_id)
    workflow = await session.scalar(query.order_by(Workflow.version.desc()).limit(1))
    if workflow is None:
        raise NotFound("Workflow not found." if workflow_id else "The app has no published workflow.")
    return workflow


async def export_app(session: AsyncSession, app_id: uuid.UUID) -> str:
    app = await tenancy.get_app(session, app_id)
    workflow = await published(session, app_id)
    return dsl.export(workflow.dsl, app.name, app.description)


# --- runs -----------------------------------------------------------------------------------------


async def start_run(
    session: AsyncSession,
    app_id: uuid.UUID,
    inputs: Mapping[str, Any],
    user: str,
    workflow_id: uuid.UUID | None = None,
    files: list[Any] | None = None,
    file_context: FileContext | None = None,
) -> WorkflowRun:
    """Create a run and defer its job in the caller's transaction (both or neither). File mappings (``files``
    and file inputs) are resolved first (``file_context`` signs their links; without it they cannot be used)."""
    workflow = await published(session, app_id, workflow_id)
    graph = Graph.from_dsl(workflow.graph)
    start = graph.start_node()
    start_node = build_node(start)
    assert isinstance(start_node, StartNode)
    try:
        values = start_node.validate_inputs(inputs)
    except InputError as exc:
        raise InvalidParam(str(exc)) from None
    values, system_files = await resolve_run_files(
        session,
        file_context or FileContext(FileSigner(None, "")),
        app_id=app_id,
        user=user,
        variables=start_node.config.variables,
        dsl=workflow.dsl,
        inputs=values,
        files=files,
    )
    run_id = uuid.uuid4()
    system = {
        "user_id": user,
        "app_id": str(app_id),
        "workflow_id": str(workflow.id),
        "workflow_run_id": str(run_id),
        "files": system_files,
        "query": "",
    }
    state = initial_state(values, system, start.id, **dsl.environment(workflow.dsl))
    run = WorkflowRun(
        id=run_id,
        app_id=app_id,
        workflow_id=workflow.id,
        status="running",
        inputs=values,
        created_by=user,
        state=msgspec.to_builtins(state),
    )
    session.add(run)
    await session.flush()
    await run_store.transition(
        session, run_id, ["running"], [Event("workflow_started", run_started_data(run))]
    )
    await queue.defer(
        session, ADVANCE_TASK, queue="workflows", args={"run_id": str(run_id)}, lock=run_lock(run_id)
    )
    return run


async def get_run(session: AsyncSession, app_id: uuid.UUID, run_id: uuid.UUID) -> WorkflowRun:
    """A run of this app; another app's run is indistinguishable from a missing one."""
    run = await session.scalar(
        select(WorkflowRun)
        .where(WorkflowRun.id == run_id, WorkflowRun.app_id == app_id)
        .execution_options(populate_existing=True)
    )
    if run is None:
        raise NotFound("Workflow run not found.")
    return run


async def stop_run(session: AsyncSession, app_id: uuid.UUID, run_id: uuid.UUID) -> bool:
    """Stop a running or paused run of this app. False when it had already ended (stopping is then a no-op)."""
    run = await get_run(session, app_id, run_id)
    return await stop_run_now(session, run, datetime.datetime.now(datetime.UTC), "Workflow stopped by user.")


async def stop_run_now(session: AsyncSession, run: WorkflowRun, now: datetime.datetime, error: str) -> bool:
    """Stop an active run: the run ``stopped`` (compare-and-set on running|paused), its running or paused node
    executions ``stopped``, its pauses released, its waiting forms ``expired``, and ``workflow_finished``
    emitted — one transaction. A worker still running it fails its next step's guard and halts.
    False when the run had already ended."""
    elapsed = (now - run.created_at).total_seconds() if run.status == "running" else run.elapsed_time
    event = Event(
        "workflow_finished",
        {
            "id": str(run.id),
            "workflow_id": str(run.workflow_id),
            "status": "stopped",
            "outputs": run.outputs or {},
            "error": error,
            "elapsed_time": elapsed,
            "total_tokens": run.total_tokens,
            "total_steps": run.total_steps,
            "created_at": int(run.created_at.timestamp()),
            "finished_at": int(now.timestamp()),
        },
    )
    stopped = await run_store.transition(
        session,
        run.id,
        ACTIVE,
        [event],
        status="stopped",
        error=error,
        finished_at=now,
        elapsed_time=elapsed,
        state=None,
    )
    if stopped:
        await run_store.stop_open_node_executions(session, run.id, now)
        await session.execute(workflow_pauses.delete().where(workflow_pauses.c.run_id == run.id))
        timers = await session.execute(
            update(HumanInputForm)
            .where(HumanInputForm.run_id == run.id, HumanInputForm.status == "waiting")
            .values(status="expired", resolved_at=now)
            .returning(HumanInputForm.timer_job_ids)
            .execution_options(synchronize_session=False)
        )
        await queue.cancel_jobs(session, [job_id for (ids,) in timers for job_id in ids])
    return stopped


class RunFilter(msgspec.Struct, kw_only=True):
    status: str | None = None
    keyword: str | None = None
    created_before: datetime.datetime | None = None
    created_after: datetime.datetime | None = None
    user: str | None = None


async def list_runs(
    session: AsyncSession, app_id: uuid.UUID, page: int, limit: int, where: RunFilter
) -> tuple[list[WorkflowRun], int]:
    query = select(WorkflowRun).where(WorkflowRun.app_id == app_id)
    if where.status:
        query = query.where(WorkflowRun.status == where.status)
    if where.created_before:
        query = query.where(WorkflowRun.created_at < where.created_before)
    if where.created_after:
        query = query.where(WorkflowRun.created_at > where.created_after)
    if where.user:
        query = query.where(WorkflowRun.created_by == where.user)
    if where.keyword:
        escaped = where.keyword.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = "%" + escaped + "%"
        query = query.where(
            sa.cast(WorkflowRun.inputs, sa.Text).ilike(pattern)
            | sa.cast(WorkflowRun.outputs, sa.Text).ilike(pattern)
        )
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.execute(
        query.order_by(WorkflowRun.created_at.desc()).offset((page - 1) * limit).limit(limit)
    )
    return list(rows.scalars()), total


async def resolve_pause(
    session: AsyncSession,
    run_id: uuid.UUID,
    node_id: str,
    outputs: Mapping[str, Any],
    edge_source_handle: str = "source",
) -> bool:
    """Record how a paused node ends (a form submitted, a timeout...) and, once no pause of the run is left
    open, defer the job that resumes it — both in the caller's transaction.

    Compare-and-set on the pause (``resolved_at IS NULL``): of two concurrent resolutions exactly one wins;
    the loser gets False and changes nothing.
    """
    resolution = {"outputs": dict(outputs), "edge_source_handle": edge_source_handle}
    won = await session.execute(
        update(workflow_pauses)
        .where(
            workflow_pauses.c.run_id == run_id,
            workflow_pauses.c.node_id == node_id,
            workflow_pauses.c.resolved_at.is_(None),
        )
        .values(resolution=resolution, resolved_at=func.now())
        .returning(workflow_pauses.c.node_id)
    )
    if won.first() is None:
        return False
    # Lock the run row so that two resolutions of one run committing at once cannot both see the other's
    # pause still open (each would then leave the resume to the other).
    await session.execute(select(WorkflowRun.id).where(WorkflowRun.id == run_id).with_for_update())
    open_pauses = await session.scalar(
        select(func.count())
        .select_from(workflow_pauses)
        .where(workflow_pauses.c.run_id == run_id, workflow_pauses.c.resolved_at.is_(None))
    )
    if not open_pauses:
        await queue.defer(
            session, ADVANCE_TASK, queue="workflows", args={"run_id": str(run_id)}, lock=run_lock(run_id)
        )
    return True


async def resolve_pauses(
    session: AsyncSession, items: Sequence[tuple[uuid.UUID, str, Mapping[str, Any], str]]
) -> set[uuid.UUID]:
    """``resolve_pause`` for many (run, node, outputs, handle) at once; returns the runs whose pause it won.

    Same compare-and-set per pause, then the runs are locked in id order (deadlock-free among batches) and a
    resume job is deferred for every run left with no open pause — all in the caller's transaction."""
    if not items:
        return set()
    won = await session.execute(
        sa.text(
            """
            UPDATE workflow_pauses p SET resolution = d.res, resolved_at = now()
            FROM unnest(CAST(:runs AS uuid[]), CAST(:nodes AS text[]), CAST(:res AS jsonb[])) AS d(run_id, node_id, res)
            WHERE p.run_id = d.run_id AND p.node_id = d.node_id AND p.resolved_at IS NULL
            RETURNING p.run_id
            """
        ),
        {
            "runs": [i[0] for i in items],
            "nodes": [i[1] for i in items],
            "res": [
                msgspec.json.encode({"outputs": dict(i[2]), "edge_source_handle": i[3]}).decode()
                for i in items
            ],
        },
    )
    runs = {r[0] for r in won}
    if not runs:
        return runs
    await session.execute(
        select(WorkflowRun.id).where(WorkflowRun.id.in_(runs)).order_by(WorkflowRun.id).with_for_update()
    )
    still_open = set(
        (
            await session.execute(
                select(workflow_pauses.c.run_id)
                .where(workflow_pauses.c.run_id.in_(runs), workflow_pauses.c.resolved_at.is_(None))
                .distinct()
            )
        ).scalars()
    )
    ready = sorted(runs - still_open)
    await queue.defer_jobs(
        session,
        [
            queue.JobSpec(
                task_name=ADVANCE_TASK, queue="workflows", args={"run_id": str(r)}, lock=run_lock(r)
            )
            for r in ready
        ],
    )
    return runs
