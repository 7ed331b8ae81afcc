"""service/outbound.py: where the service may send a webhook, with a resolver injected (no DNS)."""

from __future__ import annotations

import socket

import pytest

from service.outbound import MAX_URL_LENGTH, Refused, Target, check

PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"


def resolver(*addresses: str, fail: bool = False):
    """A getaddrinfo that answers `addresses` for any name (or fails), recording what it was asked."""
    asked: list[tuple] = []

    def resolve(host, port, type=0):
        asked.append((host, port, type))
        if fail:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM, 6, "",
             (address, port, 0, 0) if ":" in address else (address, port))
            for address in addresses
        ]

    resolve.asked = asked  # type: ignore[attr-defined]
    return resolve


def refused(url: str, *addresses: str, allow_loopback: bool = False, fail: bool = False) -> str:
    with pytest.raises(Refused) as caught:
        check(url, allow_loopback=allow_loopback, resolve=resolver(*addresses, fail=fail))
    return str(caught.value)


def test_a_public_https_url_is_its_target_with_the_address_to_connect_to():
    resolve = resolver(PUBLIC_V4)
    target = check("https://hooks.example.com/in?a=1&b=2", allow_loopback=False, resolve=resolve)
    assert target == Target("https", "hooks.example.com", 443, "/in?a=1&b=2", PUBLIC_V4)
    assert resolve.asked == [("hooks.example.com", 443, socket.SOCK_STREAM)]
    assert check("https://hooks.example.com:8443", allow_loopback=False, resolve=resolver(PUBLIC_V6)) == Target(
        "https", "hooks.example.com", 8443, "/", PUBLIC_V6
    )


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1", "172.16.5.4", "192.168.1.1",  # private
        "127.0.0.1", "127.1.2.3", "::1",  # loopback
        "169.254.169.254", "fe80::1",  # link-local (the cloud metadata service)
        "100.64.0.1",  # shared (carrier-grade NAT)
        "0.0.0.0", "::",  # noqa: S104 - unspecified, refused
        "224.0.0.1", "ff02::1",  # multicast
        "192.0.2.1", "2001:db8::1",  # documentation
        "fc00::1",  # unique local
        "::ffff:10.0.0.1", "::ffff:127.0.0.1", "::ffff:169.254.169.254",  # IPv4-mapped IPv6
        "64:ff9b::a00:1", "64:ff9b::a9fe:a9fe",  # NAT64 of 10.0.0.1, 169.254.169.254
        "2002:a00:1::", "2002:a9fe:a9fe::1",  # 6to4 of 10.0.0.1, 169.254.169.254
        "233.252.0.1", "ff0e::1", "::ffff:224.0.0.1",  # multicast that Python 3.11 calls global
        "240.0.0.1",  # reserved
        "::7f00:1", "::a00:1",  # IPv4-compatible forms of 127.0.0.1, 10.0.0.1 (deprecated)
        "::ffff:0:7f00:1",  # IPv4-translated 127.0.0.1
        "64:ff9b:1::a00:1",  # local-use NAT64 of 10.0.0.1
        "fec0::1",  # site-local (deprecated), which Python 3.11 calls global
    ],
)
def test_an_address_that_is_not_public_is_refused_in_production(address):
    assert "not public" in refused("https://hooks.example.com/", address)


def test_an_ip_literal_is_checked_as_its_address():
    for url in ("https://10.0.0.1/", "https://[::1]/", "https://169.254.169.254/latest/meta-data/",
                "https://[::ffff:192.168.0.1]/"):
        with pytest.raises(Refused):
            check(url, allow_loopback=False)
    assert check(f"https://{PUBLIC_V4}/x", allow_loopback=False).address == PUBLIC_V4


