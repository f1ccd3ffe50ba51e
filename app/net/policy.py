"""Which destinations a user-supplied URL may reach: schemes, host names, addresses and ports.

Pure functions over one parsed URL (``httpx.URL``, the same object the request is later built from) and the
addresses a resolver returned. An address is refused when it is not globally routable: the explicit
``BLOCKED_NETWORKS`` below (kept explicit because ``ipaddress.is_global`` differs between Python versions and
calls several special IPv6 ranges global), and anything else ``ipaddress`` does not call global. IPv6 forms
that carry an IPv4 address (``::ffff:0:0/96``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``) are judged as the
IPv4 address they carry. Networks an operator lists in ``SSRF_PROXY_ALLOW_PRIVATE_NETWORKS`` are allowed.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": 80, "https": 443}

BLOCKED_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, cloud metadata (169.254.169.254, 169.254.170.2)
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # TEST-NET-1
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # TEST-NET-2
        "203.0.113.0/24",  # TEST-NET-3
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved
        "255.255.255.255/32",  # broadcast
        "::1/128",  # loopback
        "::/96",  # unspecified and the deprecated IPv4-compatible ::a.b.c.d
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments (Teredo 2001::/32 included)
        "2001:db8::/32",  # documentation
        "fc00::/7",  # unique local (fd00:ec2::254, AWS metadata over IPv6)
        "fe80::/10",  # link-local
        "fec0::/10",  # deprecated site-local
        "ff00::/8",  # multicast
    )
)

#: Host names refused whatever they resolve to (``*.localhost`` too).
BLOCKED_NAMES = frozenset({"localhost", "metadata.google.internal", "metadata.goog"})

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
#: A host spelled as an IPv4 address in one of the forms inet_aton accepts: 1 to 4 parts, each decimal, octal
#: (leading 0) or hex (0x). ``2130706433``, ``0177.0.0.1``, ``127.1`` and ``0x7f.1`` all mean 127.0.0.1.
_NUMERIC_HOST = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}\.?", re.IGNORECASE)


def literal_address(host: str) -> IPAddress | None:
    """The address a host names literally, in any spelling a resolver would accept; None for a name.

    A host that looks numeric but is no valid address (``999.1.1.1``) raises ``ValueError``: it must not be
    handed to DNS, which might answer for it.
    """
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
        except OSError:
            raise ValueError(f"{host!r} is not a valid IPv4 address") from None
    return None


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (IPv4-mapped, NAT64 or 6to4), if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def parse_networks(cidrs: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDRs (``10.0.0.0/8``, ``fd00::/8``, or a bare address) as networks; ``ValueError`` names a bad one."""
    networks = []
    for cidr in cidrs:
        if not cidr.strip():
            continue
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{cidr.strip()!r} is not a CIDR network") from None
    return tuple(networks)


@dataclass(frozen=True, kw_only=True)
class NetPolicy:
    """What user-supplied URLs may reach. The default refuses every non-public address and allows any port."""

    #: networks an operator allows although they are not public (``SSRF_PROXY_ALLOW_PRIVATE_NETWORKS``)
    networks: tuple[IPNetwork, ...] = ()
    #: ports URLs may use; empty means any (``SSRF_ALLOWED_PORTS``)
    allowed_ports: frozenset[int] = frozenset()

    @classmethod
    def of(cls, allow_networks: Iterable[str] = (), allowed_ports: Iterable[int] = ()) -> NetPolicy:
        return cls(networks=parse_networks(allow_networks), allowed_ports=frozenset(allowed_ports))

    def scheme_refusal(self, scheme: str) -> str | None:
        if scheme not in SCHEMES:
            return f"scheme {scheme or '(none)'!r} is not allowed (only http and https)"
        return None

    def port_refusal(self, port: int) -> str | None:
        if not 0 < port < 65536:
            return f"port {port} is not a valid port"
        if self.allowed_ports and port not in self.allowed_ports:
            allowed = ", ".join(str(p) for p in sorted(self.allowed_ports))
            return f"port {port} is not allowed (SSRF_ALLOWED_PORTS: {allowed})"
        return None

    def name_refusal(self, host: str) -> str | None:
        name = host.lower().rstrip(".")
        if not name:
            return "the URL has no host"
        if name in BLOCKED_NAMES or name.endswith(".localhost"):
            return f"host name {name!r} is not allowed"
        return None

    def address_refusal(self, address: IPAddress) -> str | None:
        """Why connecting to this address is refused, or None when it is allowed."""
        if any(address in network for network in self.networks if network.version == address.version):
            return None
        carried = embedded_ipv4(address)
        if carried is not None:
            reason = self.address_refusal(carried)
            return f"{address} carries {reason}" if reason else None
        for network in BLOCKED_NETWORKS:
            if network.version == address.version and address in network:
                return f"{address} is in the non-public network {network}"
        if not address.is_global:
            return f"{address} is not a public address"
        return None

    def addresses_refusal(self, host: str, addresses: Iterable[IPAddress]) -> str | None:
        """Refuse a host when ANY of its addresses is refused (a second answer could be used otherwise)."""
        found = list(addresses)
        if not found:
            return f"{host!r} resolved to no address"
        for address in found:
            reason = self.address_refusal(address)
            if reason:
                return reason if str(address) == host else f"{host!r} resolves to {reason}"
        return None
