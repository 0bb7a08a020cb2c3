"""The job executor against a real SQLite store: success, bad media, cancel, lost workers."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest

from aisubs.jobwatch import Lease
from aisubs.media.storage import Storage, media_key
from aisubs.queue import JobState, open_store
from aisubs.runner import UPLOAD_SCHEME, JobExecutor
from aisubs.stages import InProcessStages
from tests.pipeline.pipeline_support import pipeline_settings
from tests.support.paths import DATA, JFK
from tests.support.settings import QUICK_QUEUE

pytestmark = pytest.mark.slow


def _setup(tmp: Path, engine: Any, stages: Any = None, **sections: Any) -> Any:
    settings = pipeline_settings(tmp, queue=QUICK_QUEUE | sections.pop("queue", {}), **sections)
    store = open_store(settings)
    storage = Storage.from_settings(settings.media)
    stages = stages or InProcessStages(engine, None, store, cancel_check_s=0.1)
    return settings, store, storage, JobExecutor(settings, store, storage, stages, "test")


def _submit(store: Any, storage: Storage, path: Path, **options: Any) -> Any:
    key = media_key("upload-" + path.stem)
    storage.put_file(key, path)
    store.submit("alice", UPLOAD_SCHEME + key, {"diarize": False, **options})
    (job,) = store.claim("test", 1)
    return job


def test_success_stores_results_and_completes(tiny_engine: Any, tmp_path: Path) -> None:
    _, store, storage, executor = _setup(tmp_path, tiny_engine)
    job = _submit(store, storage, JFK)
    assert asyncio.run(executor.run(job)) == "succeeded"
    done = store.get(job.id)
    assert done.state is JobState.SUCCEEDED
    assert set(done.result) == {"srt", "vtt", "json", "txt"}
    assert b"your country" in storage.get_bytes(done.result["srt"])
    kinds = [e.kind for e in store.list_events(job.id)]
    assert kinds.count("stage_started") == kinds.count("stage_finished") >= 4
    assert done.audio_duration_s == pytest.approx(11.0, abs=0.5)


def test_undecodable_media_fails_at_once(tiny_engine: Any, tmp_path: Path) -> None:
    _, store, storage, executor = _setup(tmp_path, tiny_engine)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF" + b"\x00garbage" * 500)
    job = _submit(store, storage, junk)
    assert asyncio.run(executor.run(job)) == "failed"
    failed = store.get(job.id)
    assert failed.state is JobState.FAILED and failed.attempts == 1
    assert failed.error is not None and failed.error.code == "undecodable_media"
    assert failed.error.stage == "decode"


class HangingStages(InProcessStages):
    """A Transcriber whose replica died: the call never answers."""

    async def transcribe(self, shared: Any, options: Any, lease: Lease) -> Any:
        await asyncio.sleep(3600)


def test_lost_stage_is_retried(tiny_engine: Any, tmp_path: Path) -> None:
    stages = HangingStages(tiny_engine, None)
    _, store, storage, executor = _setup(
        tmp_path,
        tiny_engine,
        stages,
        serve={"stage_timeout_base_s": 0.5, "stage_timeout_per_audio_s": 0},
    )
    job = _submit(store, storage, JFK)
    assert asyncio.run(executor.run(job)) == "retrying"
    again = store.get(job.id)
    assert again.state is JobState.QUEUED and again.error is not None
    assert again.error.stage == "asr" and again.error.retryable


def test_cancel_while_running_stops_the_job(tiny_engine: Any, tmp_path: Path) -> None:
    _, store, storage, executor = _setup(tmp_path, tiny_engine)
    long = tmp_path / "long.wav"
    shutil.copy(DATA / "misc" / "multilingual.mp3", long.with_suffix(".mp3"))
    job = _submit(store, storage, long.with_suffix(".mp3"))

    async def scenario() -> str:
        task = asyncio.create_task(executor.run(job))
        while (store.get(job.id).progress or None) is None or store.get(
            job.id
        ).progress.stage != "asr":  # type: ignore[union-attr]
            await asyncio.sleep(0.05)
        store.cancel(job.id, "alice")
        return await task

    assert asyncio.run(scenario()) == "stopped"
    assert store.get(job.id).state is JobState.CANCELLED
    assert not storage.exists(f"results/{job.id}/subtitles.srt")
