"""Name resolution for the guarded client: one lookup per request hop, every address it returns.

The client asks a ``Resolver`` once and connects only to addresses from that answer, so the resolver is the
one place a test substitutes (a fake that answers differently on its second call shows that nothing asks
twice).
"""

from __future__ import annotations

import asyncio
import socket
from typing import Protocol

from app.net.policy import IPAddress, literal_address


class Resolver(Protocol):
    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Every address ``host`` has (A and AAAA), in the order to try them; ``OSError`` when unknown."""
        ...


class SystemResolver:
    """The operating system's resolver (``getaddrinfo``), off the event loop."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
        addresses: list[IPAddress] = []
        for _family, _type, _proto, _name, sockaddr in infos:
            address = literal_address(str(sockaddr[0]))
            if address is not None and address not in addresses:
                addresses.append(address)
        return addresses
