"""One way to build an isolated service for a group of tests: settings on a database of its own, an engine on
that database, a real worker on an event loop of its own, and a client of the app in-process.

Every fixture family is made of these: the session's shared service (tests/conftest.py: ``settings``,
``engine``, ``session``, ``client``) and the services of one module (tests/workflows ``wf_*``, tests/knowledge
``kb_*``, tests/chat ``chat_*``, tests/files ``files_*``, tests/annotations). Fixture names say what a fixture
is: ``*engine`` is an AsyncEngine, ``*session`` an AsyncSession, ``*sessions`` a session factory, ``*settings``
the service's Settings, ``*worker`` its running worker, ``*client`` a test client of its app; the prefix names
the service when it is not the session's.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.asgi import create_app
from app.settings import Settings
from db import urls
from jobs.worker import run_worker

ADMIN_TOKEN = "test-admin-token"
SECRET_KEY = "test-secret-key-0123456789abcdef"


def service_settings(database_url: str, data_dir: Path, **changes: Any) -> Settings:
    """The settings of a test service: its database and data dir, the tests' admin token and secret key, quiet
    logs; ``changes`` sets any other field (poll interval, fake model endpoints, limits)."""
    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        admin_token=ADMIN_TOKEN,
        secret_key=SECRET_KEY,
        log_level="WARNING",
        **changes,
    )


@contextlib.asynccontextmanager
async def service_engine(database_url: str, **options: Any) -> AsyncIterator[AsyncEngine]:
    """An engine on the service's database (``options``: pool sizes), disposed after."""
    engine = create_async_engine(urls.asyncpg(database_url), **options)
    try:
        yield engine
    finally:
        await engine.dispose()


#: How long stopping a worker may take (its running jobs end first).
JOIN_SECONDS = 20.0


class ThreadedWorker:
    """A real worker on an event loop of its own: Litestar's test client blocks the test's loop per request."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.task: asyncio.Task[None] | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.task = self.loop.create_task(run_worker(self.settings, install_signal_handlers=False))
        with contextlib.suppress(asyncio.CancelledError):
            self.loop.run_until_complete(self.task)
        self.loop.close()

    def start(self) -> None:
        self.thread.start()
        time.sleep(0.5)

    def stop(self) -> None:
        """Stop the worker: it finishes its running jobs first (as a real worker does on SIGTERM). A worker still
        running after the join timeout is an error here, not a thread left behind: the worker swaps the connector
        of procrastinate's one App while it runs and puts the old one back when it ends, which would break the
        worker of whichever test module runs then."""
        if self.task is not None:
            self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(timeout=JOIN_SECONDS)
        if self.thread.is_alive():
            raise RuntimeError(
                f"the worker did not stop within {JOIN_SECONDS:g} s: a job of the module still runs"
            )


@contextlib.contextmanager
def service_worker(settings: Settings) -> Iterator[ThreadedWorker]:
    """The service's worker, running until the block ends."""
    threaded = ThreadedWorker(settings)
    threaded.start()
    try:
        yield threaded
    finally:
        threaded.stop()


@contextlib.asynccontextmanager
async def service_client(settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """A test client of the service's app, built from its settings."""
    async with AsyncTestClient(app=create_app(settings, configure_logs=False)) as client:
        yield client
