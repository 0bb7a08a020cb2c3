"""Fixtures of the URL-fetch tests: the origin servers and resolvers they talk to."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.media.fetch_origin import (
    OriginServer,
    Recorder,
    handler_for,
    self_signed,
)


@pytest.fixture
def server() -> Iterator[tuple[str, Recorder]]:
    rec = Recorder()
    httpd = OriginServer(("127.0.0.1", 0), handler_for(rec))
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


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Recorder, Path]]:
    rec = Recorder()
    cert, key = self_signed("media.example", tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)

    def sni_cb(sock: ssl.SSLSocket, name: str | None, c: ssl.SSLContext) -> None:
        rec.sni.append(name)

    ctx.sni_callback = sni_cb  # type: ignore[assignment]
    httpd = OriginServer(("127.0.0.1", 0), handler_for(rec))
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd.server_address[1], rec, cert
    rec.release.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port where the kernel completes the TCP handshake but nobody ever reads or answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


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
