"""Embedding providers: the OpenAI-compatible client against the real fake server, and the two local models."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from app.knowledge.embeddings.embedders import (
    Embedder,
    EmbeddingError,
    LocalE5Embedder,
    LocalStaticEmbedder,
    OpenAIEmbedder,
    make_embedder,
)
from app.settings import Settings
from tests.support.fake_openai import DEFAULT_DIMENSIONS, EMBEDDINGS_PATH, FakeOpenAI, embed

PASSWORD = "How do I reset my password?"
RECOVER = "Steps to recover account login"
EGGS = "The recipe needs two eggs"


@pytest.fixture
def fake(kb_embeddings: FakeOpenAI) -> Iterator[FakeOpenAI]:
    kb_embeddings.reset()
    yield kb_embeddings
    kb_embeddings.reset()


def openai(fake: FakeOpenAI, dimension: int | None = None) -> OpenAIEmbedder:
    return OpenAIEmbedder(fake.base_url, "sk-test", "text-embedding-3-small", dimension, retry_backoff=0.01)


def assert_unit_rows(vectors: np.ndarray) -> None:
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=-1), 1.0, atol=1e-5)


# -- OpenAI-compatible ---------------------------------------------------------------------------------------


async def test_openai_batches_keep_order_and_learn_the_dimension(fake: FakeOpenAI) -> None:
    embedder = openai(fake)
    texts = [f"text number {i}" for i in range(150)]
    vectors = await embedder.embed_documents(texts)
    bodies = fake.bodies(EMBEDDINGS_PATH)
    assert [len(b["input"]) for b in bodies] == [64, 64, 22]
    assert [t for b in bodies for t in b["input"]] == texts
    assert {b["model"] for b in bodies} == {"text-embedding-3-small"}
    assert fake.requests[0].headers["authorization"] == "Bearer sk-test"
    assert vectors.shape == (150, DEFAULT_DIMENSIONS)
    np.testing.assert_allclose(vectors, np.array([embed(t) for t in texts]), atol=1e-6)
    assert_unit_rows(vectors)
    assert embedder.dimension == DEFAULT_DIMENSIONS
    assert embedder.model == "openai:text-embedding-3-small"
    np.testing.assert_allclose(await embedder.embed_query("q"), embed("q"), atol=1e-6)
    await embedder.aclose()


async def test_openai_orders_by_index_and_normalises(fake: FakeOpenAI) -> None:
    reply = {"data": [{"index": 1, "embedding": [3.0, 4.0]}, {"index": 0, "embedding": [0.0, 2.0]}]}
    fake.queue_raw(json.dumps(reply), path=EMBEDDINGS_PATH)
    vectors = await openai(fake).embed_documents(["first", "second"])
    np.testing.assert_allclose(vectors, [[0.0, 1.0], [0.6, 0.8]], atol=1e-6)
    assert_unit_rows(vectors)


@pytest.mark.parametrize("status", [429, 503])
async def test_openai_retries_rate_limits_and_server_errors(fake: FakeOpenAI, status: int) -> None:
    fake.queue_error(status, "slow down", path=EMBEDDINGS_PATH)
    vectors = await openai(fake).embed_documents(["a", "b"])
    assert len(fake.bodies(EMBEDDINGS_PATH)) == 2
    np.testing.assert_allclose(vectors, [embed("a"), embed("b")], atol=1e-6)


async def test_openai_gives_up_after_three_attempts(fake: FakeOpenAI) -> None:
    fake.queue_error(500, "the GPU is on fire", times=3, path=EMBEDDINGS_PATH)
    with pytest.raises(EmbeddingError, match="HTTP 500: the GPU is on fire") as caught:
        await openai(fake).embed_documents(["a"])
    assert caught.value.upstream_status == 500
    assert len(fake.bodies(EMBEDDINGS_PATH)) == 3


async def test_openai_client_error_is_not_retried(fake: FakeOpenAI) -> None:
    fake.queue_error(400, "This model's maximum context length is 8192 tokens", path=EMBEDDINGS_PATH)
    with pytest.raises(EmbeddingError) as caught:
        await openai(fake).embed_documents(["a very long text"])
    assert "HTTP 400" in caught.value.message
    assert "maximum context length is 8192 tokens" in caught.value.message
    assert "text-embedding-3-small" in caught.value.message
    assert caught.value.upstream_status == 400
    assert len(fake.bodies(EMBEDDINGS_PATH)) == 1


async def test_openai_connection_refused_is_retried_then_reported() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens once the socket closes
    embedder = OpenAIEmbedder(f"http://127.0.0.1:{port}/v1", None, "m", retry_backoff=0.01)
    with pytest.raises(EmbeddingError, match="failed after 3 attempts") as caught:
        await embedder.embed_documents(["a"])
    assert f":{port}" not in caught.value.message  # the operator's endpoint stays out of API errors


async def test_openai_malformed_and_wrong_replies(fake: FakeOpenAI) -> None:
    fake.queue_raw("not json", path=EMBEDDINGS_PATH)
    with pytest.raises(EmbeddingError, match="malformed reply"):
        await openai(fake).embed_documents(["a"])
    fake.queue_raw(json.dumps({"data": [{"index": 0, "embedding": [1.0]}]}), path=EMBEDDINGS_PATH)
    with pytest.raises(EmbeddingError, match="returned 1 vectors for 2 texts"):
        await openai(fake).embed_documents(["a", "b"])
    with pytest.raises(EmbeddingError, match="returned 16-d vectors, expected 32"):
        await openai(fake, dimension=32).embed_documents(["a"])


async def test_openai_dimension_before_the_first_request(fake: FakeOpenAI) -> None:
    embedder = openai(fake)
    with pytest.raises(EmbeddingError, match="not known"):
        _ = embedder.dimension
    assert await embedder.ensure_dimension() == DEFAULT_DIMENSIONS
    assert await embedder.ensure_dimension() == DEFAULT_DIMENSIONS
    assert len(fake.bodies(EMBEDDINGS_PATH)) == 1
    empty = await embedder.embed_documents([])
    assert empty.shape == (0, DEFAULT_DIMENSIONS)


async def test_openai_embedder_is_usable_from_another_event_loop(fake: FakeOpenAI) -> None:
    embedder = openai(fake)
    await embedder.embed_documents(["on the test loop"])
    result: list[np.ndarray] = []
    thread = threading.Thread(target=lambda: result.append(asyncio.run(embedder.embed_query("elsewhere"))))
    thread.start()
    thread.join(10)
    np.testing.assert_allclose(result[0], embed("elsewhere"), atol=1e-6)
    np.testing.assert_allclose(await embedder.embed_query("back"), embed("back"), atol=1e-6)
    await embedder.aclose()


# -- choosing a provider -------------------------------------------------------------------------------------


def test_make_embedder_choices() -> None:
    default = make_embedder("local", None, api_base=None, api_key=None)
    assert isinstance(default, LocalE5Embedder)
    assert make_embedder("local", "multilingual-e5-small", api_base=None, api_key=None) is default
    static = make_embedder("local", "static-64", api_base=None, api_key=None)
    assert isinstance(static, LocalStaticEmbedder)
    assert (static.model, static.dimension) == ("local:static-64", 64)
    assert (default.model, default.dimension) == ("local:multilingual-e5-small-q4", 384)
    with pytest.raises(ValueError, match="multilingual-e5-small, static-64"):
        make_embedder("local", "bge-m3", api_base=None, api_key=None)
    with pytest.raises(ValueError, match="needs an API base"):
        make_embedder("openai", None, api_base="http://127.0.0.1:1/v1", api_key=None)
    with pytest.raises(ValueError, match="'local' or 'openai'"):
        make_embedder("cohere", "embed-v3", api_base=None, api_key=None)
    remote = make_embedder("openai", "nomic-embed-text", api_base="http://127.0.0.1:1/v1/", api_key=None)
    assert isinstance(remote, OpenAIEmbedder)
    assert (remote.url, remote.model) == ("http://127.0.0.1:1/v1/embeddings", "openai:nomic-embed-text")


def test_embedding_settings_fall_back_to_the_llm_endpoint() -> None:
    settings = Settings.from_env({"OPENAI_API_BASE": "http://llm:8000/v1/", "OPENAI_API_KEY": "k"})
    assert (settings.embedding_provider, settings.embedding_model) == ("local", None)
    assert (settings.embedding_api_base, settings.embedding_api_key) == ("http://llm:8000/v1", "k")
    own = Settings.from_env(
        {
            "OPENAI_API_BASE": "http://llm:8000/v1",
            "EMBEDDING_PROVIDER": "openai",
            "EMBEDDING_MODEL": "bge-m3",
            "EMBEDDING_API_BASE": "http://tei:8080/v1",
            "EMBEDDING_API_KEY": "e",
        }
    )
    assert (own.embedding_provider, own.embedding_model) == ("openai", "bge-m3")
    assert (own.embedding_api_base, own.embedding_api_key) == ("http://tei:8080/v1", "e")


# -- local models --------------------------------------------------------------------------------------------

LOCAL = [
    pytest.param(lambda: make_embedder("local", None, api_base=None, api_key=None), id="e5"),
    pytest.param(lambda: make_embedder("local", "static-64", api_base=None, api_key=None), id="static"),
]


@pytest.mark.parametrize("factory", LOCAL)
async def test_local_shapes_normalisation_and_determinism(factory: Callable[[], Embedder]) -> None:
    embedder = factory()
    texts = [PASSWORD, RECOVER, EGGS, "Über den Wolken", "数据库索引", "x"]
    first = await embedder.embed_documents(texts)
    assert first.shape == (len(texts), embedder.dimension)
    assert_unit_rows(first)
    np.testing.assert_array_equal(await embedder.embed_documents(texts), first)
    np.testing.assert_allclose(await embedder.embed_documents(texts[2:3]), first[2:3], atol=1e-5)
    query = await embedder.embed_query(PASSWORD)
    assert query.shape == (embedder.dimension,)
    assert_unit_rows(query)
    assert (await embedder.embed_documents([])).shape == (0, embedder.dimension)
    assert await embedder.ensure_dimension() == embedder.dimension


@pytest.mark.parametrize("factory", LOCAL)
async def test_local_close_sentences_score_higher(factory: Callable[[], Embedder]) -> None:
    embedder = factory()
    password, recover, eggs = await embedder.embed_documents([PASSWORD, RECOVER, EGGS])
    assert password @ recover > password @ eggs
    assert password @ recover > recover @ eggs


async def test_local_batches_give_the_same_vectors() -> None:
    texts = [PASSWORD, RECOVER, EGGS, "Steps to bake bread", "A cat sleeps in the sun"]
    whole = await make_embedder("local", None, api_base=None, api_key=None).embed_documents(texts)
    np.testing.assert_allclose(await LocalE5Embedder(batch_size=2).embed_documents(texts), whole, atol=1e-5)


async def test_e5_queries_and_passages_are_embedded_differently() -> None:
    embedder = make_embedder("local", None, api_base=None, api_key=None)
    query = await embedder.embed_query(PASSWORD)
    passages = await embedder.embed_documents(
        [
            "To change a forgotten password, click 'Forgot password' on the sign-in page and follow the link.",
            "Our office is closed on public holidays.",
            "Preheat the oven to 180 degrees and beat two eggs with sugar.",
            "Wie setze ich mein Passwort zurück?",
        ]
    )
    # The "query: " and "passage: " prefixes give one text two different vectors...
    assert float(query @ (await embedder.embed_documents([PASSWORD]))[0]) < 0.99
    # ...and the query finds the passage that answers it, and its German paraphrase, above unrelated text.
    scores = passages @ query
    assert min(scores[0], scores[3]) > max(scores[1], scores[2])


async def test_e5_handles_text_the_engine_cannot_encode() -> None:
    embedder = make_embedder("local", None, api_base=None, api_key=None)
    vectors = await embedder.embed_documents(["broken \udc80 surrogate", ""])
    assert_unit_rows(vectors)
