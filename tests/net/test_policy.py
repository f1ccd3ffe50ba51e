"""The guard's rules on their own: which addresses, names, spellings and ports a user-supplied URL may use."""

from __future__ import annotations

import ipaddress

import pytest

from app.net.policy import NetPolicy, embedded_ipv4, literal_address, parse_networks

DEFAULT = NetPolicy()

REFUSED = [
    "0.0.0.0",
    "0.1.2.3",
    "10.0.0.1",
    "100.64.0.1",
    "127.0.0.1",
    "127.255.255.254",
    "169.254.169.254",  # cloud metadata
    "169.254.170.2",  # ECS task metadata
    "172.16.0.1",
    "172.31.255.255",
    "192.0.0.8",
    "192.0.2.1",
    "192.88.99.1",
    "192.168.1.1",
    "198.18.0.1",
    "198.51.100.7",
    "203.0.113.9",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "::",
    "::1",
    "::127.0.0.1",  # IPv4-compatible, which ipaddress calls global
    "::ffff:127.0.0.1",  # IPv4-mapped loopback
    "::ffff:169.254.169.254",
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254, which ipaddress calls global
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b:1::1",
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1, which ipaddress calls global
    "2002:a9fe:a9fe::",
    "100::1",
    "2001::1",  # Teredo
    "2001:db8::1",
    "fc00::1",
    "fd00:ec2::254",  # AWS metadata over IPv6
    "fe80::1",
    "fec0::1",  # deprecated site-local, which ipaddress calls global
    "ff02::1",
]
ALLOWED = ["8.8.8.8", "1.1.1.1", "93.184.215.14", "2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:808:808::"]


@pytest.mark.parametrize("address", REFUSED)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert DEFAULT.address_refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert DEFAULT.address_refusal(ipaddress.ip_address(address)) is None


def test_embedded_ipv4_is_judged_as_ipv4() -> None:
    assert embedded_ipv4(ipaddress.ip_address("::ffff:10.1.2.3")) == ipaddress.ip_address("10.1.2.3")
    assert embedded_ipv4(ipaddress.ip_address("64:ff9b::a01:203")) == ipaddress.ip_address("10.1.2.3")
    assert embedded_ipv4(ipaddress.ip_address("2002:a01:203::1")) == ipaddress.ip_address("10.1.2.3")
    assert embedded_ipv4(ipaddress.ip_address("2606:4700::1")) is None
    reason = DEFAULT.address_refusal(ipaddress.ip_address("::ffff:10.1.2.3"))
    assert reason is not None
    assert "10.0.0.0/8" in reason


@pytest.mark.parametrize("spelling", ["2130706433", "0177.0.0.1", "127.1", "0x7f.1", "0x7f000001", "127.0.1"])
def test_odd_ipv4_spellings_normalise_to_the_address(spelling: str) -> None:
    address = literal_address(spelling)
    assert address == ipaddress.ip_address("127.0.0.1")
    assert DEFAULT.address_refusal(address) is not None


def test_names_and_invalid_numbers() -> None:
    assert literal_address("example.com") is None
    assert literal_address("[::1]") == ipaddress.ip_address("::1")
    with pytest.raises(ValueError):
        literal_address("999.1.1.1")  # numeric but no address: never handed to DNS
    with pytest.raises(ValueError):
        literal_address("0x1ffffffff")


@pytest.mark.parametrize(
    "host",
    ["localhost", "LOCALHOST", "localhost.", "foo.localhost", "a.b.localhost.", "metadata.google.internal"],
)
def test_local_names_are_refused(host: str) -> None:
    assert NetPolicy.of(["0.0.0.0/0", "::/0"]).name_refusal(host) is not None


def test_ordinary_names_pass_the_name_check() -> None:
    assert DEFAULT.name_refusal("example.com") is None
    assert DEFAULT.name_refusal("localhost.example.com") is None


def test_allowlisted_networks_are_allowed_also_inside_ipv6() -> None:
    policy = NetPolicy.of(["127.0.0.0/8", "fd00::/8"])
    assert policy.address_refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert policy.address_refusal(ipaddress.ip_address("::ffff:127.0.0.1")) is None
    assert policy.address_refusal(ipaddress.ip_address("fd00::5")) is None
    assert policy.address_refusal(ipaddress.ip_address("10.0.0.1")) is not None
    assert policy.address_refusal(ipaddress.ip_address("::1")) is not None


def test_any_refused_address_refuses_the_host() -> None:
    policy = NetPolicy.of(["127.0.0.2/32"])
    both = [ipaddress.ip_address("127.0.0.2"), ipaddress.ip_address("127.0.0.3")]
    reason = policy.addresses_refusal("mixed.test", both)
    assert reason is not None
    assert "127.0.0.3" in reason
    assert policy.addresses_refusal("one.test", both[:1]) is None
    assert policy.addresses_refusal("none.test", []) is not None


def test_ports() -> None:
    assert DEFAULT.port_refusal(5447) is None
    assert DEFAULT.port_refusal(0) is not None
    only_web = NetPolicy.of(allowed_ports=[80, 443])
    assert only_web.port_refusal(443) is None
    reason = only_web.port_refusal(8080)
    assert reason is not None
    assert "SSRF_ALLOWED_PORTS" in reason


def test_parse_networks_names_the_bad_entry() -> None:
    assert [str(n) for n in parse_networks(["10.0.0.0/8", " 192.168.1.7 ", ""])] == [
        "10.0.0.0/8",
        "192.168.1.7/32",
    ]
    with pytest.raises(ValueError, match="nonsense"):
        parse_networks(["nonsense"])
