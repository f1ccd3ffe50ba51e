"""Test doubles for the guarded client's injectable seams: a resolver with scripted answers, and a socket layer
that records where connections go and refuses to leave 127.0.0.0/8 whatever the code under test decides.

The fake resolver may *answer* any address (public ones too, to exercise the policy); the loopback-only
backend makes sure nothing is ever sent to them, even when a guard is broken on purpose.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

import httpcore

from app.net.policy import IPAddress


class FakeResolver:
    """Answers each name from a script: the n-th lookup gets the n-th answer (the last one repeats)."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        self.calls.append(host)
        script = self.answers.get(host)
        if not script:
            raise OSError(f"[Errno -2] Name or service not known: {host!r}")
        answer = script[min(self.calls.count(host), len(script)) - 1]
        return [ipaddress.ip_address(a) for a in answer]


class LoopbackOnlyBackend(httpcore.AsyncNetworkBackend):
    """httpcore's socket layer, recording every connect and refusing any target outside 127.0.0.0/8."""

    def __init__(self) -> None:
        self.inner = httpcore.AnyIOBackend()
        self.connects: list[tuple[str, int]] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        try:
            loopback = ipaddress.ip_address(host) in ipaddress.ip_network("127.0.0.0/8")
        except ValueError:
            loopback = False
        if not loopback:
            raise httpcore.ConnectError(f"test safety net: refusing to connect to {host}:{port}")
        return await self.inner.connect_tcp(host, port, timeout, local_address, socket_options)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("test safety net: no unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)
