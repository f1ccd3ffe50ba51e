"""Service API and console API credentials: missing, invalid, revoked, wrong type, other workspace."""

from __future__ import annotations

import uuid

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import ApiKey
from tests.conftest import Tenant, make_tenant


def assert_unauthorized(response) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["code"] == "unauthorized"
    assert body["status"] == 401
    assert body["message"]


async def test_missing_and_malformed_credentials(client: AsyncTestClient[Litestar], tenant: Tenant) -> None:
    assert_unauthorized(await client.get("/v1/info"))
    assert_unauthorized(await client.get("/v1/info", headers={"Authorization": tenant.app_key}))
    assert_unauthorized(await client.get("/v1/datasets", headers={"Authorization": "Bearer "}))
    assert_unauthorized(await client.get("/console/api/apps"))


async def test_invalid_key(client: AsyncTestClient[Litestar], tenant: Tenant) -> None:
    assert_unauthorized(await client.get("/v1/info", headers={"Authorization": "Bearer app-not-a-real-key"}))
    forged = tenant.app_key[:-1] + ("A" if tenant.app_key[-1] != "A" else "B")
    assert_unauthorized(await client.get("/v1/info", headers={"Authorization": f"Bearer {forged}"}))
    assert_unauthorized(
        await client.get("/console/api/apps", headers={"Authorization": "Bearer wrong-admin"})
    )


async def test_key_type_must_match_the_api(client: AsyncTestClient[Litestar], tenant: Tenant) -> None:
    assert_unauthorized(await client.get("/v1/info", headers=tenant.dataset_headers))
    assert_unauthorized(await client.get("/v1/datasets", headers=tenant.app_headers))
    # A Service API key is never an admin token.
    assert_unauthorized(await client.get("/console/api/apps", headers=tenant.app_headers))


async def test_valid_keys_work_and_record_last_use(
    client: AsyncTestClient[Litestar], tenant: Tenant, session: AsyncSession
) -> None:
    info = await client.get("/v1/info", headers=tenant.app_headers)
    assert info.status_code == 200
    assert info.json()["name"] == tenant.app["name"]
    assert info.json()["mode"] == "workflow"
    assert (await client.get("/v1/datasets", headers=tenant.dataset_headers)).status_code == 200
    last_used = (
        await session.execute(select(ApiKey.last_used_at).where(ApiKey.app_id == uuid.UUID(tenant.app["id"])))
    ).scalar_one()
    assert last_used is not None


async def test_revoked_keys_stop_working(
    client: AsyncTestClient[Litestar], tenant: Tenant, admin: dict[str, str]
) -> None:
    app_id = tenant.app["id"]
    keys = (await client.get(f"/console/api/apps/{app_id}/api-keys", headers=admin)).json()["data"]
    assert len(keys) == 1
    assert tenant.app_key not in keys[0]["token"]  # listed without the secret
    revoked = await client.delete(f"/console/api/apps/{app_id}/api-keys/{keys[0]['id']}", headers=admin)
    assert revoked.status_code == 204
    assert_unauthorized(await client.get("/v1/info", headers=tenant.app_headers))
    again = await client.delete(f"/console/api/apps/{app_id}/api-keys/{keys[0]['id']}", headers=admin)
    assert again.status_code == 404

    dataset_keys = (
        await client.get(
            f"/console/api/datasets/api-keys?workspace_id={tenant.workspace['id']}", headers=admin
        )
    ).json()["data"]
    assert len(dataset_keys) == 1
    assert (
        await client.delete(f"/console/api/datasets/api-keys/{dataset_keys[0]['id']}", headers=admin)
    ).status_code == 204
    assert_unauthorized(await client.get("/v1/datasets", headers=tenant.dataset_headers))


async def test_other_workspace_sees_nothing(client: AsyncTestClient[Litestar], admin: dict[str, str]) -> None:
    ours, theirs = await make_tenant(client, admin), await make_tenant(client, admin)
    created = await client.post("/v1/datasets", json={"name": "private"}, headers=theirs.dataset_headers)
    assert created.status_code == 200, created.text
    dataset_id = created.json()["id"]

    assert (await client.get(f"/v1/datasets/{dataset_id}", headers=theirs.dataset_headers)).status_code == 200
    hidden = await client.get(f"/v1/datasets/{dataset_id}", headers=ours.dataset_headers)
    assert hidden.status_code == 404
    assert hidden.json()["code"] == "not_found"
    assert (
        await client.delete(f"/v1/datasets/{dataset_id}", headers=ours.dataset_headers)
    ).status_code == 404
    listed = (await client.get("/v1/datasets", headers=ours.dataset_headers)).json()
    assert listed["total"] == 0
    assert listed["data"] == []
    # Names are per workspace: the same name is free in ours.
    assert (
        await client.post("/v1/datasets", json={"name": "private"}, headers=ours.dataset_headers)
    ).status_code == 200


async def test_app_key_is_bound_to_its_app(client: AsyncTestClient[Litestar], admin: dict[str, str]) -> None:
    one, two = await make_tenant(client, admin), await make_tenant(client, admin)
    await client.delete(f"/console/api/apps/{two.app['id']}", headers=admin)
    assert_unauthorized(await client.get("/v1/info", headers=two.app_headers))  # key died with its app
    assert (await client.get("/v1/info", headers=one.app_headers)).status_code == 200
