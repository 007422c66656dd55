"""The SSRF guard's address check: every IPv6 form that carries a non-public IPv4 address is refused, with why;
public addresses (and IPv6 forms of public IPv4 addresses) pass."""

from __future__ import annotations

import pytest

from monitor.net import address_problem, is_public_address


@pytest.mark.parametrize("address, problem", [
    ("127.0.0.1", "a loopback address"),
    ("10.1.2.3", "a private address"),
    ("169.254.169.254", "a link-local address"),
    ("100.64.0.1", "a reserved address"),  # carrier-grade NAT
    ("224.0.0.1", "a multicast address"),
    ("0.0.0.0", "an unspecified address"),
    ("::1", "a loopback address"),
    ("::", "an unspecified address"),
    ("fe80::1%eth0", "a link-local address"),
    ("fc00::1", "a private address"),
    ("fec0::1", "a site-local address"),
    ("ff0e::1", "a multicast address"),
    ("::ffff:127.0.0.1", "the IPv4-mapped form of 127.0.0.1, a loopback address"),
    ("::7f00:1", "the IPv4-compatible form of 127.0.0.1, a loopback address"),
    ("::ffff:0:a00:1", "the IPv4-translated form of 10.0.0.1, a private address"),
    ("64:ff9b::7f00:1", "the NAT64 form of 127.0.0.1, a loopback address"),
    ("64:ff9b::a9fe:a9fe", "the NAT64 form of 169.254.169.254, a link-local address"),
    ("64:ff9b:1::808:808", "a local-use NAT64 address"),
    ("2002:7f00:1::", "the 6to4 form of 127.0.0.1, a loopback address"),
    ("2002:c0a8:101::1", "the 6to4 form of 192.168.1.1, a private address"),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "the Teredo client form of 127.0.0.1, a loopback address"),
    ("2600::5efe:7f00:1", "the ISATAP form of 127.0.0.1, a loopback address"),
    ("2600::200:5efe:a00:1", "the ISATAP form of 10.0.0.1, a private address"),
    ("not-an-ip", "not an IP address"),
])
def test_non_public_addresses_and_their_ipv6_embeddings_are_refused_with_the_reason(address, problem):
    assert address_problem(address) == problem
    assert not is_public_address(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700::1111", "64:ff9b::808:808", "2002:808:808::1",
                                     "2600::200:5efe:808:808"])
def test_public_addresses_and_ipv6_forms_of_public_ipv4_addresses_pass(address):
    assert address_problem(address) is None and is_public_address(address)
