"""Running a worker: `python -m jobs worker` (what `just worker` and `just up` start)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import psycopg
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from app.knowledge.embeddings.providers import Embedders
from app.knowledge.indexing.confined import ConfinedParsing
from app.sandbox.client import Sandbox
from app.settings import Settings
from app.wiring import extensions
from app.workflows.engine.state import Limits
from app.workflows.llm import model_client
from app.workflows.ports import make_ports
from app.workflows.recorder import Runtime
from db import engines, urls
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
        urls.asyncpg(settings.database_url),
        pool_size=settings.worker_concurrency + 2,
        max_overflow=4,
    )
    engines.apply_statement_timeout(engine, settings.db_statement_timeout)
    engines.ping_idle_connections(engine)
    # the sandbox's runner: a separate clean process (empty environment), so no secret of ours reaches it. Code
    # nodes, templates with logic, and document parsing (the extractor node, indexing) run in its children.
    sandbox = Sandbox.from_settings(settings)
    # Model calls reuse open connections to the model endpoint (no connect and TLS handshake per call).
    llm_client = model_client(settings.llm_timeout_seconds)
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
            ports=make_ports(settings, sessions, embedders, sandbox, llm_client),
            extensions=extensions(settings),
            limits=limits,
        )
        parsing = ConfinedParsing.from_settings(sandbox, settings)
        yield Resources(settings, sessions, runtime, embedders, parsing)
    finally:
        await llm_client.aclose()
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
        while True:
            worker = punctual.make_worker(
                procrastinate_app,
                punctual.next_due_query(resources.sessions, queues),
                **options,
                concurrency=concurrency or settings.worker_concurrency,
                wait=wait,
                fetch_job_polling_interval=settings.worker_poll_seconds,
                worker_middleware=[bind_job_context],
                install_signal_handlers=install_signal_handlers,
                additional_context={"settings": settings, "resources": resources},
                heartbeat_conninfo=urls.libpq(settings.database_url),
            )
            try:
                await worker.run()
                if not worker.side_task_failed:
                    break  # asked to stop (a signal, or nothing left to do with wait=False)
                log.warning("worker_lost_database", reason="a side task failed")
            except Exception as exc:
                log.warning("worker_lost_database", error=f"{type(exc).__name__}: {exc}")
            finally:
                worker.stop_heartbeat()  # every job of this worker has ended (or the process is going)
            # The database went away (restart, failover): wait for it, then run a new worker in this process.
            # Jobs that were running stay ``doing`` until the stalled-job recovery retries them; runs whose job
            # failed meanwhile are handed a new one by the recovery sweep.
            await wait_for_database(settings.database_url)
            log.info("worker_restarting")
        log.info("worker_stopped")


async def wait_for_database(database_url: str, first_delay: float = 0.5, max_delay: float = 5.0) -> None:
    """Return once the database accepts connections again, trying with a growing pause."""
    delay = first_delay
    while True:
        await asyncio.sleep(delay)
        try:
            async with await psycopg.AsyncConnection.connect(
                urls.libpq(database_url), connect_timeout=5
            ) as conn:
                await conn.execute("SELECT 1")
            return
        except (psycopg.Error, OSError) as exc:
            log.info("database_still_unavailable", error=f"{type(exc).__name__}: {str(exc)[:200]}")
        delay = min(max_delay, delay * 2)
