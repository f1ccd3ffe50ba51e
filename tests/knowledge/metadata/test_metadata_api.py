"""Metadata fields and document values through the Service API: declare, count, set, rename, delete, built-ins."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Document
from tests.conftest import Tenant, make_tenant
from tests.knowledge.api_helpers import assert_error, fresh, make_document
from tests.knowledge.rows import make_dataset


def metadata_url(document_or_dataset: Any) -> str:
    dataset_id = getattr(document_or_dataset, "dataset_id", None) or document_or_dataset.id
    return f"/v1/datasets/{dataset_id}/metadata"


async def declare(
    client: AsyncTestClient[Litestar], tenant: Tenant, dataset: Any, **fields: str
) -> dict[str, str]:
    """Create fields ``name=type``; returns ``{name: id}``."""
    ids = {}
    for name, type_ in fields.items():
        response = await client.post(
            metadata_url(dataset), json={"type": type_, "name": name}, headers=tenant.dataset_headers
        )
        assert response.status_code == 201, response.text
        assert response.json() == {"id": response.json()["id"], "type": type_, "name": name}
        ids[name] = response.json()["id"]
    return ids


async def set_values(
    client: AsyncTestClient[Litestar], tenant: Tenant, dataset: Any, operations: list[dict[str, Any]]
) -> Any:
    return await client.post(
        f"/v1/datasets/{dataset.id}/documents/metadata",
        json={"operation_data": operations},
        headers=tenant.dataset_headers,
    )


def op(document: Document, ids: dict[str, str], partial: bool = False, **values: Any) -> dict[str, Any]:
    return {
        "document_id": str(document.id),
        "metadata_list": [{"id": ids[name], "name": name, "value": value} for name, value in values.items()],
        "partial_update": partial,
    }


async def test_fields_are_declared_listed_and_counted(
    client: AsyncTestClient[Litestar], tenant: Tenant, session: AsyncSession
) -> None:
    dataset = await make_dataset(session, tenant.workspace_id, technique="economy")
    first, second, third = [await make_document(session, dataset) for _ in range(3)]
    ids = await declare(client, tenant, dataset, author="string", year="number", published="time")
    headers = tenant.dataset_headers

    duplicate = await client.post(
        metadata_url(dataset), json={"type": "string", "name": "author"}, headers=headers
    )
    assert_error(duplicate, 400, "invalid_param", "Metadata name already exists.")
    built_in = await client.post(
        metadata_url(dataset), json={"type": "string", "name": "source"}, headers=headers
    )
    assert_error(built_in, 400, "invalid_param", "Metadata name already exists in Built-in fields.")
    for bad in ({"type": "date", "name": "x"}, {"type": "string", "name": ""}, {"type": "string"}):
        assert_error(
            await client.post(metadata_url(dataset), json=bad, headers=headers), 400, "invalid_param"
        )

    ok = await set_values(
        client, tenant, dataset,
        [op(first, ids, author="Ada", year=1843), op(second, ids, author="Alan", year=None), op(third, ids)],
    )  # fmt: skip
    assert ok.status_code == 200
    assert ok.json() == {"result": "success"}
    listed = (await client.get(metadata_url(dataset), headers=headers)).json()
    assert listed["built_in_field_enabled"] is False
    assert [(f["name"], f["type"], f["count"]) for f in listed["doc_metadata"]] == [
        ("author", "string", 2),
        ("year", "number", 1),  # a null value does not count
        ("published", "time", 0),
    ]
    assert set(listed["doc_metadata"][0]) == {"id", "name", "type", "count"}


async def test_values_are_checked_against_their_type(
    client: AsyncTestClient[Litestar], tenant: Tenant, session: AsyncSession
) -> None:
    dataset = await make_dataset(session, tenant.workspace_id, technique="economy")
    document = await make_document(session, dataset, doc_metadata={"author": "keep"})
    ids = await declare(client, tenant, dataset, author="string", year="number", published="time")

    good = op(document, ids, author=42, year="1843.5", published="1700000000")
    assert (await set_values(client, tenant, dataset, [good])).status_code == 200
    assert (await fresh(session, Document, document.id)).doc_metadata == {
        "author": "42",
        "year": 1843.5,
        "published": 1700000000,
    }
    for bad in ({"year": "many"}, {"year": ""}, {"published": 1.5}, {"published": "soon"}):
        response = await set_values(client, tenant, dataset, [op(document, ids, **bad)])
        assert_error(response, 400, "invalid_metadata")
    for bad_value in (True, [1], {"a": 1}):
        response = await set_values(client, tenant, dataset, [op(document, ids, year=bad_value)])
        assert_error(response, 400, "invalid_param")
    unknown = {"document_id": str(document.id), "metadata_list": [{"id": str(uuid.uuid4()), "name": "x"}]}
    assert_error(await set_values(client, tenant, dataset, [unknown]), 400, "invalid_metadata")
    missing = op(document, ids, author="x") | {"document_id": str(uuid.uuid4())}
    assert_error(
        await set_values(client, tenant, dataset, [missing]), 404, "not_found", "Document not found."
    )
    assert (await fresh(session, Document, document.id)).doc_metadata["year"] == 1843.5  # nothing changed

    # A field of another dataset is unknown here.
    other = await make_dataset(session, tenant.workspace_id, technique="economy")
    other_ids = await declare(client, tenant, other, mood="string")
    assert_error(
        await set_values(client, tenant, dataset, [op(document, other_ids, mood="x")]),
        400,
        "invalid_metadata",
    )


async def test_partial_updates_merge_and_full_updates_replace(
    client: AsyncTestClient[Litestar], tenant: Tenant, session: AsyncSession
) -> None:
    dataset = await make_dataset(session, tenant.workspace_id, technique="economy")
    first, second = await make_document(session, dataset), await make_document(session, dataset)
    ids = await declare(client, tenant, dataset, author="string", year="number")
    await set_values(
        client, tenant, dataset, [op(first, ids, author="Ada", year=1843), op(second, ids, year=1)]
    )
    await set_values(
        client, tenant, dataset,
        [op(first, ids, partial=True, year=1844), op(second, ids, author="Bo"), op(second, ids, True, year=2)],
    )  # fmt: skip
    assert (await fresh(session, Document, first.id)).doc_metadata == {"author": "Ada", "year": 1844}
    assert (await fresh(session, Document, second.id)).doc_metadata == {"author": "Bo", "year": 2}
    await set_values(client, tenant, dataset, [op(first, ids, year=7)])
    assert (await fresh(session, Document, first.id)).doc_metadata == {"year": 7}


async def test_rename_and_delete_rewrite_every_document(
    client: AsyncTestClient[Litestar], tenant: Tenant, session: AsyncSession
) -> None:
    dataset = await make_dataset(session, tenant.workspace_id, technique="economy")
    documents = [await make_document(session, dataset) for _ in range(3)]
    untouched = await make_document(
        session,
        await make_dataset(session, tenant.workspace_id, technique="economy"),
        doc_metadata={"author": "other"},
    )
    ids = await declare(client, tenant, dataset, author="string", year="number")
    await set_values(
        client, tenant, dataset, [op(d, ids, author=f"A{i}", year=i) for i, d in enumerate(documents[:2])]
    )
    url, headers = metadata_url(dataset), tenant.dataset_headers

    renamed = await client.patch(f"{url}/{ids['author']}", json={"name": "writer"}, headers=headers)
    assert renamed.status_code == 200
    assert renamed.json() == {
        "id": ids["author"],
        "type": "string",
        "name": "writer",
    }
    assert (await fresh(session, Document, documents[0].id)).doc_metadata == {"writer": "A0", "year": 0}
    assert (await fresh(session, Document, documents[2].id)).doc_metadata == {}
    assert (await fresh(session, Document, untouched.id)).doc_metadata == {"author": "other"}
    assert_error(
        await client.patch(f"{url}/{ids['author']}", json={"name": "year"}, headers=headers),
        400,
        "invalid_param",
    )
    assert_error(
        await client.patch(f"{url}/{ids['author']}", json={"name": "uploader"}, headers=headers),
        400,
        "invalid_param",
        "Metadata name already exists in Built-in fields.",
    )
    same = await client.patch(f"{url}/{ids['author']}", json={"name": "writer"}, headers=headers)
    assert same.status_code == 200
    assert_error(
        await client.patch(f"{url}/{uuid.uuid4()}", json={"name": "z"}, headers=headers), 404, "not_found"
    )

    deleted = await client.delete(f"{url}/{ids['year']}", headers=headers)
    assert deleted.status_code == 204
    assert (await fresh(session, Document, documents[1].id)).doc_metadata == {"writer": "A1"}
    assert_error(await client.delete(f"{url}/{ids['year']}", headers=headers), 404, "not_found")
    listed = (await client.get(url, headers=headers)).json()["doc_metadata"]
    assert [(f["name"], f["count"]) for f in listed] == [("writer", 2)]


async def test_built_in_fields(
    client: AsyncTestClient[Litestar], tenant: Tenant, session: AsyncSession
) -> None:
    dataset = await make_dataset(session, tenant.workspace_id, technique="economy")
    document = await make_document(session, dataset, name="guide.md", doc_metadata={"author": "Ada"})
    ids = await declare(client, tenant, dataset, author="string")
    headers = tenant.dataset_headers
    expected = {
        "fields": [
            {"name": "document_name", "type": "string"},
            {"name": "uploader", "type": "string"},
            {"name": "upload_date", "type": "time"},
            {"name": "last_update_date", "type": "time"},
            {"name": "source", "type": "string"},
        ]
    }
    assert (await client.get(f"{metadata_url(dataset)}/built-in", headers=headers)).json() == expected
    assert (await client.get("/v1/datasets/metadata/built-in", headers=headers)).json() == expected

    enabled = await client.post(f"{metadata_url(dataset)}/built-in/enable", headers=headers)
    assert enabled.status_code == 200
    assert enabled.json() == {"result": "success"}
    values = (await fresh(session, Document, document.id)).doc_metadata
    assert values["author"] == "Ada"
    assert values["document_name"] == "guide.md"
    assert values["source"] == "file_upload"
    assert values["uploader"] is None
    assert values["upload_date"] == int(document.created_at.timestamp())
    assert (await client.get(metadata_url(dataset), headers=headers)).json()["built_in_field_enabled"] is True
    # With built-ins on, a full update keeps them (Dify re-adds them).
    await set_values(client, tenant, dataset, [op(document, ids, author="Bo")])
    values = (await fresh(session, Document, document.id)).doc_metadata
    assert values["author"] == "Bo"
    assert values["document_name"] == "guide.md"

    disabled = await client.post(f"{metadata_url(dataset)}/built-in/disable", headers=headers)
    assert disabled.status_code == 200
    assert (await fresh(session, Document, document.id)).doc_metadata == {"author": "Bo"}
    again = await client.post(f"{metadata_url(dataset)}/built-in/disable", headers=headers)
    assert again.json() == {"result": "success"}
    assert_error(
        await client.post(f"{metadata_url(dataset)}/built-in/toggle", headers=headers), 400, "invalid_param"
    )


async def test_other_workspaces_are_not_found(
    client: AsyncTestClient[Litestar], tenant: Tenant, admin: dict[str, str], session: AsyncSession
) -> None:
    dataset = await make_dataset(session, tenant.workspace_id, technique="economy")
    document = await make_document(session, dataset)
    ids = await declare(client, tenant, dataset, author="string")
    stranger = (await make_tenant(client, admin)).dataset_headers
    url = metadata_url(dataset)
    assert_error(await client.get(url, headers=stranger), 404, "not_found", "Dataset not found.")
    assert_error(
        await client.post(url, json={"type": "string", "name": "x"}, headers=stranger), 404, "not_found"
    )
    assert_error(
        await client.patch(f"{url}/{ids['author']}", json={"name": "y"}, headers=stranger), 404, "not_found"
    )
    assert_error(await client.delete(f"{url}/{ids['author']}", headers=stranger), 404, "not_found")
    assert_error(await client.get(f"{url}/built-in", headers=stranger), 404, "not_found")
    assert_error(await client.post(f"{url}/built-in/enable", headers=stranger), 404, "not_found")
    body = {"operation_data": [op(document, ids, author="x")]}
    assert_error(
        await client.post(f"/v1/datasets/{dataset.id}/documents/metadata", json=body, headers=stranger),
        404,
        "not_found",
    )
    # A document of another dataset (same workspace) is not found through this one.
    other = await make_dataset(session, tenant.workspace_id, technique="economy")
    assert_error(
        await set_values(client, tenant, other, [op(document, ids, author="x")]), 400, "invalid_metadata"
    )
    other_ids = await declare(client, tenant, other, author="string")
    assert_error(
        await set_values(client, tenant, other, [op(document, other_ids, author="x")]), 404, "not_found"
    )
    assert (await fresh(session, Document, document.id)).doc_metadata == {}
