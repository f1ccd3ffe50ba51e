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

The stateful test chains operations the way a client does: schemathesis infers OpenAPI links from the document
(its dependency analysis: a response field ``id`` feeding a later ``{dataset_id}``, ``{document_id}``,
``{segment_id}``...), so scenarios create a dataset, add documents and segments to it, read, change and delete
them, and check each step's response, plus its stateful checks (a created resource can be read back, a
deleted one is gone).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import CHECKS
from schemathesis.engine import Status, events, from_schema
from schemathesis.generation.modes import GenerationMode

from tests.support.processes import LiveService

EXAMPLES_PER_OPERATION = 15
#: Scenarios of the stateful test, and the most steps in one.
STATEFUL_SCENARIOS = 80
STATEFUL_STEPS = 12

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


def test_api_scenarios_keep_their_state(live_service: LiveService, credentials: dict[str, str]) -> None:
    """Stateful scenarios through schemathesis's own engine (what ``st run --phases stateful`` runs): it treats a
    replay that draws differently because the server kept state as the expected, not as a failure."""
    document = httpx.get(f"{live_service.base_url}/openapi/openapi.json").json()
    # schemathesis starts scenarios only with operations it expects to succeed on random data; it reads the
    # fields Sluice accepts from Dify clients and ignores (``external_knowledge_*_id``) as references to a
    # resource nothing produces, and so would never start with POST /v1/datasets. Without them, it does.
    for field in ("external_knowledge_api_id", "external_knowledge_id"):
        document["components"]["schemas"]["DatasetCreate"]["properties"].pop(field)
    # A random ``original_document_id`` names a document that does not exist: 404 "Document not found", as in
    # Dify, which schemathesis would blame on the dataset it just created.
    for schema in document["components"]["schemas"].values():
        schema.get("properties", {}).pop("original_document_id", None)
    # The knowledge API is where resources nest (dataset -> document -> segment -> child chunk): scenarios stay
    # there (one dataset key), so that they reach the deep end rather than spread over every route.
    # Dify's underscore spellings (``create_by_text`` next to ``create-by-text``) are the same handlers: left to the
    # test above, so that the scenarios' budget goes to distinct operations.
    schema = (
        schemathesis.openapi.from_dict(document)
        .include(path_regex="^/v1/datasets")
        .exclude(path_regex="/(create|update)_by_(text|file)$")
        # Its 404 names the documents listed in the body (random ids here), not the dataset in the path.
        .exclude(path_regex="/documents/download-zip$")
    )
    schema.config.update(
        base_url=live_service.base_url, headers={"Authorization": f"Bearer {credentials['dataset']}"}
    )
    schema.config.phases.update(phases=["stateful"])
    schema.config.phases.stateful.max_steps = STATEFUL_STEPS
    schema.config.checks.update(excluded_check_names=["negative_data_rejection", "positive_data_acceptance"])
    schema.config.generation.update(max_examples=STATEFUL_SCENARIOS)

    steps: Counter[str] = Counter()
    problems: list[str] = []
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            for interaction in event.recorder.interactions.values():
                if interaction.response is not None:
                    request = interaction.request
                    path = "/" + request.uri.split("/", 3)[-1].split("?")[0]
                    steps[f"{request.method} {_template(path)} {interaction.response.status_code}"] += 1
            for checks in event.recorder.checks.values():
                for check in checks:
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        problems.append(f"{check.name}: {check.failure_info.failure.title}")
        elif isinstance(event, (events.NonFatalError, events.FatalError)):
            problems.append(f"{type(event).__name__}: {getattr(event, 'value', None) or event.exception}")
    print(f"\nstateful steps: {dict(sorted(steps.items()))}")
    assert not problems, "\n".join(sorted(set(problems)))
    # The chains were followed: datasets were created, and later steps used their ids successfully. (How deep a
    # run gets — documents, segments — varies from run to run; every step of it is checked all the same.)
    succeeded = {key.rsplit(" ", 1)[0] for key, n in steps.items() if key.endswith((" 200", " 201", " 204"))}
    assert "POST /v1/datasets" in succeeded, steps
    assert any(key.startswith(("GET /v1/datasets/{id}", "POST /v1/datasets/{id}")) for key in succeeded), (
        steps
    )


def _template(path: str) -> str:
    """A request path with its ids replaced by ``{id}`` (for counting steps per operation)."""
    return "/".join("{id}" if len(part) == 36 and part.count("-") == 4 else part for part in path.split("/"))
