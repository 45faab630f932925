"""Every network of the host policy, at its edges, in every IPv6 spelling that carries IPv4.

The table below is written out by hand from docs/security.md and the module docstring, not read
from the module, so dropping or narrowing a range in the code turns a row red. Each range is
checked at its first and last address and at the addresses just outside, under the default policy
and with `allow_private: false`; each IPv4 row is checked again as IPv4-mapped (::ffff:a.b.c.d),
NAT64 (64:ff9b::a.b.c.d and the local-use 64:ff9b:1::/48) and through `check_url`.
"""

from __future__ import annotations

import ipaddress

import pytest

from wpk.adapters.guards.hostpolicy import (
    HostDenied,
    HostPolicy,
    ResolveError,
    check_address,
    check_host,
    check_url,
    denial_reason,
    inet_aton,
    ip_literal,
    looks_numeric,
    resolve_checked,
)

DEFAULT = HostPolicy()
STRICT = HostPolicy(allow_private=False)

ALWAYS = "always"  # denied under every policy without allow_networks
PRIVATE = "private"  # denied only with allow_private: false
OPEN = "open"  # allowed by both

# (address, verdict, the network's label in the denial reason)
TABLE: list[tuple[str, str, str]] = [
    # cloud metadata
    ("169.254.169.254", ALWAYS, "a cloud metadata service address"),
    ("100.100.100.200", ALWAYS, "a cloud metadata service address (Alibaba Cloud)"),
    ("100.100.100.199", PRIVATE, "shared address space (100.64.0.0/10)"),
    ("100.100.100.201", PRIVATE, "shared address space (100.64.0.0/10)"),
    ("fd00:ec2::254", ALWAYS, "a cloud metadata service address (AWS IPv6)"),
    ("fd00:ec2::253", PRIVATE, "unique local (fc00::/7)"),
    # link-local 169.254.0.0/16
    ("169.254.0.0", ALWAYS, "link-local (169.254.0.0/16)"),
    ("169.254.255.255", ALWAYS, "link-local (169.254.0.0/16)"),
    ("169.254.169.253", ALWAYS, "link-local (169.254.0.0/16)"),
    ("169.253.255.255", OPEN, ""),
    ("169.255.0.0", OPEN, ""),
    # link-local fe80::/10
    ("fe80::", ALWAYS, "link-local (fe80::/10)"),
    ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ALWAYS, "link-local (fe80::/10)"),
    ("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", OPEN, ""),
    # this network 0.0.0.0/8
    ("0.0.0.0", ALWAYS, "'this network' (0.0.0.0/8), which reaches the local host"),
    ("0.255.255.255", ALWAYS, "'this network' (0.0.0.0/8), which reaches the local host"),
    ("1.0.0.0", OPEN, ""),
    # unspecified ::
    ("::", ALWAYS, "the unspecified address (::), which reaches the local host"),
    # multicast
    ("224.0.0.0", ALWAYS, "multicast (224.0.0.0/4)"),
    ("239.255.255.255", ALWAYS, "multicast (224.0.0.0/4)"),
    ("223.255.255.255", OPEN, ""),
    ("ff00::", ALWAYS, "multicast (ff00::/8)"),
    ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ALWAYS, "multicast (ff00::/8)"),
    ("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", PRIVATE, "site-local (fec0::/10)"),
    # reserved 240.0.0.0/4 and broadcast
    ("240.0.0.0", ALWAYS, "reserved (240.0.0.0/4, incl. broadcast)"),
    ("255.255.255.255", ALWAYS, "reserved (240.0.0.0/4, incl. broadcast)"),
    # loopback
    ("127.0.0.0", PRIVATE, "loopback (127.0.0.0/8)"),
    ("127.0.0.1", PRIVATE, "loopback (127.0.0.0/8)"),
    ("127.255.255.255", PRIVATE, "loopback (127.0.0.0/8)"),
    ("126.255.255.255", OPEN, ""),
    ("128.0.0.0", OPEN, ""),
    ("::1", PRIVATE, "loopback (::1)"),
    # RFC 1918
    ("10.0.0.0", PRIVATE, "private (10.0.0.0/8)"),
    ("10.255.255.255", PRIVATE, "private (10.0.0.0/8)"),
    ("9.255.255.255", OPEN, ""),
    ("11.0.0.0", OPEN, ""),
    ("172.16.0.0", PRIVATE, "private (172.16.0.0/12)"),
    ("172.31.255.255", PRIVATE, "private (172.16.0.0/12)"),
    ("172.15.255.255", OPEN, ""),
    ("172.32.0.0", OPEN, ""),
    ("192.168.0.0", PRIVATE, "private (192.168.0.0/16)"),
    ("192.168.255.255", PRIVATE, "private (192.168.0.0/16)"),
    ("192.167.255.255", OPEN, ""),
    ("192.169.0.0", OPEN, ""),
    # shared address space (carrier-grade NAT)
    ("100.64.0.0", PRIVATE, "shared address space (100.64.0.0/10)"),
    ("100.127.255.255", PRIVATE, "shared address space (100.64.0.0/10)"),
    ("100.63.255.255", OPEN, ""),
    ("100.128.0.0", OPEN, ""),
    # benchmarking
    ("198.18.0.0", PRIVATE, "benchmarking (198.18.0.0/15)"),
    ("198.19.255.255", PRIVATE, "benchmarking (198.18.0.0/15)"),
    ("198.17.255.255", OPEN, ""),
    ("198.20.0.0", OPEN, ""),
    # IETF protocol assignments
    ("192.0.0.0", PRIVATE, "IETF protocol assignments (192.0.0.0/24)"),
    ("192.0.0.255", PRIVATE, "IETF protocol assignments (192.0.0.0/24)"),
    ("191.255.255.255", OPEN, ""),
    ("192.0.1.0", OPEN, ""),
    # unique local fc00::/7
    ("fc00::", PRIVATE, "unique local (fc00::/7)"),
    ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", PRIVATE, "unique local (fc00::/7)"),
    ("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", OPEN, ""),
    ("fe00::", OPEN, ""),
    # site-local fec0::/10
    ("fec0::", PRIVATE, "site-local (fec0::/10)"),
    ("feff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", PRIVATE, "site-local (fec0::/10)"),
    # ordinary public addresses
    ("8.8.8.8", OPEN, ""),
    ("93.184.216.34", OPEN, ""),
    ("2606:4700:4700::1111", OPEN, ""),
    ("2001:db8::1", OPEN, ""),
]

