"""Knowledge tests that index: a private database, a real worker on its own loop, a fake embedding server
(the ``kb_*`` service of the module, made with tests/support/service.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.knowledge.embeddings import vectors
from app.knowledge.indexing import lifecycle
from app.settings import Settings
from db.models import Dataset, Document, UploadFile
from tests.knowledge.rows import make_workspace
from tests.support.fake_openai import FakeOpenAI
from tests.support.service import service_engine, service_settings, service_worker


@pytest.fixture(scope="module")
def kb_embeddings() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def kb_database(module_database: str) -> str:
    return module_database


@pytest.fixture(scope="module")
def kb_settings(
    kb_database: str, tmp_path_factory: pytest.TempPathFactory, kb_embeddings: FakeOpenAI
) -> Settings:
    return service_settings(
        kb_database,
        tmp_path_factory.mktemp("kb"),
        worker_poll_seconds=0.05,
        embedding_provider="local",
        embedding_model="static-64",
        embedding_api_base=kb_embeddings.base_url,
    )


@pytest.fixture(scope="module")
def kb_worker(kb_settings: Settings) -> Iterator[None]:
    with service_worker(kb_settings):
        yield


@pytest.fixture(scope="module")
async def kb_engine(kb_database: str) -> AsyncIterator[AsyncEngine]:
    async with service_engine(kb_database) as engine:
        yield engine


@pytest.fixture
def kb_sessions(kb_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(kb_engine, expire_on_commit=False)


@pytest.fixture
async def kb_session(kb_sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with kb_sessions() as session:
        yield session


@pytest.fixture
async def kb_workspace(kb_session: AsyncSession) -> uuid.UUID:
    """A workspace of the test's own, for the datasets it makes."""
    return await make_workspace(kb_session)


async def add_document(
    sessions: async_sessionmaker[AsyncSession],
    dataset: Dataset,
    content: bytes | str,
    *,
    name: str = "doc.txt",
    process_rule: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Document:
    """A document and its upload, with its indexing job deferred in the same transaction (as the API does)."""
    data = content.encode() if isinstance(content, str) else content
    async with sessions() as session, session.begin():
        upload = UploadFile(
            workspace_id=dataset.workspace_id,
            name=name,
            extension=name.rsplit(".", 1)[-1],
            mime_type="text/plain",
            size=len(data),
            content_hash=vectors.content_hash(data.decode("latin-1")),
            content=data,
        )
        session.add(upload)
        await session.flush()
        position = await session.scalar(
            text("SELECT coalesce(max(position), 0) + 1 FROM documents WHERE dataset_id = :d"),
            {"d": dataset.id},
        )
        document = Document(
            dataset_id=dataset.id,
            position=position,
            name=name,
            batch=uuid.uuid4().hex,
            upload_file_id=upload.id,
            process_rule=process_rule or {"mode": "automatic"},
            doc_form=dataset.doc_form or "text_model",
            indexing_technique=dataset.indexing_technique or "economy",
            doc_metadata=metadata or {},
        )
        session.add(document)
        await session.flush()
        await lifecycle.start_indexing(session, document, new=True)
    return document


async def wait_for_status(
    sessions: async_sessionmaker[AsyncSession],
    document_id: uuid.UUID,
    statuses: tuple[str, ...] = ("completed", "error"),
    timeout: float = 60.0,
) -> Document:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        async with sessions() as session:
            document = await session.get(Document, document_id)
            assert document is not None
            if document.indexing_status in statuses:
                return document
        if loop.time() > deadline:
            raise AssertionError(f"document still {document.indexing_status!r} after {timeout} s")
        await asyncio.sleep(0.05)
