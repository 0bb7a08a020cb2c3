"""The job executor where real use hurts: starved threads, store blips, missing media, stale
attempts. Real SQLite store, real storage, real HTTP origin on 127.0.0.1; model stages are
the fake ones of tests/observability (the models are not what these tests are about)."""

from __future__ import annotations

import asyncio
import io
import sqlite3
import threading
import time
import wave
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aisubs.media.storage import Storage, media_key
from aisubs.queue import JobState, ManualClock, open_store
from aisubs.queue.sqlite_store import SqliteJobStore
from aisubs.runner import UPLOAD_SCHEME, JobExecutor
from aisubs.settings import Settings
from tests.observability.obs_support import FakeStages
from tests.support.http import LocalServer, QuietHandler
from tests.support.paths import JFK
from tests.support.settings import QUICK_QUEUE, make_settings


def wav_of(seconds: float) -> bytes:
    rate = 16_000
    t = np.arange(int(seconds * rate)) / rate
    pcm = (0.2 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


class SlowOrigin(LocalServer):
    """Serves one WAV file, dripped out over ``seconds`` (a slow media host)."""

    def __init__(self, body: bytes, seconds: float) -> None:
        origin = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                pieces = 20
                step = len(body) // pieces + 1
                for i in range(0, len(body), step):
                    self.wfile.write(body[i : i + step])
                    self.wfile.flush()
                    time.sleep(origin.seconds / pieces)

        self.seconds = seconds
        super().__init__(Handler)
        self.url = f"{self.base_url}/clip.wav"


@pytest.fixture
def slow_origin() -> Iterator[SlowOrigin]:
    origin = SlowOrigin(wav_of(60.0), seconds=6.0)
    yield origin
    origin.close()


def _events(store: Any, job_id: Any) -> list[str]:
    return [e.kind for e in store.list_events(job_id)]


# ---------------------------------------------------------------- threads
@pytest.mark.slow
def test_worker_slots_jobs_with_slow_fetches_and_decodes_keep_their_leases(
    tmp_path: Path, slow_origin: SlowOrigin
) -> None:
    """Serve gives the runner replica (num_cpus 0.1) a default executor of 5 threads; the
    dispatcher sends it up to worker_slots jobs. Their downloads and decoding must not hold
    the threads the heartbeats need."""
    settings = make_settings(
        tmp_path,
        # Every download takes 6 s: far beyond a lease whose renewal waits for a thread.
        queue={"lease_seconds": 4.0, "heartbeat_seconds": 0.5, "max_running_per_owner": 8},
        serve={"max_replicas": 4, "jobs_per_replica": 2},
        media={"allow_networks": ["127.0.0.1/32"], "fetch_timeout_s": 30},
    )
    assert settings.serve.worker_slots == 8
    store = open_store(settings)
    for _ in range(8):
        store.submit("alice", slow_origin.url, {"diarize": False, "formats": ["srt"]})
    jobs = store.claim("dispatcher", 8)
    assert len(jobs) == 8
    executor = JobExecutor(
        settings, store, Storage.from_settings(settings.media), FakeStages(), "runner-1"
    )
    stop = threading.Event()

    def reaper() -> None:  # the dispatcher's part: expired leases go back to the queue
        while not stop.wait(0.1):
            store.requeue_expired()

    async def main() -> list[str]:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(5))
        return list(await asyncio.gather(*(executor.run(job) for job in jobs)))

    watcher = threading.Thread(target=reaper, daemon=True)
    watcher.start()
    try:
        outcomes = asyncio.run(main())
    finally:
        stop.set()
        watcher.join()
        executor.close()
    assert outcomes == ["succeeded"] * 8
    for job in jobs:
        assert store.get(job.id).attempts == 1
        assert "lease_expired" not in _events(store, job.id)
    store.close()


