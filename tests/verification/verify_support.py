"""Helpers for the verification tests: the client of a deployed copy of the app, a
broken-media corpus, a local media server that can redirect, and replica process lookup by
process title."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import av
import numpy as np
import psutil

from tests.support.client import ApiClient

# Upload limit of the verification service (the oversize test sends three times this).
MAX_UPLOAD = 100 * 1024 * 1024


class Service(ApiClient):
    """A deployed copy of the app: its name, settings and owners' keys (``key`` is alice's,
    ``other_key`` bob's, then ten more); requests time out after 60 s, jobs after 240 s."""

    def __init__(self, name: str, base_url: str, settings: dict[str, Any], keys: list[str]):
        super().__init__(base_url, keys[0], timeout=60, wait_timeout=240)
        self.name = name
        self.settings = settings
        self.other_key = keys[1]
        self.keys = keys


def replica_pid(app: str, deployment: str) -> int:
    """Pid of the (single) replica of ``deployment`` in ``app``, from its process title."""
    title = f"ServeReplica:{app}:{deployment}"
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info.get("cmdline") or []
        if any(part.startswith(f"ray::{title}") for part in cmd):
            return p.pid
    raise AssertionError(f"no process titled {title}")


def proxy_pid() -> int | None:
    for p in psutil.process_iter(["cmdline"]):
        if any(part.startswith("ray::ProxyActor") for part in p.info.get("cmdline") or []):
            return p.pid
    return None


# ------------------------------------------------------------------ broken media corpus
def _tone_mp4(path: Path, seconds: float = 3.0) -> bytes:
    rate = 16000
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=rate)
        stream.layout = "mono"
        step = stream.codec_context.frame_size or 1024
        t = np.arange(int(seconds * rate)) / rate
        signal = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for start in range(0, signal.size, step):
            chunk = signal[start : start + step][None, :]
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp",
                                               layout="mono")  # fmt: skip
            frame.sample_rate, frame.pts = rate, start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path.read_bytes()


def _video_only_mp4(path: Path) -> bytes:
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(10):
            img = np.full((32, 32, 3), i * 20, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path.read_bytes()


def _hours_long_flac(path: Path) -> bytes:
    """A 2 s FLAC whose STREAMINFO header declares 10 hours of audio."""
    rate = 16000
    with av.open(str(path), "w", format="flac") as out:
        stream = out.add_stream("flac", rate=rate)
        stream.layout = "mono"
        t = np.arange(2 * rate) / rate
        signal = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
        for start in range(0, signal.size, 4096):
            frame = av.AudioFrame.from_ndarray(signal[None, start : start + 4096], format="s16",
                                               layout="mono")  # fmt: skip
            frame.sample_rate, frame.pts = rate, start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    data = bytearray(path.read_bytes())
    assert data[:4] == b"fLaC"
    # STREAMINFO starts at byte 8; bytes 18..25 end with the 36-bit total sample count.
    fields = int.from_bytes(data[18:26], "big")
    fields = (fields & ~((1 << 36) - 1)) | (10 * 3600 * rate)
    data[18:26] = fields.to_bytes(8, "big")
    return bytes(data)


def broken_corpus(folder: Path) -> dict[str, tuple[str, bytes]]:
    """Name -> (file name, bytes) of media that must never produce subtitles."""
    folder.mkdir(parents=True, exist_ok=True)
    mp4 = _tone_mp4(folder / "tone.mp4")
    rng = np.random.default_rng(5)
    return {
        "truncated_mp4": ("clip.mp4", mp4[: len(mp4) // 3]),
        "random_wav": ("noise.wav", rng.integers(0, 256, 64 * 1024, dtype=np.uint8).tobytes()),
        "empty": ("empty.wav", b""),
        "video_only": ("silent.mp4", _video_only_mp4(folder / "video.mp4")),
        "hours_header": ("long.flac", _hours_long_flac(folder / "long.flac")),
    }


# ------------------------------------------------------------------ local media server
class MediaServer:
    """Serves ``files`` on 127.0.0.1; ``/redirect?to=URL`` answers 302 to URL."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                if url.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", parse_qs(url.query)["to"][0])
                    self.end_headers()
                    return
                body = outer.files.get(url.path.lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def multipart_stream(total: int, boundary: str, chunk: int = 1024 * 1024) -> Iterator[bytes]:
    """A multipart body with a ``file`` part of ``total`` zero bytes, generated lazily."""
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="big.wav"\r\nContent-Type: audio/wav\r\n\r\n'
    ).encode()
    block = b"\0" * chunk
    sent = 0
    while sent < total:
        n = min(chunk, total - sent)
        yield block[:n]
        sent += n
    yield f"\r\n--{boundary}--\r\n".encode()
