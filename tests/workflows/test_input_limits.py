"""Run inputs are capped per variable (Dify's ``MAX_VARIABLE_SIZE``) and in total
(``SLUICE_MAX_RUN_INPUTS_SIZE``): a run with a larger input is refused with 400 ``input_too_large`` and never
created; inputs within both caps run."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.asgi import create_app
from app.settings import Settings
from tests.workflows.conftest import import_app

ECHO = """
version: 0.5.0
kind: app
app: {name: Echo, mode: workflow}
workflow:
  graph:
    nodes:
      - {id: start, data: {type: start, title: Start, variables: [{variable: a, type: paragraph, required: false}, {variable: b, type: paragraph, required: false}, {variable: c, type: paragraph, required: false}]}}
      - {id: end, data: {type: end, title: End, outputs: [{variable: a, value_selector: [start, a]}]}}
    edges:
      - {id: e1, source: start, target: end}
"""

PER_VARIABLE, TOTAL = 4000, 10_000


@pytest.fixture
async def limited(wf_settings: Settings, worker: None) -> AsyncIterator[AsyncTestClient[Litestar]]:
    settings = msgspec.structs.replace(wf_settings, max_variable_size=PER_VARIABLE, max_run_inputs_size=TOTAL)
    async with AsyncTestClient(app=create_app(settings, configure_logs=False)) as client:
        yield client


async def runs_of(engine: AsyncEngine, app_id: str) -> int:
    async with engine.connect() as conn:
        return int(
            await conn.scalar(text("SELECT count(*) FROM workflow_runs WHERE app_id = :a"), {"a": app_id})
        )


async def test_a_variable_over_max_variable_size_is_refused(
    limited: AsyncTestClient[Litestar], wf_engine: AsyncEngine
) -> None:
    app = await import_app(limited, ECHO)
    body = {"inputs": {"a": "x" * PER_VARIABLE}, "response_mode": "blocking", "user": "u"}
    answer = await limited.post("/v1/workflows/run", json=body, headers=app.headers)
    assert answer.status_code == 400, answer.text
    error = answer.json()
    assert error["code"] == "input_too_large"
    assert error["status"] == 400
    assert "inputs.a" in error["message"]
    assert "MAX_VARIABLE_SIZE" in error["message"]
    assert await runs_of(wf_engine, app.app_id) == 0


async def test_inputs_over_the_total_are_refused_even_when_each_fits(
    limited: AsyncTestClient[Litestar], wf_engine: AsyncEngine
) -> None:
    app = await import_app(limited, ECHO)
    each = "x" * (PER_VARIABLE - 100)  # three of these exceed the total
    body = {"inputs": {"a": each, "b": each, "c": each}, "response_mode": "blocking", "user": "u"}
    answer = await limited.post("/v1/workflows/run", json=body, headers=app.headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "input_too_large", answer.text
    assert "SLUICE_MAX_RUN_INPUTS_SIZE" in answer.json()["message"]
    assert await runs_of(wf_engine, app.app_id) == 0


async def test_inputs_within_both_caps_run(limited: AsyncTestClient[Litestar]) -> None:
    app = await import_app(limited, ECHO)
    each = "x" * (PER_VARIABLE - 100)
    body = {"inputs": {"a": each, "b": each}, "response_mode": "blocking", "user": "u"}
    answer = await limited.post("/v1/workflows/run", json=body, headers=app.headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"]["status"] == "succeeded"
    assert answer.json()["data"]["outputs"] == {"a": each}
