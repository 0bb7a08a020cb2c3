"""Which URLs and IP addresses a URL source may be fetched from (the policy of the SSRF guard).

:func:`check_parsed` is the whole check (scheme, host, every resolved address) behind
:func:`aisubs.media.fetch.check_url`. :func:`resolve` turns a host into its addresses (an IP
literal as is, a name through ``socket.getaddrinfo`` in a daemon thread, so that the caller
decides how long to wait) and :func:`address_allowed` judges each of them.

An address is allowed when it is public (not private, loopback, link-local, multicast,
reserved, unspecified, shared/CGNAT or a cloud metadata address) or lies in one of the
operator's ``MediaSettings.allow_networks``. IPv6 forms that carry an IPv4 address are judged
by that IPv4 address too, since that is where the packets end up:

* IPv4-mapped ``::ffff:a.b.c.d`` is ``a.b.c.d`` itself and is judged as such;
* 6to4 ``2002:AABB:CCDD::/48`` is relayed to ``AA.BB.CC.DD``;
* Teredo ``2001:0::/32`` names a server and a client IPv4 address;
* NAT64 ``64:ff9b::a.b.c.d`` is translated to ``a.b.c.d``.

For those (other than IPv4-mapped) both the IPv6 address and every embedded IPv4 address
must pass: allowing ``2001::/32`` or ``2002::/16`` never opens the private network behind it.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from aisubs.errors import FetchFailed, ForbiddenURL
from aisubs.settings import MediaSettings

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_SCHEMES = frozenset({"http", "https"})
NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")

# Metadata endpoints of the big clouds. Most are link-local and refused anyway; they are
# listed so that an allow_networks entry for a wider range (fc00::/7, 100.64.0.0/10,
# 169.254.0.0/16) never opens them by accident: only an exact /32 or /128 entry does.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.253",  # AWS DNS
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::253",
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
    )
)


@dataclass(frozen=True)
class CheckedURL:
    """A URL whose host resolved to addresses that may be contacted, in resolver order."""

    url: httpx.URL
    addresses: tuple[IPAddress, ...]


def check_parsed(
    parsed: httpx.URL, settings: MediaSettings, wait: Callable[[threading.Event], None]
) -> CheckedURL:
    """Refuse ``parsed`` unless every address its host resolves to is allowed.

    ``wait`` bounds the name resolution (see :func:`resolve`). The message names only the
    redacted URL and the reason; what the name resolved to is logged, never shown to users.
    """
    host = parsed.raw_host.decode("ascii")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    addresses = resolve(host, port, wait)
    allowed = allowed_networks(settings.allow_networks)
    refused = [a for a in addresses if not address_allowed(a, allowed)]
    if refused:
        logger.warning(
            "refusing to fetch %s: %s resolves to %s, a private or reserved address",
            redact(parsed),
            host,
            ", ".join(str(a) for a in refused),
        )
        what = "the host is" if ip_literal(host) is not None else "the host resolves to"
        raise ForbiddenURL(
            f"refusing to fetch {redact(parsed)}: {what} a private or reserved address"
        )
    return CheckedURL(url=parsed, addresses=addresses)


def parse_url(url: str) -> httpx.URL:
    """Parse ``url``, refusing anything but http(s) URLs with a host."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise ForbiddenURL(f"not a valid URL: {url!r}") from exc
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise ForbiddenURL(f"only http and https URLs may be fetched, not {parsed.scheme!r}")
    if not parsed.raw_host:
        raise ForbiddenURL(f"the URL has no host: {url!r}")
    return parsed


def redact(url: httpx.URL) -> str:
    """The URL without credentials or query (it may carry a signed token) for messages."""
    return str(url.copy_with(userinfo=b"", query=None, fragment=None))


def ip_literal(host: str) -> IPAddress | None:
    """The address when ``host`` is an IP literal (IPv6 with or without brackets), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def resolve(host: str, port: int, wait: Callable[[threading.Event], None]) -> tuple[IPAddress, ...]:
    """The addresses of ``host``, deduplicated, in resolver order.

    ``wait(done)`` must block until ``done`` is set or raise (the caller's deadline or cancel):
    the lookup runs in a daemon thread because ``getaddrinfo`` cannot be interrupted, and one
    that outlives the wait is abandoned (it ends on its own; its answer is dropped).
    """
    literal = ip_literal(host)
    if literal is not None:
        return (literal,)
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in _getaddrinfo(host, port, wait):
        address = ip_literal(str(sockaddr[0]).split("%", 1)[0])
        if address is not None and address not in addresses:
            addresses.append(address)
    if not addresses:
        raise FetchFailed(f"host {host!r} has no addresses", code="dns_failed")
    return tuple(addresses)


def _getaddrinfo(host: str, port: int, wait: Callable[[threading.Event], None]) -> list[Any]:
    answer: list[Any] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            answer.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except Exception as exc:  # handed over to the waiting thread
            answer.append(exc)
        finally:
            done.set()

    threading.Thread(target=lookup, name="aisubs-dns", daemon=True).start()
    wait(done)
    outcome = answer[0] if answer else OSError("the lookup gave no answer")
    if isinstance(outcome, OSError | UnicodeError):
        raise FetchFailed(f"cannot resolve host {host!r}: {outcome}", code="dns_failed")
    if isinstance(outcome, Exception):
        raise outcome
    return list(outcome)


def allowed_networks(cidrs: Iterable[str]) -> list[IPNetwork]:
    """Parse the operator's ``allow_networks`` entries."""
    return [ipaddress.ip_network(cidr, strict=False) for cidr in cidrs]


def address_allowed(address: IPAddress, allowed: list[IPNetwork]) -> bool:
    """True when ``address`` and every IPv4 address it embeds may be contacted."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _single_allowed(address.ipv4_mapped, allowed)  # ::ffff:10.0.0.1 is 10.0.0.1
    return all(_single_allowed(a, allowed) for a in (address, *embedded_ipv4(address)))


def embedded_ipv4(address: IPAddress) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses a 6to4, Teredo or NAT64 address leads to (none for others)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return ()
    if address.sixtofour is not None:
        return (address.sixtofour,)
    if address.teredo is not None:
        return address.teredo  # (server, client)
    if address in NAT64_PREFIX:
        return (ipaddress.IPv4Address(int(address) & 0xFFFFFFFF),)
    return ()


def _single_allowed(address: IPAddress, allowed: list[IPNetwork]) -> bool:
    for net in allowed:
        if address.version != net.version or address not in net:
            continue
        # A metadata service opens only with an entry naming exactly that address,
        # never as a side effect of allowing a wider private range.
        if address not in METADATA_ADDRESSES or net.num_addresses == 1:
            return True
    return is_public(address)


def is_public(address: IPAddress) -> bool:
    """Globally routable and none of the special ranges (metadata addresses included)."""
    if address in METADATA_ADDRESSES:
        return False
    return address.is_global and not (
        address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or address.is_loopback
        or address.is_link_local
        or address.is_private
    )
