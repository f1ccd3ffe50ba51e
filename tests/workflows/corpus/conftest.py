"""The files of the shared DSL corpus, run end to end as a Dify user would run them.

Each file is imported unchanged through the console API (except where a comment says which URL or dataset id is
rewritten, and why), run through the Service API (``POST /v1/workflows/run`` for workflow-mode files,
``POST /v1/chat-messages`` for advanced-chat ones; blocking and streaming) by a real worker, with code nodes in the real sandbox, http-request nodes sent to a loopback server through the SSRF
guard (these settings allow 127.0.0.0/8, as an operator would for an internal service), and LLM calls answered
by the fake OpenAI-compatible server from rules keyed on each prompt's content. The assertions follow the values
through the graph: what each LLM was asked, what code nodes, templates, branches and iterations made of the
canned answers, and what reached the End node.

Which corpus files run, and which test shows it (``@runs_corpus_file``), is listed in
``docs/dsl-corpus-runs.toml``; ``python -m app dsl-report`` turns that list into ``docs/dsl-corpus.md`` and
``test_runs_list.py`` keeps the list true. This file holds the fixtures and helpers the run tests share.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.settings import Settings
from tests.conftest import ADMIN_TOKEN, SECRET_KEY
from tests.support.corpus import CORPUS
from tests.support.fake_openai import FakeOpenAI
from tests.support.http_target import HttpTarget
from tests.workflows.conftest import AppUnderTest, sse_events

USER = "corpus-user"
F = TypeVar("F", bound=Callable[..., Any])


#: Every module of this package: ``pytestmark = needs_corpus``.
needs_corpus = pytest.mark.skipif(
    CORPUS is None, reason="the shared DSL corpus (../shared/dsl) is not present"
)


def runs_corpus_file(name: str) -> Callable[[F], F]:
    """Mark a test as the one that shows corpus file ``name`` running (checked against the runs list)."""

    def mark(fn: F) -> F:
        fn.corpus_file = name  # type: ignore[attr-defined]
        return fn

    return mark


def corpus_text(name: str) -> str:
    assert CORPUS is not None
    return (CORPUS / name).read_text()


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def llm_base_url(fake_llm: FakeOpenAI) -> str:
    return fake_llm.base_url


@pytest.fixture(scope="module")
def wf_settings(wf_database: str, tmp_path_factory: pytest.TempPathFactory, llm_base_url: str) -> Settings:
    return Settings(
        database_url=wf_database,
        data_dir=tmp_path_factory.mktemp("wf-corpus"),
        admin_token=ADMIN_TOKEN,
        log_level="WARNING",
        worker_poll_seconds=0.1,
        openai_api_base=llm_base_url,
        secret_key=SECRET_KEY,
        ssrf_proxy_allow_private_networks=("127.0.0.0/8",),  # the http-request nodes' loopback target
    )


@pytest.fixture(scope="module")
def target() -> Iterator[HttpTarget]:
    with HttpTarget("127.0.0.1") as server:
        yield server


@pytest.fixture
def llm(fake_llm: FakeOpenAI, target: HttpTarget) -> Iterator[FakeOpenAI]:
    """The fake LLM with no rules yet (each test adds the answers its file needs); the HTTP target reset."""
    fake_llm.reset()
    target.reset()
    yield fake_llm
    fake_llm.reset()


# --- running -------------------------------------------------------------------------------------


async def run_blocking(
    client: AsyncTestClient[Litestar], app: AppUnderTest, inputs: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(
        "/v1/workflows/run",
        json={"inputs": inputs, "response_mode": "blocking", "user": USER},
        headers=app.headers,
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def run_streaming(
    client: AsyncTestClient[Litestar], app: AppUnderTest, inputs: dict[str, Any]
) -> list[dict[str, Any]]:
    response = await client.post(
        "/v1/workflows/run",
        json={"inputs": inputs, "response_mode": "streaming", "user": USER},
        headers=app.headers,
    )
    assert response.status_code == 200, response.text
    events = [event for _, event in sse_events(response.text)]
    assert events[0]["event"] == "workflow_started" and events[-1]["event"] == "workflow_finished"
    return events


async def chat_blocking(
    client: AsyncTestClient[Litestar],
    app: AppUnderTest,
    query: str,
    conversation_id: str | None = None,
    inputs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One chat turn, blocking: the answer body (``event: message``)."""
    body: dict[str, Any] = {"inputs": inputs or {}, "query": query, "response_mode": "blocking", "user": USER}
    if conversation_id is not None:
        body["conversation_id"] = conversation_id
    response = await client.post("/v1/chat-messages", json=body, headers=app.headers)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    assert data["event"] == "message" and data["mode"] == "advanced-chat", data
    return data


async def chat_streaming(
    client: AsyncTestClient[Litestar],
    app: AppUnderTest,
    query: str,
    conversation_id: str | None = None,
    inputs: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One chat turn, streaming: its events, which end with ``message_end`` then ``workflow_finished``."""
    body: dict[str, Any] = {
        "inputs": inputs or {},
        "query": query,
        "response_mode": "streaming",
        "user": USER,
    }
    if conversation_id is not None:
        body["conversation_id"] = conversation_id
    response = await client.post("/v1/chat-messages", json=body, headers=app.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [event for _, event in sse_events(response.text)]
    assert events[0]["event"] == "workflow_started", events[0]
    assert [e["event"] for e in events[-2:]] == ["message_end", "workflow_finished"], events[-3:]
    message_id = events[0]["message_id"]
    assert all(e["message_id"] == message_id for e in events)
    return events


def streamed_answer(events: list[dict[str, Any]]) -> str:
    """The answer as a chat client assembles it: the ``message`` chunks in order."""
    return "".join(e["answer"] for e in events if e["event"] == "message")


def finished_nodes(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``node_finished`` data by node title (inner nodes of iterations: the last round's)."""
    return {e["data"]["title"]: e["data"] for e in events if e["event"] == "node_finished"}


def outcome(events: list[dict[str, Any]]) -> dict[str, Any]:
    finished: dict[str, Any] = events[-1]["data"]
    return finished


def user_messages(bodies: list[dict[str, Any]]) -> list[str]:
    return [m["content"] for b in bodies for m in b["messages"] if m["role"] == "user"]


def system_message(body: dict[str, Any]) -> str:
    return str(next(m["content"] for m in body["messages"] if m["role"] == "system"))


async def upload(client: AsyncTestClient[Litestar], app: AppUnderTest, name: str, data: bytes) -> str:
    response = await client.post(
        "/v1/files/upload", files={"file": (name, data, "text/csv")}, data={"user": USER}, headers=app.headers
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])
