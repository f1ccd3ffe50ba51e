"""Schemathesis over the served OpenAPI document, against the live service (`python -m app up`).

Every operation, with generated valid and invalid inputs and the credential its API takes: no 5xx, and every
response (status code, content type, body) must be one the document describes. New routes inherit this check.
Examples per operation are bounded so the run stays fast.

Like Dify, the API ignores query parameters and body fields it does not know, so schemathesis's
``negative_data_rejection`` check (which counts those as invalid input that must be refused) is left out;
invalid values of known fields must still answer 4xx, never 5xx, in the documented error shape.
``positive_data_acceptance`` is left out too: some inputs that fit the schema are refused on their meaning
(a DSL document that is valid YAML but not a workflow, a start-node input the app does not declare), and
those 400s are the behaviour the issues ask for.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import CHECKS
from schemathesis.generation.modes import GenerationMode

from tests.support.processes import LiveService

EXAMPLES_PER_OPERATION = 15

#: The app behind the contract test's app key: a real workflow, so run routes are exercised for real.
CONTRACT_APP = """
version: 0.5.0
kind: app
app: {name: Contract, mode: workflow}
workflow:
  graph:
    nodes:
      - {id: start, data: {type: start, title: Start, variables: [{variable: text, type: paragraph, required: false}]}}
      - {id: tpl, data: {type: template-transform, title: T, template: "[{{ text }}]", variables: [{variable: text, value_selector: [start, text]}]}}
      - {id: end, data: {type: end, title: End, outputs: [{variable: out, value_selector: [tpl, output]}]}}
    edges:
      - {id: e1, source: start, target: tpl}
      - {id: e2, source: tpl, target: end}
"""


@pytest.fixture(scope="module")
def credentials(live_service: LiveService) -> dict[str, str]:
    admin = {"Authorization": f"Bearer {live_service.admin_token}"}
    with httpx.Client(base_url=live_service.base_url, headers=admin) as http:
        imported = http.post("/console/api/apps/imports", json={"yaml_content": CONTRACT_APP}).json()
        app_key = http.post(f"/console/api/apps/{imported['app_id']}/api-keys").json()["token"]
        dataset_key = http.post("/console/api/datasets/api-keys").json()["token"]
    return {"admin": live_service.admin_token, "app": app_key, "dataset": dataset_key}


def bearer_for(path: str, credentials: dict[str, str]) -> dict[str, str]:
    if path.startswith("/console/"):
        kind = "admin"
    elif path.startswith("/v1/datasets"):
        kind = "dataset"
    else:
        kind = "app"
    return {"Authorization": f"Bearer {credentials[kind]}"}


FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "host", "connection", "expect"})


def operations(base_url: str) -> list[Any]:
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_matches_its_document(
    live_service: LiveService, credentials: dict[str, str], mode: GenerationMode
) -> None:
    ops = operations(live_service.base_url)
    assert len(ops) >= 10
    failures: list[str] = []
    for operation in ops:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case: Any) -> None:
            # Framing headers belong to the HTTP client, not to the API: a generated
            # ``content-length: >`` is refused by the HTTP server before the app sees it.
            for name in list(case.headers or {}):
                if name.lower() in FRAMING_HEADERS:
                    del case.headers[name]
            case.call_and_validate(
                base_url=live_service.base_url,
                headers=bearer_for(case.path, credentials),
                excluded_checks=CHECKS.get_by_names(["negative_data_rejection", "positive_data_acceptance"]),
            )

        try:
            check()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # nothing to make invalid (no parameters, no body)
        except Exception as exc:
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
