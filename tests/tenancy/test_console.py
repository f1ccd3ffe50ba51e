"""Console API: workspaces, apps, keys; validation errors name the field."""

from __future__ import annotations

import uuid

from litestar import Litestar
from litestar.testing import AsyncTestClient


async def test_default_workspace_exists(client: AsyncTestClient[Litestar], admin: dict[str, str]) -> None:
    workspaces = (await client.get("/console/api/workspaces", headers=admin)).json()["data"]
    assert [w["name"] for w in workspaces if w["is_default"]] == ["Default"]


async def test_app_lifecycle(client: AsyncTestClient[Litestar], admin: dict[str, str]) -> None:
    created = await client.post(
        "/console/api/apps", json={"name": "Approvals", "mode": "workflow", "description": "d"}, headers=admin
    )
    assert created.status_code == 201, created.text
    app = created.json()
    assert app["name"] == "Approvals"
    assert isinstance(app["created_at"], int)
    assert (await client.get(f"/console/api/apps/{app['id']}", headers=admin)).json()["id"] == app["id"]
    page = (await client.get("/console/api/apps?limit=1", headers=admin)).json()
    assert page["limit"] == 1
    assert len(page["data"]) == 1
    assert page["total"] >= 1
    assert (await client.delete(f"/console/api/apps/{app['id']}", headers=admin)).status_code == 204
    gone = await client.get(f"/console/api/apps/{app['id']}", headers=admin)
    assert gone.status_code == 404
    assert gone.json()["code"] == "not_found"


async def test_keys_are_shown_once(client: AsyncTestClient[Litestar], admin: dict[str, str]) -> None:
    app = (await client.post("/console/api/apps", json={"name": "k"}, headers=admin)).json()
    created = (await client.post(f"/console/api/apps/{app['id']}/api-keys", headers=admin)).json()
    assert created["token"].startswith("app-")
    assert len(created["token"]) > 40
    listed = (await client.get(f"/console/api/apps/{app['id']}/api-keys", headers=admin)).json()["data"]
    assert listed[0]["id"] == created["id"]
    assert listed[0]["token"] != created["token"]
    assert listed[0]["token"].endswith(created["token"][-4:])
    dataset_key = (await client.post("/console/api/datasets/api-keys", headers=admin)).json()
    assert dataset_key["token"].startswith("dataset-")
    assert dataset_key["type"] == "dataset"


async def test_validation_errors_name_the_field(
    client: AsyncTestClient[Litestar], admin: dict[str, str]
) -> None:
    bad_mode = await client.post("/console/api/apps", json={"name": "x", "mode": "chatbot"}, headers=admin)
    assert bad_mode.status_code == 400
    assert bad_mode.json()["code"] == "invalid_param"
    assert "mode" in bad_mode.json()["message"]
    empty = await client.post("/console/api/workspaces", json={"name": ""}, headers=admin)
    assert empty.status_code == 400
    assert "name" in empty.json()["message"]
    not_json = await client.post(
        "/console/api/workspaces", content=b"{", headers={**admin, "content-type": "application/json"}
    )
    assert not_json.status_code == 400
    assert not_json.json()["code"] == "invalid_param"
    bad_limit = await client.get("/console/api/apps?limit=1000", headers=admin)
    assert bad_limit.status_code == 400
    assert "limit" in bad_limit.json()["message"]
    missing = await client.post(f"/console/api/apps/{uuid.uuid4()}/api-keys", headers=admin)
    assert missing.status_code == 404
    unknown_workspace = await client.post(
        "/console/api/datasets/api-keys", json={"workspace_id": str(uuid.uuid4())}, headers=admin
    )
    assert unknown_workspace.status_code == 404


async def test_dataset_name_duplicate(client: AsyncTestClient[Litestar], admin: dict[str, str]) -> None:
    key = (await client.post("/console/api/datasets/api-keys", headers=admin)).json()["token"]
    headers = {"Authorization": f"Bearer {key}"}
    name = f"kb-{uuid.uuid4().hex[:8]}"
    assert (await client.post("/v1/datasets", json={"name": name}, headers=headers)).status_code == 200
    dup = await client.post("/v1/datasets", json={"name": name}, headers=headers)
    assert dup.status_code == 409
    assert dup.json()["code"] == "dataset_name_duplicate"
