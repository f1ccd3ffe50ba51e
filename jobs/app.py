"""The procrastinate App, on the same PostgreSQL as everything else.

Creating the App does no I/O: the connector learns its URL when a worker (``python -m jobs worker``) or a
test opens it with :func:`opened`. Task modules are listed in ``TASK_MODULES`` and imported by the worker.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import procrastinate
import structlog

from db import urls
from db.queue import QUEUES

TASK_MODULES = ["jobs.maintenance", "jobs.workflows", "jobs.human_input", "jobs.mail", "jobs.knowledge"]

app = procrastinate.App(connector=procrastinate.PsycopgConnector(), import_paths=TASK_MODULES)

__all__ = ["QUEUES", "app", "bind_job_context", "opened"]


async def bind_job_context(call_next: Any, context: procrastinate.JobContext, worker: Any) -> Any:
    """Worker middleware: every log line written while a job runs carries its ``job_id`` and ``task``."""
    job = context.job
    with structlog.contextvars.bound_contextvars(job_id=job.id, task=job.task_name):
        return await call_next()


@contextlib.asynccontextmanager
async def opened(database_url: str, **pool_kwargs: Any) -> AsyncIterator[procrastinate.App]:
    """The App connected to ``database_url`` for the duration of the block."""
    connector = procrastinate.PsycopgConnector(conninfo=urls.libpq(database_url), **pool_kwargs)
    with app.replace_connector(connector):
        async with app.open_async():
            yield app