def test_the_ipv6_forms_of_a_public_ipv4_address_are_public_and_connected_to_as_resolved():
    for address, connected in ((f"::ffff:{PUBLIC_V4}", PUBLIC_V4), (f"64:ff9b::{PUBLIC_V4}", "64:ff9b::5db8:d822"),
                               ("2002:5db8:d822::1", "2002:5db8:d822::1")):
        target = check("https://hooks.example.com/", allow_loopback=False, resolve=resolver(address))
        assert target.address == connected


def test_a_name_resolving_to_public_and_private_addresses_is_refused():
    assert "not public" in refused("https://hooks.example.com/", PUBLIC_V4, "10.0.0.1")
    assert "not public" in refused("https://hooks.example.com/", "127.0.0.1", PUBLIC_V4, allow_loopback=False)
    # Loopback allowed still refuses a private address beside it.
    assert "not public" in refused("https://hooks.example.com/", "127.0.0.1", "192.168.0.1", allow_loopback=True)


def test_loopback_and_http_only_when_allowed():
    assert "not public" in refused("http://localhost:8001/hooks", "127.0.0.1")
    assert "not public" in refused("https://localhost/hooks", "::1")
    assert check("http://localhost:8001/hooks", allow_loopback=True, resolve=resolver("127.0.0.1", "::1")) == Target(
        "http", "localhost", 8001, "/hooks", "127.0.0.1"
    )
    assert check("https://localhost/", allow_loopback=True, resolve=resolver("::1")).port == 443


def test_http_is_refused_to_a_public_address_even_with_loopback_allowed():
    for allow_loopback in (False, True):
        assert "https" in refused("http://hooks.example.com/", PUBLIC_V4, allow_loopback=allow_loopback)
    # A name resolving to loopback and a public address is not a local receiver.
    assert "https" in refused("http://hooks.example.com/", "127.0.0.1", PUBLIC_V4, allow_loopback=True)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://hooks.example.com/", "https://host/path"),
        ("file:///etc/passwd", "https://host/path"),
        ("gopher://hooks.example.com/", "https://host/path"),
        ("hooks.example.com/in", "https://host/path"),
        ("https:///in", "https://host/path"),
        ("https://user:pass@hooks.example.com/", "user name or password"),
        ("https://user@hooks.example.com/", "user name or password"),
        ("https://:pass@hooks.example.com/", "user name or password"),
        ("https://hooks.example.com/#frag", "#fragment"),
        ("https://hooks.example.com:0/", "port"),
        ("https://hooks.example.com:65536/", "URL"),
        ("https://hooks.example.com:99999999/", "valid URL"),
        ("https://hooks.example.com:http/", "valid URL"),
        ("https://[::1/", "valid URL"),
        ("https://hooks.example.com/" + "a" * MAX_URL_LENGTH, "longer than"),
        # What no request line or Host header can carry as is (a delivery would fail every time).
        ("https://hooks.example.com/é", "ASCII"),
        ("https://bücher.example/", "ASCII"),
        ("https://hooks.example.com/a b", "ASCII"),
        ("https://hooks.example.com/a\tb", "ASCII"),
        ("https://hooks.example.com/\r\nHost: evil", "ASCII"),
    ],
)
def test_a_malformed_url_is_refused_before_any_resolution(url, says):
    resolve = resolver(PUBLIC_V4)
    with pytest.raises(Refused) as caught:
        check(url, allow_loopback=True, resolve=resolve)
    assert says in str(caught.value)
    assert resolve.asked == []


def test_a_name_that_does_not_resolve_is_refused():
    assert "does not resolve" in refused("https://no-such-host.invalid/", fail=True)
    assert "does not resolve" in refused("https://hooks.example.com/")  # an empty answer


def test_the_longest_url_is_accepted():
    url = "https://hooks.example.com/" + "a" * (MAX_URL_LENGTH - len("https://hooks.example.com/"))
    assert len(url) == MAX_URL_LENGTH
    assert check(url, allow_loopback=False, resolve=resolver(PUBLIC_V4)).host == "hooks.example.com"
