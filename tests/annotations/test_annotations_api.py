"""Annotations: CRUD through the Service API, the enable/disable job run by a real worker, and matching a query
(``match_annotation``, the entry point the chat turn will use)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.annotations import services
from app.knowledge.embeddings.providers import Embedders
from app.settings import Settings
from tests.conftest import Tenant
from tests.support.service import service_engine, service_settings, service_worker


@pytest.fixture(scope="module")
def settings(module_database: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return service_settings(module_database, tmp_path_factory.mktemp("annotations"), worker_poll_seconds=0.05)


@pytest.fixture(scope="module")
def worker(settings: Settings) -> Iterator[None]:
    with service_worker(settings):
        yield


@pytest.fixture(scope="module")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    async with service_engine(settings.database_url or "") as engine:
        yield engine


@pytest.fixture
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with async_sessionmaker(engine, expire_on_commit=False)() as session:
        yield session


async def add(
    client: AsyncTestClient[Litestar], tenant: Tenant, question: str, answer: str
) -> dict[str, Any]:
    created = await client.post(
        "/v1/apps/annotations", json={"question": question, "answer": answer}, headers=tenant.app_headers
    )
    assert created.status_code == 201, created.text
    return dict(created.json())


async def test_crud(client: AsyncTestClient[Litestar], tenant: Tenant) -> None:
    first = await add(client, tenant, "What is Sluice?", "A Dify-compatible backend.")
    assert first["hit_count"] == 0
    assert isinstance(first["created_at"], int)
    second = await add(client, tenant, "How do I pause?", "With a human-input node.")
    listed = (await client.get("/v1/apps/annotations", headers=tenant.app_headers)).json()
    assert [a["id"] for a in listed["data"]] == [second["id"], first["id"]]  # newest first
    assert (listed["total"], listed["page"], listed["limit"], listed["has_more"]) == (2, 1, 20, False)
    page = (await client.get("/v1/apps/annotations?limit=1&page=2", headers=tenant.app_headers)).json()
    assert [a["id"] for a in page["data"]] == [first["id"]]
    assert page["has_more"] is False
    capped = (await client.get("/v1/apps/annotations?limit=500", headers=tenant.app_headers)).json()
    assert capped["limit"] == 100
    found = (await client.get("/v1/apps/annotations?keyword=human-input", headers=tenant.app_headers)).json()
    assert [a["id"] for a in found["data"]] == [second["id"]]
    percent = (await client.get("/v1/apps/annotations?keyword=%25", headers=tenant.app_headers)).json()
    assert percent["total"] == 0  # a LIKE wildcard in the keyword is a plain character

    updated = await client.put(
        f"/v1/apps/annotations/{first['id']}",
        json={"question": "What is it?", "answer": "A backend."},
        headers=tenant.app_headers,
    )
    assert updated.status_code == 200
    assert updated.json()["question"] == "What is it?"
    assert (
        await client.delete(f"/v1/apps/annotations/{first['id']}", headers=tenant.app_headers)
    ).status_code == 204
    gone = await client.delete(f"/v1/apps/annotations/{first['id']}", headers=tenant.app_headers)
    assert gone.status_code == 404
    assert gone.json()["message"] == "Annotation not found."
    missing = await client.put(
        f"/v1/apps/annotations/{uuid.uuid4()}",
        json={"question": "q", "answer": "a"},
        headers=tenant.app_headers,
    )
    assert missing.status_code == 404
    assert (
        await client.post("/v1/apps/annotations", json={"question": "q"}, headers=tenant.app_headers)
    ).status_code == 400
    assert (await client.get("/v1/apps/annotations", headers=tenant.dataset_headers)).status_code == 401


async def test_another_apps_annotations_are_invisible(
    client: AsyncTestClient[Litestar], tenant: Tenant, admin: dict[str, str]
) -> None:
    from tests.conftest import make_tenant

    mine = await add(client, tenant, "q", "a")
    other = await make_tenant(client, admin)
    assert (await client.get("/v1/apps/annotations", headers=other.app_headers)).json()["total"] == 0
    hidden = await client.delete(f"/v1/apps/annotations/{mine['id']}", headers=other.app_headers)
    assert hidden.status_code == 404


async def wait_job(
    client: AsyncTestClient[Litestar], tenant: Tenant, action: str, job_id: str
) -> dict[str, Any]:
    for _ in range(200):
        status = await client.get(
            f"/v1/apps/annotation-reply/{action}/status/{job_id}", headers=tenant.app_headers
        )
        assert status.status_code == 200, status.text
        if status.json()["job_status"] in ("completed", "error"):
            return dict(status.json())
        await asyncio.sleep(0.05)
    raise AssertionError("the annotation reply job did not finish")


async def test_reply_job_and_matching(
    client: AsyncTestClient[Litestar], tenant: Tenant, worker: None, session: AsyncSession, settings: Settings
) -> None:
    wanted = await add(client, tenant, "How do I reset my password?", "Use the reset link on the login page.")
    await add(client, tenant, "Where is the invoice?", "Under billing.")
    embedders = Embedders(settings)
    app_id = uuid.UUID(tenant.app["id"])
    assert (
        await services.match_annotation(session, app_id, "How do I reset my password?", embedders=embedders)
        is None
    )

    body = {"score_threshold": 0.9, "embedding_provider_name": "local", "embedding_model_name": "static-64"}
    started = await client.post("/v1/apps/annotation-reply/enable", json=body, headers=tenant.app_headers)
    assert started.status_code == 200, started.text
    assert started.json()["job_status"] == "waiting"
    done = await wait_job(client, tenant, "enable", started.json()["job_id"])
    assert done == {"job_id": started.json()["job_id"], "job_status": "completed", "error_msg": ""}

    await session.rollback()  # a fresh snapshot
    hit = await services.match_annotation(session, app_id, "How do I reset my password?", embedders=embedders)
    assert hit is not None
    assert str(hit.id) == wanted["id"]
    assert await services.match_annotation(session, app_id, "Trains need rails.", embedders=embedders) is None
    await services.record_hit(session, hit)
    await session.commit()
    listed = (await client.get("/v1/apps/annotations", headers=tenant.app_headers)).json()["data"]
    assert {a["id"]: a["hit_count"] for a in listed}[wanted["id"]] == 1

    # Created while enabled: matched at once (embedded on create).
    later = await add(client, tenant, "Can I export my data?", "Yes, as JSON.")
    await session.rollback()
    hit = await services.match_annotation(session, app_id, "Can I export my data?", embedders=embedders)
    assert hit is not None
    assert str(hit.id) == later["id"]

    wrong_action = await client.get(
        f"/v1/apps/annotation-reply/disable/status/{started.json()['job_id']}", headers=tenant.app_headers
    )
    assert wrong_action.status_code == 400
    assert wrong_action.json()["message"] == "The job does not exist."
    unknown = await client.get(
        f"/v1/apps/annotation-reply/enable/status/{uuid.uuid4()}", headers=tenant.app_headers
    )
    assert unknown.status_code == 400

    stopped = await client.post("/v1/apps/annotation-reply/disable", json=body, headers=tenant.app_headers)
    assert (await wait_job(client, tenant, "disable", stopped.json()["job_id"]))["job_status"] == "completed"
    await session.rollback()
    assert (
        await services.match_annotation(session, app_id, "Can I export my data?", embedders=embedders) is None
    )


async def test_reply_job_reports_errors(
    client: AsyncTestClient[Litestar], tenant: Tenant, worker: None
) -> None:
    await add(client, tenant, "q", "a")
    body = {
        "score_threshold": 0.5,
        "embedding_provider_name": "local",
        "embedding_model_name": "no-such-model",
    }
    started = await client.post("/v1/apps/annotation-reply/enable", json=body, headers=tenant.app_headers)
    done = await wait_job(client, tenant, "enable", started.json()["job_id"])
    assert done["job_status"] == "error"
    assert done["error_msg"]
    bad = await client.post("/v1/apps/annotation-reply/switch", json=body, headers=tenant.app_headers)
    assert bad.status_code == 400
    assert bad.json()["message"] == "Unsupported annotation reply action"
