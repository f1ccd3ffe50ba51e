"""The procrastinate App, on the same PostgreSQL as everything else.

Creating the App does no I/O: the connector learns its URL when a worker (``python -m jobs worker``) or a
test opens it with :func:`opened`. Task modules are listed in ``TASK_MODULES`` and imported by the worker.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import procrastinate
import structlog

from db import engines, urls
from db.queue import QUEUES, Task

TASK_MODULES = [
    "jobs.maintenance",
    "jobs.workflows",
    "jobs.human_input",
    "jobs.mail",
    "jobs.knowledge",
    "jobs.annotations",
    "jobs.chat",
]

app = procrastinate.App(connector=procrastinate.PsycopgConnector(), import_paths=TASK_MODULES)

__all__ = ["QUEUES", "app", "bind_job_context", "opened", "task", "unregistered"]


def task(which: Task, **options: Any) -> Any:
    """``@app.task`` for one entry of ``db.queue.Task``: its name and queue come from the registry."""
    return app.task(name=which.value, queue=which.queue, **options)


def unregistered(tasks: Mapping[str, procrastinate.tasks.Task[Any, Any, Any]]) -> list[str]:
    """What is wrong between ``db.queue.Task`` (what the code defers) and ``tasks`` (what a worker runs):
    a task not registered, or registered on another queue. Empty when every deferred job has a runner."""
    problems = []
    for which in Task:
        registered = tasks.get(which.value)
        if registered is None:
            problems.append(f"{which.value}: not registered (is its module in TASK_MODULES?)")
        elif registered.queue != which.queue:
            problems.append(
                f"{which.value}: registered on queue {registered.queue!r}, deferred to {which.queue!r}"
            )
    return problems


async def bind_job_context(call_next: Any, context: procrastinate.JobContext, worker: Any) -> Any:
    """Worker middleware: every log line written while a job runs carries its ``job_id`` and ``task``."""
    job = context.job
    with structlog.contextvars.bound_contextvars(job_id=job.id, task=job.task_name):
        return await call_next()


@contextlib.asynccontextmanager
async def opened(database_url: str, **pool_kwargs: Any) -> AsyncIterator[procrastinate.App]:
    """The App connected to ``database_url`` for the duration of the block."""
    connector = procrastinate.PsycopgConnector(
        conninfo=urls.libpq(database_url), pool_factory=engines.idle_checked_pool(), **pool_kwargs
    )
    with app.replace_connector(connector):
        async with app.open_async():
            yield app
