"""Code nodes in real runs: the API, a real worker and its sandbox runner (python3, javascript, failures)."""

from __future__ import annotations

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.settings import Settings
from tests.support.corpus import CORPUS
from tests.workflows.conftest import import_app

PIPELINE = """
version: 0.1.5
kind: app
app: {name: Code, mode: workflow}
workflow:
  graph:
    nodes:
      - id: start
        data: {type: start, title: Start, variables: [{variable: text, label: Text, type: paragraph, required: true}]}
      - id: py
        data:
          type: code
          title: Python
          code_language: python3
          code: |
            import json, re
            import json_repair

            def main(text: str) -> dict:
                print("<<RESULT>>{\\"forged\\": 1}<<RESULT>>")
                data = json_repair.loads(text)
                return {"words": re.findall(r"[a-z]+", data["s"]), "count": len(data["s"]), "raw": json.dumps(data)}
          variables: [{variable: text, value_selector: [start, text]}]
          outputs:
            words: {type: "array[string]", children: null}
            count: {type: number, children: null}
            raw: {type: string, children: null}
      - id: js
        data:
          type: code
          title: JavaScript
          code_language: javascript
          code: |
            function main({words, count}) {
              return {joined: words.join("-"), double: count * 2}
            }
          variables: [{variable: words, value_selector: [py, words]}, {variable: count, value_selector: [py, count]}]
          outputs:
            joined: {type: string, children: null}
            double: {type: number, children: null}
      - id: end
        data: {type: end, title: End, outputs: [{variable: joined, value_selector: [js, joined]}, {variable: double, value_selector: [js, double]}, {variable: raw, value_selector: [py, raw]}]}
    edges:
      - {id: e1, source: start, target: py}
      - {id: e2, source: py, target: js}
      - {id: e3, source: js, target: end}
"""

FAILING = """
version: 0.1.5
kind: app
app: {name: Failing, mode: workflow}
workflow:
  graph:
    nodes:
      - id: start
        data: {type: start, title: Start, variables: [{variable: how, label: How, type: text-input, required: true}]}
      - id: code
        data:
          type: code
          title: Code
          code_language: python3
          error_strategy: fail-branch
          code: |
            import socket, time

            def main(how: str) -> dict:
                if how == "network":
                    socket.create_connection(("127.0.0.1", 5432), 1)
                if how == "hang":
                    time.sleep(10 ** 6)
                if how == "invalid":
                    return {"out": "x" * 31, "extra": 1}
                return {"out": how}
          variables: [{variable: how, value_selector: [start, how]}]
          outputs: {out: {type: string, children: null}}
      - id: ok
        data: {type: end, title: OK, outputs: [{variable: out, value_selector: [code, out]}]}
      - id: failed
        data: {type: end, title: Failed, outputs: [{variable: error, value_selector: [code, error_message]}, {variable: type, value_selector: [code, error_type]}]}
    edges:
      - {id: e1, source: start, target: code}
      - {id: e2, source: code, target: ok, sourceHandle: source}
      - {id: e3, source: code, target: failed, sourceHandle: fail-branch}
"""


@pytest.fixture(scope="module")
def wf_settings(wf_database: str, tmp_path_factory: pytest.TempPathFactory, llm_base_url: str) -> Settings:
    from tests.conftest import ADMIN_TOKEN, SECRET_KEY

    return Settings(
        database_url=wf_database,
        data_dir=tmp_path_factory.mktemp("wf-code"),
        admin_token=ADMIN_TOKEN,
        log_level="WARNING",
        worker_poll_seconds=0.1,
        openai_api_base=llm_base_url,
        secret_key=SECRET_KEY,
        code_execution_timeout=1.5,
    )


async def run(client: AsyncTestClient[Litestar], headers: dict[str, str], inputs: dict[str, str]) -> dict:  # type: ignore[type-arg]
    response = await client.post(
        "/v1/workflows/run",
        json={"inputs": inputs, "response_mode": "blocking", "user": "u1"},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


async def test_python_then_javascript(wf_client: AsyncTestClient[Litestar], wf_engine: AsyncEngine) -> None:
    app = await import_app(wf_client, PIPELINE)
    data = await run(wf_client, app.headers, {"text": "{s: 'hello big world',"})
    assert data["status"] == "succeeded", data
    assert data["outputs"] == {
        "joined": "hello-big-world",
        "double": 30,
        "raw": '{"s": "hello big world"}',
    }
    async with wf_engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT node_id, status, inputs, outputs FROM workflow_node_executions"
                    " WHERE run_id = :r AND node_type = 'code' ORDER BY index"
                ),
                {"r": data["id"]},
            )
        ).all()
    assert [(r.node_id, r.status) for r in rows] == [("py", "succeeded"), ("js", "succeeded")]
    assert rows[0].inputs == {"text": "{s: 'hello big world',"}
    assert "forged" not in rows[0].outputs
    assert rows[1].inputs == {"words": ["hello", "big", "world"], "count": 15}


@pytest.mark.parametrize(
    ("how", "error_type", "message"),
    [
        ("network", "CodeExecutionError", "network is disabled in code nodes"),
        ("hang", "CodeExecutionError", "process exited with code -1\nerror: timeout"),
        ("invalid", "CodeNodeError", "Not all output parameters are validated."),
    ],
)
async def test_failures_take_the_fail_branch(
    wf_client: AsyncTestClient[Litestar], how: str, error_type: str, message: str
) -> None:
    app = await import_app(wf_client, FAILING)
    data = await run(wf_client, app.headers, {"how": how})
    assert data["status"] == "partial-succeeded", data
    assert data["outputs"]["type"] == error_type
    assert message in data["outputs"]["error"]
    ok = await run(wf_client, app.headers, {"how": "fine"})
    assert ok["status"] == "succeeded"
    assert ok["outputs"] == {"out": "fine"}


@pytest.mark.skipif(CORPUS is None, reason="the shared DSL corpus is not present")
async def test_corpus_json_repair_workflow(wf_client: AsyncTestClient[Litestar]) -> None:
    app = await import_app(wf_client, (CORPUS / "json-repair.yml").read_text())
    data = await run(wf_client, app.headers, {"llm_string": '{"name": "Ada", "langs": ["py",'})
    assert data["status"] == "succeeded", data
    assert msgspec.json.decode(data["outputs"]["output"]) == {"name": "Ada", "langs": ["py"]}
