"""The `knowledge-retrieval` node in a real run: its datasets searched, its result an LLM's context."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app.settings import Settings
from db import urls
from db.models import App, Dataset
from tests.knowledge.conftest import add_document, wait_for_status
from tests.support.fake_openai import CHAT_PATH, FakeOpenAI
from tests.workflows.conftest import import_app


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def llm_base_url(fake_llm: FakeOpenAI) -> str:
    return fake_llm.base_url


def dsl(dataset_ids: list[str], mode: str = "multiple", top_k: int = 2) -> str:
    retrieval = {
        "type": "knowledge-retrieval",
        "title": "Knowledge",
        "query_variable_selector": ["start", "question"],
        "dataset_ids": dataset_ids,
        "retrieval_mode": mode,
        "multiple_retrieval_config": {"top_k": top_k, "score_threshold": None, "reranking_enable": False},
        "single_retrieval_config": {"model": {"provider": "openai", "name": "gpt-4o-mini", "mode": "chat"}},
    }
    llm = {
        "type": "llm",
        "title": "Answer",
        "model": {"provider": "openai", "name": "gpt-4o-mini", "mode": "chat", "completion_params": {}},
        "context": {"enabled": True, "variable_selector": ["kr", "result"]},
        "prompt_template": [
            {"role": "user", "text": "Context: {{#context#}} Question: {{#start.question#}}"}
        ],
    }
    return json.dumps(
        {
            "version": "0.1.5",
            "kind": "app",
            "app": {"name": "RAG", "mode": "workflow"},
            "workflow": {
                "graph": {
                    "nodes": [
                        {
                            "id": "start",
                            "data": {
                                "type": "start",
                                "title": "Start",
                                "variables": [
                                    {
                                        "variable": "question",
                                        "label": "Q",
                                        "type": "paragraph",
                                        "required": True,
                                    }
                                ],
                            },
                        },
                        {"id": "kr", "data": retrieval},
                        {"id": "llm", "data": llm},
                        {
                            "id": "end",
                            "data": {
                                "type": "end",
                                "title": "End",
                                "outputs": [
                                    {"variable": "hits", "value_selector": ["kr", "result"]},
                                    {"variable": "answer", "value_selector": ["llm", "text"]},
                                ],
                            },
                        },
                    ],
                    "edges": [
                        {"id": "e1", "source": "start", "target": "kr"},
                        {"id": "e2", "source": "kr", "target": "llm"},
                        {"id": "e3", "source": "llm", "target": "end"},
                    ],
                }
            },
        }
    )


async def dataset_in(sessions, workspace_id: uuid.UUID, texts: dict[str, str]) -> Dataset:
    async with sessions() as session, session.begin():
        dataset = Dataset(
            workspace_id=workspace_id,
            name=f"kb-{uuid.uuid4().hex[:8]}",
            indexing_technique="high_quality",
            embedding_model_provider="local",
            embedding_model="static-64",
            doc_form="text_model",
        )
        session.add(dataset)
    for name, text in texts.items():
        doc = await add_document(sessions, dataset, text, name=name)
        assert (await wait_for_status(sessions, doc.id)).indexing_status == "completed"
    return dataset


async def run(client: AsyncTestClient[Litestar], headers: dict[str, str], question: str) -> dict:  # type: ignore[type-arg]
    response = await client.post(
        "/v1/workflows/run",
        json={"inputs": {"question": question}, "response_mode": "blocking", "user": "u"},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def test_retrieval_feeds_the_llm_context(
    wf_client: AsyncTestClient[Litestar], wf_settings: Settings, fake_llm: FakeOpenAI
) -> None:
    engine = create_async_engine(urls.asyncpg(wf_settings.database_url or ""))
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    try:
        placeholder = await import_app(wf_client, dsl([]))
        async with sessions() as session:
            workspace_id = await session.scalar(
                select(App.workspace_id).where(App.id == uuid.UUID(placeholder.app_id))
            )
        assert workspace_id is not None
        bikes = await dataset_in(
            sessions,
            workspace_id,
            {
                "chain.txt": "Replace a bicycle chain when the wear checker reads 0.5 percent.",
                "tyre.txt": "Road tyres run at 80 psi.",
            },
        )
        bread = await dataset_in(
            sessions, workspace_id, {"starter.txt": "Feed the sourdough starter flour and water daily."}
        )
        app = await import_app(
            wf_client, dsl([str(bikes.id), str(bread.id), str(uuid.uuid4()), "not-a-uuid"])
        )
        fake_llm.reset()
        data = await run(wf_client, app.headers, "Feed the sourdough starter flour and water daily.")
        assert data["status"] == "succeeded", data["error"]
        hits = data["outputs"]["hits"]
        assert len(hits) == 2  # multiple mode: top_k over both datasets
        assert hits[0]["content"] == "Feed the sourdough starter flour and water daily."
        assert hits[0]["metadata"]["dataset_id"] == str(bread.id)
        assert hits[0]["metadata"]["document_name"] == "starter.txt"
        assert hits[0]["metadata"]["score"] == pytest.approx(1.0, abs=1e-4)
        prompt = fake_llm.bodies(CHAT_PATH)[-1]["messages"][-1]["content"]
        assert "Context: Feed the sourdough starter flour and water daily." in prompt

        single = await import_app(wf_client, dsl([str(bikes.id), str(bread.id)], mode="single"))
        data = await run(
            wf_client, single.headers, "Replace a bicycle chain when the wear checker reads 0.5 percent."
        )
        assert data["status"] == "succeeded", data["error"]
        names = [h["metadata"]["document_name"] for h in data["outputs"]["hits"]]
        assert names[0] == "chain.txt"
        assert "starter.txt" not in names  # one dataset: the best-scoring one
    finally:
        await engine.dispose()
