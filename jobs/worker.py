"""Running a worker: `python -m jobs worker` (what `just worker` and `just up` start)."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from app.knowledge.confined import ConfinedParsing
from app.knowledge.providers import Embedders
from app.sandbox.client import Sandbox
from app.settings import Settings
from app.wiring import extensions
from app.workflows.engine.core import Limits
from app.workflows.ports import make_ports
from app.workflows.runner import Runtime
from db import urls
from jobs import punctual
from jobs.app import TASK_MODULES, bind_job_context, opened, unregistered
from jobs.app import app as procrastinate_tasks

log = structlog.get_logger()


class Resources:
    """What tasks share inside one worker process: settings, a session factory, the workflow runtime (ports,
    pause kinds, limits), the embedders and document parsing in the sandbox."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        runtime: Runtime,
        embedders: Embedders,
        parsing: ConfinedParsing,
    ) -> None:
        self.settings, self.sessions, self.runtime, self.embedders = settings, sessions, runtime, embedders
        self.parsing = parsing


@contextlib.asynccontextmanager
async def worker_resources(settings: Settings) -> AsyncIterator[Resources]:
    assert settings.database_url
    engine = create_async_engine(
        urls.asyncpg(settings.database_url), pool_size=settings.worker_concurrency + 2, max_overflow=4
    )
    # the sandbox's runner: a separate clean process (empty environment), so no secret of ours reaches it. Code
    # nodes, templates with logic, and document parsing (the extractor node, indexing) run in its children.
    sandbox = Sandbox.from_settings(settings)
    try:
        await sandbox.start()
        limits = Limits(
            max_steps=settings.workflow_max_steps,
            max_seconds=settings.workflow_max_seconds,
            iteration_max_items=settings.iteration_max_items,
            max_parallel=settings.max_parallel_limit,
            loop_max_count=settings.loop_node_max_count,
        )
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        embedders = Embedders(settings)
        runtime = Runtime(
            ports=make_ports(settings, sessions, embedders, sandbox),
            extensions=extensions(settings),
            limits=limits,
        )
        parsing = ConfinedParsing.from_settings(sandbox, settings)
        yield Resources(settings, sessions, runtime, embedders, parsing)
    finally:
        await sandbox.close()
        await engine.dispose()


async def run_worker(
    settings: Settings,
    *,
    queues: Sequence[str] | None = None,
    concurrency: int | None = None,
    wait: bool = True,
    name: str | None = None,
    install_signal_handlers: bool = True,
) -> None:
    """Run jobs until stopped (SIGINT/SIGTERM finish the running jobs, then return)."""
    assert settings.database_url, "resolve the database first (app.runtime.resolve)"
    for module in TASK_MODULES:
        importlib.import_module(module)
    problems = unregistered(procrastinate_tasks.tasks)
    if problems:
        raise RuntimeError("tasks the code defers have no runner: " + "; ".join(problems))
    options: dict[str, Any] = {"queues": list(queues)} if queues else {}
    if name:
        options["name"] = name
    async with (
        opened(settings.database_url, min_size=1, max_size=4) as procrastinate_app,
        worker_resources(settings) as resources,
    ):
        log.info("worker_starting", queues=list(queues) if queues else "all")
        await punctual.run(
            procrastinate_app,
            punctual.next_due_query(resources.sessions, queues),
            **options,
            concurrency=concurrency or settings.worker_concurrency,
            wait=wait,
            fetch_job_polling_interval=settings.worker_poll_seconds,
            worker_middleware=[bind_job_context],
            install_signal_handlers=install_signal_handlers,
            additional_context={"settings": settings, "resources": resources},
        )
        log.info("worker_stopped")
