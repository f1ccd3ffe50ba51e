"""The conformance check itself: OpenAPI 3.0 → JSON Schema, operation lookup, readable violations, the
allowlist, and both doors (in-process test client, httpx to a watched live origin)."""

from __future__ import annotations

import httpx
import pytest
from litestar import Litestar, get
from litestar.testing import AsyncTestClient

from tests.support import contract_plugin
from tests.support.dify_contract import Contract, Tolerated, document_path, load_tolerated, to_json_schema
from tests.support.fake_openai import FakeOpenAI

pytestmark = pytest.mark.skipif(not document_path().exists(), reason="../shared/dify-openapi not present")


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract.load()


def test_nullable_and_one_of_are_converted() -> None:
    assert to_json_schema({"type": "string", "nullable": True}) == {"type": ["string", "null"]}
    assert to_json_schema({"$ref": "#/components/schemas/X", "nullable": True}) == {
        "anyOf": [{"$ref": "urn:dify:service-api#/components/schemas/X"}, {"type": "null"}]
    }
    assert to_json_schema({"oneOf": [{"type": "string"}]}) == {"anyOf": [{"type": "string"}]}
    assert to_json_schema({"properties": {"example": {"type": "string", "example": "x"}}}) == {
        "properties": {"example": {"type": "string"}}
    }


def test_operations_are_found_by_method_and_template(contract: Contract) -> None:
    assert len(contract.operations) == 82
    found = contract.operation("GET", "/v1/datasets/tags")
    assert found is not None
    assert found.name == "GET /datasets/tags"  # a literal beats a template
    found = contract.operation("GET", "/v1/datasets/0193/documents/abc/indexing-status")
    assert found is not None
    assert found.template == "/datasets/{dataset_id}/documents/{batch}/indexing-status"
    assert contract.operation("GET", "/console/api/apps") is None
    assert contract.operation("DELETE", "/v1/info") is None


def test_a_violation_names_operation_status_path_expected_and_got(contract: Contract) -> None:
    bare = Contract(contract.document, [])
    _, found = bare.check("GET", "/v1/workflows/run/x", 200, "application/json", b'{"inputs": {"a": 1}}')
    assert [str(v) for v in found] == [
        "GET /workflows/run/{workflow_run_id} -> 200: at $.inputs: expected type ['string', 'null'], got {\"a\": 1}"
    ]
    _, found = bare.check(
        "GET", "/v1/workflows/run/x", 404, "application/json", b'{"code": "x", "message": "m", "status": 400}'
    )
    assert [v.where for v in found] == ["$.status"]
    _, found = bare.check("GET", "/v1/workflows/run/x", 418, "application/json", b"{}")
    assert [(v.where, v.got) for v in found] == [("status", "418")]
    _, found = bare.check(
        "GET", "/v1/workflows/run/x", 401, "application/json", b'{"code": "u", "message": "m", "status": 401}'
    )
    assert found == []  # 401 is promised by the security scheme


def test_stream_events_are_checked_against_their_member(contract: Contract) -> None:
    bare = Contract(contract.document, [])
    body = b'id: 1\ndata: {"event": "workflow_started", "workflow_run_id": 5}\n\nevent: ping\n\n'
    _, found = bare.check("POST", "/v1/workflows/run", 200, "text/event-stream", body)
    assert found
    assert all(v.where.startswith("$event[workflow_started]") and "SSE event #0" in v.note for v in found)


def test_allowlist_entries_are_named_justified_and_used_on_documented_operations(contract: Contract) -> None:
    entries = load_tolerated()
    assert entries
    assert len({e.id for e in entries}) == len(entries)
    names = [op.name for op in contract.operations]
    for entry in entries:
        assert entry.reason.strip(), entry.id
        probe = Tolerated(entry.id, entry.operation, "**", "**", entry.reason)
        assert any(probe.covers(_violation(name)) for name in names), (
            f"{entry.id} names no documented operation"
        )


def _violation(name: str) -> object:
    from tests.support.dify_contract import Violation

    return Violation(name, 200, "$", "", "")


@get("/v1/info", sync_to_thread=False)
def _bad_info() -> dict[str, object]:
    return {"name": 5}


async def test_the_in_process_door_records_violations() -> None:
    rec = contract_plugin.recorder()
    rec.take()
    async with AsyncTestClient(app=Litestar(route_handlers=[_bad_info])) as client:
        assert (await client.get("/v1/info")).status_code == 200
    found = rec.take()
    assert [(v.operation, v.where) for v in found] == [("GET /info", "$.name")]


def test_the_live_door_records_violations_of_watched_origins_only() -> None:
    rec = contract_plugin.recorder()
    rec.take()
    with FakeOpenAI() as fake:
        origin = fake.base_url.removesuffix("/v1")
        assert httpx.get(f"{origin}/v1/site").status_code in (404, 405)  # not watched: ignored
        assert rec.take() == []
        contract_plugin.watch(origin)
        assert httpx.get(f"{origin}/v1/site").status_code in (404, 405)
        found = rec.take()
    assert [(v.operation, v.where) for v in found] == [("GET /site", "status")]
