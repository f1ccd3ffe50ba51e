"""DSL import through the console API: the real corpus in ../shared/dsl, refusals, export round-trip, publish."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.workflows import dsl_corpus
from tests.support.corpus import CORPUS, CORPUS_FILES, ROOT

SIMPLE = """
version: 0.1.5
kind: app
app: {name: Greeter, mode: workflow, description: says hello}
workflow:
  graph:
    nodes:
      - id: start
        data: {type: start, title: Start, variables: [{variable: name, label: Name, type: text-input, required: true, max_length: 20}]}
      - id: end
        data: {type: end, title: End, outputs: [{variable: greeting, value_selector: [start, name]}]}
    edges:
      - {id: e1, source: start, target: end, sourceHandle: source}
"""


async def import_yaml(client: AsyncTestClient[Litestar], admin: dict[str, str], text: str):  # type: ignore[no-untyped-def]
    return await client.post(
        "/console/api/apps/imports", json={"mode": "yaml-content", "yaml_content": text}, headers=admin
    )


@pytest.mark.skipif(not CORPUS_FILES, reason="../shared/dsl not present")
@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.name)
async def test_every_corpus_file_imports_or_is_refused_clearly(
    client: AsyncTestClient[Litestar], admin: dict[str, str], path: Path
) -> None:
    response = await import_yaml(client, admin, path.read_text())
    assert response.status_code in (200, 400), response.text
    body = response.json()
    if response.status_code == 400:
        assert body["code"] == "invalid_dsl"
        assert body["message"]
    else:
        assert body["status"] == "completed"
        exported = (await client.get(f"/console/api/apps/{body['app_id']}/export", headers=admin)).json()[
            "data"
        ]
        assert (
            yaml.safe_load(exported)["workflow"]["graph"]
            == yaml.safe_load(path.read_text())["workflow"]["graph"]
        )


async def test_import_export_round_trip_and_publish(
    client: AsyncTestClient[Litestar], admin: dict[str, str]
) -> None:
    imported = await import_yaml(client, admin, SIMPLE)
    assert imported.status_code == 200, imported.text
    app_id = imported.json()["app_id"]
    app = (await client.get(f"/console/api/apps/{app_id}", headers=admin)).json()
    assert app["name"] == "Greeter"
    assert app["mode"] == "workflow"
    exported = (await client.get(f"/console/api/apps/{app_id}/export", headers=admin)).json()["data"]
    again = await import_yaml(client, admin, exported)
    assert again.status_code == 200
    assert yaml.safe_load(exported)["workflow"] == yaml.safe_load(SIMPLE)["workflow"]

    version = await client.post(
        f"/console/api/apps/{app_id}/workflows/publish", json={"yaml_content": SIMPLE}, headers=admin
    )
    assert version.status_code == 200
    assert version.json()["version"] == 2
    chat = SIMPLE.replace("mode: workflow", "mode: advanced-chat")
    wrong_mode = await client.post(
        f"/console/api/apps/{app_id}/workflows/publish", json={"yaml_content": chat}, headers=admin
    )
    assert wrong_mode.status_code == 400
    assert "advanced-chat" in wrong_mode.json()["message"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("app: [unclosed", "invalid YAML at line 1"),
        ("- a list", "must be a YAML mapping"),
        (SIMPLE.replace("0.1.5", "9.0.0"), "unsupported DSL version '9.0.0'"),
        (SIMPLE.replace("mode: workflow", "mode: chat"), "unsupported app mode 'chat'"),
        (SIMPLE.replace("type: start, title: Start", "type: end, title: Start"), "no start node"),
        (SIMPLE.replace("target: end", "target: ghost"), "unknown node 'ghost'"),
        (
            SIMPLE.replace("type: end, title: End", "type: no-such-type, title: End"),
            "unsupported node types: no-such-type",
        ),
        (
            SIMPLE.replace(
                "      - {id: e1", "      - {id: e0, source: end, target: start}\n      - {id: e1"
            ),
            "cycle",
        ),
    ],
)
async def test_refusals_name_the_problem(
    client: AsyncTestClient[Litestar], admin: dict[str, str], text: str, expected: str
) -> None:
    response = await import_yaml(client, admin, text)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_dsl"
    assert expected in response.json()["message"]


def test_corpus_report_is_current() -> None:
    """docs/dsl-corpus.md says which corpus files import, which run (docs/dsl-corpus-runs.toml) and why the
    others do not; it must be exactly what `python -m app dsl-report` writes today."""
    if CORPUS is None:
        pytest.skip("../shared/dsl not present")
    runs = dsl_corpus.read_runs_list(ROOT / "docs" / "dsl-corpus-runs.toml")
    files = dsl_corpus.survey(CORPUS, runs)
    report = (ROOT / "docs" / "dsl-corpus.md").read_text()
    assert report == dsl_corpus.render(files), "docs/dsl-corpus.md is stale: run `python -m app dsl-report`"


BILLION_LAUGHS = """
version: 0.1.5
kind: app
app: {name: lol, mode: workflow}
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
workflow: {graph: {nodes: [], edges: []}, x: *f}
"""


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (BILLION_LAUGHS, "anchors and aliases"),
        (SIMPLE.replace("says hello", "!!python/object/apply:os.system [id]"), "explicit tags"),
        (SIMPLE.replace("says hello", "!custom hello"), "explicit tags"),
        (SIMPLE + "deep: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than 64 levels"),
        (
            SIMPLE + "deep:\n" + "".join("  " * i + "- \n" for i in range(1, 300)),
            "nested more than 64 levels",
        ),
    ],
    ids=["billion-laughs", "python-tag", "custom-tag", "deep-flow", "deep-block"],
)
async def test_hostile_yaml_is_refused_at_import(
    client: AsyncTestClient[Litestar], admin: dict[str, str], text: str, reason: str
) -> None:
    response = await import_yaml(client, admin, text)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_dsl"
    assert reason in response.json()["message"]
