"""`python -m tests.support.worker`: a real worker process that also knows the test-only tasks."""

from __future__ import annotations

import asyncio

import tests.support.tasks  # noqa: F401  (registers the test tasks)
from app import runtime
from app.logging import configure_logging
from app.settings import Settings
from jobs.worker import run_worker
from tests.support import nodes

if __name__ == "__main__":
    nodes.register()
    settings = runtime.resolve(Settings.from_env())
    configure_logging(settings)
    asyncio.run(run_worker(settings))
