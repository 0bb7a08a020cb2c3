"""URL fetching: SSRF guard, redirects, size and time limits, DNS pinning, TLS with SNI,
the absolute deadline and cancellation.

A real HTTP(S) server runs on 127.0.0.1 in a thread; the resolver is replaced by a fake
(``socket.getaddrinfo`` monkeypatched) so names can point anywhere without real DNS.
"""

from __future__ import annotations

import datetime
import io
import ipaddress
import logging
import re
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from aisubs.errors import AisubsError, Cancelled, FetchFailed, ForbiddenURL, MediaTooLarge
from aisubs.media.fetch import FetchResult, check_url, fetch_url
from aisubs.settings import MediaSettings

BODY = b"RIFF" + bytes(range(256)) * 40  # 10 244 bytes of "media"
LOCAL = ["127.0.0.1/32"]
IPV4_LITERAL = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")
DRIP_BYTES = 20  # /drip and /header-drip send one byte per 0.5 s, then hang up (10 s)


@dataclass
class Recorder:
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Host)
    release: threading.Event = field(default_factory=threading.Event)
    sni: list[str | None] = field(default_factory=list)


def _handler(rec: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None):
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            if "Content-Length" not in (headers or {}):
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _drip(self) -> None:
            try:
                for _ in range(DRIP_BYTES):
                    self.wfile.write(b"z")
                    self.wfile.flush()
                    if rec.release.wait(0.5):
                        return
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True

        def do_GET(self) -> None:
            rec.requests.append((self.path, self.headers.get("Host")))
            path = self.path.split("?", 1)[0]
            if path == "/ok":
                self._send(200, BODY, {"Content-Type": "audio/wav"})
            elif path == "/redirect-ok":
                self._send(302, headers={"Location": "/ok"})
            elif path == "/redirect-private":
                self._send(302, headers={"Location": "http://10.0.0.1/ok"})
            elif path == "/redirect-metadata":
                self._send(307, headers={"Location": "http://169.254.169.254/latest/meta-data"})
            elif path == "/loop":
                self._send(301, headers={"Location": "/loop"})
            elif path == "/declared-big":
                self._send(200, b"x" * 10, {"Content-Length": "5000000"})
            elif path == "/streamed-big":
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                chunk = b"y" * 4096
                try:
                    for _ in range(64):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass
            elif path == "/slow":
                self.send_response(200)
                self.send_header("Content-Length", "100")
                self.end_headers()
                self.wfile.write(b"z")
                self.wfile.flush()
                rec.release.wait(10)
            elif path == "/drip":
                self.send_response(200)
                self.send_header("Content-Length", "1000000")
                self.end_headers()
                self._drip()
            elif path == "/header-drip":
                self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                self._drip()
            elif path == "/late-headers":
                if not rec.release.wait(1.5):  # headers only after 1.5 s, then silence
                    self._send(200, b"z", {"Content-Length": "100"})
                    self.wfile.flush()
                    rec.release.wait(10)
            elif path == "/garbled":
                self.wfile.write(b"HTTP/1.1 2OO internal-10.9.8.7\r\n\r\n")
            elif path.startswith("/status/"):
                self._send(int(path.rsplit("/", 1)[1]), b"nope")
            else:
                self._send(404, b"missing")

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the client hung up (cancelled, out of time, too large): not a test failure
        super().handle_error(request, client_address)  # type: ignore[arg-type]


@pytest.fixture
def server() -> Iterator[tuple[str, Recorder]]:
    rec = Recorder()
    httpd = _Server(("127.0.0.1", 0), _handler(rec))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"127.0.0.1:{httpd.server_address[1]}", rec
    rec.release.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[list[str]]]:
    """name -> successive answers (each a list of IPs); other names use the real resolver.

    Each lookup of a name pops its next answer (the last one repeats), so a test can make a
    name "rebind" to another address after the first lookup.
    """
    answers: dict[str, list[list[str]]] = {}
    real = socket.getaddrinfo

    def fake(host, port, *args, **kwargs):
        if isinstance(host, bytes):
            host = host.decode()
        if host not in answers:
            return real(host, port, *args, **kwargs)
        queue = answers[host]
        ips = queue.pop(0) if len(queue) > 1 else queue[0]
        out = []
        for ip in ips:
            family = socket.AF_INET6 if ":" in ip else socket.AF_INET
            addr = (ip, port or 0, 0, 0) if family == socket.AF_INET6 else (ip, port or 0)
            out.append((family, socket.SOCK_STREAM, 6, "", addr))
        return out

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return answers


