"""Fixtures: a fresh migrated database per test session on the real (embedded) PostgreSQL, apps and clients.

The embedded server is the one `just up` uses (SLUICE_DATA_DIR, default .data); the tests work in a database
of their own on it, dropped at the end. With DATABASE_URL set, that server is used instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.asgi import create_app
from app.settings import Settings
from db import embedded, migrate, urls
from tests.support.contract_plugin import (  # the Dify contract check: hooks and its session fixture
    dify_contract_check,
    pytest_report_header,
    pytest_runtest_call,
    pytest_runtest_setup,
    pytest_runtest_teardown,
    pytest_terminal_summary,
)
from tests.support.fake_openai import FakeOpenAI
from tests.support.processes import LiveService
from tests.support.service import ADMIN_TOKEN, SECRET_KEY, service_engine, service_settings

__all__ = [
    "ADMIN_TOKEN",
    "SECRET_KEY",
    "dify_contract_check",
    "pytest_report_header",
    "pytest_runtest_call",
    "pytest_runtest_setup",
    "pytest_runtest_teardown",
    "pytest_terminal_summary",
]


@pytest.fixture(scope="session")
def server_url() -> str:
    """A URL of the test server's maintenance database (used to create and drop test databases)."""
    if os.environ.get("DATABASE_URL"):
        return urls.with_database(os.environ["DATABASE_URL"], "postgres")
    return embedded.ensure_running(Path(os.environ.get("SLUICE_DATA_DIR") or ".data"), "postgres")


def new_database(server_url: str, migrated: bool = True) -> str:
    name = f"sluice_test_{uuid.uuid4().hex[:10]}"
    embedded.create_database(server_url, name)
    url = urls.with_database(server_url, name)
    if migrated:
        migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    url = new_database(server_url)
    yield url
    embedded.drop_database(server_url, urls.database_name(url))


@pytest.fixture
def scratch_database(server_url: str) -> Iterator[str]:
    """An empty database (no migrations) for tests that migrate themselves."""
    url = new_database(server_url, migrated=False)
    yield url
    embedded.drop_database(server_url, urls.database_name(url))


@pytest.fixture
def private_database(server_url: str) -> Iterator[str]:
    """A migrated database of the test's own, for tests whose workers must not meet the shared live service."""
    url = new_database(server_url)
    yield url
    embedded.drop_database(server_url, urls.database_name(url))


@pytest.fixture(scope="module")
def module_database(server_url: str) -> Iterator[str]:
    """The same, shared by the tests of one module (with a worker of the module's own)."""
    url = new_database(server_url)
    yield url
    embedded.drop_database(server_url, urls.database_name(url))


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return service_settings(database_url, tmp_path_factory.mktemp("data"), worker_poll_seconds=0.1)


@pytest.fixture
def app(settings: Settings) -> Litestar:
    return create_app(settings, configure_logs=False)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app) as client:
        yield client


@pytest.fixture
def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    async with service_engine(database_url) as engine:
        yield engine


@pytest.fixture
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with async_sessionmaker(engine, expire_on_commit=False)() as session:
        yield session


@pytest.fixture(scope="session")
def session_llm() -> Iterator[FakeOpenAI]:
    """The fake OpenAI-compatible server the live service's LLM nodes call (shared by the session)."""
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def live_service(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, session_llm: FakeOpenAI
) -> Iterator[LiveService]:
    """The whole service (`python -m app up`: API + worker) on a free port, shared by the session."""
    service = LiveService(
        database_url,
        ADMIN_TOKEN,
        tmp_path_factory.mktemp("live") / "up.log",
        {
            "OPENAI_API_BASE": session_llm.base_url,
            "SLUICE_WORKER_POLL_SECONDS": "0.1",
            "SLUICE_SECRET_KEY": SECRET_KEY,
        },
    )
    try:
        service.wait_ready()
        yield service
    finally:
        service.stop()


class Tenant:
    """A workspace with an app, an app key and a dataset key, made through the console API."""

    def __init__(self, workspace: dict[str, Any], app: dict[str, Any], app_key: str, dataset_key: str):
        self.workspace, self.app, self.app_key, self.dataset_key = workspace, app, app_key, dataset_key

    @property
    def workspace_id(self) -> uuid.UUID:
        return uuid.UUID(self.workspace["id"])

    @property
    def app_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.app_key}"}

    @property
    def dataset_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.dataset_key}"}


async def make_tenant(client: AsyncTestClient[Litestar], admin: dict[str, str]) -> Tenant:
    workspace = (await client.post("/console/api/workspaces", json={"name": "w"}, headers=admin)).json()
    app = (
        await client.post(
            "/console/api/apps", json={"name": "a", "workspace_id": workspace["id"]}, headers=admin
        )
    ).json()
    app_key = (await client.post(f"/console/api/apps/{app['id']}/api-keys", headers=admin)).json()["token"]
    dataset_key = (
        await client.post(
            "/console/api/datasets/api-keys", json={"workspace_id": workspace["id"]}, headers=admin
        )
    ).json()["token"]
    return Tenant(workspace, app, app_key, dataset_key)


@pytest.fixture
async def tenant(client: AsyncTestClient[Litestar], admin: dict[str, str]) -> Tenant:
    return await make_tenant(client, admin)
