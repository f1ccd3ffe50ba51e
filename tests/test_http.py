"""The HTTP basics: probes, request ids, the one error shape, OpenAPI."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient


async def test_healthz(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_each_check(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/readyz")
    body = response.json()
    assert set(body["checks"]) == {"database", "migrations", "worker", "sandbox"}
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["migrations"]["ok"] is True
    # the sandbox entry informs (layers, or why code nodes are refused); it never makes the service unready
    sandbox = body["checks"]["sandbox"]
    assert sandbox["ok"] is True and sandbox["detail"].startswith(("strict: ", "code nodes refused: "))
    # Readiness follows the worker check: 200 only when a worker beat recently.
    assert response.status_code == (200 if body["checks"]["worker"]["ok"] else 503)
    assert body["ready"] is (response.status_code == 200)


async def test_request_id_is_generated_and_echoed(client: AsyncTestClient[Litestar]) -> None:
    generated = (await client.get("/healthz")).headers["x-request-id"]
    assert len(generated) == 32
    echoed = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    unsafe = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert unsafe.headers["x-request-id"] != "bad id\twith spaces"


async def test_unknown_route_and_method_use_error_shape(client: AsyncTestClient[Litestar]) -> None:
    missing = await client.get("/v1/nope")
    assert missing.status_code == 404
    assert missing.json() == {"code": "not_found", "message": missing.json()["message"], "status": 404}
    wrong_method = await client.delete("/healthz")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["code"] == "method_not_allowed"


async def test_openapi_is_served_and_browsable(client: AsyncTestClient[Litestar]) -> None:
    spec = (await client.get("/openapi/openapi.json")).json()
    assert spec["openapi"].startswith("3.")
    assert "/v1/datasets" in spec["paths"] and "/console/api/apps" in spec["paths"]
    page = await client.get("/openapi/")
    assert page.status_code == 200 and "swagger" in page.text.lower()
