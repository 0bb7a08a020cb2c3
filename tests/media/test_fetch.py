"""URL fetching: SSRF guard, redirects, size and time limits, DNS pinning, TLS with SNI.

A real HTTP(S) server runs on 127.0.0.1 in a thread; the resolver is replaced by a fake
(``socket.getaddrinfo`` monkeypatched) so names can point anywhere without real DNS.
"""

from __future__ import annotations

import datetime
import io
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from aisubs.errors import FetchFailed, ForbiddenURL, MediaTooLarge
from aisubs.media.fetch import FetchResult, check_url, fetch_url
from aisubs.settings import MediaSettings

BODY = b"RIFF" + bytes(range(256)) * 40  # 10 244 bytes of "media"
LOCAL = ["127.0.0.1/32"]


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

        def do_GET(self) -> None:
            rec.requests.append((self.path, self.headers.get("Host")))
            path = self.path
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
            elif path.startswith("/status/"):
                self._send(int(path.rsplit("/", 1)[1]), b"nope")
            else:
                self._send(404, b"missing")

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, Recorder]]:
    rec = Recorder()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(rec))
    httpd.daemon_threads = True
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
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(rec))
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    httpd.daemon_threads = True
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
