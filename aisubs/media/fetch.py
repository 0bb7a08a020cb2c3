"""Download URL sources without letting users reach our private network (SSRF guard).

A submitted URL is fetched by our own machines, which can see the cloud metadata service,
the database and everything else on the private network. So before any connection:

* only ``http`` and ``https`` are accepted;
* the host name is resolved **once** and *every* address it resolves to must be allowed by
  :mod:`aisubs.media.addresses` (public, or in ``MediaSettings.allow_networks``; IPv6 forms
  that embed an IPv4 address, i.e. IPv4-mapped, 6to4, Teredo and NAT64, are judged by that
  IPv4 address too);
* the connection then goes to that checked address, never to a second resolution
  (DNS rebinding): the request URL carries the IP literal while the ``Host`` header keeps the
  original name. For ``https`` the TLS handshake is told the original name through httpcore's
  ``sni_hostname`` request extension, so SNI is sent and the certificate is verified against
  the original host name, not against the IP;
* redirects are followed by hand, each hop checked like the first, at most
  ``fetch_max_redirects`` of them;
* the body may not exceed ``max_upload_bytes``: a larger ``Content-Length`` is refused before
  reading, and the count is enforced while streaming (servers may lie or omit the header).

Time and cancellation. ``fetch_timeout_s`` is an absolute deadline for the whole download
(DNS, connect, TLS, headers, every body read, every redirect hop), enforced by a watchdog
thread. The watchdog trips at the deadline, or as soon as the caller's ``cancel`` event is
set; tripping shuts down the connection's socket (a duplicate of it is taken as soon as TCP
connects, through httpcore's ``trace`` extension), so a blocked handshake or read returns at
once instead of waiting for the peer. Each request's httpx timeouts are also the time left
when it is sent, and the TCP connect (the one step with no socket to shut down yet) waits at
most ``CONNECT_TIMEOUT_S``. Body bytes are handed over as they arrive, so the deadline and
the cancel event are checked after every read too. Name resolution runs in a daemon thread
that is waited for only as long as the deadline allows; a lookup that outlives it is
abandoned (its late answer is dropped). :func:`check_url` bounds its resolution the same way.

Errors: :class:`~aisubs.errors.ForbiddenURL` (never retried) for refused schemes and
addresses, :class:`~aisubs.errors.MediaTooLarge`, :class:`~aisubs.errors.Cancelled` when the
``cancel`` event stopped the download, and :class:`~aisubs.errors.FetchFailed`: retryable
for network errors, time-outs (``fetch_timeout``, ``dns_timeout``), DNS failures, 5xx, 408,
425 and 429; not retryable for other 4xx answers (the origin said no; asking again will not
change that) and too many redirects. Messages name only the URL without credentials or query
and the reason: what a name resolves to, the pinned address and the low-level error text
are logged (``logging`` warning), never put in the message a user sees.

Everything here is synchronous (like the job store); async callers use ``asyncio.to_thread``
and pass a ``threading.Event`` as ``cancel`` to stop a download from outside.
"""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx

from aisubs.errors import AisubsError, FetchFailed, MediaTooLarge
from aisubs.media.addresses import CheckedURL, check_parsed, parse_url, redact
from aisubs.media.watchdog import Watchdog
from aisubs.settings import MediaSettings

__all__ = ["CheckedURL", "FetchResult", "check_url", "fetch_url"]

logger = logging.getLogger(__name__)

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# 4xx answers that mean "try again later" rather than "no".
RETRYABLE_CLIENT_STATUSES = frozenset({408, 425, 429})
# check_url's bound on name resolution when the caller gives none (and fetch_timeout_s is
# longer): the API calls it while the client waits for an answer.
DNS_TIMEOUT_S = 10.0
# A TCP connect cannot be interrupted (no socket is exposed before it completes): this caps
# how long one waits, and so how late a cancel can be noticed during it.
CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class FetchResult:
    """What a download produced: its size, the declared type and where it finally came from."""

    bytes: int
    content_type: str | None
    final_url: str


def check_url(url: str, settings: MediaSettings, *, timeout_s: float | None = None) -> CheckedURL:
    """Refuse a URL we must not fetch; return it with the addresses it may be fetched from.

    The API calls this at submit time so that a bad URL is refused at once, and
    :func:`fetch_url` checks again the URL and every redirect target (DNS can change between
    submit and run). It resolves the name but never connects; resolution waits at most
    ``timeout_s`` (default: ``fetch_timeout_s``, at most ``DNS_TIMEOUT_S``), then raises
    ``FetchFailed(code="dns_timeout")``.
    """
    parsed = parse_url(url)
    limit = min(settings.fetch_timeout_s, DNS_TIMEOUT_S) if timeout_s is None else timeout_s
    deadline = time.monotonic() + limit

    def wait(done: threading.Event) -> None:
        if not done.wait(max(deadline - time.monotonic(), 0.0)):
            raise FetchFailed(
                f"resolving the host of {redact(parsed)} took longer than {limit:g} s",
                code="dns_timeout",
            )

    return check_parsed(parsed, settings, wait)


