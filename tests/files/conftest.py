"""Files tests: a database of their own, the app in-process with small upload limits, and a real worker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.asgi import create_app
from app.settings import Settings
from tests.support.service import service_settings, service_worker
from tests.workflows.conftest import AppUnderTest, import_app

MB = 1024 * 1024


@pytest.fixture(scope="module")
def files_settings(module_database: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return service_settings(
        module_database,
        tmp_path_factory.mktemp("files"),
        worker_poll_seconds=0.1,
        public_url="http://files.test",
        upload_file_size_limit=1,
        upload_image_file_size_limit=2,
        upload_audio_file_size_limit=3,
        upload_video_file_size_limit=4,
        upload_file_extension_blacklist=frozenset({"exe", "sh"}),
        # remote-URL files: 127.0.0.2 stands for an allowed internal host, every other address stays refused
        ssrf_proxy_allow_private_networks=("127.0.0.2/32",),
    )


@pytest.fixture(scope="module")
def files_worker(files_settings: Settings) -> Iterator[None]:
    with service_worker(files_settings):
        yield


@pytest.fixture
def files_app(files_settings: Settings) -> Litestar:
    return create_app(files_settings, configure_logs=False)


@pytest.fixture
async def client(files_app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=files_app) as client:
        yield client


NO_FILES_APP = """
version: 0.1.5
kind: app
app: {name: Plain, mode: workflow}
workflow:
  graph:
    nodes:
      - id: start
        data: {type: start, title: Start, variables: []}
      - id: end
        data: {type: end, title: End, outputs: [{variable: files, value_selector: [sys, files]}]}
    edges:
      - {id: e1, source: start, target: end}
"""


async def new_app(client: AsyncTestClient[Litestar], dsl: str = NO_FILES_APP) -> AppUnderTest:
    return await import_app(client, dsl)


async def upload(
    client: AsyncTestClient[Litestar],
    app: AppUnderTest,
    name: str,
    content: bytes,
    mime: str | None = "text/plain",
    user: str | None = "alice",
) -> Any:
    files = {"file": (name, content, mime) if mime is not None else (name, content)}
    data = {"user": user} if user is not None else None
    return await client.post("/v1/files/upload", files=files, data=data, headers=app.headers)


def assert_error(response: Any, status: int, code: str, message: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and body["status"] == status, body
    if message is not None:
        assert body["message"] == message, body