@pytest.fixture
def no_connect(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Fail the test if anything opens a TCP connection."""
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise AssertionError(f"a connection was attempted: {args}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def media(**kw: object) -> MediaSettings:
    return MediaSettings(**kw)  # type: ignore[arg-type]


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


# ---------------------------------------------------------------- https with SNI
def _self_signed(name: str, tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Recorder, Path]]:
    rec = Recorder()
    cert, key = _self_signed("media.example", tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)

    def sni_cb(sock: ssl.SSLSocket, name: str | None, c: ssl.SSLContext) -> None:
        rec.sni.append(name)

    ctx.sni_callback = sni_cb  # type: ignore[assignment]
    httpd = _Server(("127.0.0.1", 0), _handler(rec))
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd.server_address[1], rec, cert
    rec.release.set()
    httpd.shutdown()
    httpd.server_close()


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


# ---------------------------------------------------------------- absolute deadline
def _timed_fetch(url: str, settings: MediaSettings, **kw: object) -> tuple[AisubsError, float]:
    start = time.monotonic()
    with pytest.raises(AisubsError) as info:
        fetch_url(url, io.BytesIO(), settings, **kw)  # type: ignore[arg-type]
    return info.value, time.monotonic() - start


def _assert_cut_at_deadline(error: AisubsError, elapsed: float, limit: float) -> None:
    assert isinstance(error, FetchFailed), error
    assert error.code == "fetch_timeout"
    assert error.retryable is True
    assert limit - 0.1 <= elapsed < limit + 0.8


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port where the kernel completes the TCP handshake but nobody ever reads or answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


def test_slow_drip_body_is_cut_at_the_deadline(server: tuple[str, Recorder]) -> None:
    """One byte every 0.5 s never trips a per-read timeout: only the absolute deadline stops it."""
    addr, _ = server
    settings = media(allow_networks=LOCAL, fetch_timeout_s=2)
    _assert_cut_at_deadline(*_timed_fetch(f"http://{addr}/drip", settings), limit=2)


def test_dripped_status_line_is_cut_at_the_deadline(server: tuple[str, Recorder]) -> None:
    addr, _ = server
    settings = media(allow_networks=LOCAL, fetch_timeout_s=2)
    _assert_cut_at_deadline(*_timed_fetch(f"http://{addr}/header-drip", settings), limit=2)


def test_headers_then_silence_is_cut_at_the_deadline(server: tuple[str, Recorder]) -> None:
    """Headers after 1.5 s, then nothing: the body read may wait only the 0.5 s that are left."""
    addr, _ = server
    settings = media(allow_networks=LOCAL, fetch_timeout_s=2)
    _assert_cut_at_deadline(*_timed_fetch(f"http://{addr}/late-headers", settings), limit=2)


def test_origin_that_never_answers_is_cut_at_the_deadline(silent_port: int) -> None:
    settings = media(allow_networks=LOCAL, fetch_timeout_s=2)
    url = f"http://127.0.0.1:{silent_port}/a.mp3"
    _assert_cut_at_deadline(*_timed_fetch(url, settings), limit=2)


# ---------------------------------------------------------------- DNS under the deadline
@pytest.fixture
def slow_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Names ending in slow.example take 5 s (or until the test ends) to resolve to 127.0.0.1."""
    release = threading.Event()
    real = socket.getaddrinfo

    def slow(host, port, *args, **kwargs):
        if not str(host).endswith("slow.example"):
            return real(host, port, *args, **kwargs)
        release.wait(5)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port or 0))]

    monkeypatch.setattr(socket, "getaddrinfo", slow)
    yield release
    release.set()


def test_check_url_bounds_a_hanging_resolver(slow_dns: threading.Event) -> None:
    start = time.monotonic()
    with pytest.raises(FetchFailed) as info:
        check_url("https://cdn.slow.example/a.mp3", media(), timeout_s=0.5)
    assert time.monotonic() - start < 1.0
    assert info.value.code == "dns_timeout"
    assert info.value.retryable is True


def test_check_url_bounds_the_resolver_by_default(slow_dns: threading.Event) -> None:
    start = time.monotonic()
    with pytest.raises(FetchFailed) as info:
        check_url("https://cdn.slow.example/a.mp3", media(fetch_timeout_s=1))
    assert time.monotonic() - start < 1.5
    assert info.value.code == "dns_timeout"


