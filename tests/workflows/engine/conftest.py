"""Engine tests are pure (no database, no worker) and build their own node registries: the test-only node types
that tests/workflows/conftest.py registers for the workflow tests are left out here."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module", autouse=True)
def test_node_types() -> Iterator[None]:
    yield
