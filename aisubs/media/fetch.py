"""Download URL sources without letting users reach our private network (SSRF guard).

A submitted URL is fetched by our own machines, which can see the cloud metadata service,
the database and everything else on the private network. So before any connection:

* only ``http`` and ``https`` are accepted;
* the host name is resolved **once** and *every* address it resolves to must be public
  (not private, loopback, link-local, multicast, reserved, unspecified, shared/CGNAT or a
  cloud metadata address) unless it lies in ``MediaSettings.allow_networks``;
* the connection then goes to that checked address, never to a second resolution
  (DNS rebinding): the request URL carries the IP literal while the ``Host`` header keeps the
  original name. For ``https`` the TLS handshake is told the original name through httpcore's
  ``sni_hostname`` request extension, so SNI is sent and the certificate is verified against
  the original host name, not against the IP;
* redirects are followed by hand, each hop checked like the first, at most
  ``fetch_max_redirects`` of them;
* the body may not exceed ``max_upload_bytes``: a larger ``Content-Length`` is refused before
  reading, and the count is enforced while streaming (servers may lie or omit the header);
* ``fetch_timeout_s`` bounds each network operation and the whole download: the deadline is
  checked between chunks and every read waits at most the time that was left.

Errors: :class:`~aisubs.errors.ForbiddenURL` (never retried) for refused schemes and
addresses, :class:`~aisubs.errors.MediaTooLarge`, and :class:`~aisubs.errors.FetchFailed`:
retryable for network errors, time-outs, 5xx, 408 and 429; not retryable for other 4xx
answers (the origin said no; asking again will not change that).

Everything here is synchronous (like the job store); async callers use ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import ssl
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx

from aisubs.errors import FetchFailed, ForbiddenURL, MediaTooLarge
from aisubs.settings import MediaSettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_SCHEMES = frozenset({"http", "https"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# 4xx answers that mean "try again later" rather than "no".
RETRYABLE_CLIENT_STATUSES = frozenset({408, 425, 429})
CHUNK_BYTES = 256 * 1024

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
class FetchResult:
    """What a download produced: its size, the declared type and where it finally came from."""

    bytes: int
    content_type: str | None
    final_url: str


@dataclass(frozen=True)
class CheckedURL:
    """A URL whose host resolved to addresses that may be contacted, in resolver order."""

    url: httpx.URL
    addresses: tuple[IPAddress, ...]


def check_url(url: str, settings: MediaSettings) -> CheckedURL:
    """Refuse a URL we must not fetch; return it with the addresses it may be fetched from.

    The API calls this at submit time so that a bad URL is refused at once, and
    :func:`fetch_url` calls it again for the URL and for every redirect target (DNS can
    change between submit and run). It resolves the name (blocking) but never connects.
    """
    parsed = _parse(url)
    host = parsed.raw_host.decode("ascii")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    addresses = _resolve(host, port)
    allowed = _allowed_networks(settings)
    for address in addresses:
        if not _address_allowed(address, allowed):
            raise ForbiddenURL(
                f"refusing to fetch {_redact(parsed)}: {host} resolves to {address}, "
                "a private or reserved address"
            )
    return CheckedURL(url=parsed, addresses=addresses)


def fetch_url(
    url: str,
    dest: BinaryIO | Path,
    settings: MediaSettings,
    *,
    verify: ssl.SSLContext | bool = True,
) -> FetchResult:
    """Download ``url`` into ``dest`` (an open binary file, or a path written atomically).

    ``verify`` is passed to httpx (an ``ssl.SSLContext`` to trust a private CA; ``True`` uses
    the system trust store). When ``dest`` is a path, the body is written to a temporary file
    beside it and renamed at the end, so a failed download leaves nothing behind. When it is
    an open file, whatever was written before a failure stays: the caller owns that file.
    """
    if isinstance(dest, Path):
        return _fetch_to_path(url, dest, settings, verify)
    return _fetch(url, dest, settings, verify)


def _fetch_to_path(
    url: str, dest: Path, settings: MediaSettings, verify: ssl.SSLContext | bool
) -> FetchResult:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            result = _fetch(url, out, settings, verify)
        os.replace(tmp_name, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    return result


def _fetch(
    url: str, out: BinaryIO, settings: MediaSettings, verify: ssl.SSLContext | bool
) -> FetchResult:
    deadline = time.monotonic() + settings.fetch_timeout_s
    current = url
    # trust_env=False: a proxy from the environment would resolve names itself and defeat
    # the address check; redirects are followed by hand so each hop is checked.
    with httpx.Client(trust_env=False, follow_redirects=False, verify=verify) as client:
        for _hop in range(settings.fetch_max_redirects + 1):
            checked = check_url(current, settings)
            with _open_response(client, checked, deadline) as response:
                if response.status_code in REDIRECT_STATUSES:
                    current = _redirect_target(checked.url, response)
                    continue
                _raise_for_status(response, checked.url)
                _check_declared_length(response, settings.max_upload_bytes)
                written = _copy_body(response, out, settings.max_upload_bytes, deadline)
                return FetchResult(
                    bytes=written,
                    content_type=response.headers.get("content-type"),
                    final_url=str(checked.url),
                )
    raise FetchFailed(
        f"more than {settings.fetch_max_redirects} redirects fetching {_redact(_parse(url))}",
        code="too_many_redirects",
        retryable=False,
    )


@contextlib.contextmanager
def _open_response(
    client: httpx.Client, checked: CheckedURL, deadline: float
) -> Iterator[httpx.Response]:
    """Send the request to the first checked address, keeping the name for Host and SNI."""
    url = checked.url
    address = checked.addresses[0]
    pinned = url.copy_with(host=str(address))  # httpx brackets IPv6 literals itself
    host_header = url.netloc.decode("ascii")  # name[:port], without any userinfo
    remaining = _remaining(deadline, url)
    extensions: dict[str, object] = {}
    if url.scheme == "https":
        extensions["sni_hostname"] = url.raw_host.decode("ascii")
    request = client.build_request(
        "GET",
        pinned,
        headers={"Host": host_header, "Accept-Encoding": "identity"},
        timeout=httpx.Timeout(remaining),
        extensions=extensions,
    )
    try:
        response = client.send(request, stream=True)
    except httpx.TimeoutException as exc:
        raise FetchFailed(
            f"timed out fetching {_redact(url)}: {exc}", code="fetch_timeout"
        ) from exc
    except httpx.HTTPError as exc:
        raise FetchFailed(f"could not fetch {_redact(url)}: {exc}") from exc
    try:
        yield response
    finally:
        response.close()


def _copy_body(response: httpx.Response, out: BinaryIO, max_bytes: int, deadline: float) -> int:
    written = 0
    try:
        for chunk in response.iter_bytes(CHUNK_BYTES):
            written += len(chunk)
            if written > max_bytes:
                raise MediaTooLarge(f"the download is larger than the limit of {max_bytes} bytes")
            out.write(chunk)
            if time.monotonic() > deadline:
                raise FetchFailed(
                    f"download did not finish within the time limit ({written} bytes read)",
                    code="fetch_timeout",
                )
    except httpx.TimeoutException as exc:
        raise FetchFailed(f"timed out reading the download: {exc}", code="fetch_timeout") from exc
    except httpx.HTTPError as exc:
        raise FetchFailed(f"the download broke off: {exc}") from exc
    return written


def _check_declared_length(response: httpx.Response, max_bytes: int) -> None:
    declared = response.headers.get("content-length")
    if declared is None:
        return
    try:
        length = int(declared)
    except ValueError:
        return  # a garbled header is ignored; the streaming count still applies
    if length > max_bytes:
        raise MediaTooLarge(
            f"the download declares {length} bytes, more than the limit of {max_bytes}"
        )


def _raise_for_status(response: httpx.Response, url: httpx.URL) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    retryable = status >= 500 or status in RETRYABLE_CLIENT_STATUSES
    raise FetchFailed(
        f"{_redact(url)} answered HTTP {status}",
        code="fetch_http_error",
        retryable=retryable,
    )


def _redirect_target(url: httpx.URL, response: httpx.Response) -> str:
    location = response.headers.get("location")
    if not location:
        raise FetchFailed(
            f"{_redact(url)} redirected without a Location header",
            code="fetch_http_error",
            retryable=False,
        )
    # Resolve relative locations against the URL with the original host name, not the IP.
    return str(url.join(location))


def _parse(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise ForbiddenURL(f"not a valid URL: {url!r}") from exc
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise ForbiddenURL(f"only http and https URLs may be fetched, not {parsed.scheme!r}")
    if not parsed.raw_host:
        raise ForbiddenURL(f"the URL has no host: {url!r}")
    return parsed


def _resolve(host: str, port: int) -> tuple[IPAddress, ...]:
    literal = _ip_literal(host)
    if literal is not None:
        return (literal,)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchFailed(f"cannot resolve host {host!r}: {exc}", code="dns_failed") from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise FetchFailed(f"host {host!r} has no addresses", code="dns_failed")
    return tuple(addresses)


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _allowed_networks(settings: MediaSettings) -> list[IPNetwork]:
    return [ipaddress.ip_network(cidr, strict=False) for cidr in settings.allow_networks]


def _address_allowed(address: IPAddress, allowed: list[IPNetwork]) -> bool:
    """True when ``address`` is public, or explicitly allowed by the operator."""
    candidates: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        candidates.append(address.ipv4_mapped)  # ::ffff:10.0.0.1 is 10.0.0.1
    for candidate in candidates:
        for net in allowed:
            if candidate.version != net.version or candidate not in net:
                continue
            # A metadata service opens only with an entry naming exactly that address,
            # never as a side effect of allowing a wider private range.
            if candidate not in METADATA_ADDRESSES or net.num_addresses == 1:
                return True
    return all(_is_public(candidate) for candidate in candidates)


def _is_public(address: IPAddress) -> bool:
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


def _remaining(deadline: float, url: httpx.URL) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FetchFailed(f"ran out of time fetching {_redact(url)}", code="fetch_timeout")
    return remaining


def _redact(url: httpx.URL) -> str:
    """The URL without credentials or query (it may carry a signed token) for messages."""
    return str(url.copy_with(userinfo=b"", query=None, fragment=None))
