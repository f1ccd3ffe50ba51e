"""The fake OpenAI server itself: scripted replies, errors and embeddings behave as the tests rely on."""

from __future__ import annotations

import httpx

from tests.support.fake_openai import FakeOpenAI, embed
from tests.support.fake_openai_fixture import fake_openai_fixture  # noqa: F401


def test_chat_echoes_then_follows_the_script(fake_openai: FakeOpenAI) -> None:
    url = f"{fake_openai.base_url}/chat/completions"
    body = {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}
    reply = httpx.post(url, json=body).json()
    assert reply["choices"][0]["message"]["content"] == "echo: hi" and reply["usage"]["total_tokens"] == 3
    fake_openai.queue_reply("scripted", times=2)
    fake_openai.queue_error(503, "down")
    assert [httpx.post(url, json=body).status_code for _ in range(4)] == [200, 200, 503, 200]
    assert httpx.post(url, json={"model": "m"}).status_code == 400
    assert len(fake_openai.bodies()) == 6 and fake_openai.bodies()[0] == body


def test_embeddings_are_deterministic_unit_vectors(fake_openai: FakeOpenAI) -> None:
    url = f"{fake_openai.base_url}/embeddings"
    one = httpx.post(url, json={"model": "e", "input": "alpha"}).json()
    assert one["data"][0]["embedding"] == embed("alpha") and len(embed("alpha")) == 16
    two = httpx.post(url, json={"model": "e", "input": ["alpha", "beta"], "dimensions": 40}).json()
    vectors = [d["embedding"] for d in two["data"]]
    assert vectors == [embed("alpha", 40), embed("beta", 40)] and vectors[0] != vectors[1]
    assert abs(sum(v * v for v in vectors[0]) - 1) < 1e-9
    fake_openai.queue_error(429, path="/v1/embeddings")
    response = httpx.post(url, json={"model": "e", "input": "x"})
    assert response.status_code == 429 and response.json()["error"]["message"] == "fake error 429"