V4_ROWS = [row for row in TABLE if ipaddress.ip_address(row[0]).version == 4]


def embeddings(v4: str) -> list[str]:
    """The IPv6 spellings that carry an IPv4 address and must be judged as that address."""
    n = int(ipaddress.IPv4Address(v4))
    return [
        f"::ffff:{v4}",  # IPv4-mapped
        str(ipaddress.IPv6Address((0xFFFF << 32) | n)),  # the same, in hex groups
        f"64:ff9b::{v4}",  # NAT64 well-known prefix
        str(ipaddress.IPv6Address((0x0064FF9B0001 << 80) | n)),  # NAT64 local-use 64:ff9b:1::/48
    ]


def reason_for(verdict: str, label: str, policy: HostPolicy) -> str | None:
    """The exact reason the policy must give (None: allowed)."""
    if verdict == ALWAYS:
        return f"it is {label}"
    if verdict == PRIVATE and not policy.allow_private:
        return f"it is {label} and allow_private is false"
    return None


def expect(address: str, verdict: str, label: str, policy: HostPolicy, *, carrier: str | None = None) -> None:
    want = reason_for(verdict, label, policy)
    if want is not None and carrier is not None:
        want = f"it embeds the IPv4 address {carrier}, and {want}"
    assert denial_reason(address, policy) == want, address


@pytest.mark.parametrize(("address", "verdict", "fragment"), TABLE)
@pytest.mark.parametrize("policy", [DEFAULT, STRICT], ids=["default", "allow_private=false"])
def test_each_network_at_its_edges(address: str, verdict: str, fragment: str, policy: HostPolicy) -> None:
    expect(address, verdict, fragment, policy)


