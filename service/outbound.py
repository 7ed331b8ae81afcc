"""Where the service may send a request (webhooks): server-side request forgery stops here.

A URL is checked when a webhook is saved and again before each delivery, and the delivery connects
to an address this check returned, never resolving the name again (a name that resolves to a public
address at the check and a private one at the connection, DNS rebinding, reaches nothing). The rules:

- https only, no user or password in the URL, a host name or address, a port 1 to 65535;
- every address the host resolves to is public (ipaddress's is_global: not private, loopback,
  link-local, shared, reserved, documentation; and not multicast, which Python 3.11 counts as
  global), an IPv6 form of an IPv4 address (mapped ::ffff:0:0/96, NAT64 64:ff9b::/96, 6to4
  2002::/16) judged as that IPv4 address;
- with `allow_loopback` (a developer's machine, the test suite: WEBHOOKS_ALLOW_LOOPBACK) also http,
  and loopback addresses; every address must still be loopback or public.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048

Resolver = Callable[..., list]


class Refused(ValueError):
    """A URL the service must not send to; the message says why, for the client."""


@dataclass(frozen=True)
class Target:
    """A checked URL: what to connect to (`address`, `port`), and what to ask for there."""

    scheme: str
    host: str  # the name, for the Host header and the TLS certificate
    port: int
    path: str  # with its query
    address: str


def check(url: str, *, allow_loopback: bool, resolve: Resolver = socket.getaddrinfo) -> Target:
    """The target of `url` if the service may send to it; raises Refused otherwise."""
    if len(url) > MAX_URL_LENGTH:
        raise Refused(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    # What an HTTP request line and Host header can carry as is: printable ASCII, no spaces (a
    # name in another script is sent in its IDNA form, xn--...; a path's other characters
    # percent-encoded), so that a saved URL is one that can be sent.
    if not url.isascii() or not url.isprintable() or " " in url:
        raise Refused("The URL must be ASCII without spaces: percent-encode its path, IDNA-encode its host.")
    try:
        parts = urlsplit(url)
        port = parts.port if parts.port is not None else (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise Refused("Not a valid URL.") from exc
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise Refused("The URL must be https://host/path.")
    if parts.username is not None or parts.password is not None:
        raise Refused("The URL must not hold a user name or password.")
    if parts.fragment:
        raise Refused("The URL must not have a #fragment.")
    if not 0 < port < 65536:
        raise Refused("The URL's port must be 1 to 65535.")
    addresses = _resolve(parts.hostname, port, resolve)
    # Judged as the IPv4 address each stands for (the connection still goes to the one resolved).
    judged = [_as_ipv4(address) for address in addresses]
    loopback = [address.is_loopback for address in judged]
    if not all(_public(address) or (allow_loopback and address.is_loopback) for address in judged):
        raise Refused("The URL's host resolves to an address that is not public.")
    if parts.scheme == "http" and not (allow_loopback and all(loopback)):
        raise Refused("The URL must use https.")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(parts.scheme, parts.hostname, port, path, str(addresses[0]))


def _resolve(host: str, port: int, resolve: Resolver) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        found = resolve(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise Refused("The URL's host does not resolve.") from exc
    addresses = []
    for *_, sockaddr in found:
        address = ipaddress.ip_address(sockaddr[0].partition("%")[0])
        # ::ffff:10.0.0.1 is 10.0.0.1.
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        addresses.append(address)
    if not addresses:
        raise Refused("The URL's host does not resolve.")
    return addresses


_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
# Forms that carry an IPv4 address in their last 32 bits: IPv4-compatible (::a.b.c.d, deprecated)
# and IPv4-translated (::ffff:0:a.b.c.d).
_EMBEDDED = (ipaddress.IPv6Network("::/96"), ipaddress.IPv6Network("::ffff:0:0:0/96"))
# Deprecated site-local addresses, which Python's is_global does not count as private.
_SITE_LOCAL = ipaddress.IPv6Network("fec0::/10")


def _as_ipv4(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The IPv4 address an IPv6 one stands for, if it does: 64:ff9b::10.0.0.1 (through a NAT64
    gateway) and 2002:0a00:0001:: (6to4) reach 10.0.0.1. (_resolve has unwrapped ::ffff:0:0/96.)"""
    if isinstance(address, ipaddress.IPv4Address):
        return address
    if address.is_loopback or address.is_unspecified:  # ::1 and ::, themselves
        return address
    if any(address in network for network in (*_NAT64, *_EMBEDDED)):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour or address


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return address.is_global and not address.is_multicast and address not in _SITE_LOCAL
