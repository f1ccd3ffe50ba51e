"""A real sandbox runner for the module, started from a process that holds (fake) secrets in its environment."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from app.sandbox.client import Sandbox, SandboxConfig

#: what a worker's environment holds and a child must never see
SECRETS = {
    "DATABASE_URL": "postgresql://sluice:hunter2@db.internal:5432/sluice",
    "OPENAI_API_KEY": "sk-test-secret-0123456789",
    "SLUICE_ADMIN_TOKEN": "admin-secret-token",
}


@pytest.fixture(scope="module")
def worker_secrets() -> Iterator[dict[str, str]]:
    saved = {name: os.environ.get(name) for name in SECRETS}
    os.environ.update(SECRETS)
    yield SECRETS
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="module")
async def sandbox(worker_secrets: dict[str, str]) -> AsyncIterator[Sandbox]:
    """The strict sandbox with a short timeout (escape tests that loop are stopped after 1 s)."""
    box = Sandbox(SandboxConfig(timeout=1.0, max_workers=4, max_queue=50))
    await box.start()
    assert box.refused is None, box.describe()
    yield box
    await box.close()


async def still_serving(box: Sandbox, runner_pid: int | None) -> None:
    """The same runner answers a trivial run after an escape attempt."""
    assert await box.run_code("python3", "def main():\n    return {'ok': True}\n", {}) == {"ok": True}
    assert box.runner_pid == runner_pid
