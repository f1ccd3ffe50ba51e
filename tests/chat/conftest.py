"""Chat tests: a database of their own, the app in-process, a real worker, and the fake OpenAI server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from app.settings import Settings
from tests.support.fake_openai import FakeOpenAI
from tests.support.service import service_client, service_engine, service_settings, service_worker
from tests.workflows.conftest import AppUnderTest, import_app, sse_events

__all__ = ["AppUnderTest", "import_app", "sse_events"]


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def fresh_llm(fake_llm: FakeOpenAI) -> Iterator[None]:
    fake_llm.reset()
    yield


@pytest.fixture(scope="module")
def chat_settings(
    module_database: str, tmp_path_factory: pytest.TempPathFactory, fake_llm: FakeOpenAI
) -> Settings:
    return service_settings(
        module_database,
        tmp_path_factory.mktemp("chat"),
        worker_poll_seconds=0.05,
        openai_api_base=fake_llm.base_url,
        public_url="http://chat.test",
    )


@pytest.fixture(scope="module")
def chat_worker(chat_settings: Settings) -> Iterator[None]:
    with service_worker(chat_settings):
        yield


@pytest.fixture(scope="module")
async def chat_engine(chat_settings: Settings) -> AsyncIterator[AsyncEngine]:
    """An engine on the module's database, for tests that look at rows directly."""
    async with service_engine(chat_settings.database_url or "") as engine:
        yield engine


@pytest.fixture
async def client(chat_settings: Settings, chat_worker: None) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with service_client(chat_settings) as client:
        yield client


async def chat(
    client: AsyncTestClient[Litestar],
    app: AppUnderTest,
    query: str,
    *,
    user: str = "alice",
    conversation_id: str | None = None,
    inputs: dict[str, Any] | None = None,
    mode: str = "blocking",
    **extra: Any,
) -> Any:
    body: dict[str, Any] = {
        "inputs": inputs or {},
        "query": query,
        "user": user,
        "response_mode": mode,
        **extra,
    }
    if conversation_id is not None:
        body["conversation_id"] = conversation_id
    return await client.post("/v1/chat-messages", json=body, headers=app.headers)


def events(text: str) -> list[dict[str, Any]]:
    return [data for _, data in sse_events(text)]


def names(text: str) -> list[str]:
    return [e["event"] for e in events(text)]


def decode(text: str) -> Any:
    return msgspec.json.decode(text)
