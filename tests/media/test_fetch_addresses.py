"""URL fetching: which addresses are refused (SSRF guard, IPv6 forms of IPv4) and what the
messages reveal of them. Fixtures and the origin: conftest.py, fetch_origin.py.
"""

from __future__ import annotations

import io
import ipaddress
import logging
import socket

import pytest

from aisubs.errors import FetchFailed, ForbiddenURL
from aisubs.media.fetch import check_url, fetch_url
from tests.media.fetch_origin import (
    IPV4_LITERAL,
    LOCAL,
    Recorder,
    media,
)


# ---------------------------------------------------------------- refused addresses
def test_loopback_refused_unless_allowed(server: tuple[str, Recorder]) -> None:
    addr, rec = server
    with pytest.raises(ForbiddenURL) as info:
        fetch_url(f"http://{addr}/ok", io.BytesIO(), media())
    assert info.value.retryable is False
    assert rec.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/a.mp3",
        "http://192.168.1.5/a.mp3",
        "http://172.16.0.1/a.mp3",
        "http://100.64.0.1/a.mp3",  # shared address space (CGNAT)
        "http://0.0.0.0/a.mp3",
        "http://224.0.0.1/a.mp3",
        "http://240.0.0.1/a.mp3",
        "http://[::1]/a.mp3",
        "http://[fd00:ec2::254]/latest",
        "http://[fe80::1]/a.mp3",
        "http://[::ffff:10.0.0.1]/a.mp3",
        "https://[::ffff:169.254.169.254]/a.mp3",
    ],
)
def test_private_and_reserved_addresses_refused_without_connecting(
    url: str, no_connect: list[object]
) -> None:
    with pytest.raises(ForbiddenURL):
        check_url(url, media())
    with pytest.raises(ForbiddenURL):
        fetch_url(url, io.BytesIO(), media())
    assert no_connect == []


@pytest.mark.parametrize(
    "answers", [["10.1.2.3"], ["93.184.215.14", "10.1.2.3"], ["2606:4700::1", "fd12::1"]]
)
def test_name_resolving_to_any_private_address_refused(
    answers: list[str], fake_dns: dict[str, list[list[str]]], no_connect: list[object]
) -> None:
    fake_dns["evil.example"] = [answers]
    with pytest.raises(ForbiddenURL, match=r"evil\.example"):
        fetch_url("https://evil.example/a.mp3", io.BytesIO(), media())
    assert no_connect == []


def test_public_name_passes_check(fake_dns: dict[str, list[list[str]]]) -> None:
    fake_dns["cdn.example"] = [["93.184.215.14", "2606:4700::1"]]
    checked = check_url("https://cdn.example/x.mp4?sig=1", media())
    assert [str(a) for a in checked.addresses] == ["93.184.215.14", "2606:4700::1"]


def test_allow_networks_opens_a_private_range_but_not_metadata(
    fake_dns: dict[str, list[list[str]]],
) -> None:
    settings = media(allow_networks=["10.0.0.0/8", "169.254.0.0/16", "fc00::/7"])
    fake_dns["internal.example"] = [["10.1.2.3"]]
    assert str(check_url("http://internal.example/a", settings).addresses[0]) == "10.1.2.3"
    for url in ("http://169.254.169.254/", "http://[fd00:ec2::254]/"):
        with pytest.raises(ForbiddenURL):
            check_url(url, settings)
    # Only an exact host entry opens a metadata address.
    exact = media(allow_networks=["169.254.169.254/32"])
    assert check_url("http://169.254.169.254/", exact).addresses == (
        ipaddress.ip_address("169.254.169.254"),
    )


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/a.mp3",
        "file:///etc/passwd",
        "gopher://example.com/",
        "data:audio/wav;base64,AAAA",
        "javascript:alert(1)",
        "http:///nohost",
        "not a url",
    ],
)
def test_bad_schemes_and_urls_refused(url: str, no_connect: list[object]) -> None:
    with pytest.raises(ForbiddenURL):
        check_url(url, media(allow_networks=LOCAL))
    assert no_connect == []


