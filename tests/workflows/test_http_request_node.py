"""The `http-request` node in a real run: imported from DSL, run by the worker, sent to a loopback server.

The module's settings allow 127.0.0.0/8 (``SSRF_PROXY_ALLOW_PRIVATE_NETWORKS``), as an operator would for an
internal service; ``[::1]`` stays refused, so the guard is seen refusing inside a run too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.settings import Settings
from tests.conftest import ADMIN_TOKEN, SECRET_KEY
from tests.support.http_target import HttpTarget, Reply, zeros
from tests.workflows.conftest import import_app


@pytest.fixture(scope="module")
def wf_settings(wf_database: str, tmp_path_factory: pytest.TempPathFactory, llm_base_url: str) -> Settings:
    return Settings(
        database_url=wf_database,
        data_dir=tmp_path_factory.mktemp("wf-http"),
        admin_token=ADMIN_TOKEN,
        log_level="WARNING",
        worker_poll_seconds=0.1,
        openai_api_base=llm_base_url,
        secret_key=SECRET_KEY,
        ssrf_proxy_allow_private_networks=("127.0.0.0/8",),
        http_request_node_max_text_size=64 * 1024,
    )


@pytest.fixture(scope="module")
def target() -> Iterator[HttpTarget]:
    with HttpTarget("127.0.0.1") as server:
        yield server


def dsl(url: str, *, fail_branch: bool = False) -> str:
    http = {
        "type": "http-request",
        "title": "Call",
        "method": "post",
        "url": url,
        "authorization": {"type": "api-key", "config": {"type": "bearer", "api_key": "{{#start.token#}}"}},
        "headers": "X-Name: {{#start.name#}}",
        "params": "lang: en",
        "body": {
            "type": "json",
            "data": [{"id": "k", "key": "", "type": "text", "value": '{"name": "{{#start.name#}}",}'}],
        },
        "timeout": {"max_connect_timeout": 0, "max_read_timeout": 0, "max_write_timeout": 0},
        "retry_config": {"retry_enabled": False, "max_retries": 3, "retry_interval": 100},
        "variables": [],
        **({"error_strategy": "fail-branch"} if fail_branch else {}),
    }
    variables = [
        {"variable": v, "label": v, "type": "text-input", "required": True, "max_length": 100}
        for v in ("name", "token")
    ]
    nodes: list[dict[str, Any]] = [
        {"id": "start", "data": {"type": "start", "title": "Start", "variables": variables}},
        {"id": "call", "data": http},
        {
            "id": "end",
            "data": {
                "type": "end",
                "title": "End",
                "outputs": [
                    {"variable": "status", "value_selector": ["call", "status_code"]},
                    {"variable": "body", "value_selector": ["call", "body"]},
                    {"variable": "type", "value_selector": ["call", "headers", "content-type"]},
                ],
            },
        },
    ]
    edges = [
        {"id": "e1", "source": "start", "target": "call", "sourceHandle": "source"},
        {"id": "e2", "source": "call", "target": "end", "sourceHandle": "source"},
    ]
    if fail_branch:
        nodes.append(
            {
                "id": "sorry",
                "data": {
                    "type": "end",
                    "title": "Sorry",
                    "outputs": [{"variable": "error", "value_selector": ["call", "error_message"]}],
                },
            }
        )
        edges.append({"id": "e3", "source": "call", "target": "sorry", "sourceHandle": "fail-branch"})
    return json.dumps(
        {
            "version": "0.1.5",
            "kind": "app",
            "app": {"name": "Caller", "mode": "workflow"},
            "workflow": {"graph": {"nodes": nodes, "edges": edges}},
        }
    )


async def run(client: AsyncTestClient[Litestar], headers: dict[str, str]) -> dict[str, Any]:
    response = await client.post(
        "/v1/workflows/run",
        json={"inputs": {"name": "Ada", "token": "sk-secret"}, "response_mode": "blocking", "user": "u"},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def test_a_run_calls_the_server_and_records_the_request_masked(
    wf_client: AsyncTestClient[Litestar], wf_engine: AsyncEngine, target: HttpTarget
) -> None:
    app = await import_app(wf_client, dsl(target.url("/echo")))
    data = await run(wf_client, app.headers)
    assert data["status"] == "succeeded", data["error"]
    assert data["outputs"]["status"] == 200
    assert data["outputs"]["type"] == "application/json"
    echoed = json.loads(data["outputs"]["body"])
    assert echoed["query"] == {"lang": ["en"]}
    assert json.loads(echoed["body"]) == {"name": "Ada"}
    received = target.requests[-1]
    assert received.header("Authorization") == "Bearer sk-secret"
    assert received.header("X-Name") == "Ada"
    async with wf_engine.connect() as conn:
        process_data = (
            await conn.execute(
                text(
                    "SELECT process_data FROM workflow_node_executions WHERE run_id = :run AND node_id = 'call'"
                ),
                {"run": data["id"]},
            )
        ).scalar_one()
    request = process_data["request"]
    assert request.startswith("POST /echo?lang=en HTTP/1.1\r\n")
    assert "Authorization: " + "*" * len("Bearer sk-secret") in request
    assert "sk-secret" not in request


async def test_a_refused_destination_fails_the_run_or_takes_the_fail_branch(
    wf_client: AsyncTestClient[Litestar], target: HttpTarget
) -> None:
    target.reset()
    url = f"http://[::1]:{target.port}/echo"
    data = await run(wf_client, (await import_app(wf_client, dsl(url))).headers)
    assert data["status"] == "failed"
    assert f"Access to '{url}?lang=en' was blocked by SSRF protection: ::1 is in" in data["error"]
    data = await run(wf_client, (await import_app(wf_client, dsl(url, fail_branch=True))).headers)
    assert data["status"] == "partial-succeeded"
    assert data["outputs"]["error"].startswith(
        f"Access to '{url}?lang=en' was blocked by SSRF protection: ::1"
    )
    assert target.requests == []


async def test_the_text_limit_comes_from_the_settings(
    wf_client: AsyncTestClient[Litestar], target: HttpTarget
) -> None:
    target.route("/big", lambda _r: Reply(200, [("Content-Type", "text/plain")], zeros(200_000)))
    data = await run(wf_client, (await import_app(wf_client, dsl(target.url("/big")))).headers)
    assert data["status"] == "failed"
    assert "Text size is too large, max size is 0.06 MB, but current size is over 64.00 KB." in data["error"]
