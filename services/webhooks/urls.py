"""Which webhook URLs tallyflow will call: http(s) only, public addresses unless allowed.

NOTE: a URL naming a loopback, private, link-local or otherwise non-global address (the
cloud metadata endpoint 169.254.169.254 included) would let an API caller make tallyflow
probe its own network (SSRF). Such URLs are refused at registration (422) and, since a
name can resolve differently later, again at each delivery, unless
TALLYFLOW_WEBHOOK_ALLOW_PRIVATE is true (receivers on an internal network).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from tallyflow.core.errors import InvalidInput

MAX_URL_LENGTH = 2000
Resolver = Callable[[str], Iterable[str]]


def resolve_host(host: str) -> list[str]:
    """The addresses a host name resolves to (empty when it does not resolve)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return []
    return sorted({str(info[4][0]) for info in infos})


def is_public_address(address: str) -> bool:
    """True for a globally routable address (an IPv4-mapped IPv6 address by its IPv4)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return bool(ip.is_global) and not ip.is_multicast


def private_addresses(host: str, resolve: Resolver = resolve_host) -> list[str]:
    """The non-public addresses `host` is or resolves to ("localhost" names included)."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return [name]
    try:
        addresses: Iterable[str] = [str(ipaddress.ip_address(name))]
    except ValueError:
        addresses = resolve(name)
    return [a for a in addresses if not is_public_address(a)]


def validate_webhook_url(url: str, *, allow_private: bool, resolve: Resolver = resolve_host) -> str:
    """The URL if tallyflow may call it; InvalidInput (422) naming the problem otherwise.

    A host name that does not resolve now is accepted (its deliveries fail and are
    retried, and every attempt checks the address again).
    """
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"url: longer than {MAX_URL_LENGTH} characters", code="invalid_url")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise InvalidInput(f"url: {exc}", code="invalid_url") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidInput("url: only http and https URLs are allowed", code="invalid_url")
    if not host:
        raise InvalidInput("url: needs a host", code="invalid_url")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("url: must not carry credentials", code="invalid_url")
    if any(ch.isspace() for ch in url):
        raise InvalidInput("url: must not contain whitespace", code="invalid_url")
    if not allow_private:
        refused = private_addresses(host, resolve)
        if refused:
            raise InvalidInput(
                f"url: {host} is a loopback or private address ({', '.join(refused)});"
                " set TALLYFLOW_WEBHOOK_ALLOW_PRIVATE=true for receivers on an internal network",
                code="private_url",
            )
    return url