# ---------------------------------------------------------------- missing media
def test_missing_upload_fails_at_once_as_media_missing(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, queue=QUICK_QUEUE)
    store = open_store(settings)
    storage = Storage.from_settings(settings.media)
    key = media_key("soon-gone")
    storage.put_file(key, JFK)
    store.submit("alice", UPLOAD_SCHEME + key, {"diarize": False})
    (job,) = store.claim("dispatcher", 1)
    storage.delete_prefix("media/soon-gone")
    executor = JobExecutor(settings, store, storage, FakeStages(), "runner-1")
    assert asyncio.run(executor.run(job)) == "failed"
    failed = store.get(job.id)
    assert failed.state is JobState.FAILED and failed.attempts == 1
    assert failed.error is not None
    assert (failed.error.code, failed.error.stage, failed.error.retryable) == (
        "media_missing",
        "fetch",
        False,
    )
    assert "media/" not in failed.error.message  # the storage key is internal
    executor.close()
    store.close()


# ---------------------------------------------------------------- store blips
class BlipAfterASR(FakeStages):
    """Right as ASR ends, another process holds the SQLite file's write lock for a while:
    the stage's end (progress, event) meets a store that cannot write."""

    def __init__(self, db_path: Path, hold_s: float) -> None:
        super().__init__()
        self.db_path = db_path
        self.hold_s = hold_s
        self.held = threading.Event()

    async def transcribe(self, shared: Any, options: Any, lease: Any) -> Any:
        transcript = await super().transcribe(shared, options, lease)
        threading.Thread(target=self._hold, daemon=True).start()
        self.held.wait(5)
        return transcript

    def _hold(self) -> None:
        conn = sqlite3.connect(self.db_path, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        self.held.set()
        time.sleep(self.hold_s)
        conn.execute("ROLLBACK")
        conn.close()


def test_a_store_blip_at_a_stage_boundary_costs_no_attempt(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, queue={**QUICK_QUEUE, "lease_seconds": 30})
    db = Path(settings.store.sqlite_path)
    # Writers give up after 0.1 s: every write during the blip fails with StoreUnavailable.
    store = SqliteJobStore(db, settings.queue, busy_timeout_s=0.1)
    storage = Storage.from_settings(settings.media)
    key = media_key("blip")
    storage.put_file(key, JFK)
    store.submit("alice", UPLOAD_SCHEME + key, {"diarize": False})
    (job,) = store.claim("dispatcher", 1)
    stages = BlipAfterASR(db, hold_s=1.5)
    executor = JobExecutor(settings, store, storage, stages, "runner-1")
    assert asyncio.run(executor.run(job)) == "succeeded"
    assert stages.held.is_set()
    done = store.get(job.id)
    assert done.state is JobState.SUCCEEDED and done.attempts == 1
    kinds = _events(store, job.id)
    assert kinds.count("stage_finished") == kinds.count("stage_started")
    assert "retried" not in kinds
    executor.close()
    store.close()


# ---------------------------------------------------------------- stale attempts
class Gate(FakeStages):
    """ASR that waits until the test opens the gate (a worker that froze mid-job)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.gate = threading.Event()

    async def transcribe(self, shared: Any, options: Any, lease: Any) -> Any:
        self.entered.set()
        while not self.gate.is_set():
            await asyncio.sleep(0.02)
        return await super().transcribe(shared, options, lease)


def _setup_stale(tmp_path: Path) -> tuple[Settings, Any, Storage, ManualClock]:
    # No heartbeat within the test: the frozen attempt must not renew its lease.
    queue = {**QUICK_QUEUE, "lease_seconds": 60, "heartbeat_seconds": 50}
    settings = make_settings(tmp_path, queue=queue)
    clock = ManualClock()
    store = SqliteJobStore(Path(settings.store.sqlite_path), settings.queue, clock=clock)
    return settings, store, Storage.from_settings(settings.media), clock


def test_a_stale_attempt_never_writes_into_the_newer_one(tmp_path: Path) -> None:
    """Attempt 1 freezes, its lease runs out, attempt 2 completes; then attempt 1 wakes up.
    It must add nothing to the job's history or results."""
    settings, store, storage, clock = _setup_stale(tmp_path)
    key = media_key("stale")
    storage.put_file(key, JFK)
    store.submit("alice", UPLOAD_SCHEME + key, {"diarize": False, "formats": ["srt", "txt"]})
    (first,) = store.claim("dispatcher", 1)
    frozen = Gate()
    stale = JobExecutor(settings, store, storage, frozen, "runner-stale")
    fresh = JobExecutor(settings, store, storage, FakeStages(), "runner-fresh")

    async def scenario() -> tuple[str, str]:
        stale_run = asyncio.create_task(stale.run(first))
        while not frozen.entered.is_set():
            await asyncio.sleep(0.02)
        clock.advance(61)  # attempt 1's lease is over
        assert store.requeue_expired() == 1
        (second,) = store.claim("dispatcher", 1)
        assert second.attempts == 2
        outcome = await fresh.run(second)
        frozen.gate.set()
        return outcome, await stale_run

    fresh_outcome, stale_outcome = asyncio.run(scenario())
    assert (fresh_outcome, stale_outcome) == ("succeeded", "stopped")
    done = store.get(first.id)
    assert done.state is JobState.SUCCEEDED and done.attempts == 2
    events = store.list_events(first.id)
    completed_at = next(i for i, e in enumerate(events) if e.kind == "completed")
    assert events[completed_at:] == events[-1:], "the stale attempt wrote after completion"
    assert all("/attempt-2/" in ref for ref in done.result.values())
    assert storage.list_keys(f"results/{first.id}") == sorted(done.result.values())
    stale.close()
    fresh.close()
    store.close()


def test_results_live_under_the_attempt_and_leftovers_go(tmp_path: Path) -> None:
    settings, store, storage, _ = _setup_stale(tmp_path)
    key = media_key("leftovers")
    storage.put_file(key, JFK)
    store.submit("alice", UPLOAD_SCHEME + key, {"diarize": False, "formats": ["srt"]})
    (job,) = store.claim("dispatcher", 1)
    # What an earlier attempt killed mid-write would have left behind.
    storage.put_bytes(f"results/{job.id}/attempt-0/subtitles.srt", b"half")
    executor = JobExecutor(settings, store, storage, FakeStages(), "runner-1")
    assert asyncio.run(executor.run(job)) == "succeeded"
    done = store.get(job.id)
    assert done.result == {"srt": f"results/{job.id}/attempt-1/subtitles.srt"}
    assert storage.list_keys(f"results/{job.id}") == [done.result["srt"]]
    executor.close()
    store.close()


# ---------------------------------------------------------------- cancel mid-download
class StalledOrigin(LocalServer):
    """Sends headers and a few bytes, then nothing until it is closed."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.gone = threading.Event()  # the client hung up
        origin = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", "10000000")
                self.end_headers()
                self.wfile.write(b"RIFF")
                self.wfile.flush()
                self.connection.settimeout(0.2)
                while not origin.release.is_set():
                    try:
                        if self.connection.recv(1) == b"":
                            break  # the client closed its side
                    except TimeoutError:
                        continue
                    except OSError:
                        break
                origin.gone.set()

        super().__init__(Handler)
        self.url = f"{self.base_url}/stalled.wav"

    def close(self) -> None:
        self.release.set()
        super().close()


def test_cancelling_a_job_stops_its_download(tmp_path: Path) -> None:
    origin = StalledOrigin()
    settings = make_settings(
        tmp_path,
        queue={**QUICK_QUEUE, "lease_seconds": 30},
        media={"allow_networks": ["127.0.0.1/32"], "fetch_timeout_s": 120},
    )
    store = open_store(settings)
    store.submit("alice", origin.url, {"diarize": False})
    (job,) = store.claim("dispatcher", 1)
    executor = JobExecutor(
        settings, store, Storage.from_settings(settings.media), FakeStages(), "runner-1"
    )

    async def scenario() -> tuple[str, float]:
        run = asyncio.create_task(executor.run(job))
        while (p := store.get(job.id).progress) is None or p.stage != "fetch":
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # surely blocked reading the body
        store.cancel(job.id, "alice")
        outcome = await run
        return outcome, time.monotonic()

    try:
        outcome, ended = asyncio.run(scenario())
        assert outcome == "stopped"
        assert store.get(job.id).state is JobState.CANCELLED
        # The download thread let go of the connection: not fetch_timeout_s later.
        assert origin.gone.wait(5), "the download kept running after the job was cancelled"
        assert time.monotonic() - ended < 5
        assert not [t for t in threading.enumerate() if t.name == "aisubs-fetch-watchdog"]
    finally:
        origin.close()
        executor.close()
        store.close()