@pytest.mark.parametrize(("address", "verdict", "fragment"), V4_ROWS)
@pytest.mark.parametrize("policy", [DEFAULT, STRICT], ids=["default", "allow_private=false"])
def test_ipv4_mapped_and_nat64_forms_are_judged_as_the_ipv4_address(
    address: str, verdict: str, fragment: str, policy: HostPolicy
) -> None:
    for form in embeddings(address):
        expect(form, verdict, fragment, policy, carrier=address)


@pytest.mark.parametrize(("address", "verdict", "fragment"), TABLE)
@pytest.mark.parametrize("policy", [DEFAULT, STRICT], ids=["default", "allow_private=false"])
def test_check_url_gives_the_same_verdict(
    address: str, verdict: str, fragment: str, policy: HostPolicy
) -> None:
    host = address if ipaddress.ip_address(address).version == 4 else f"[{address}]"
    url = f"http://{host}:8080/x"
    denied = verdict == ALWAYS or (verdict == PRIVATE and not policy.allow_private)
    if denied:
        with pytest.raises(HostDenied) as info:
            check_url(url, policy)
        assert fragment in info.value.message and info.value.address is not None
        assert ipaddress.ip_address(info.value.address) == ipaddress.ip_address(address)
    else:
        check_url(url, policy)


@pytest.mark.parametrize(
    ("address", "policy", "fragment"),
    [
        ("::2", DEFAULT, "embeds the IPv4 address 0.0.0.2"),  # IPv4-compatible, in 0.0.0.0/8
        ("2002:6440:1::1", STRICT, "embeds the IPv4 address 100.64.0.1"),  # 6to4
        ("2002:6440:1::1", DEFAULT, None),
        ("2002:a9fe:a9fe::", DEFAULT, "embeds the IPv4 address 169.254.169.254"),
        ("2002:808:808::1", STRICT, None),
        # Teredo: server 10.0.0.1, client ~f7ff:ffff = 8.0.0.0
        ("2001:0:a00:1::f7ff:ffff", STRICT, "embeds the IPv4 address 10.0.0.1"),
        ("2001:0:a00:1::f7ff:ffff", DEFAULT, None),
        # Teredo: server 8.8.8.8, client ~5601:56fe = 169.254.169.1
        ("2001:0:808:808::5601:56fe", DEFAULT, "embeds the IPv4 address 169.254.169.1"),
    ],
)
def test_6to4_and_teredo_carry_their_ipv4_addresses(
    address: str, policy: HostPolicy, fragment: str | None
) -> None:
    reason = denial_reason(address, policy)
    if fragment is None:
        assert reason is None, reason
    else:
        assert reason is not None and fragment in reason, reason


def test_allow_networks_lifts_exactly_its_range_and_deny_networks_wins() -> None:
    policy = HostPolicy(
        allow_private=False,
        allow_networks=(ipaddress.ip_network("100.64.0.0/24"), ipaddress.ip_network("169.254.1.0/24")),
        deny_networks=(ipaddress.ip_network("100.64.0.128/25"),),
    )
    assert denial_reason("100.64.0.0", policy) is None
    assert denial_reason("100.64.0.127", policy) is None
    assert "deny_networks" in (denial_reason("100.64.0.128", policy) or "")
    assert "deny_networks" in (denial_reason("100.64.0.255", policy) or "")
    assert "shared address space" in (denial_reason("100.64.1.0", policy) or "")
    assert denial_reason("169.254.1.1", policy) is None
    assert "link-local" in (denial_reason("169.254.2.1", policy) or "")
    assert denial_reason("::ffff:100.64.0.1", policy) is None  # judged as the IPv4 address
    assert "deny_networks" in (denial_reason("::ffff:100.64.0.200", policy) or "")
    assert denial_reason("8.8.8.8", policy) is None


def test_a_scoped_ipv6_address_is_judged_without_its_zone() -> None:
    assert "link-local" in (denial_reason("fe80::1%eth0", DEFAULT) or "")
    assert denial_reason("2606:4700:4700::1111%1", DEFAULT) is None


