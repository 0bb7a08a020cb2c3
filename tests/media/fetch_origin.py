"""A real HTTP origin on 127.0.0.1 for the URL-fetch tests: what it serves and records."""

from __future__ import annotations

import datetime
import re
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

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


def handler_for(rec: Recorder) -> type[BaseHTTPRequestHandler]:
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


class OriginServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the client hung up (cancelled, out of time, too large): not a test failure
        super().handle_error(request, client_address)  # type: ignore[arg-type]


def media(**kw: object) -> MediaSettings:
    return MediaSettings(**kw)  # type: ignore[arg-type]


def self_signed(name: str, tmp_path: Path) -> tuple[Path, Path]:
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
