"""Document update by PATCH, the signed download link, the ZIP download, and both spellings of every document
route Dify has two of."""

from __future__ import annotations

import io
import json
import time
import uuid
import zipfile
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.knowledge.documents import downloads
from app.settings import Settings
from tests.conftest import ADMIN_TOKEN, SECRET_KEY, Tenant
from tests.knowledge.api_helpers import assert_error


@pytest.fixture(scope="module")
def settings(kb_database: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        database_url=kb_database,
        data_dir=tmp_path_factory.mktemp("downloads"),
        admin_token=ADMIN_TOKEN,
        secret_key=SECRET_KEY,
        log_level="WARNING",
        public_url="http://sluice.test",
    )


async def new_dataset(client: AsyncTestClient[Litestar], tenant: Tenant) -> str:
    created = await client.post(
        "/v1/datasets", json={"name": f"kb-{uuid.uuid4().hex[:8]}"}, headers=tenant.dataset_headers
    )
    assert created.status_code == 200, created.text
    return str(created.json()["id"])


async def add_file(
    client: AsyncTestClient[Litestar],
    tenant: Tenant,
    dataset: str,
    name: str,
    data: bytes,
    path: str = "create_by_file",
) -> dict[str, Any]:
    response = await client.post(
        f"/v1/datasets/{dataset}/document/{path}",
        files={"file": (name, data)},
        data={"data": json.dumps({"indexing_technique": "economy"})},
        headers=tenant.dataset_headers,
    )
    assert response.status_code == 200, response.text
    return dict(response.json()["document"])


def local(url: str) -> str:
    assert url.startswith("http://sluice.test/"), url
    return url.removeprefix("http://sluice.test")


async def test_download_link_is_signed_and_serves_the_file(
    client: AsyncTestClient[Litestar], tenant: Tenant
) -> None:
    dataset = await new_dataset(client, tenant)
    body = "# Guide\n" + "é" * 300_000  # several read slices
    document = await add_file(client, tenant, dataset, "guide.md", body.encode())
    link = await client.get(
        f"/v1/datasets/{dataset}/documents/{document['id']}/download", headers=tenant.dataset_headers
    )
    assert link.status_code == 200, link.text
    url = link.json()["url"]
    got = await client.get(local(url))  # no API key: the signature is the permission
    assert got.status_code == 200
    assert got.content == body.encode()
    assert got.headers["content-disposition"].startswith('attachment; filename="guide.md"')

    tampered = url.replace("sign=", "sign=x")
    assert_error(await client.get(local(tampered)), 403, "forbidden")
    assert_error(await client.get(local(url.split("&sign=")[0] + "&sign=%F0%AD%B3%9F")), 403, "forbidden")
    other_file = url.replace(document["data_source_info"]["upload_file_id"], str(uuid.uuid4()))
    assert_error(await client.get(local(other_file)), 403, "forbidden")
    settings: Settings = client.app.state.settings
    expired = downloads.signed_url(
        settings, uuid.UUID(document["data_source_info"]["upload_file_id"]), now=time.time() - 3600
    )
    assert_error(await client.get(local(expired)), 403, "forbidden")

    missing = await client.get(
        f"/v1/datasets/{dataset}/documents/{uuid.uuid4()}/download", headers=tenant.dataset_headers
    )
    assert_error(missing, 404, "not_found", "Document not found.")
    assert (
        await client.get(f"/v1/datasets/{dataset}/documents/{document['id']}/download")
    ).status_code == 401


async def test_zip_of_documents(client: AsyncTestClient[Litestar], tenant: Tenant) -> None:
    dataset = await new_dataset(client, tenant)
    first = await add_file(client, tenant, dataset, "a.md", b"# A\nalpha")
    second = await add_file(client, tenant, dataset, "a.md", b"# A again\nbeta")  # same name: kept apart
    text = await client.post(
        f"/v1/datasets/{dataset}/document/create-by-text",
        json={"name": "notes", "text": "gamma", "indexing_technique": "economy"},
        headers=tenant.dataset_headers,
    )
    url = f"/v1/datasets/{dataset}/documents/download-zip"
    ids = [first["id"], second["id"], text.json()["document"]["id"]]
    response = await client.post(url, json={"document_ids": ids}, headers=tenant.dataset_headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None
    assert {n: archive.read(n) for n in archive.namelist()} == {
        "a.md": b"# A\nalpha",
        "a (1).md": b"# A again\nbeta",
        "notes.txt": b"gamma",
    }

    assert_error(
        await client.post(url, json={"document_ids": []}, headers=tenant.dataset_headers),
        400,
        "invalid_param",
    )
    too_many = [str(uuid.uuid4()) for _ in range(101)]
    assert_error(
        await client.post(url, json={"document_ids": too_many}, headers=tenant.dataset_headers),
        400,
        "invalid_param",
    )
    unknown = await client.post(
        url, json={"document_ids": [str(uuid.uuid4())]}, headers=tenant.dataset_headers
    )
    assert_error(unknown, 404, "not_found", "Document not found.")


async def test_patch_updates_the_file_like_update_by_file(
    client: AsyncTestClient[Litestar], tenant: Tenant
) -> None:
    dataset = await new_dataset(client, tenant)
    document = await add_file(client, tenant, dataset, "v1.md", b"# One")
    url = f"/v1/datasets/{dataset}/documents/{document['id']}"
    busy = await client.patch(url, files={"file": ("v2.md", b"# Two")}, headers=tenant.dataset_headers)
    # A document still waiting for its indexing job cannot change (as with update-by-file).
    assert_error(busy, 400, "document_indexing")


@pytest.mark.parametrize("spelling", ["_", "-"])
async def test_both_spellings_of_the_document_routes(
    client: AsyncTestClient[Litestar], tenant: Tenant, spelling: str
) -> None:
    """Dify serves create_by_text and create-by-text (and the like) alike; clients use both."""
    dataset = await new_dataset(client, tenant)
    by_text = f"create{spelling}by{spelling}text"
    created = await client.post(
        f"/v1/datasets/{dataset}/document/{by_text}",
        json={"name": "t", "text": "hello", "indexing_technique": "economy"},
        headers=tenant.dataset_headers,
    )
    assert created.status_code == 200, created.text
    document = await add_file(
        client, tenant, dataset, "f.md", b"# F", path=f"create{spelling}by{spelling}file"
    )
    for document_id, route, kwargs in (
        (created.json()["document"]["id"], f"update{spelling}by{spelling}text", {"json": {"name": "t2"}}),
        (document["id"], f"update{spelling}by{spelling}file", {"data": {"data": "{}"}}),
    ):
        response = await client.post(
            f"/v1/datasets/{dataset}/documents/{document_id}/{route}",
            headers=tenant.dataset_headers,
            **kwargs,
        )
        # The route exists under this spelling: it answers Dify's "still indexing" refusal, not a 404.
        assert_error(response, 400, "document_indexing")
