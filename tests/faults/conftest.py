"""Fault tests: real API and worker processes on one database, killed and cut off from PostgreSQL.

The apps use the test-only node ``test-slow`` (a node that waits, as an LLM call would), which the workers of
``tests.support.worker`` know; this process registers it too, to import the apps.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from app import wiring
from app.tenancy import services as tenancy
from app.workflows import services
from app.workflows.engine import nodes as node_registry
from db import urls
from tests.support.nodes import HogNode, ManualPauses, PauseNode, SlowNode

SLOW_APP = """
version: 0.5.0
kind: app
app: {name: Slow, mode: workflow}
workflow:
  graph:
    nodes:
      - {id: start, data: {type: start, title: Start, variables: [{variable: n, type: text-input, required: false}]}}
      - {id: before, data: {type: template-transform, title: Before, template: "<{{ n }}>", variables: [{variable: n, value_selector: [start, n]}]}}
      - {id: slow, data: {type: test-slow, title: Slow, seconds: 1}}
      - {id: after, data: {type: template-transform, title: After, template: "{{ b }}!", variables: [{variable: b, value_selector: [before, output]}]}}
      - {id: end, data: {type: end, title: End, outputs: [{variable: out, value_selector: [after, output]}, {variable: s, value_selector: [slow, done]}]}}
    edges:
      - {id: e1, source: start, target: before}
      - {id: e2, source: before, target: slow}
      - {id: e3, source: slow, target: after}
      - {id: e4, source: after, target: end}
"""


@pytest.fixture(scope="module", autouse=True)
def test_node_types() -> Iterator[None]:
    added = {PauseNode.type: PauseNode, SlowNode.type: SlowNode, HogNode.type: HogNode}
    node_registry.NODE_TYPES.update(added)
    wiring.KIND_FACTORIES.append(ManualPauses)
    yield
    for key in added:
        node_registry.NODE_TYPES.pop(key, None)
    wiring.KIND_FACTORIES.remove(ManualPauses)


async def make_app(database_url: str, dsl: str = SLOW_APP) -> tuple[str, str]:
    """An app with the DSL and an app key: ``(app id, key)``."""
    engine = create_async_engine(urls.asyncpg(database_url))
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session:
            app = await services.import_app(session, dsl, None)
            key = await tenancy.create_key(session, "app", app_id=app.id)
            await session.commit()
        return str(app.id), key.token
    finally:
        await engine.dispose()


class Outcome(msgspec.Struct):
    mode: str
    status: int | str
    run_id: str | None
    seconds: float


async def one_run(http: httpx.AsyncClient, base_url: str, n: int) -> Outcome:
    """A blocking run (even ``n``) or a streaming one (odd) on ``base_url``, to its end."""
    mode = "streaming" if n % 2 else "blocking"
    body = {"inputs": {"n": str(n)}, "response_mode": mode, "user": f"user-{n % 7}"}
    started = time.perf_counter()
    try:
        if mode == "blocking":
            answer = await http.post(f"{base_url}/v1/workflows/run", json=body)
            run_id = answer.json().get("workflow_run_id") if answer.status_code == 200 else None
            return Outcome(mode, answer.status_code, run_id, time.perf_counter() - started)
        run_id = None
        async with http.stream("POST", f"{base_url}/v1/workflows/run", json=body) as stream:
            if stream.status_code != 200:
                return Outcome(mode, stream.status_code, None, time.perf_counter() - started)
            finished = False
            async for line in stream.aiter_lines():
                if line.startswith("data: "):
                    event: dict[str, Any] = msgspec.json.decode(line[6:])
                    run_id = run_id or event.get("workflow_run_id")
                    finished = finished or event.get("event") == "workflow_finished"
            return Outcome(mode, 200 if finished else "stream_cut", run_id, time.perf_counter() - started)
    except httpx.HTTPError as exc:
        return Outcome(mode, type(exc).__name__, None, time.perf_counter() - started)


async def load(urls_: list[str], token: str, seconds: float, concurrency: int) -> list[Outcome]:
    """``concurrency`` clients starting runs one after another on the APIs in turn, for ``seconds``."""
    deadline = time.monotonic() + seconds
    outcomes: list[Outcome] = []
    counter = iter(range(10**9))

    async def client(http: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            n = next(counter)
            outcomes.append(await one_run(http, urls_[n % len(urls_)], n))

    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=180) as http:
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
    return outcomes


def unique_name() -> str:
    return uuid.uuid4().hex[:8]
