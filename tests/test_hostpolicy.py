"""The agent's host policy, as pure functions: every spelling of a forbidden address is refused."""

from __future__ import annotations

import ipaddress
import re
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wpk.adapters.guards.hostpolicy import (
    HostDenied,
    HostPolicy,
    check_address,
    check_host,
    check_url,
    denial_reason,
    embedded_ipv4,
    inet_aton,
    looks_numeric,
)

DEFAULT = HostPolicy()

METADATA_URLS = [
    "http://169.254.169.254/latest/meta-data",
    "http://169.254.169.254:80/",
    "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://[0:0:0:0:0:ffff:a9fe:a9fe]/",
    "http://[::169.254.169.254]/",  # IPv4-compatible
    "http://[::ffff:0:a9fe:a9fe]/",  # IPv4-translated
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64
    "http://[2002:a9fe:a9fe::1]/",  # 6to4
    "http://[fd00:ec2::254]/",  # AWS IPv6 metadata
    "http://100.100.100.200/",  # Alibaba metadata
    "http://2852039166/",  # decimal
    "http://0xa9fea9fe/",  # hex
    "http://0xA9FEA9FE/",
    "http://0251.0376.0251.0376/",  # octal (httpx rejects this one as an invalid URL itself)
    "http://169.254.43518/",  # short form a.b.c
    "http://169.16689662/",  # short form a.b
    "http://0xa9.0xfe.0xa9.0xfe/",
    "http://169.254.169.254./",  # trailing dot
    "HTTP://169.254.169.254/",
]


@pytest.mark.parametrize("url", METADATA_URLS)
def test_every_spelling_of_the_metadata_address_is_refused(url: str) -> None:
    with pytest.raises(HostDenied) as info:
        check_url(url, DEFAULT)
    assert "refused" in info.value.message or "invalid URL" in info.value.message


@pytest.mark.parametrize(
    ("host", "meaning"),
    [
        ("2852039166", "169.254.169.254"),
        ("0xa9fea9fe", "169.254.169.254"),
        ("0251.0376.0251.0376", "169.254.169.254"),
        ("169.254.43518", "169.254.169.254"),
        ("169.16689662", "169.254.169.254"),
        ("127.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("0", "0.0.0.0"),
    ],
)
def test_non_canonical_numeric_hosts_are_refused_with_their_meaning(host: str, meaning: str) -> None:
    assert inet_aton(host) == ipaddress.IPv4Address(meaning)
    # what the C library makes of the same text, where it accepts it
    try:
        assert socket.inet_ntoa(socket.inet_aton(host)) == meaning
    except OSError:
        assert host.endswith(".")  # glibc refuses the trailing dot; resolvers still accept it
    with pytest.raises(HostDenied) as info:
        check_host(host, DEFAULT)
    assert meaning in info.value.message
    assert "non-canonical" in info.value.message
    assert info.value.address == meaning


@pytest.mark.parametrize("host", ["1.2.3.4.5", "999.1.1.1", "1.2.3.256", "08.1.1.1", "a.0x", "1..2"])
def test_malformed_numeric_hosts_are_refused(host: str) -> None:
    assert inet_aton(host) is None
    with pytest.raises(HostDenied, match=r"not a valid one|non-canonical"):
        check_host(host, DEFAULT)


@pytest.mark.parametrize(
    "host", ["example.com", "api.example.com", "localhost", "web-01", "1a.example", "x.1a", "0x1g"]
)
def test_ordinary_names_are_not_numeric(host: str) -> None:
    assert not looks_numeric(host)
    check_host(host, DEFAULT)  # no DNS here: only the name is judged


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_inet_aton_agrees_with_the_c_library_for_any_decimal_and_hex_number(value: int) -> None:
    for text in (str(value), hex(value)):
        assert inet_aton(text) == ipaddress.IPv4Address(socket.inet_aton(text))


@given(st.tuples(*(st.integers(0, 255) for _ in range(4))))
def test_inet_aton_agrees_with_the_c_library_for_octal_dotted_forms(octets: tuple[int, ...]) -> None:
    text = ".".join(f"0{n:o}" for n in octets)
    assert inet_aton(text) == ipaddress.IPv4Address(socket.inet_aton(text))


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("169.254.169.254", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("0.0.0.0", "this network"),
        ("0.1.2.3", "this network"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("255.255.255.255", "reserved"),
        ("::ffff:169.254.169.254", "embeds the IPv4 address 169.254.169.254"),
        ("::ffff:0.0.0.0", "embeds"),
        ("64:ff9b::169.254.169.254", "embeds"),
        ("64:ff9b:1::a9fe:a9fe", "embeds"),
        ("2002:a9fe:a9fe::", "embeds"),
        ("2001:0:4136:e378:8000:63bf:5601:5601", "embeds"),  # Teredo, client 169.254.169.254 obfuscated
    ],
)
def test_default_denials_hold_even_with_allow_private(address: str, words: str) -> None:
    reason = denial_reason(address, DEFAULT)
    assert reason is not None
    assert words in reason
    with pytest.raises(HostDenied, match="host policy forbids it"):
        check_address(address, DEFAULT)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "::1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "fd12::1",
        "::ffff:10.0.0.1",
        "93.184.216.34",
    ],
)
def test_private_and_public_addresses_are_allowed_by_default(address: str) -> None:
    assert denial_reason(address, DEFAULT) is None


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "::1", "10.1.2.3", "192.168.1.1", "fd12::1", "::ffff:127.0.0.1"]
)
def test_allow_private_false_denies_private_and_loopback(address: str) -> None:
    policy = HostPolicy(allow_private=False)
    reason = denial_reason(address, policy)
    assert reason is not None and "allow_private is false" in reason
    assert denial_reason("93.184.216.34", policy) is None
    assert denial_reason("2606:2800:220:1:248:1893:25c8:1946", policy) is None


