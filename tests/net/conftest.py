"""Loopback servers and guarded clients for the tests of ``app/net``.

Every client here connects through ``LoopbackOnlyBackend``: whatever a (possibly deliberately broken) guard
decides, no byte leaves 127.0.0.0/8.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.net.client import GuardedClient
from app.net.policy import NetPolicy
from app.net.resolver import Resolver
from tests.support.http_target import HttpTarget
from tests.support.net_fakes import LoopbackOnlyBackend


@pytest.fixture
def target() -> Iterator[HttpTarget]:
    with HttpTarget("127.0.0.1") as server:
        yield server


@pytest.fixture
def backend() -> LoopbackOnlyBackend:
    return LoopbackOnlyBackend()


def make_client(
    backend: LoopbackOnlyBackend,
    allow: list[str] | None = None,
    resolver: Resolver | None = None,
    **policy: object,
) -> GuardedClient:
    return GuardedClient(
        NetPolicy.of(allow or [], **policy),  # type: ignore[arg-type]
        resolver=resolver,
        network_backend=backend,
    )
