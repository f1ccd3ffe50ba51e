"""The HTTP basics: probes, request ids, the one error shape, OpenAPI."""

from __future__ import annotations

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import create_async_engine

from app.asgi import create_app
from app.health import readiness
from app.json_body import nesting_depth
from app.settings import Settings
from tests.conftest import Tenant


async def test_healthz(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_each_check(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/readyz")
    body = response.json()
    assert set(body["checks"]) == {"database", "migrations", "worker", "human_input", "sandbox"}
    assert body["checks"]["human_input"]["ok"] is True
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["migrations"]["ok"] is True
    # the sandbox entry informs (layers, or why code nodes are refused); it never makes the service unready
    sandbox = body["checks"]["sandbox"]
    assert sandbox["ok"] is True
    assert sandbox["detail"].startswith(("strict: ", "code nodes refused: "))
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
    assert "/v1/datasets" in spec["paths"]
    assert "/console/api/apps" in spec["paths"]
    page = await client.get("/openapi/")
    assert page.status_code == 200
    assert "swagger" in page.text.lower()


async def test_readyz_is_not_ready_without_a_secret_key(settings: Settings) -> None:
    """Human input cannot work without SLUICE_SECRET_KEY: the service must not call itself ready."""
    app = create_app(msgspec.structs.replace(settings, secret_key=None), configure_logs=False)
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["ready"] is False
    assert body["checks"]["human_input"] == {
        "ok": False,
        "detail": "SLUICE_SECRET_KEY is not set: human-input forms cannot be created",
    }


async def test_readyz_tells_callers_what_failed_and_the_log_why(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unreachable database: the anonymous caller reads "unreachable"; the exception text is logged only."""
    url = "postgresql+asyncpg://sluice:hunter2-password@127.0.0.1:1/nowhere"
    engine = create_async_engine(url)
    try:
        report = await readiness(engine, "0001", settings)
    finally:
        await engine.dispose()
    assert report.ready is False
    assert report.checks["database"].detail == "unreachable"
    shown = msgspec.json.encode(report).decode()
    assert "127.0.0.1" not in shown
    assert "Error" not in shown
    assert "refused" not in shown.lower()
    logged = capsys.readouterr()
    assert "readiness_check_failed" in logged.out + logged.err


DEEP = "[" * 5000 + "]" * 5000


@pytest.mark.parametrize(
    "path", ["/api/form/human_input/sometoken", "/v1/workflows/run", "/console/api/apps/imports"]
)
async def test_deep_json_is_a_400(
    client: AsyncTestClient[Litestar], tenant: Tenant, admin: dict[str, str], path: str
) -> None:
    """A few thousand ``[`` on an unauthenticated form route, the run route and the console: 400, not 500."""
    headers = {**tenant.app_headers, **admin} if path.startswith("/console") else tenant.app_headers
    for body in (DEEP, '{"inputs": {"x": ' + DEEP + "}}", '{"a": "[[[[", "b": ' + "[" * 65 + "]" * 65 + "}"):
        response = await client.post(
            path, content=body, headers={**headers, "content-type": "application/json"}
        )
        assert response.status_code == 400, response.text
        assert response.json() == {
            "code": "invalid_param",
            "message": "JSON is nested more than 64 levels deep.",
            "status": 400,
        }
    # Brackets inside strings do not count, and 64 levels are fine.
    fine = '{"inputs": {"doc": "' + "[" * 5000 + '", "x": ' + "[" * 62 + "]" * 62 + "}}"
    response = await client.post(path, content=fine, headers={**headers, "content-type": "application/json"})
    assert response.status_code != 500
    assert "nested" not in response.text


def test_nesting_depth_counts_only_structure() -> None:
    assert nesting_depth(b"{}") == 1
    assert nesting_depth(b'{"a": [[1], {"b": "]]]"}]}') == 3
    assert nesting_depth(b'["\\"[[[["]') == 1
    assert nesting_depth(b"[" * 100) == 100