def test_hanging_resolver_counts_against_the_fetch_deadline(slow_dns: threading.Event) -> None:
    error, elapsed = _timed_fetch("https://cdn.slow.example/a.mp3", media(fetch_timeout_s=1))
    _assert_cut_at_deadline(error, elapsed, limit=1)


def test_cancel_while_resolving(slow_dns: threading.Event) -> None:
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    error, elapsed = _timed_fetch(
        "https://cdn.slow.example/a.mp3", media(fetch_timeout_s=30), cancel=cancel
    )
    assert isinstance(error, Cancelled)
    assert elapsed < 1.0


# ---------------------------------------------------------------- cancellation
def _fetch_in_thread(
    url: str, dest: Path, settings: MediaSettings, cancel: threading.Event, **kw: object
) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fetch_url(url, dest, settings, cancel=cancel, **kw)  # type: ignore[arg-type]
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def _wait_until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.01)


def _cancel_and_join(
    cancel: threading.Event, thread: threading.Thread, errors: list[BaseException]
) -> None:
    time.sleep(0.3)  # let the fetching thread block on its read
    assert thread.is_alive()
    cancel.set()
    start = time.monotonic()
    thread.join(3)
    assert not thread.is_alive()
    assert time.monotonic() - start < 1.0
    assert len(errors) == 1 and isinstance(errors[0], Cancelled), errors
    assert str(errors[0]) == "the download was cancelled"
    assert errors[0].code == "cancelled" and errors[0].retryable is False


def test_cancel_interrupts_a_stalled_download_and_removes_the_file(
    server: tuple[str, Recorder], tmp_path: Path
) -> None:
    addr, rec = server
    dest = tmp_path / "job" / "source"
    cancel = threading.Event()
    settings = media(allow_networks=LOCAL, fetch_timeout_s=30)
    thread, errors = _fetch_in_thread(f"http://{addr}/slow", dest, settings, cancel)
    _wait_until(lambda: rec.requests)
    _cancel_and_join(cancel, thread, errors)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # the partial temp file is gone too


def test_cancel_while_waiting_for_headers(silent_port: int, tmp_path: Path) -> None:
    dest = tmp_path / "source"
    cancel = threading.Event()
    settings = media(allow_networks=LOCAL, fetch_timeout_s=30)
    url = f"http://127.0.0.1:{silent_port}/a.mp3"
    thread, errors = _fetch_in_thread(url, dest, settings, cancel)
    _cancel_and_join(cancel, thread, errors)
    assert list(tmp_path.iterdir()) == []


def test_cancelled_before_the_start_sends_nothing(
    server: tuple[str, Recorder], tmp_path: Path
) -> None:
    addr, rec = server
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        fetch_url(
            f"http://{addr}/ok", tmp_path / "source", media(allow_networks=LOCAL), cancel=cancel
        )
    assert rec.requests == []
    assert list(tmp_path.iterdir()) == []


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


def test_cancel_interrupts_a_stalled_https_download(
    tls_server: tuple[int, Recorder, Path], fake_dns: dict[str, list[list[str]]], tmp_path: Path
) -> None:
    port, rec, cert = tls_server
    fake_dns["media.example"] = [["127.0.0.1"]]
    trust = ssl.create_default_context(cafile=str(cert))
    cancel = threading.Event()
    dest = tmp_path / "out" / "source"
    settings = media(allow_networks=LOCAL, fetch_timeout_s=30)
    url = f"https://media.example:{port}/slow"
    thread, errors = _fetch_in_thread(url, dest, settings, cancel, verify=trust)
    _wait_until(lambda: rec.requests)
    _cancel_and_join(cancel, thread, errors)
    assert list(dest.parent.iterdir()) == []


def test_stalled_https_download_is_cut_at_the_deadline(
    tls_server: tuple[int, Recorder, Path], fake_dns: dict[str, list[list[str]]]
) -> None:
    port, _, cert = tls_server
    fake_dns["media.example"] = [["127.0.0.1"]]
    trust = ssl.create_default_context(cafile=str(cert))
    settings = media(allow_networks=LOCAL, fetch_timeout_s=1)
    error, elapsed = _timed_fetch(f"https://media.example:{port}/drip", settings, verify=trust)
    _assert_cut_at_deadline(error, elapsed, limit=1)
