"""The deadline and cancel switch of one URL download (see :mod:`aisubs.media.fetch`).

A blocked socket read cannot be interrupted from Python, but a socket that is shut down
returns from it at once: the watchdog thread shuts the download's sockets down when the
deadline passes or the caller's cancel event is set, and the fetching thread then learns
why from :meth:`Watchdog.check`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from aisubs.errors import AisubsError, Cancelled, FetchFailed

# How often the watchdog looks whether the fetch ended while it waits on a cancel event.
WATCH_POLL_S = 0.1


class Watchdog:
    """Trips at the deadline or when ``cancel`` is set, whichever comes first.

    Tripping shuts down every watched socket (a blocked read or handshake returns at once)
    and calls the registered wakers; the fetching thread then finds :meth:`check` raising
    :class:`Cancelled` or ``FetchFailed(code="fetch_timeout")``. One per fetch, used as a
    context manager.
    """

    def __init__(self, limit_s: float, cancel: threading.Event | None, what: str) -> None:
        self.limit_s = limit_s
        self.deadline = time.monotonic() + limit_s
        self._cancel = cancel
        self._what = what
        self._lock = threading.Lock()
        self._ended = threading.Event()
        self._reason: str | None = None  # "timeout" or "cancelled" once tripped
        self._wakers: list[Callable[[], None]] = []
        # Our own duplicates of the connections' sockets: shutting one down interrupts the
        # other descriptor's reads, and it cannot be closed (and its number reused) under us.
        self._sockets: list[socket.socket] = []

    def __enter__(self) -> Watchdog:
        threading.Thread(target=self._run, name="aisubs-fetch-watchdog", daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._ended.set()
            sockets, self._sockets = self._sockets, []
            self._wakers.clear()
        for sock in sockets:
            sock.close()

    def _run(self) -> None:
        while not self._ended.is_set():
            left = self.deadline - time.monotonic()
            if left <= 0:
                self._trip("timeout")
            elif self._cancel is None:
                self._ended.wait(left)
            elif self._cancel.wait(min(left, WATCH_POLL_S)):
                self._trip("cancelled")

    def _trip(self, reason: str) -> None:
        with self._lock:
            if self._reason is None and not self._ended.is_set():
                self._reason = reason
                for sock in self._sockets:
                    _shutdown(sock)
                for wake in self._wakers:
                    wake()
            self._ended.set()  # the watchdog's work is done either way

    def on_trip(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` (from the watchdog thread) when tripping; at once if already tripped."""
        with self._lock:
            if self._reason is not None:
                wake()
            elif not self._ended.is_set():
                self._wakers.append(wake)

    def watch(self, stream: object) -> None:
        """Shut down the socket of this httpcore network stream when tripping."""
        get_extra_info = getattr(stream, "get_extra_info", None)
        sock = get_extra_info("socket") if callable(get_extra_info) else None
        if not isinstance(sock, socket.socket):
            return
        try:  # fromfd duplicates the descriptor and works on ssl.SSLSocket too
            dup = socket.fromfd(sock.fileno(), sock.family, sock.type)
        except OSError:
            return
        with self._lock:
            if self._reason is None and not self._ended.is_set():
                self._sockets.append(dup)
                return
            if self._reason is not None:
                _shutdown(dup)
        dup.close()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore ``trace`` extension: watch each connection as soon as TCP connects."""
        if event == "connection.connect_tcp.complete":
            self.watch(info.get("return_value"))

    def error(self) -> AisubsError | None:
        """Why the fetch must stop now (cancelled, out of time), or None."""
        if self._reason == "cancelled" or (self._cancel is not None and self._cancel.is_set()):
            return Cancelled("the download was cancelled")
        if self._reason == "timeout" or time.monotonic() >= self.deadline:
            return FetchFailed(
                f"{self._what} did not finish within {self.limit_s:g} s", code="fetch_timeout"
            )
        return None

    def check(self) -> None:
        error = self.error()
        if error is not None:
            raise error

    def wait(self, event: threading.Event) -> None:
        """Block until ``event`` is set; raise if the watchdog trips first."""
        self.on_trip(event.set)
        while not event.wait(self.remaining()):
            pass
        self.check()

    def remaining(self) -> float:
        """Seconds left before the deadline; raises when cancelled or out of time."""
        self.check()
        return max(self.deadline - time.monotonic(), 0.001)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
