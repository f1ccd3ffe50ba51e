"""Chat tests: a database of their own, the app in-process, a real worker, and the fake OpenAI server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.asgi import create_app
from app.settings import Settings
from db import urls
from tests.conftest import ADMIN_TOKEN, SECRET_KEY
from tests.support.fake_openai import FakeOpenAI
from tests.workflows.conftest import AppUnderTest, ThreadedWorker, import_app, sse_events

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
    return Settings(
        database_url=module_database,
        data_dir=tmp_path_factory.mktemp("chat"),
        admin_token=ADMIN_TOKEN,
        secret_key=SECRET_KEY,
        log_level="WARNING",
        worker_poll_seconds=0.05,
        openai_api_base=fake_llm.base_url,
        public_url="http://chat.test",
    )


@pytest.fixture(scope="module")
def chat_worker(chat_settings: Settings) -> Iterator[None]:
    threaded = ThreadedWorker(chat_settings)
    threaded.start()
    yield
    threaded.stop()


@pytest.fixture(scope="module")
async def db(chat_settings: Settings) -> AsyncIterator[AsyncEngine]:
    """An engine on the module's database, for tests that look at rows directly."""
    engine = create_async_engine(urls.asyncpg(chat_settings.database_url or ""))
    yield engine
    await engine.dispose()


@pytest.fixture
async def client(chat_settings: Settings, chat_worker: None) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=create_app(chat_settings, configure_logs=False)) as client:
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
