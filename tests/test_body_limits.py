"""Request bodies are capped per group of routes, before they are read: 413 ``request_entity_too_large`` in the
usual ``{code, message, status}`` shape. JSON routes take ``SLUICE_MAX_REQUEST_BODY_SIZE``; run, DSL and
document routes have their own, larger caps (``app/body_limits.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app import body_limits
from app.asgi import create_app
from app.settings import Settings, SettingsError
from tests.conftest import Tenant, make_tenant
from tests.support.processes import LiveService

SMALL = 8 * 1024


@pytest.fixture
async def small_client(settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The app with an 8 KiB cap on JSON bodies and a 32 KiB cap on run inputs."""
    limited = msgspec.structs.replace(settings, max_request_body_size=SMALL, max_run_inputs_size=32 * 1024)
    async with AsyncTestClient(app=create_app(limited, configure_logs=False)) as client:
        yield client


def assert_too_large(response: object) -> None:
    assert response.status_code == 413, response.text  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["code"] == "request_entity_too_large"
    assert body["status"] == 413
    assert body["message"]


async def test_a_json_route_refuses_a_body_over_its_cap(
    small_client: AsyncTestClient[Litestar], admin: dict[str, str]
) -> None:
    tenant: Tenant = await make_tenant(small_client, admin)
    big = {"name": "n", "description": "x" * (SMALL + 1)}
    assert_too_large(await small_client.post("/v1/datasets", json=big, headers=tenant.dataset_headers))
    # Just under the cap the body is read and judged on its meaning (the description is too long: 400).
    fits = {"name": "n", "description": "x" * (SMALL - 200)}
    answer = await small_client.post("/v1/datasets", json=fits, headers=tenant.dataset_headers)
    assert answer.status_code == 400, answer.text


async def test_a_chunked_body_without_length_is_counted_as_it_arrives(live_service: LiveService) -> None:
    """A real server: a body sent in chunks, with no Content-Length, is cut off at the cap (1 MiB by default)."""
    admin = {"Authorization": f"Bearer {live_service.admin_token}"}

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "n", "description": "'
        for _ in range(2048):
            yield b"x" * 1024
        yield b'"}'

    async with httpx.AsyncClient(base_url=live_service.base_url, timeout=30) as http:
        token = (await http.post("/console/api/datasets/api-keys", headers=admin)).json()["token"]
        answer = await http.post(
            "/v1/datasets",
            content=chunks(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
    assert "content-length" not in answer.request.headers
    assert_too_large(answer)


async def test_run_routes_take_the_run_inputs_cap_not_the_json_cap(
    small_client: AsyncTestClient[Litestar], admin: dict[str, str]
) -> None:
    tenant = await make_tenant(small_client, admin)
    headers = {"Authorization": f"Bearer {tenant.app_key}"}
    # Larger than the JSON cap, smaller than the run routes' cap: read (400: the app has no published workflow).
    medium = {"inputs": {"x": "y" * (SMALL * 2)}, "user": "u"}
    answer = await small_client.post("/v1/workflows/run", json=medium, headers=headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["message"] == "Workflow not published", answer.text
    huge = {"inputs": {"x": "y" * (32 * 1024 + body_limits.RUN_REQUEST_OVERHEAD)}, "user": "u"}
    assert_too_large(await small_client.post("/v1/workflows/run", json=huge, headers=headers))


async def test_dsl_and_document_routes_keep_their_larger_caps(
    small_client: AsyncTestClient[Litestar], admin: dict[str, str], settings: Settings
) -> None:
    tenant = await make_tenant(small_client, admin)
    yaml_text = "app: {name: big}\n# " + "x" * (SMALL * 4)
    imported = await small_client.post(
        "/console/api/apps/imports", json={"yaml_content": yaml_text}, headers=admin
    )
    assert imported.status_code == 400, imported.text
    assert imported.json()["code"] == "invalid_dsl", imported.text
    created = await small_client.post("/v1/datasets", json={"name": "docs"}, headers=tenant.dataset_headers)
    text_body = {"name": "a.txt", "text": "word " * SMALL, "indexing_technique": "economy"}
    document = await small_client.post(
        f"/v1/datasets/{created.json()['id']}/document/create-by-text",
        json={**text_body, "process_rule": {"mode": "automatic"}},
        headers=tenant.dataset_headers,
    )
    assert document.status_code == 200, document.text
    assert body_limits.document_routes(settings) >= settings.upload_file_size_limit * 1024 * 1024


def test_body_limit_settings_are_read_and_checked() -> None:
    s = Settings.from_env({})
    assert (s.max_request_body_size, s.max_variable_size, s.max_run_inputs_size) == (1048576, 204800, 1048576)
    read = Settings.from_env(
        {
            "SLUICE_MAX_REQUEST_BODY_SIZE": "65536",
            "MAX_VARIABLE_SIZE": "1000",
            "SLUICE_MAX_RUN_INPUTS_SIZE": "5000",
        }
    )
    assert (read.max_request_body_size, read.max_variable_size, read.max_run_inputs_size) == (
        65536,
        1000,
        5000,
    )
    with pytest.raises(SettingsError, match="SLUICE_MAX_REQUEST_BODY_SIZE"):
        Settings.from_env({"SLUICE_MAX_REQUEST_BODY_SIZE": "10"})
    with pytest.raises(SettingsError, match="MAX_VARIABLE_SIZE"):
        Settings.from_env({"MAX_VARIABLE_SIZE": "0"})
