"""`POST /v1/datasets/{id}/retrieve` over HTTP with a real worker: omitted settings default sensibly (Dify
answers 500 when `score_threshold_enabled` is missing; Sluice must not), bad settings are 400, other
workspaces' datasets are 404."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.asgi import create_app
from app.settings import Settings
from tests.conftest import ADMIN_TOKEN, make_tenant

pytestmark = pytest.mark.usefixtures("kb_worker")
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
TEXTS = {
    "brakes": "Rim brake pads must meet the rim squarely; toe them in by one millimetre.",
    "baking": "A sourdough loaf bakes for forty minutes in a covered Dutch oven.",
}


@pytest.fixture
async def kb_client(kb_settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=create_app(kb_settings, configure_logs=False)) as client:
        yield client


async def indexed_dataset(client: AsyncTestClient[Litestar], headers: dict[str, str], **body: Any) -> str:
    dataset = await client.post(
        "/v1/datasets",
        json={
            "name": "retrieve",
            "indexing_technique": "high_quality",
            "embedding_model": "static-64",
            **body,
        },
        headers=headers,
    )
    assert dataset.status_code == 200, dataset.text
    dataset_id = dataset.json()["id"]
    batches = []
    for name, text in TEXTS.items():
        created = await client.post(
            f"/v1/datasets/{dataset_id}/document/create_by_text",
            json={"name": name, "text": text},
            headers=headers,
        )
        assert created.status_code == 200, created.text
        batches.append(created.json()["batch"])
    for batch in batches:
        for _ in range(400):
            status = (
                await client.get(
                    f"/v1/datasets/{dataset_id}/documents/{batch}/indexing-status", headers=headers
                )
            ).json()["data"][0]
            if status["indexing_status"] in ("completed", "error"):
                break
            await asyncio.sleep(0.05)
        assert status["indexing_status"] == "completed", status
        assert status["completed_segments"] == status["total_segments"] == 1
    return dataset_id


async def test_retrieve_defaults_and_errors(kb_client: AsyncTestClient[Litestar]) -> None:
    tenant = await make_tenant(kb_client, ADMIN)
    headers = tenant.dataset_headers
    dataset_id = await indexed_dataset(kb_client, headers)
    url = f"/v1/datasets/{dataset_id}/retrieve"

    async def retrieve(body: dict[str, Any], path: str = url) -> Any:
        return await kb_client.post(path, json=body, headers=headers)

    for body in (
        {"query": TEXTS["brakes"]},  # no retrieval_model: the dataset's (defaults)
        {"query": TEXTS["brakes"], "retrieval_model": {"search_method": "semantic_search"}},
        {"query": TEXTS["brakes"], "retrieval_model": {"search_method": "hybrid_search", "top_k": 1}},
        {"query": TEXTS["brakes"], "retrieval_model": {"score_threshold": 0.99}},  # not enabled: ignored
        {
            "query": TEXTS["brakes"],
            "retrieval_model": {
                "search_method": "semantic_search",
                "reranking_enable": None,
                "reranking_model": None,
                "score_threshold_enabled": None,
                "score_threshold": None,
                "weights": None,
                "top_k": 2,
            },
        },
    ):
        response = await retrieve(body)
        assert response.status_code == 200, (body, response.text)
        data = response.json()
        assert data["query"] == {"content": TEXTS["brakes"]}
        assert data["records"][0]["segment"]["document"]["name"] == "brakes"
        assert data["records"][0]["segment"]["content"] == TEXTS["brakes"]
        assert 0 <= data["records"][-1]["score"] <= data["records"][0]["score"] <= 1

    alias = await retrieve(
        {"query": "sourdough loaf", "retrieval_model": {"search_method": "full_text_search"}},
        url.replace("retrieve", "hit-testing"),
    )
    assert alias.status_code == 200
    assert [r["segment"]["document"]["name"] for r in alias.json()["records"]] == ["baking"]

    for body in (
        {},
        {"query": ""},
        {"query": "x" * 251},
        {"query": "q", "retrieval_model": {"search_method": "psychic_search"}},
        {"query": "q", "retrieval_model": {"top_k": 0}},
        {"query": "q", "retrieval_model": {"top_k": 101}},
        {"query": "q", "retrieval_model": {"score_threshold": 2}},
        {
            "query": "q",
            "retrieval_model": {
                "metadata_filtering_conditions": {
                    "conditions": [{"name": "a", "comparison_operator": "resembles"}]
                }
            },
        },
        {
            "query": "q",
            "retrieval_model": {
                "metadata_filtering_conditions": {
                    "conditions": [{"name": "a", "comparison_operator": ">", "value": "soon"}]
                }
            },
        },
    ):
        response = await retrieve(body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["code"] == "invalid_param"

    other = await make_tenant(kb_client, ADMIN)
    response = await kb_client.post(url, json={"query": "q"}, headers=other.dataset_headers)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    response = await kb_client.post(url, json={"query": "q"}, headers=tenant.app_headers)
    assert response.status_code == 401
