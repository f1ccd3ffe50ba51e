"""Running a worker: `python -m jobs worker` (what `just worker` and `just up` start)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from app.knowledge.providers import Embedders
from app.sandbox.client import Sandbox
from app.settings import Settings
from app.workflows.engine.core import Limits
from app.workflows.engine.nodes.base import Ports
from app.workflows.ports import make_ports
from db import urls
from jobs.app import bind_job_context, opened

log = structlog.get_logger()


class Resources:
    """What tasks share inside one worker process: a database session factory and the engine's ports."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        ports: Ports,
        limits: Limits,
        embedders: Embedders,
    ) -> None:
        self.settings, self.sessions, self.ports, self.limits = settings, sessions, ports, limits
        self.embedders = embedders


@contextlib.asynccontextmanager
async def worker_resources(settings: Settings) -> AsyncIterator[Resources]:
    assert settings.database_url
    engine = create_async_engine(
        urls.asyncpg(settings.database_url), pool_size=settings.worker_concurrency + 2, max_overflow=4
    )
    # the code sandbox's runner: a separate clean process (empty environment), so no secret of ours reaches it
    sandbox = Sandbox.from_settings(settings)
    try:
        await sandbox.start()
        limits = Limits(max_steps=settings.workflow_max_steps, max_seconds=settings.workflow_max_seconds)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        embedders = Embedders(settings)
        ports = make_ports(settings, sessions, embedders, sandbox)
        yield Resources(settings, sessions, ports, limits, embedders)
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
    options: dict[str, Any] = {"queues": list(queues)} if queues else {}
    if name:
        options["name"] = name
    async with (
        opened(settings.database_url, min_size=1, max_size=4) as procrastinate_app,
        worker_resources(settings) as resources,
    ):
        log.info("worker_starting", queues=list(queues) if queues else "all")
        await procrastinate_app.run_worker_async(
            **options,
            concurrency=concurrency or settings.worker_concurrency,
            wait=wait,
            fetch_job_polling_interval=settings.worker_poll_seconds,
            worker_middleware=[bind_job_context],
            install_signal_handlers=install_signal_handlers,
            additional_context={"settings": settings, "resources": resources},
        )
        log.info("worker_stopped")