def test_allow_networks_lifts_default_denials_but_not_explicit_ones() -> None:
    policy = HostPolicy.from_config(
        {"allow_networks": ["169.254.170.0/24"], "deny_networks": ["169.254.170.2/32"]}
    )
    assert denial_reason("169.254.170.1", policy) is None  # e.g. a deliberately allowed task-metadata range
    assert denial_reason("::ffff:169.254.170.1", policy) is None
    assert denial_reason("169.254.169.254", policy) is not None  # outside the allowance
    reason = denial_reason("169.254.170.2", policy)
    assert reason is not None and "deny_networks" in reason


def test_deny_networks_applies_to_embedded_ipv4_forms() -> None:
    policy = HostPolicy.from_config({"deny_networks": ["127.0.0.0/8"]})
    for address in ("127.0.0.1", "::ffff:127.0.0.1", "::ffff:7f00:1", "64:ff9b::7f00:1"):
        reason = denial_reason(address, policy)
        assert reason is not None and "deny_networks 127.0.0.0/8" in reason, address
    assert denial_reason("::1", policy) is None  # a different address family: deny it separately


def test_embedded_ipv4_extraction() -> None:
    six = ipaddress.IPv6Address
    four = ipaddress.IPv4Address
    assert embedded_ipv4(six("::ffff:1.2.3.4")) == [four("1.2.3.4")]
    assert embedded_ipv4(six("::1.2.3.4")) == [four("1.2.3.4")]
    assert embedded_ipv4(six("64:ff9b::1.2.3.4")) == [four("1.2.3.4")]
    assert embedded_ipv4(six("2002:102:304::")) == [four("1.2.3.4")]
    assert embedded_ipv4(six("::1")) == []
    assert embedded_ipv4(six("::")) == []
    assert embedded_ipv4(six("2606:2800:220:1::1")) == []


def test_host_globs() -> None:
    policy = HostPolicy.from_config(
        {"allow_hosts": ["*.example.com", "api.internal"], "deny_hosts": ["bad.example.com"]}
    )
    check_host("a.example.com", policy)
    check_host("A.B.Example.COM.", policy)  # case and the trailing dot do not matter
    check_host("api.internal", policy)
    with pytest.raises(HostDenied, match="not in the agent's allow_hosts"):
        check_host("example.com", policy)  # `*.` needs a label
    with pytest.raises(HostDenied, match="not in the agent's allow_hosts"):
        check_host("evil.com", policy)
    with pytest.raises(HostDenied, match=re.escape("deny_hosts entry 'bad.example.com'")):
        check_host("bad.example.com", policy)


def test_allow_hosts_also_limits_ip_literals() -> None:
    policy = HostPolicy.from_config({"allow_hosts": ["127.0.0.1"]})
    check_url("http://127.0.0.1:8080/x", policy)
    with pytest.raises(HostDenied):
        check_url("http://[::1]/", policy)


def test_check_url_refuses_other_schemes_and_invalid_urls() -> None:
    with pytest.raises(HostDenied, match="scheme 'file'"):
        check_url("file:///etc/passwd", DEFAULT)
    with pytest.raises(HostDenied, match="invalid URL"):
        check_url("http://[::1/", DEFAULT)
    with pytest.raises(HostDenied, match="no host"):
        check_host("", DEFAULT)


def test_check_url_uses_the_parser_httpx_uses() -> None:
    # A backslash before '@' confuses some URL parsers about the host; httpx connects to the
    # address after it, so that is the host that must be judged.
    with pytest.raises(HostDenied, match=re.escape("169.254.169.254")):
        check_url("http://a\\@169.254.169.254/", DEFAULT)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"allow_private": "yes"}, "allow_private"),
        ({"deny_networks": ["10.0.0.0/33"]}, "not a network"),
        ({"deny_networks": "10.0.0.0/8"}, "list of non-empty strings"),
        ({"allow_hosts": [""]}, "list of non-empty strings"),
        ({"deny_network": ["10.0.0.0/8"]}, "unknown host policy key"),
    ],
)
def test_malformed_configuration_is_an_error(config: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HostPolicy.from_config(config)
