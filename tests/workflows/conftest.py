"""Workflow tests: a database of their own, the app in-process, and a real worker in the same event loop.

The database is private because these tests register test-only node types (``test-pause``) in this process;
the session's live service worker, in another process, must never pick up their runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app import wiring
from app.asgi import create_app
from app.settings import Settings
from app.workflows.engine import nodes as node_registry
from db import urls
from jobs.worker import run_worker
from tests.conftest import ADMIN_TOKEN, SECRET_KEY
from tests.support.nodes import BusyNode, ManualPauses, PauseNode, SlowNode


@pytest.fixture(scope="module", autouse=True)
def test_node_types() -> Iterator[None]:
    added = {PauseNode.type: PauseNode, SlowNode.type: SlowNode, BusyNode.type: BusyNode}
    node_registry.NODE_TYPES.update(added)  # the same as tests.support.nodes.register(), undone after
    wiring.KIND_FACTORIES.append(ManualPauses)
    yield
    for key in added:
        node_registry.NODE_TYPES.pop(key, None)
    wiring.KIND_FACTORIES.remove(ManualPauses)


@pytest.fixture(scope="module")
def wf_database(module_database: str) -> str:
    return module_database


@pytest.fixture(scope="module")
def wf_settings(wf_database: str, tmp_path_factory: pytest.TempPathFactory, llm_base_url: str) -> Settings:
    return Settings(
        database_url=wf_database,
        data_dir=tmp_path_factory.mktemp("wf"),
        admin_token=ADMIN_TOKEN,
        log_level="WARNING",
        worker_poll_seconds=0.1,
        openai_api_base=llm_base_url,
        secret_key=SECRET_KEY,
    )


@pytest.fixture(scope="module")
async def db(wf_settings: Settings) -> AsyncIterator[AsyncEngine]:
    """An engine on the module's database, for tests that look at (or change) rows directly."""
    engine = create_async_engine(urls.asyncpg(wf_settings.database_url or ""), pool_size=20, max_overflow=20)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="module")
def llm_base_url() -> str:
    """Overridden by modules that need a fake LLM; the default points nowhere useful."""
    return "http://127.0.0.1:9/v1"


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
        if self.task is not None:
            self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(timeout=15)


@pytest.fixture(scope="module")
def worker(wf_settings: Settings) -> Iterator[None]:
    threaded = ThreadedWorker(wf_settings)
    threaded.start()
    yield
    threaded.stop()


@pytest.fixture
async def wf_client(wf_settings: Settings, worker: None) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=create_app(wf_settings, configure_logs=False)) as client:
        yield client


class AppUnderTest(msgspec.Struct):
    app_id: str
    headers: dict[str, str]


async def import_app(client: AsyncTestClient[Litestar], yaml_text: str) -> AppUnderTest:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    imported = await client.post(
        "/console/api/apps/imports", json={"mode": "yaml-content", "yaml_content": yaml_text}, headers=admin
    )
    assert imported.status_code == 200, imported.text
    app_id = imported.json()["app_id"]
    key = (await client.post(f"/console/api/apps/{app_id}/api-keys", headers=admin)).json()["token"]
    return AppUnderTest(app_id=app_id, headers={"Authorization": f"Bearer {key}"})


def sse_events(text: str) -> list[tuple[int | None, dict[str, Any]]]:
    """Parse an SSE body into (id, data) pairs, skipping pings."""
    out: list[tuple[int | None, dict[str, Any]]] = []
    for block in text.strip().split("\n\n"):
        event_id, data = None, None
        for line in block.splitlines():
            if line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("data: "):
                data = msgspec.json.decode(line[6:])
        if data is not None:
            out.append((event_id, data))
    return out
