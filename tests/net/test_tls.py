"""TLS with a pinned address: the socket goes to the vetted IP, SNI and certificate checks use the URL's name."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import pytest
import trustme

from app.net.client import GuardedClient
from app.net.errors import UpstreamError
from app.net.policy import NetPolicy
from tests.support.http_target import HttpTarget
from tests.support.net_fakes import FakeResolver, LoopbackOnlyBackend


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_target(ca: trustme.CA) -> Iterator[tuple[HttpTarget, list[str]]]:
    """A TLS server on 127.0.0.1 whose certificate names only ``pinned.test``; records the SNI it saw."""
    seen: list[str] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("pinned.test").configure_cert(context)
    context.sni_callback = lambda _sock, name, _ctx: seen.append(name)  # type: ignore[assignment,func-returns-value]
    with HttpTarget("127.0.0.1", ssl_context=context) as server:
        yield server, seen


def client(ca: trustme.CA, backend: LoopbackOnlyBackend, resolver: FakeResolver) -> GuardedClient:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return GuardedClient(
        NetPolicy.of(["127.0.0.0/8"]), resolver=resolver, ssl_context=context, network_backend=backend
    )


async def test_https_to_a_pinned_address_verifies_the_original_name(
    ca: trustme.CA, tls_target: tuple[HttpTarget, list[str]]
) -> None:
    server, seen = tls_target
    backend = LoopbackOnlyBackend()
    resolver = FakeResolver({"pinned.test": [["127.0.0.1"]], "other.test": [["127.0.0.1"]]})
    guarded = client(ca, backend, resolver)
    response = await guarded.request("GET", f"https://pinned.test:{server.port}/echo", max_bytes=1 << 16)
    assert response.status_code == 200
    assert seen == ["pinned.test"]  # SNI: the name, not the IP we connected to
    assert backend.connects == [("127.0.0.1", server.port)]
    assert server.requests[-1].header("Host") == f"pinned.test:{server.port}"
    # the same server and address under a name its certificate does not carry: verification fails
    with pytest.raises(UpstreamError, match="certificate"):
        await guarded.request("GET", f"https://other.test:{server.port}/echo", max_bytes=1 << 16)
    assert len(server.requests) == 1
    # unless the caller turns verification off (the node's ssl_verify: false)
    response = await guarded.request(
        "GET", f"https://other.test:{server.port}/echo", max_bytes=1 << 16, verify=False
    )
    assert response.status_code == 200
