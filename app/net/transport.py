"""Pinning: an httpx transport whose connections can only go to addresses the guard has vetted.

httpx resolves host names inside httpcore's network backend (``connect_tcp(host, port)``). ``PinnedBackend``
replaces that step: it holds, per ``(host, port)``, the addresses vetted for the current hop and connects to
those, never resolving anything itself. A host it has no pin for is refused outright, so a code path that
forgot to vet (or a redirect the client did not see) cannot reach the network. TLS is still started by
httpcore with ``server_hostname`` = the URL's host, so SNI and certificate verification use the original
name while the socket goes to the vetted IP. The ``Host`` header comes from the URL as usual.

httpx 0.28 does not take a network backend, so ``pinned_transport`` builds an ``httpx.AsyncHTTPTransport``
and gives it its own ``httpcore.AsyncConnectionPool`` (``_pool``, the attribute every httpx 0.2x transport
uses); the pinning test in ``tests/net`` fails if that ever stops working.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterable

import httpcore
import httpx

from app.net.errors import SSRFBlocked
from app.net.policy import IPAddress


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects ``(host, port)`` only to the addresses pinned for it, in order, within one connect timeout."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.AnyIOBackend()
        self._pins: dict[tuple[str, int], tuple[IPAddress, ...]] = {}

    def pin(self, host: str, port: int, addresses: Iterable[IPAddress]) -> None:
        self._pins[(host.lower(), port)] = tuple(addresses)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = self._pins.get((host.lower(), port))
        if not addresses:
            raise SSRFBlocked(f"{host}:{port}", "the destination was not vetted before connecting")
        deadline = None if timeout is None else time.monotonic() + timeout
        error: Exception | None = None
        for address in addresses:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            target = address.ipv4_mapped if address.version == 6 and address.ipv4_mapped else address  # type: ignore[union-attr]
            try:
                return await self._inner.connect_tcp(
                    str(target),
                    port,
                    timeout=left,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error or httpcore.ConnectTimeout(f"connecting to {host}:{port} timed out")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise SSRFBlocked(path, "unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def pinned_transport(backend: PinnedBackend, ssl_context: ssl.SSLContext) -> httpx.AsyncHTTPTransport:
    """An HTTP/1.1 transport (no proxy, no retries) whose pool connects through ``backend`` only."""
    transport = httpx.AsyncHTTPTransport(verify=ssl_context, trust_env=False, retries=0)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context,
        max_connections=10,
        max_keepalive_connections=2,
        keepalive_expiry=5.0,
        http1=True,
        http2=False,
        retries=0,
        network_backend=backend,
    )
    return transport
