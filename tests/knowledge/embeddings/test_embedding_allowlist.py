"""Operators choose the embedding models (``SLUICE_EMBEDDING_MODELS``); a dataset key may pick only among them.

Without the setting, the local models and the configured default are allowed: a tenant can no longer name
``openai`` and any model and have Sluice send its texts to the operator's endpoint. Every place a dataset's model
is chosen is checked: dataset create, PATCH, and the first document of an empty dataset.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.asgi import create_app
from app.knowledge.embeddings.providers import allowed_models, check_embedding_choice
from app.knowledge.errors import EmbeddingModelNotAllowed
from app.settings import Settings, SettingsError
from tests.conftest import make_tenant
from tests.knowledge.api_helpers import assert_error


def test_the_default_allows_local_models_and_the_configured_default() -> None:
    default = Settings()
    assert allowed_models(default) == [("local", "multilingual-e5-small"), ("local", "static-64")]
    check_embedding_choice(default, "local", "static-64")
    check_embedding_choice(
        default, "local", "intfloat/multilingual-e5-small"
    )  # another name of the same model
    with pytest.raises(EmbeddingModelNotAllowed, match="local:multilingual-e5-small, local:static-64"):
        check_embedding_choice(default, "openai", "text-embedding-3-large")
    with pytest.raises(EmbeddingModelNotAllowed):
        check_embedding_choice(default, "langgenius/openai/openai", "text-embedding-3-large")
    with pytest.raises(EmbeddingModelNotAllowed):
        check_embedding_choice(default, "local", "no-such-model")
    operator = Settings(embedding_provider="openai", embedding_model="bge-m3")
    assert ("openai", "bge-m3") in allowed_models(operator)
    check_embedding_choice(operator, "langgenius/openai/openai", "bge-m3")
    with pytest.raises(EmbeddingModelNotAllowed):
        check_embedding_choice(operator, "openai", "bge-large")


def test_the_allowlist_setting() -> None:
    s = Settings.from_env({"SLUICE_EMBEDDING_MODELS": "openai:text-embedding-3-small, local:*"})
    assert s.embedding_models_allowed == ("openai:text-embedding-3-small", "local:*")
    check_embedding_choice(s, "openai", "text-embedding-3-small")
    check_embedding_choice(s, "local", "static-64")
    with pytest.raises(EmbeddingModelNotAllowed, match="openai:text-embedding-3-small, local:\\*"):
        check_embedding_choice(s, "openai", "text-embedding-3-large")
    only_openai = Settings.from_env({"SLUICE_EMBEDDING_MODELS": "openai:*"})
    check_embedding_choice(only_openai, "openai", "anything")
    with pytest.raises(EmbeddingModelNotAllowed):
        check_embedding_choice(only_openai, "local", "static-64")
    for bad in ("openai", "cohere:embed", "local:"):
        with pytest.raises(SettingsError, match="SLUICE_EMBEDDING_MODELS"):
            Settings.from_env({"SLUICE_EMBEDDING_MODELS": bad})


@pytest.fixture
async def narrow_client(settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    narrowed = msgspec.structs.replace(settings, embedding_models_allowed=("local:static-64",))
    async with AsyncTestClient(app=create_app(narrowed, configure_logs=False)) as client:
        yield client


async def test_a_dataset_key_picks_only_allowed_models(
    narrow_client: AsyncTestClient[Litestar], admin: dict[str, str]
) -> None:
    tenant = await make_tenant(narrow_client, admin)
    headers = tenant.dataset_headers
    leak = {
        "name": "leak",
        "indexing_technique": "high_quality",
        "embedding_model_provider": "openai",
        "embedding_model": "text-embedding-3-large",
    }
    refused = await narrow_client.post("/v1/datasets", json=leak, headers=headers)
    assert_error(refused, 400, "embedding_model_not_allowed")
    assert "local:static-64" in refused.json()["message"]

    ok = {**leak, "name": "ok", "embedding_model_provider": "local", "embedding_model": "static-64"}
    created = await narrow_client.post("/v1/datasets", json=ok, headers=headers)
    assert created.status_code == 200, created.text
    dataset_id = created.json()["id"]
    patched = await narrow_client.patch(
        f"/v1/datasets/{dataset_id}",
        json={"embedding_model_provider": "openai", "embedding_model": "text-embedding-3-large"},
        headers=headers,
    )
    assert_error(patched, 400, "embedding_model_not_allowed")

    # An empty dataset whose first document names the model.
    empty = await narrow_client.post("/v1/datasets", json={"name": "empty"}, headers=headers)
    document = await narrow_client.post(
        f"/v1/datasets/{empty.json()['id']}/document/create-by-text",
        json={
            "name": "a.txt",
            "text": "some text",
            "indexing_technique": "high_quality",
            "embedding_model_provider": "openai",
            "embedding_model": "text-embedding-3-large",
            "process_rule": {"mode": "automatic"},
        },
        headers=headers,
    )
    assert_error(document, 400, "embedding_model_not_allowed")
    shown = await narrow_client.get(f"/v1/datasets/{empty.json()['id']}", headers=headers)
    assert shown.json()["embedding_model"] is None
    assert shown.json()["document_count"] == 0
