"""Knowledge tags through the Service API: create, list, rename, delete (body on DELETE), bindings, isolation."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import Tenant, make_tenant
from tests.knowledge.api_helpers import assert_error
from tests.knowledge.rows import make_dataset

TAGS = "/v1/datasets/tags"


async def create_tag(client: AsyncTestClient[Litestar], tenant: Tenant, name: str) -> dict[str, Any]:
    response = await client.post(TAGS, json={"name": name}, headers=tenant.dataset_headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def bind(client: AsyncTestClient[Litestar], tenant: Tenant, tag_ids: list[str], target: Any) -> Any:
    return await client.post(
        f"{TAGS}/binding", json={"tag_ids": tag_ids, "target_id": str(target)}, headers=tenant.dataset_headers
    )


async def listed(client: AsyncTestClient[Litestar], tenant: Tenant) -> dict[str, dict[str, Any]]:
    response = await client.get(TAGS, headers=tenant.dataset_headers)
    assert response.status_code == 200, response.text
    return {t["name"]: t for t in response.json()}


async def test_create_list_rename_delete(client: AsyncTestClient[Litestar], tenant: Tenant) -> None:
    headers = tenant.dataset_headers
    assert (await client.get(TAGS, headers=headers)).json() == []  # not captured by /v1/datasets/{dataset_id}
    first = await create_tag(client, tenant, "bikes")
    assert first == {"id": first["id"], "name": "bikes", "type": "knowledge", "binding_count": "0"}
    await create_tag(client, tenant, "baking")
    assert list(await listed(client, tenant)) == ["baking", "bikes"]  # newest first

    duplicate = await client.post(TAGS, json={"name": "bikes"}, headers=headers)
    assert_error(duplicate, 400, "invalid_param", "Tag name already exists")
    for bad in ({"name": ""}, {"name": "x" * 51}, {"name": "   "}, {}):
        assert_error(await client.post(TAGS, json=bad, headers=headers), 400, "invalid_param")
    assert (await client.post(TAGS, json={"name": "x" * 50}, headers=headers)).status_code == 200

    renamed = await client.patch(TAGS, json={"tag_id": first["id"], "name": "cycling"}, headers=headers)
    assert renamed.status_code == 200
    assert renamed.json() == {"id": first["id"], "name": "cycling", "type": "knowledge", "binding_count": "0"}
    clash = await client.patch(TAGS, json={"tag_id": first["id"], "name": "baking"}, headers=headers)
    assert_error(clash, 400, "invalid_param")
    same = await client.patch(TAGS, json={"tag_id": first["id"], "name": "cycling"}, headers=headers)
    assert same.status_code == 200
    unknown = await client.patch(TAGS, json={"tag_id": str(uuid.uuid4()), "name": "n"}, headers=headers)
    assert_error(unknown, 404, "not_found", "Tag not found")

    deleted = await client.request("DELETE", TAGS, json={"tag_id": first["id"]}, headers=headers)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert "cycling" not in await listed(client, tenant)
    again = await client.request("DELETE", TAGS, json={"tag_id": first["id"]}, headers=headers)
    assert_error(again, 404, "not_found")
    assert_error(await client.request("DELETE", TAGS, headers=headers), 400, "invalid_param")


async def test_bindings_and_counts(
    client: AsyncTestClient[Litestar], tenant: Tenant, session: AsyncSession
) -> None:
    first, second = (
        await make_dataset(session, tenant.workspace_id, technique="economy"),
        await make_dataset(session, tenant.workspace_id, technique="economy"),
    )
    bikes, baking = await create_tag(client, tenant, "bikes"), await create_tag(client, tenant, "baking")
    headers = tenant.dataset_headers

    bound = await bind(client, tenant, [bikes["id"], baking["id"]], first.id)
    assert bound.status_code == 204
    assert bound.content == b""
    assert (
        await bind(client, tenant, [bikes["id"]], first.id)
    ).status_code == 204  # already bound: no change
    assert (await bind(client, tenant, [bikes["id"]], second.id)).status_code == 204
    tags = await listed(client, tenant)
    assert (tags["bikes"]["binding_count"], tags["baking"]["binding_count"]) == ("2", "1")

    of_first = (await client.get(f"/v1/datasets/{first.id}/tags", headers=headers)).json()
    assert of_first["total"] == 2
    assert {t["name"] for t in of_first["data"]} == {"bikes", "baking"}
    assert set(of_first["data"][0]) == {"id", "name"}

    unbound = await client.post(
        f"{TAGS}/unbinding", json={"tag_id": bikes["id"], "target_id": str(first.id)}, headers=headers
    )
    assert unbound.status_code == 204
    again = await client.post(
        f"{TAGS}/unbinding", json={"tag_id": bikes["id"], "target_id": str(first.id)}, headers=headers
    )
    assert again.status_code == 204
    assert (await client.get(f"/v1/datasets/{first.id}/tags", headers=headers)).json() == {
        "data": [{"id": baking["id"], "name": "baking"}],
        "total": 1,
    }
    renamed = await client.patch(TAGS, json={"tag_id": bikes["id"], "name": "cycling"}, headers=headers)
    assert renamed.json()["binding_count"] == "1"

    # Deleting a tag removes its bindings; deleting a dataset removes its bindings.
    await client.request("DELETE", TAGS, json={"tag_id": baking["id"]}, headers=headers)
    assert (await client.get(f"/v1/datasets/{first.id}/tags", headers=headers)).json()["total"] == 0
    assert (await client.delete(f"/v1/datasets/{second.id}", headers=headers)).status_code == 204
    assert (await listed(client, tenant))["cycling"]["binding_count"] == "0"

    assert_error(await bind(client, tenant, [str(uuid.uuid4())], first.id), 404, "not_found", "Tag not found")
    assert_error(
        await bind(client, tenant, [bikes["id"]], uuid.uuid4()), 404, "not_found", "Dataset not found."
    )
    assert_error(await bind(client, tenant, ["not-a-uuid"], first.id), 400, "invalid_param")
    assert_error(await client.get(f"/v1/datasets/{uuid.uuid4()}/tags", headers=headers), 404, "not_found")


async def test_tags_belong_to_one_workspace(
    client: AsyncTestClient[Litestar], tenant: Tenant, admin: dict[str, str], session: AsyncSession
) -> None:
    other = await make_tenant(client, admin)
    mine_dataset, their_dataset = (
        await make_dataset(session, tenant.workspace_id, technique="economy"),
        await make_dataset(session, other.workspace_id, technique="economy"),
    )
    mine = await create_tag(client, tenant, "shared-name")
    theirs = await create_tag(client, other, "shared-name")  # names are unique per workspace only
    assert list(await listed(client, other)) == ["shared-name"]
    assert (await listed(client, other))["shared-name"]["id"] == theirs["id"]

    stranger = other.dataset_headers
    rename = await client.patch(TAGS, json={"tag_id": mine["id"], "name": "stolen"}, headers=stranger)
    assert_error(rename, 404, "not_found")
    delete = await client.request("DELETE", TAGS, json={"tag_id": mine["id"]}, headers=stranger)
    assert_error(delete, 404, "not_found")
    assert_error(await bind(client, other, [mine["id"]], their_dataset.id), 404, "not_found")
    assert_error(await bind(client, other, [theirs["id"]], mine_dataset.id), 404, "not_found")
    assert_error(await client.get(f"/v1/datasets/{mine_dataset.id}/tags", headers=stranger), 404, "not_found")
    unbind = await client.post(
        f"{TAGS}/unbinding", json={"tag_id": mine["id"], "target_id": str(mine_dataset.id)}, headers=stranger
    )
    assert_error(unbind, 404, "not_found")
    assert (await listed(client, tenant))["shared-name"]["name"] == "shared-name"
    assert_error(await client.get(TAGS, headers=tenant.app_headers), 401, "unauthorized")
