"""URL fetching: allowed fetches, redirects, size, status and time limits, TLS with SNI.
Refused addresses: test_fetch_addresses.py; the deadline and cancellation: test_fetch_deadline.py.

A real HTTP(S) server runs on 127.0.0.1 in a thread; the resolver is replaced by a fake
(``socket.getaddrinfo`` monkeypatched) so names can point anywhere without real DNS.
"""

from __future__ import annotations

import io
import socket
import ssl
from pathlib import Path

import pytest

from aisubs.errors import FetchFailed, ForbiddenURL, MediaTooLarge
from aisubs.media.fetch import FetchResult, check_url, fetch_url
from tests.media.fetch_origin import (
    BODY,
    LOCAL,
    Recorder,
    media,
)


# ---------------------------------------------------------------- allowed fetches
def test_fetch_from_allowed_loopback(server: tuple[str, Recorder]) -> None:
    addr, rec = server
    out = io.BytesIO()
    result = fetch_url(f"http://{addr}/ok", out, media(allow_networks=LOCAL))
    assert result == FetchResult(
        bytes=len(BODY), content_type="audio/wav", final_url=f"http://{addr}/ok"
    )
    assert out.getvalue() == BODY
    assert rec.requests == [("/ok", addr)]


def test_fetch_to_path_is_atomic_and_complete(server: tuple[str, Recorder], tmp_path: Path) -> None:
    addr, _ = server
    dest = tmp_path / "job" / "source"
    result = fetch_url(f"http://{addr}/ok", dest, media(allow_networks=LOCAL))
    assert dest.read_bytes() == BODY
    assert result.bytes == len(BODY)
    assert [p.name for p in dest.parent.iterdir()] == ["source"]


def test_relative_redirect_is_followed(server: tuple[str, Recorder]) -> None:
    addr, rec = server
    out = io.BytesIO()
    result = fetch_url(f"http://{addr}/redirect-ok", out, media(allow_networks=LOCAL))
    assert out.getvalue() == BODY
    assert result.final_url == f"http://{addr}/ok"
    assert [p for p, _ in rec.requests] == ["/redirect-ok", "/ok"]


def test_connection_goes_to_the_checked_address_with_host_preserved(
    server: tuple[str, Recorder], fake_dns: dict[str, list[list[str]]]
) -> None:
    """DNS rebinding: the name answers 127.0.0.1 once, then 10.0.0.1; only one lookup counts."""
    addr, rec = server
    port = addr.rsplit(":", 1)[1]
    fake_dns["media.example"] = [["127.0.0.1"], ["10.0.0.1"]]
    out = io.BytesIO()
    result = fetch_url(f"http://media.example:{port}/ok", out, media(allow_networks=LOCAL))
    assert out.getvalue() == BODY
    assert result.final_url == f"http://media.example:{port}/ok"
    assert rec.requests == [("/ok", f"media.example:{port}")]
    # The rebinding answer was never consumed: the connection used the checked address.
    assert fake_dns["media.example"] == [["10.0.0.1"]]


# ---------------------------------------------------------------- redirects
@pytest.mark.parametrize("path", ["/redirect-private", "/redirect-metadata"])
def test_redirect_into_forbidden_address_refused(server: tuple[str, Recorder], path: str) -> None:
    addr, rec = server
    with pytest.raises(ForbiddenURL):
        fetch_url(f"http://{addr}{path}", io.BytesIO(), media(allow_networks=LOCAL))
    assert [p for p, _ in rec.requests] == [path]


def test_redirect_limit(server: tuple[str, Recorder]) -> None:
    addr, rec = server
    with pytest.raises(FetchFailed) as info:
        fetch_url(
            f"http://{addr}/loop", io.BytesIO(), media(allow_networks=LOCAL, fetch_max_redirects=3)
        )
    assert info.value.code == "too_many_redirects"
    assert info.value.retryable is False
    assert len(rec.requests) == 4