def fetch_url(
    url: str,
    dest: BinaryIO | Path,
    settings: MediaSettings,
    *,
    verify: ssl.SSLContext | bool = True,
    cancel: threading.Event | None = None,
) -> FetchResult:
    """Download ``url`` into ``dest`` (an open binary file, or a path written atomically).

    ``verify`` is passed to httpx (an ``ssl.SSLContext`` to trust a private CA; ``True`` uses
    the system trust store). When ``dest`` is a path, the body is written to a temporary file
    beside it and renamed at the end, so a failed or cancelled download leaves nothing behind.
    When it is an open file, whatever was written before a failure stays: the caller owns it.
    Setting ``cancel`` (from any thread) stops the download promptly with
    :class:`~aisubs.errors.Cancelled`; ``fetch_timeout_s`` after the start it stops with
    ``FetchFailed(code="fetch_timeout")``.
    """
    if isinstance(dest, Path):
        return _fetch_to_path(url, dest, settings, verify, cancel)
    return _fetch(url, dest, settings, verify, cancel)


def _fetch_to_path(
    url: str,
    dest: Path,
    settings: MediaSettings,
    verify: ssl.SSLContext | bool,
    cancel: threading.Event | None,
) -> FetchResult:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            result = _fetch(url, out, settings, verify, cancel)
        os.replace(tmp_name, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    return result


def _fetch(
    url: str,
    out: BinaryIO,
    settings: MediaSettings,
    verify: ssl.SSLContext | bool,
    cancel: threading.Event | None,
) -> FetchResult:
    first = parse_url(url)
    what = f"fetching {redact(first)}"
    current = first
    # trust_env=False: a proxy from the environment would resolve names itself and defeat
    # the address check; redirects are followed by hand so each hop is checked.
    with (
        Watchdog(settings.fetch_timeout_s, cancel, what) as dog,
        httpx.Client(trust_env=False, follow_redirects=False, verify=verify) as client,
    ):
        for _hop in range(settings.fetch_max_redirects + 1):
            checked = check_parsed(current, settings, dog.wait)
            with _open_response(client, checked, dog) as response:
                if response.status_code in REDIRECT_STATUSES:
                    current = parse_url(_redirect_target(checked.url, response))
                    continue
                _raise_for_status(response, checked.url)
                _check_declared_length(response, settings.max_upload_bytes)
                written = _copy_body(response, checked.url, out, settings.max_upload_bytes, dog)
                return FetchResult(
                    bytes=written,
                    content_type=response.headers.get("content-type"),
                    final_url=str(checked.url),
                )
    raise FetchFailed(
        f"more than {settings.fetch_max_redirects} redirects fetching {redact(first)}",
        code="too_many_redirects",
        retryable=False,
    )


# ---------------------------------------------------------------- HTTP
@contextlib.contextmanager
def _open_response(
    client: httpx.Client, checked: CheckedURL, dog: Watchdog
) -> Iterator[httpx.Response]:
    """Send the request to the first checked address, keeping the name for Host and SNI."""
    url = checked.url
    pinned = url.copy_with(host=str(checked.addresses[0]))  # httpx brackets IPv6 literals
    host_header = url.netloc.decode("ascii")  # name[:port], without any userinfo
    remaining = dog.remaining()
    extensions: dict[str, object] = {"trace": dog.trace}
    if url.scheme == "https":
        extensions["sni_hostname"] = url.raw_host.decode("ascii")
    request = client.build_request(
        "GET",
        pinned,
        headers={"Host": host_header, "Accept-Encoding": "identity"},
        timeout=httpx.Timeout(remaining, connect=min(remaining, CONNECT_TIMEOUT_S)),
        extensions=extensions,
    )
    try:
        response = client.send(request, stream=True)
    except httpx.HTTPError as exc:
        raise _network_error(exc, url, dog) from exc
    try:
        dog.watch(response.extensions.get("network_stream"))
        yield response
    finally:
        response.close()


def _copy_body(
    response: httpx.Response, url: httpx.URL, out: BinaryIO, max_bytes: int, dog: Watchdog
) -> int:
    written = 0
    try:
        for chunk in response.iter_bytes():  # each read as it arrives, not 256 KiB batches
            written += len(chunk)
            if written > max_bytes:
                raise MediaTooLarge(f"the download is larger than the limit of {max_bytes} bytes")
            out.write(chunk)
            dog.check()
    except httpx.HTTPError as exc:
        raise _network_error(exc, url, dog) from exc
    dog.check()  # a socket shut down at the deadline can look like the end of a body
    return written


def _network_error(exc: httpx.HTTPError, url: httpx.URL, dog: Watchdog) -> AisubsError:
    """The error to raise for an httpx failure; its text (it may name the pinned IP) is logged."""
    tripped = dog.error()  # a shut-down socket fails the read: say why it was shut down
    if tripped is not None:
        return tripped
    logger.warning("fetching %s failed: %s: %s", redact(url), type(exc).__name__, exc)
    if isinstance(exc, httpx.TimeoutException):
        return FetchFailed(f"timed out fetching {redact(url)}", code="fetch_timeout")
    return FetchFailed(f"could not fetch {redact(url)}: {_describe(exc)}")


def _describe(exc: httpx.HTTPError) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return "TLS error: certificate or protocol"
        cause = cause.__cause__
    if isinstance(exc, httpx.ConnectError):
        return "could not connect"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the origin closed the connection or sent an invalid HTTP response"
    if isinstance(exc, httpx.NetworkError):
        return "the connection broke"
    return type(exc).__name__


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
        f"{redact(url)} answered HTTP {status}",
        code="fetch_http_error",
        retryable=retryable,
    )


def _redirect_target(url: httpx.URL, response: httpx.Response) -> str:
    location = response.headers.get("location")
    if not location:
        raise FetchFailed(
            f"{redact(url)} redirected without a Location header",
            code="fetch_http_error",
            retryable=False,
        )
    # Resolve relative locations against the URL with the original host name, not the IP.
    return str(url.join(location))
