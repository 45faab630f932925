"""The agent's host policy: which hosts and addresses `api.request` may reach (the SSRF guard).

A runbook names a URL; whoever can submit a runbook or a parameter can therefore make the agent
send requests from inside its network. This module decides, from the *agent's* configuration only
(never from a runbook), whether a host name and every address it resolves to may be contacted.

The checks are pure functions (`check_host`, `check_address`, `check_url`) so the validator and
tests can use them without I/O. `resolve_checked` adds the one DNS lookup; the HTTP transport
connects to the addresses it returns and never resolves the name again, so a DNS answer that
changes between check and connect (rebinding) cannot slip through.

Denied by default, whatever `allow_private` says (only `allow_networks` can lift these):
link-local (169.254.0.0/16, fe80::/10), cloud metadata addresses, 0.0.0.0/8 and ::, multicast,
reserved 240.0.0.0/4 (incl. broadcast), and every IPv6 form that embeds a denied IPv4 address
(IPv4-mapped, IPv4-compatible, IPv4-translated, NAT64, 6to4, Teredo).

Numeric hosts that are not canonical dotted-decimal IPv4 (`2852039166`, `0xa9fea9fe`, `127.1`,
`0251.0376.0251.0376`, `169.254.169.254.`) are refused outright: the C resolver would turn them
into addresses (as `inet_aton` does), and no legitimate runbook needs them.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import trio

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

POLICY_KEYS = frozenset({"allow_hosts", "deny_hosts", "allow_networks", "deny_networks", "allow_private"})


def _nets(*pairs: tuple[str, str]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(cidr), label) for cidr, label in pairs)


# Checked in order, so the most specific label names the denial.
ALWAYS_DENIED: tuple[tuple[IPNetwork, str], ...] = _nets(
    ("169.254.169.254/32", "a cloud metadata service address"),
    ("100.100.100.200/32", "a cloud metadata service address (Alibaba Cloud)"),
    ("fd00:ec2::254/128", "a cloud metadata service address (AWS IPv6)"),
    ("169.254.0.0/16", "link-local (169.254.0.0/16)"),
    ("fe80::/10", "link-local (fe80::/10)"),
    ("0.0.0.0/8", "'this network' (0.0.0.0/8), which reaches the local host"),
    ("::/128", "the unspecified address (::), which reaches the local host"),
    ("224.0.0.0/4", "multicast (224.0.0.0/4)"),
    ("ff00::/8", "multicast (ff00::/8)"),
    ("240.0.0.0/4", "reserved (240.0.0.0/4, incl. broadcast)"),
)

# Allowed only when `allow_private` is true (the default: an agent often calls its own service).
PRIVATE: tuple[tuple[IPNetwork, str], ...] = _nets(
    ("127.0.0.0/8", "loopback (127.0.0.0/8)"),
    ("::1/128", "loopback (::1)"),
    ("10.0.0.0/8", "private (10.0.0.0/8)"),
    ("172.16.0.0/12", "private (172.16.0.0/12)"),
    ("192.168.0.0/16", "private (192.168.0.0/16)"),
    ("100.64.0.0/10", "shared address space (100.64.0.0/10)"),
    ("198.18.0.0/15", "benchmarking (198.18.0.0/15)"),
    ("192.0.0.0/24", "IETF protocol assignments (192.0.0.0/24)"),
    ("fc00::/7", "unique local (fc00::/7)"),
    ("fec0::/10", "site-local (fec0::/10)"),
)

_V4_COMPATIBLE = ipaddress.ip_network("::/96")
_V4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


class HostDenied(Exception):
    """The agent's host policy forbids this host or address. Never worth retrying."""

    def __init__(self, message: str, *, host: str | None = None, address: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.host = host
        self.address = address


class ResolveError(Exception):
    """The host name did not resolve (possibly transient, unlike `HostDenied`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HostPolicy:
    """The agent's rules. Explicit denials beat explicit allowances, which beat the defaults."""

    allow_hosts: tuple[str, ...] = ()  # host globs; when non-empty, only these hosts
    deny_hosts: tuple[str, ...] = ()
    allow_networks: tuple[IPNetwork, ...] = ()  # lift the default denials for these ranges
    deny_networks: tuple[IPNetwork, ...] = ()
    allow_private: bool = True

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> HostPolicy:
        """Build from the agent configuration; a malformed entry is an error, never ignored."""
        unknown = sorted(set(config) - POLICY_KEYS)
        if unknown:
            raise ValueError(f"unknown host policy key(s): {', '.join(unknown)}")
        allow_private = config.get("allow_private", True)
        if not isinstance(allow_private, bool):
            raise ValueError("allow_private must be true or false")
        return cls(
            allow_hosts=_globs(config, "allow_hosts"),
            deny_hosts=_globs(config, "deny_hosts"),
            allow_networks=_networks(config, "allow_networks"),
            deny_networks=_networks(config, "deny_networks"),
            allow_private=allow_private,
        )


def _strings(config: Mapping[str, Any], key: str) -> list[str]:
    value = config.get(key, [])
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{key} must be a list of non-empty strings")
    return list(value)


def _globs(config: Mapping[str, Any], key: str) -> tuple[str, ...]:
    return tuple(_normalise_name(glob) for glob in _strings(config, key))


def _networks(config: Mapping[str, Any], key: str) -> tuple[IPNetwork, ...]:
    networks: list[IPNetwork] = []
    for text in _strings(config, key):
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError as exc:
            raise ValueError(f"{key}: {text!r} is not a network in CIDR form ({exc})") from None
    return tuple(networks)


def _normalise_name(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host[:-1] if host.endswith(".") and not host.endswith("..") else host


# ---------------------------------------------------------------------------------------------
# Numeric host spellings


def _number_part(text: str) -> int | None:
    """One part of an `inet_aton` address: decimal, 0x-hex or 0-octal; None if it is not one."""
    if text[:2] in ("0x", "0X"):
        digits = text[2:]
        if not digits:
            return 0
        return int(digits, 16) if all(c in "0123456789abcdefABCDEF" for c in digits) else None
    if not text or not text.isascii() or not text.isdigit():
        return None
    if len(text) > 1 and text.startswith("0"):
        return int(text, 8) if all(c in "01234567" for c in text) else None
    return int(text)


def looks_numeric(host: str) -> bool:
    """Whether a resolver or browser would read this host as an IPv4 number (its last label is one)."""
    name = host[:-1] if host.endswith(".") else host
    last = name.rsplit(".", 1)[-1]
    return _number_part(last) is not None


def inet_aton(host: str) -> ipaddress.IPv4Address | None:
    """What the C library's `inet_aton` makes of `host` (1 to 4 parts, any base), or None."""
    name = host[:-1] if host.endswith(".") else host
    parts = name.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers = [_number_part(part) for part in parts]
    if any(n is None for n in numbers):
        return None
    values = [n for n in numbers if n is not None]
    *head, last = values
    if any(v > 0xFF for v in head) or last >= 1 << (8 * (5 - len(values))):
        return None
    value = 0
    for v in head:
        value = value << 8 | v
    value = value << (8 * (5 - len(values))) | last
    return ipaddress.IPv4Address(value)


def ip_literal(host: str) -> IPAddress | None:
    """The address if `host` is a canonical IP literal (dotted-decimal IPv4 or IPv6), else None."""
    name = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------
# The checks


def _match(host: str, globs: Iterable[str]) -> str | None:
    return next((glob for glob in globs if fnmatch.fnmatchcase(host, glob)), None)


def check_host(host: str, policy: HostPolicy) -> None:
    """Check a URL host (name or literal) before any lookup; raise `HostDenied` if refused."""
    bare = host.strip().lower()
    bare = bare[1:-1] if bare.startswith("[") and bare.endswith("]") else bare
    name = _normalise_name(bare)  # without a trailing dot, for the globs
    if not name:
        raise HostDenied("the URL has no host", host=host)
    literal = ip_literal(bare)
    if literal is None and looks_numeric(bare):
        meaning = inet_aton(bare)
        if meaning is None:
            raise HostDenied(
                f"host {host!r} looks like a numeric address but is not a valid one; refused",
                host=host,
            )
        raise HostDenied(
            f"host {host!r} is a non-canonical spelling of the address {meaning}; such hosts are "
            f"refused by the agent's host policy (write the address in dotted-decimal form)",
            host=host,
            address=str(meaning),
        )
    denied_by = _match(name, policy.deny_hosts)
    if denied_by is not None:
        raise HostDenied(
            f"host {name!r} matches deny_hosts entry {denied_by!r}; the agent's host policy forbids it",
            host=host,
        )
    if policy.allow_hosts and _match(name, policy.allow_hosts) is None:
        raise HostDenied(
            f"host {name!r} is not in the agent's allow_hosts; the agent's host policy forbids it",
            host=host,
        )
    if literal is not None:
        check_address(literal, policy, host=host)


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries, by every standard embedding."""
    found: list[ipaddress.IPv4Address] = []
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    elif (
        address in _V4_TRANSLATED
        or any(address in net for net in _NAT64)
        or (address in _V4_COMPATIBLE and int(address) > 1)  # IPv4-compatible, but not :: or ::1
    ):
        found.append(low32)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    return found


def denial_reason(address: IPAddress | str, policy: HostPolicy) -> str | None:
    """Why `address` is denied, or None if the policy allows it. Pure; the core of the guard."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id is not None:
        ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
    for net in policy.deny_networks:
        if ip.version == net.version and ip in net:
            return f"it is in deny_networks {net}"
    if any(ip.version == net.version and ip in net for net in policy.allow_networks):
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        for inner in embedded_ipv4(ip):
            reason = denial_reason(inner, policy)
            if reason is not None:
                return f"it embeds the IPv4 address {inner}, and {reason}"
        if embedded_ipv4(ip):
            return None  # judged by the IPv4 address it carries
    for net, label in ALWAYS_DENIED:
        if ip.version == net.version and ip in net:
            return f"it is {label}"
    if not policy.allow_private:
        for net, label in PRIVATE:
            if ip.version == net.version and ip in net:
                return f"it is {label} and allow_private is false"
    return None


def check_address(address: IPAddress | str, policy: HostPolicy, *, host: str | None = None) -> None:
    """Raise `HostDenied` naming the address and the reason if the policy forbids it."""
    reason = denial_reason(address, policy)
    if reason is None:
        return
    target = f"{address}" if host is None or _normalise_name(host) == str(address) else f"{address} ({host})"
    raise HostDenied(
        f"refused to connect to {target}: {reason}; the agent's host policy forbids it",
        host=host,
        address=str(address),
    )


def check_url(url: str, policy: HostPolicy) -> None:
    """Check a URL's scheme and host as httpx parses it (no DNS); raise `HostDenied` if refused."""
    import httpx  # the parser that will really be used; imported here to keep this module light

    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise HostDenied(f"invalid URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise HostDenied(f"URL scheme {parsed.scheme!r} is not allowed (only http and https)")
    check_host(parsed.raw_host.decode("ascii"), policy)


async def resolve_checked(host: str, port: int, policy: HostPolicy) -> list[str]:
    """Resolve `host` once and check every address; return them for the caller to connect to.

    If any address is denied the whole host is refused: a name that resolves to both a public
    and a metadata address must not be reachable by retrying until the lucky answer comes up.
    """
    check_host(host, policy)
    literal = ip_literal(host)
    if literal is not None:
        return [str(literal)]
    try:
        infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise ResolveError(f"cannot resolve host {host!r}: {exc}") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise ResolveError(f"host {host!r} resolved to no address")
    for address in addresses:
        check_address(address, policy, host=host)
    return addresses