def test_a_policy_from_configuration_with_every_key() -> None:
    policy = HostPolicy.from_config(
        {
            "allow_hosts": ["*.example.com", "API.Example.org."],
            "deny_hosts": ["bad.example.com"],
            "allow_networks": ["100.64.0.0/24"],
            "deny_networks": ["93.184.216.0/24", "10.1.2.3/8"],
            "allow_private": False,
        }
    )
    assert policy == HostPolicy(
        allow_hosts=("*.example.com", "api.example.org"),
        deny_hosts=("bad.example.com",),
        allow_networks=(ipaddress.ip_network("100.64.0.0/24"),),
        deny_networks=(ipaddress.ip_network("93.184.216.0/24"), ipaddress.ip_network("10.0.0.0/8")),
        allow_private=False,
    )
    assert denial_reason("93.184.216.34", policy) == "it is in deny_networks 93.184.216.0/24"
    assert HostPolicy.from_config({}) == HostPolicy()


def test_a_denial_names_the_host_and_the_address() -> None:
    with pytest.raises(HostDenied) as info:
        check_url("http://[::ffff:10.0.0.1]:80/", STRICT)
    assert (info.value.host, info.value.address) == ("::ffff:10.0.0.1", "::ffff:a00:1")
    with pytest.raises(HostDenied) as info:
        check_url("http://10.0.0.1/", STRICT)
    assert (info.value.host, info.value.address) == ("10.0.0.1", "10.0.0.1")
    assert info.value.message == (
        "refused to connect to 10.0.0.1: it is private (10.0.0.0/8) and allow_private is false; "
        "the agent's host policy forbids it"
    )


def test_a_policy_is_an_immutable_keyword_only_value() -> None:
    import dataclasses

    assert {HostPolicy(), HostPolicy()} == {DEFAULT}
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT.allow_private = False  # type: ignore[misc]
    with pytest.raises(TypeError):
        HostPolicy(("a",))  # type: ignore[misc]
    assert not hasattr(DEFAULT, "__dict__")


# -- messages, spellings and the resolver ----------------------------------------------------

LONG = "x" * 64 + ".com"

REFUSALS: list[tuple[str, HostPolicy, str]] = [
    ("http:///x", DEFAULT, "the URL has no host"),
    ("ftp://x/", DEFAULT, "URL scheme 'ftp' is not allowed (only http and https)"),
    ("http://[::1/", DEFAULT, "invalid URL: Invalid port: ':1'"),
    (
        "http://0x7f.1/",
        DEFAULT,
        "host '0x7f.1' is a non-canonical spelling of the address 127.0.0.1; such hosts are refused by "
        "the agent's host policy (write the address in dotted-decimal form)",
    ),
    (
        "http://bad.example.com/",
        HostPolicy(deny_hosts=("bad.example.com",), allow_hosts=("*.example.com",)),
        "host 'bad.example.com' matches deny_hosts entry 'bad.example.com'; "
        "the agent's host policy forbids it",
    ),
    (
        "http://other.org/",
        HostPolicy(allow_hosts=("*.example.com",)),
        "host 'other.org' is not in the agent's allow_hosts; the agent's host policy forbids it",
    ),
]


@pytest.mark.parametrize(("url", "policy", "message"), REFUSALS)
def test_refusal_messages(url: str, policy: HostPolicy, message: str) -> None:
    with pytest.raises(HostDenied) as info:
        check_url(url, policy)
    assert info.value.message == message


def test_https_and_http_are_the_schemes_allowed() -> None:
    check_url("https://example.com/", DEFAULT)
    check_url("http://example.com/", DEFAULT)


def test_a_malformed_numeric_host_is_refused_by_name() -> None:
    with pytest.raises(HostDenied) as info:
        check_host("1.2.3.999999", DEFAULT)
    assert (
        info.value.message
        == "host '1.2.3.999999' looks like a numeric address but is not a valid one; refused"
    )