# ---------------------------------------------------------------- size, status, time
def test_declared_length_over_limit_refused_before_reading(server: tuple[str, Recorder]) -> None:
    addr, _ = server
    out = io.BytesIO()
    with pytest.raises(MediaTooLarge):
        fetch_url(
            f"http://{addr}/declared-big", out, media(allow_networks=LOCAL, max_upload_bytes=1000)
        )
    assert out.getvalue() == b""


def test_streamed_body_over_limit_refused_mid_stream(
    server: tuple[str, Recorder], tmp_path: Path
) -> None:
    addr, _ = server
    dest = tmp_path / "source"
    with pytest.raises(MediaTooLarge):
        fetch_url(
            f"http://{addr}/streamed-big",
            dest,
            media(allow_networks=LOCAL, max_upload_bytes=10_000),
        )
    assert list(tmp_path.iterdir()) == []  # neither the file nor its partial temp remains


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(404, False), (403, False), (410, False), (429, True), (500, True), (503, True)],
)
def test_http_errors(server: tuple[str, Recorder], status: int, retryable: bool) -> None:
    addr, _ = server
    with pytest.raises(FetchFailed) as info:
        fetch_url(f"http://{addr}/status/{status}", io.BytesIO(), media(allow_networks=LOCAL))
    assert info.value.retryable is retryable
    assert str(status) in str(info.value)


def test_stalled_download_times_out(server: tuple[str, Recorder]) -> None:
    addr, _ = server
    with pytest.raises(FetchFailed) as info:
        fetch_url(
            f"http://{addr}/slow", io.BytesIO(), media(allow_networks=LOCAL, fetch_timeout_s=0.5)
        )
    assert info.value.code == "fetch_timeout"
    assert info.value.retryable is True


def test_connection_refused_is_retryable() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(FetchFailed) as info:
        fetch_url(f"http://127.0.0.1:{port}/ok", io.BytesIO(), media(allow_networks=LOCAL))
    assert info.value.retryable is True


def test_unresolvable_name_is_fetch_failed(fake_dns: dict[str, list[list[str]]]) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket, "getaddrinfo", fail)
        with pytest.raises(FetchFailed) as info:
            check_url("https://no-such-host.invalid/a.mp3", media())
    assert info.value.code == "dns_failed"


def test_credentials_and_query_not_echoed_in_errors(server: tuple[str, Recorder]) -> None:
    addr, _ = server
    with pytest.raises(FetchFailed) as info:
        fetch_url(
            f"http://user:secret@{addr}/status/404?token=abc",
            io.BytesIO(),
            media(allow_networks=LOCAL),
        )
    assert "404" in str(info.value)
    assert "secret" not in str(info.value)
    assert "abc" not in str(info.value)


def test_https_pins_address_and_sends_sni(
    tls_server: tuple[int, Recorder, Path], fake_dns: dict[str, list[list[str]]]
) -> None:
    port, rec, cert = tls_server
    fake_dns["media.example"] = [["127.0.0.1"]]
    trust = ssl.create_default_context(cafile=str(cert))
    out = io.BytesIO()
    result = fetch_url(
        f"https://media.example:{port}/ok", out, media(allow_networks=LOCAL), verify=trust
    )
    assert out.getvalue() == BODY
    assert result.final_url == f"https://media.example:{port}/ok"
    assert rec.sni == ["media.example"]
    assert rec.requests == [("/ok", f"media.example:{port}")]


def test_https_certificate_checked_against_the_name(
    tls_server: tuple[int, Recorder, Path], fake_dns: dict[str, list[list[str]]]
) -> None:
    port, rec, cert = tls_server
    fake_dns["other.example"] = [["127.0.0.1"]]
    trust = ssl.create_default_context(cafile=str(cert))
    with pytest.raises(FetchFailed):
        fetch_url(
            f"https://other.example:{port}/ok",
            io.BytesIO(),
            media(allow_networks=LOCAL),
            verify=trust,
        )
    assert rec.requests == []