# ---------------------------------------------------------------- IPv6 forms of IPv4
@pytest.mark.parametrize(
    "url",
    [
        "http://[2002:7f00:1::]/a.mp3",  # 6to4 of 127.0.0.1
        "http://[2002:a00:1::]/a.mp3",  # 6to4 of 10.0.0.1
        "http://[2002:a9fe:a9fe::1]/latest",  # 6to4 of 169.254.169.254
        "http://[2002:c0a8:105::]/a.mp3",  # 6to4 of 192.168.1.5
        "http://[2001:0:5db8:d70e::f5ff:fffe]/a.mp3",  # Teredo, client 10.0.0.1
        "http://[2001:0:a00:1::f7f7:f7f7]/a.mp3",  # Teredo, server 10.0.0.1
        "http://[64:ff9b::a00:1]/a.mp3",  # NAT64 of 10.0.0.1
    ],
)
def test_ipv6_forms_of_private_ipv4_refused(url: str, no_connect: list[object]) -> None:
    with pytest.raises(ForbiddenURL):
        check_url(url, media())
    assert no_connect == []


def test_6to4_of_a_public_ipv4_follows_the_ipv4_verdict() -> None:
    assert check_url("http://[2002:5db8:d70e::1]/a.mp3", media()).addresses == (
        ipaddress.ip_address("2002:5db8:d70e::1"),
    )
    # 10.0.0.1 is allowed here, so its 6to4 form is too; 127.0.0.1 is not.
    settings = media(allow_networks=["10.0.0.0/8"])
    check_url("http://[2002:a00:1::]/a.mp3", settings)
    with pytest.raises(ForbiddenURL):
        check_url("http://[2002:7f00:1::]/a.mp3", settings)


def test_allowing_a_tunnel_prefix_does_not_open_the_ipv4_behind_it() -> None:
    settings = media(allow_networks=["2001::/32", "64:ff9b::/96", "2002::/16"])
    # Teredo and NAT64 with public IPv4 addresses (93.184.215.14, 8.8.8.8) pass...
    check_url("http://[2001:0:5db8:d70e::f7f7:f7f7]/a.mp3", settings)
    check_url("http://[64:ff9b::5db8:d70e]/a.mp3", settings)
    # ...but never with a private one embedded.
    for url in (
        "http://[2001:0:5db8:d70e::f5ff:fffe]/a.mp3",
        "http://[64:ff9b::a00:1]/a.mp3",
        "http://[64:ff9b::a9fe:a9fe]/latest",
        "http://[2002:a9fe:a9fe::]/latest",
    ):
        with pytest.raises(ForbiddenURL):
            check_url(url, settings)


def test_name_resolving_to_6to4_of_a_private_address_refused(
    fake_dns: dict[str, list[list[str]]], no_connect: list[object]
) -> None:
    fake_dns["tunnel.example"] = [["2002:a00:1::"]]
    with pytest.raises(ForbiddenURL):
        fetch_url("https://tunnel.example/a.mp3", io.BytesIO(), media())
    assert no_connect == []


# ---------------------------------------------------------------- what messages reveal
def test_forbidden_message_does_not_reveal_the_resolved_address(
    fake_dns: dict[str, list[list[str]]], caplog: pytest.LogCaptureFixture
) -> None:
    fake_dns["evil.example"] = [["10.0.0.7"]]
    with caplog.at_level(logging.WARNING), pytest.raises(ForbiddenURL) as info:
        check_url("https://user:pw@evil.example/a.mp3?sig=s3cr3t", media())
    message = str(info.value)
    assert "10.0.0.7" not in message
    assert "evil.example" in message and "private or reserved" in message
    assert "pw" not in message and "s3cr3t" not in message
    assert "10.0.0.7" in caplog.text  # the detail goes to the log


def test_connection_refused_message_names_no_ip(fake_dns: dict[str, list[list[str]]]) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fake_dns["media.example"] = [["127.0.0.1"]]
    with pytest.raises(FetchFailed) as info:
        fetch_url(f"http://media.example:{port}/ok", io.BytesIO(), media(allow_networks=LOCAL))
    assert info.value.retryable is True
    assert "media.example" in str(info.value)
    assert not IPV4_LITERAL.search(str(info.value)), str(info.value)


def test_low_level_error_text_is_not_echoed(
    server: tuple[str, Recorder], fake_dns: dict[str, list[list[str]]]
) -> None:
    """httpx error text can carry what the origin sent (or the pinned IP): it is only logged."""
    addr, _ = server
    fake_dns["media.example"] = [["127.0.0.1"]]
    url = f"http://media.example:{addr.rsplit(':', 1)[1]}/garbled"
    with pytest.raises(FetchFailed) as info:
        fetch_url(url, io.BytesIO(), media(allow_networks=LOCAL))
    assert info.value.retryable is True
    assert not IPV4_LITERAL.search(str(info.value)), str(info.value)