def test_a_refusal_names_the_host_when_it_differs_from_the_address() -> None:
    with pytest.raises(HostDenied) as info:
        check_address("10.0.0.1", STRICT, host="db.internal")
    assert info.value.message == (
        "refused to connect to 10.0.0.1 (db.internal): it is private (10.0.0.0/8) and allow_private "
        "is false; the agent's host policy forbids it"
    )
    assert (info.value.host, info.value.address) == ("db.internal", "10.0.0.1")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"zeta": 1, "alpha": 2}, "unknown host policy key(s): alpha, zeta"),
        ({"allow_private": "yes"}, "allow_private must be true or false"),
        ({"deny_hosts": "x"}, "deny_hosts must be a list of non-empty strings"),
        (
            {"deny_networks": ["nope"]},
            "deny_networks: 'nope' is not a network in CIDR form "
            "('nope' does not appear to be an IPv4 or IPv6 network)",
        ),
    ],
)
def test_configuration_error_messages(config: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as info:
        HostPolicy.from_config(config)
    assert str(info.value) == message


def test_host_globs_are_normalised() -> None:
    policy = HostPolicy.from_config({"deny_hosts": ["[::1]", "Bad..", "x.example.", "[half"]})
    assert policy.deny_hosts == ("::1", "bad..", "x.example", "[half")


@pytest.mark.parametrize(
    ("host", "literal"),
    [
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("[::1", None),
        ("::1]", None),
        ("[10.0.0.1]", "10.0.0.1"),
        ("10.0.0.1", "10.0.0.1"),
    ],
)
def test_ip_literals_in_and_out_of_brackets(host: str, literal: str | None) -> None:
    found = ip_literal(host)
    assert (None if found is None else str(found)) == literal


@pytest.mark.parametrize(
    ("host", "address"),
    [("[::1]", "::1"), ("[::ffff:127.0.0.1]", "::ffff:7f00:1"), ("[FE80::1]", "fe80::1")],
)
def test_bracketed_hosts_are_checked_as_their_address(host: str, address: str) -> None:
    with pytest.raises(HostDenied) as info:
        check_host(host, STRICT)
    assert info.value.address is not None
    assert ipaddress.ip_address(info.value.address) == ipaddress.ip_address(address)


@pytest.mark.parametrize(
    ("host", "meaning"),
    [
        ("0x", "0.0.0.0"),
        ("0X10", "0.0.0.16"),
        ("0x1X", None),
        ("1.2.3.4.0", None),  # five parts
        ("1.256.0.1", None),  # a part over 255
        ("1.255.0.1", "1.255.0.1"),
        ("\u0661\u0662\u0667.0.0.1", None),  # non-ASCII digits are not numbers to the resolver
        ("08.0.0.1", None),  # not octal
        ("0", "0.0.0.0"),
    ],
)
def test_inet_aton_edges(host: str, meaning: str | None) -> None:
    found = inet_aton(host)
    assert (None if found is None else str(found)) == meaning


def test_numeric_looking_names() -> None:
    assert looks_numeric("host.123.") and looks_numeric("a.b.0x1f")
    assert not looks_numeric("example.\u0661\u0662") and not looks_numeric("example.com.")


async def test_resolve_checked_resolves_once_and_checks_every_address() -> None:
    assert await resolve_checked("localhost", 80, DEFAULT) in (
        ["127.0.0.1"],
        ["127.0.0.1", "::1"],
        ["::1", "127.0.0.1"],
    )
    assert await resolve_checked("::ffff:127.0.0.1", 80, DEFAULT) == ["::ffff:7f00:1"]  # a literal: no lookup
    assert await resolve_checked("[::1]", 80, DEFAULT) == ["::1"]
    with pytest.raises(HostDenied) as info:
        await resolve_checked("localhost", 80, STRICT)
    assert info.value.message.startswith("refused to connect to ")
    assert "(localhost): it is loopback" in info.value.message
    with pytest.raises(ResolveError) as failed:
        await resolve_checked(LONG, 80, DEFAULT)
    assert str(failed.value).startswith(f"cannot resolve host {LONG!r}: ")
