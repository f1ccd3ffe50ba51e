"""Workflow apps and runs: import/publish/export DSL, start, look up, list and stop runs. Services never commit."""

from __future__ import annotations

import asyncio
import datetime
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.clock import utcnow
from app.errors import InvalidParam, NotFound, SluiceError
from app.files.run_inputs import FileContext, resolve_run_files
from app.files.signing import FileSigner
from app.settings import Settings
from app.tenancy import services as tenancy
from app.workflows import dsl
from app.workflows.engine.building import initial_state
from app.workflows.engine.errors import InputError
from app.workflows.engine.graph import Graph, NodeSpec
from app.workflows.engine.nodes import build_node
from app.workflows.engine.nodes.start import StartNode
from app.workflows.runs import transitions
from app.workflows.runs.pauses import Extensions
from db.models import App, Workflow, WorkflowRun
from db.models.workflows import latest_version

# --- apps from DSL --------------------------------------------------------------------------------


async def _parse(yaml_content: str) -> dsl.ParsedDsl:
    """Parse and check a DSL off the event loop: YAML and compiling every template cost time in proportion to
    the document (both bounded: ``dsl.MAX_DSL_BYTES``, ``engine.templating``), other requests need not wait."""
    return await asyncio.to_thread(dsl.parse, yaml_content)


async def import_app(session: AsyncSession, yaml_content: str, workspace_id: uuid.UUID | None) -> App:
    parsed = await _parse(yaml_content)
    app = await tenancy.create_app(session, parsed.name, parsed.mode, workspace_id, parsed.description)
    await _add_version(session, app, parsed)
    return app


async def publish(session: AsyncSession, app_id: uuid.UUID, yaml_content: str) -> Workflow:
    app = await tenancy.get_app(session, app_id)
    parsed = await _parse(yaml_content)
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


class Version(msgspec.Struct, frozen=True):
    """What starting a run needs of a published version, built once per process (versions never change)."""

    id: uuid.UUID
    start: NodeSpec
    start_node: StartNode
    environment: dict[str, dict[str, Any]]
    dsl: dict[str, Any]


_VERSIONS: OrderedDict[uuid.UUID, Version] = OrderedDict()
_VERSIONS_MAX = 256


#: Built once: every run start reads the app's version id.
_LATEST_VERSION = latest_version(bindparam("app_id"))
_NAMED_VERSION = select(Workflow.id).where(
    Workflow.app_id == bindparam("app_id"), Workflow.id == bindparam("workflow_id")
)


async def version_of(
    session: AsyncSession, app_id: uuid.UUID, workflow_id: uuid.UUID | None, latest: uuid.UUID | None = None
) -> Version:
    """The app's latest version (or the given one): its id is read each time (a publish takes effect at once;
    ``latest`` is that id when the caller read it already, as the API key's lookup does), the rest comes from the
    process's cache."""
    if workflow_id is None and latest is not None:
        found: uuid.UUID | None = latest
    elif workflow_id is None:
        found = await session.scalar(_LATEST_VERSION, {"app_id": app_id})
    else:
        found = await session.scalar(_NAMED_VERSION, {"app_id": app_id, "workflow_id": workflow_id})
    if found is None:
        raise NotFound("Workflow not found." if workflow_id else "The app has no published workflow.")
    version = _VERSIONS.get(found)
    if version is None:
        workflow = await session.get_one(Workflow, found)
        start = Graph.from_dsl(workflow.graph).start_node()
        start_node = build_node(start)
        assert isinstance(start_node, StartNode)
        version = _VERSIONS[found] = Version(
            id=found,
            start=start,
            start_node=start_node,
            environment=dsl.environment(workflow.dsl),
            dsl=workflow.dsl,
        )
        while len(_VERSIONS) > _VERSIONS_MAX:
            _VERSIONS.popitem(last=False)
    _VERSIONS.move_to_end(found)
    return version


class StartedRun(msgspec.Struct, frozen=True):
    id: uuid.UUID
    workflow_id: uuid.UUID


class RunEventsPurged(SluiceError):
    """The events of this run were removed by the retention policy; the run's status, inputs and outputs remain."""

    status, code = 410, "run_events_purged"


class InputTooLarge(InvalidParam):
    """A run input is too large."""

    code = "input_too_large"


class InputLimits(msgspec.Struct, frozen=True):
    """Bytes of JSON a run's inputs may take: each variable (Dify's ``MAX_VARIABLE_SIZE``), and all together."""

    per_variable: int = 200 * 1024
    total: int = 1024 * 1024

    @classmethod
    def of(cls, settings: Settings) -> InputLimits:
        return cls(per_variable=settings.max_variable_size, total=settings.max_run_inputs_size)


def check_input_sizes(inputs: Mapping[str, Any], limits: InputLimits) -> None:
    """Refuse inputs that would be stored (and carried through the run's state and events) when too large."""
    total = 2
    for name, value in inputs.items():
        size = len(msgspec.json.encode(value))
        if size > limits.per_variable:
            raise InputTooLarge(
                f"inputs.{name[:64]} is {size} bytes of JSON; a variable may hold at most {limits.per_variable} "
                "bytes (MAX_VARIABLE_SIZE)."
            )
        total += size + len(name.encode()) + 4
    if total > limits.total:
        raise InputTooLarge(
            f"The inputs are {total} bytes of JSON together; a run's inputs may take at most {limits.total} bytes "
            "(SLUICE_MAX_RUN_INPUTS_SIZE)."
        )


async def start_run(
    session: AsyncSession,
    app_id: uuid.UUID,
    inputs: Mapping[str, Any],
    user: str,
    workflow_id: uuid.UUID | None = None,
    files: list[Any] | None = None,
    file_context: FileContext | None = None,
    limits: InputLimits | None = None,
    latest: uuid.UUID | None = None,
) -> StartedRun:
    """Create a run and defer its job in the caller's transaction (both or neither). File mappings (``files``
    and file inputs) are resolved first (``file_context`` signs their links; without it they cannot be used).
    Inputs larger than ``limits`` (the defaults when None) are refused with 400 ``input_too_large``. ``latest``:
    the app's latest version id when the caller read it already (see :func:`version_of`)."""
    check_input_sizes(inputs, limits or InputLimits())
    version = await version_of(session, app_id, workflow_id, latest)
    start, start_node, environment, doc = version.start, version.start_node, version.environment, version.dsl
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
        dsl=doc,
        inputs=values,
        files=files,
    )
    run_id = uuid.uuid4()
    system = {
        "user_id": user,
        "app_id": str(app_id),
        "workflow_id": str(version.id),
        "workflow_run_id": str(run_id),
        "files": system_files,
        "query": "",
    }
    state = initial_state(values, system, start.id, **environment)
    await transitions.start(
        session,
        run_id=run_id,
        app_id=app_id,
        workflow_id=version.id,
        inputs=values,
        user=user,
        state=msgspec.to_builtins(state),
        created_at=utcnow(),
    )
    return StartedRun(id=run_id, workflow_id=version.id)


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


async def stop_run(
    session: AsyncSession, extensions: Extensions, app_id: uuid.UUID, run_id: uuid.UUID
) -> bool:
    """Stop a running or paused run of this app. False when it had already ended (stopping is then a no-op)."""
    run = await get_run(session, app_id, run_id)
    return bool(await transitions.stop(session, extensions, [run.id], "Workflow stopped by user.", utcnow()))


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
