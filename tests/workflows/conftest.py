"""Workflow tests: the ``wf_*`` service of each module (tests/support/service.py): a database of its own, the app
in-process, and a real worker on an event loop of its own.

The database is private because these tests register test-only node types (``test-pause``) in this process;
the session's live service worker, in another process, must never pick up their runs. The engine tests in
engine/ are pure and opt out of those node types (engine/conftest.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from app import wiring
from app.settings import Settings
from app.workflows.engine import nodes as node_registry
from tests.conftest import ADMIN_TOKEN
from tests.support.nodes import BusyNode, ManualPauses, PauseNode, SlowNode
from tests.support.service import service_client, service_engine, service_settings, service_worker


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
    return service_settings(
        wf_database, tmp_path_factory.mktemp("wf"), worker_poll_seconds=0.1, openai_api_base=llm_base_url
    )


@pytest.fixture(scope="module")
async def wf_engine(wf_settings: Settings) -> AsyncIterator[AsyncEngine]:
    """An engine on the module's database, for tests that look at (or change) rows directly."""
    async with service_engine(wf_settings.database_url or "", pool_size=20, max_overflow=20) as engine:
        yield engine


@pytest.fixture(scope="module")
def llm_base_url() -> str:
    """Overridden by modules that need a fake LLM; the default points nowhere useful."""
    return "http://127.0.0.1:9/v1"


@pytest.fixture(scope="module")
def worker(wf_settings: Settings) -> Iterator[None]:
    with service_worker(wf_settings):
        yield


@pytest.fixture
async def wf_client(wf_settings: Settings, worker: None) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with service_client(wf_settings) as client:
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
