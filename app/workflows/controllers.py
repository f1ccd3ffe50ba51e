"""Workflow Service API (app key): run, get, stop, logs, the run's event stream, parameters."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from litestar import Controller, get, post
from litestar.params import Parameter
from litestar.response import Response, Stream
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import InvalidParam, NotFound, responses
from app.files.remote import remote_files
from app.files.run_inputs import FileContext
from app.files.signing import FileSigner
from app.schemas import NO_NUL, Limit, Page, PageNumber, Success, unix
from app.settings import Settings
from app.state import SluiceState
from app.tenancy.modes import require_workflow_app
from app.tenancy.services import AppKey
from app.workflows import services
from app.workflows.engine.graph import Graph
from app.workflows.engine.statuses import NodeStatus, RunStatus
from app.workflows.events import Describe, RunEventHub, follow, wait_for_run
from app.workflows.runs import event_log
from app.workflows.runs.pauses import Extensions, PausedNode, PauseKinds
from app.workflows.runs.store import EventRow
from app.workflows.schemas import (
    BlockingRunResult,
    EndUser,
    LogEntry,
    LogRun,
    Parameters,
    PauseDetails,
    RunData,
    RunDetail,
    RunRequest,
    StopRequest,
)
from app.workflows.streams import StreamSlots
from db.models import WorkflowRun

#: A blocking call returns when the run ends or pauses; past this it returns the run as it is (still running).
BLOCKING_TIMEOUT_SECONDS = 600.0
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class WorkflowNotPublished(InvalidParam):
    """Workflow not published"""


def run_data(run: WorkflowRun, paused: list[PausedNode] | None = None) -> RunData:
    return RunData(
        id=run.id,
        workflow_id=run.workflow_id,
        status=run.status,
        inputs=run.inputs,
        outputs=run.outputs or {},
        error=run.error,
        total_steps=run.total_steps,
        total_tokens=run.total_tokens,
        created_at=unix(run.created_at),
        finished_at=unix(run.finished_at),
        elapsed_time=round(run.elapsed_time, 6),
        paused_nodes=paused,
    )


async def _paused(session: AsyncSession, kinds: PauseKinds, run: WorkflowRun) -> list[PausedNode] | None:
    """A paused run's paused nodes, described by their pause kinds (a form's token and link...)."""
    if run.status != RunStatus.PAUSED or not run.state:
        return None
    described = {p.node_id: p for p in (await kinds.describe(session, [run.id])).get(run.id, [])}
    ids = [
        node_id
        for node_id, s in (run.state.get("nodes") or {}).items()
        if s.get("status") == NodeStatus.PAUSED
    ]
    return [described.get(n) or PausedNode(node_id=n, node_title=n, pause_type=None) for n in ids]


def _describe(kinds: PauseKinds) -> Describe:
    """Stored events as sent: large values put back, and what pause kinds add (form links)."""

    async def describe(session: AsyncSession, run_id: uuid.UUID, rows: list[EventRow]) -> list[EventRow]:
        return await kinds.describe_events(session, await event_log.hydrate_events(session, run_id, rows))

    return describe


class WorkflowRunController(Controller):
    path = "/v1"
    tags = ["service api: workflows"]

    async def _run(
        self,
        db_session: AsyncSession,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        hub: RunEventHub,
        kinds: PauseKinds,
        slots: StreamSlots,
        key: AppKey,
        data: RunRequest,
        workflow_id: uuid.UUID | None,
    ) -> Response[Any]:
        require_workflow_app(key, only_workflow=True)
        files = FileContext(FileSigner.of(settings), remote=remote_files(settings))
        try:
            run = await services.start_run(
                db_session,
                key.app_id,
                data.inputs,
                data.user,
                workflow_id,
                data.files,
                files,
                limits=services.InputLimits.of(settings),
                latest=key.latest_workflow_id,
            )
        except NotFound as exc:
            if workflow_id is None:  # Dify: ValueError("Workflow not published"), a 400
                raise WorkflowNotPublished from exc
            raise
        # A streaming run holds a stream slot, taken in the run's transaction: over the key's cap, no run starts.
        slot = await slots.take_in(db_session, key.key_id) if data.response_mode == "streaming" else None
        # The run's follower (the stream, or the blocking wait) listens before the commit: nothing the run does can
        # come before its first notice.
        listening = hub.listen(run.id)
        try:
            # the job may start now; the response must not wait for the request to end
            await db_session.commit()
        except BaseException:
            if slot is not None:
                await slots.release(slot)
            raise
        if slot is not None:
            stream: AsyncIterator[bytes] = follow(
                sessions,
                hub,
                run.id,
                0,
                close_on=("workflow_finished", "workflow_paused"),
                describe=_describe(kinds),
                listening=listening,
            )
            return Stream(slots.guard(slot, stream), media_type="text/event-stream", headers=SSE_HEADERS)
        finished = await wait_for_run(sessions, hub, run.id, BLOCKING_TIMEOUT_SECONDS, subscribed=listening)
        async with sessions() as session:
            paused = await _paused(session, kinds, finished)
        body = BlockingRunResult(workflow_run_id=run.id, task_id=run.id, data=run_data(finished, paused))
        return Response(body)

    @post("/workflows/run", status_code=200, responses=responses(400, 401, 404, 413, 429))
    async def run_workflow(
        self,
        db_session: AsyncSession,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        hub: RunEventHub,
        extensions: Extensions,
        stream_slots: StreamSlots,
        key: AppKey,
        data: RunRequest,
    ) -> Response[BlockingRunResult]:
        """Run the app's published workflow. `response_mode: streaming` answers with Server-Sent Events."""
        return await self._run(
            db_session, sessions, settings, hub, extensions.kinds, stream_slots, key, data, None
        )

    @post("/workflows/{workflow_id:uuid}/run", status_code=200, responses=responses(400, 401, 404, 413, 429))
    async def run_workflow_version(
        self,
        db_session: AsyncSession,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        hub: RunEventHub,
        extensions: Extensions,
        stream_slots: StreamSlots,
        key: AppKey,
        data: RunRequest,
        workflow_id: uuid.UUID,
    ) -> Response[BlockingRunResult]:
        """Run a specific published version of the app's workflow."""
        return await self._run(
            db_session, sessions, settings, hub, extensions.kinds, stream_slots, key, data, workflow_id
        )

    @get("/workflows/run/{run_id:uuid}", responses=responses(401, 404))
    async def get_run(
        self, db_session: AsyncSession, extensions: Extensions, key: AppKey, run_id: uuid.UUID
    ) -> RunDetail:
        require_workflow_app(key)
        run = await services.get_run(db_session, key.app_id, run_id)
        return RunDetail.of(run_data(run, await _paused(db_session, extensions.kinds, run)))

    @post("/workflows/tasks/{task_id:uuid}/stop", status_code=200, responses=responses(400, 401, 404))
    async def stop(
        self,
        db_session: AsyncSession,
        extensions: Extensions,
        key: AppKey,
        task_id: uuid.UUID,
        data: StopRequest | None = None,
    ) -> Success:
        """Stop a running or paused run (already ended: nothing happens)."""
        require_workflow_app(key, only_workflow=True)
        await services.stop_run(db_session, extensions, key.app_id, task_id)
        return Success()

    @get("/workflows/logs", responses=responses(400, 401))
    async def logs(
        self,
        db_session: AsyncSession,
        key: AppKey,
        page: PageNumber = 1,
        limit: Limit = 20,
        keyword: Annotated[str | None, Parameter(max_length=255, pattern=NO_NUL)] = None,
        status: Annotated[
            str | None, Parameter(pattern="^(running|succeeded|failed|stopped|partial-succeeded|paused)$")
        ] = None,
        created_at__before: datetime.datetime | None = None,
        created_at__after: datetime.datetime | None = None,
        created_by_end_user_session_id: Annotated[
            str | None, Parameter(max_length=255, pattern=NO_NUL)
        ] = None,
    ) -> Page[LogEntry]:
        where = services.RunFilter(
            status=status,
            keyword=keyword,
            created_before=created_at__before,
            created_after=created_at__after,
            user=created_by_end_user_session_id,
        )
        runs, total = await services.list_runs(db_session, key.app_id, page, limit, where)
        return Page.of([_log_entry(r) for r in runs], page, limit, total)

    @get(
        "/workflow/{run_id:uuid}/events",
        responses=responses(401, 404, 410, 429),
        media_type="text/event-stream",
    )
    async def run_events(
        self,
        app_state: SluiceState,
        db_session: AsyncSession,
        key: AppKey,
        run_id: uuid.UUID,
        last_event_id: Annotated[int | None, Parameter(header="Last-Event-ID", ge=0, required=False)] = None,
        user: Annotated[str | None, Parameter(max_length=255, pattern=NO_NUL)] = None,
    ) -> Stream:
        """The run's events as Server-Sent Events: replay after `Last-Event-ID`, then live, until it finishes.
        A chat app's run is one turn of `user`: its events come in the chat envelope (`message` chunks,
        `message_end`), followed across pauses to the end. A finished run whose history the retention job removed
        (`WORKFLOW_LOG_RETENTION_DAYS`) answers 410 `run_events_purged`; the run itself is still there
        (`GET /workflows/run/{id}`)."""
        require_workflow_app(key)
        other = app_state.run_event_streams.get(key.app_mode or "")
        if other is not None:
            return await other(app_state, db_session, key, run_id, last_event_id, user)
        run = await services.get_run(db_session, key.app_id, run_id)
        if run.purged_at is not None:
            raise services.RunEventsPurged()
        slots = app_state.stream_slots
        slot = await slots.acquire(key.key_id)
        stream = follow(
            app_state.sessions(),
            app_state.hub,
            run_id,
            last_event_id or 0,
            describe=_describe(app_state.extensions.kinds),
        )
        return Stream(slots.guard(slot, stream), media_type="text/event-stream", headers=SSE_HEADERS)

    @get("/workflows/run/{run_id:uuid}/pause-details", responses=responses(401, 404))
    async def pause_details(
        self, db_session: AsyncSession, extensions: Extensions, key: AppKey, run_id: uuid.UUID
    ) -> PauseDetails:
        """The paused nodes of a run with what waits on each (a form's id, token, link and deadline)."""
        require_workflow_app(key)
        run = await services.get_run(db_session, key.app_id, run_id)
        nodes = (await extensions.kinds.describe(db_session, [run_id])).get(run_id, [])
        return PauseDetails(
            paused_at=unix(run.paused_at) if run.status == RunStatus.PAUSED else None, paused_nodes=nodes
        )

    @get("/parameters", responses=responses(401, 404))
    async def app_parameters(self, db_session: AsyncSession, settings: Settings, key: AppKey) -> Parameters:
        """The start node's input form (`user_input_form`) and the app's features."""
        try:
            workflow = await services.published(db_session, key.app_id)
        except NotFound:
            return Parameters()
        start = Graph.from_dsl(workflow.graph).start_node()
        form = []
        for var in start.data.get("variables") or []:
            kind = var.get("type", "text-input")
            entry = {k: v for k, v in var.items() if k != "type"}
            entry.setdefault("required", True)
            form.append({kind: entry})
        features = (workflow.dsl.get("workflow") or {}).get("features") or {}
        return Parameters(
            opening_statement=features.get("opening_statement") or "",
            suggested_questions=features.get("suggested_questions") or [],
            file_upload=features.get("file_upload") or {"enabled": False},
            user_input_form=form,
            system_parameters=system_parameters(settings),
        )


def system_parameters(settings: Settings) -> dict[str, int]:
    """The upload limits clients show (MB), as Dify's ``/parameters`` gives them."""
    return {
        "image_file_size_limit": settings.upload_image_file_size_limit,
        "video_file_size_limit": settings.upload_video_file_size_limit,
        "audio_file_size_limit": settings.upload_audio_file_size_limit,
        "file_size_limit": settings.upload_file_size_limit,
        "workflow_file_upload_limit": 10,
    }


def _log_entry(run: WorkflowRun) -> LogEntry:
    return LogEntry(
        id=run.id,
        workflow_run=LogRun(
            id=run.id,
            version=str(run.workflow_id),
            status=run.status,
            error=run.error,
            elapsed_time=round(run.elapsed_time, 6),
            total_tokens=run.total_tokens,
            total_steps=run.total_steps,
            created_at=unix(run.created_at),
            finished_at=unix(run.finished_at),
            exceptions_count=run.exceptions_count,
        ),
        created_from="service-api",
        created_by_role="end_user",
        created_by_account=None,
        created_by_end_user=EndUser(
            id=run.created_by, type="service_api", is_anonymous=False, session_id=run.created_by
        ),
        created_at=unix(run.created_at),
    )
