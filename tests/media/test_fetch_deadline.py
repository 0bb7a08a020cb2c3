"""URL fetching under its absolute deadline (slow drips, silent origins, hanging DNS) and
cancellation of a running download. Fixtures and the origin: conftest.py, fetch_origin.py.
"""

from __future__ import annotations

import io
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from aisubs.errors import AisubsError, Cancelled, FetchFailed
from aisubs.media.fetch import check_url, fetch_url
from aisubs.settings import MediaSettings
from tests.media.fetch_origin import (
    LOCAL,
    Recorder,
    media,
)


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
