"""The job executor's metrics and job-stamped logs, in process (fake models, real store)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from aisubs.errors import PipelineError
from aisubs.media.storage import Storage, media_key
from aisubs.observability import JobMetrics, MemoryRecorder, configure_logging
from aisubs.observability import metrics as m
from aisubs.queue import JobState, open_store
from aisubs.runner import UPLOAD_SCHEME, JobExecutor
from tests.observability.obs_support import FakeStages, obs_settings
from tests.support.paths import JFK


def _executor(tmp: Path, stages: Any, **sections: Any) -> tuple[Any, Any, JobExecutor, Any]:
    settings = obs_settings(tmp, **sections)
    store = open_store(settings)
    storage = Storage.from_settings(settings.media)
    recorder = MemoryRecorder()
    executor = JobExecutor(settings, store, storage, stages, "worker-7", JobMetrics(recorder))
    return store, storage, executor, recorder


def _claim(store: Any, storage: Storage, path: Path, **options: Any) -> Any:
    key = media_key("upload-" + path.stem)
    storage.put_file(key, path)
    store.submit("alice", UPLOAD_SCHEME + key, {"diarize": True, **options})
    (job,) = store.claim("dispatcher", 1)
    return job


def test_success_records_stages_rtf_audio_and_completion(tmp_path: Path) -> None:
    store, storage, executor, rec = _executor(tmp_path, FakeStages())
    job = _claim(store, storage, JFK)
    assert asyncio.run(executor.run(job)) == "succeeded"
    audio = store.get(job.id).audio_duration_s
    assert audio == pytest.approx(11.0, abs=0.5)
    assert rec.get(m.JOBS_COMPLETED) == [1]
    assert rec.get(m.AUDIO_SECONDS) == [pytest.approx(audio)]
    (took,) = rec.get(m.JOB_PROCESSING, outcome="succeeded")
    for stage in ("fetch", "decode", "asr", "diarization", "subtitles"):
        (seconds,) = rec.get(m.STAGE_SECONDS, stage=stage)
        (rtf,) = rec.get(m.STAGE_RTF, stage=stage)
        assert 0 <= seconds <= took
        assert rtf == pytest.approx(seconds / audio)
    assert rec.series(m.JOBS_FAILED) == {}


def test_final_failure_counted_by_stage_and_code(tmp_path: Path) -> None:
    store, storage, executor, rec = _executor(tmp_path, FakeStages())
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF" + b"\x00garbage" * 500)
    job = _claim(store, storage, junk)
    assert asyncio.run(executor.run(job)) == "failed"
    assert rec.get(m.JOBS_FAILED, stage="decode", code="undecodable_media", outcome="failed") == [1]
    assert len(rec.get(m.JOB_PROCESSING, outcome="failed")) == 1
    # fetch finished (the file was there); decode, where it failed, did not
    assert list(rec.series(m.STAGE_SECONDS)) == [(("stage", "fetch"),)]
    assert rec.series(m.STAGE_RTF) == {}
    assert rec.series(m.JOBS_COMPLETED) == {}


def test_retryable_failure_counted_as_retrying(tmp_path: Path) -> None:
    stages = FakeStages(fail_asr=PipelineError("model replica lost", stage="asr"))
    store, storage, executor, rec = _executor(tmp_path, stages)
    job = _claim(store, storage, JFK)
    assert asyncio.run(executor.run(job)) == "retrying"
    assert store.get(job.id).state is JobState.QUEUED
    failed = rec.series(m.JOBS_FAILED)
    assert list(failed.values()) == [[1]]
    labels = dict(next(iter(failed)))
    assert labels["stage"] == "asr" and labels["outcome"] == "retrying"


def test_every_line_of_a_job_carries_its_context(tmp_path: Path) -> None:
    """Executor lines and library lines from worker threads, as JSON, all job-stamped."""
    store, storage, executor, _ = _executor(
        tmp_path, FakeStages(), observability={"log_format": "json"}
    )
    handler = configure_logging(executor.settings.observability)
    buffer = io.StringIO()
    handler.setStream(buffer)
    try:
        job = _claim(store, storage, JFK)
        logging.getLogger("aisubs.test").info("before the job")
        assert asyncio.run(executor.run(job)) == "succeeded"
        logging.getLogger("aisubs.test").info("after the job")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    inside = [e for e in lines if e["message"] not in ("before the job", "after the job")]
    messages = [e["message"] for e in inside]
    assert "job started" in messages and "job succeeded" in messages
    assert any(e["logger"] == "faster_whisper" for e in inside), messages
    assert any(e["message"].startswith("stage subtitles finished") for e in inside)
    for entry in inside:
        assert entry["job_id"] == str(job.id), entry
        assert entry["attempt"] == 1
        assert entry["worker_instance"] == "worker-7"
    outside = [e for e in lines if e["message"] in ("before the job", "after the job")]
    assert len(outside) == 2 and all("job_id" not in e for e in outside)


def test_text_format_appends_the_job_fields(tmp_path: Path) -> None:
    from aisubs.observability.logs import JobContextFilter, TextFormatter, job_context

    record_out = io.StringIO()
    handler = logging.StreamHandler(record_out)
    handler.setFormatter(TextFormatter())
    handler.addFilter(JobContextFilter())
    logger = logging.getLogger("aisubs.test.text")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with job_context("j-1", 2, "w-1"):
            logger.info("inside")
        logger.info("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = record_out.getvalue().splitlines()
    assert inside.endswith("inside [job_id=j-1 attempt=2 worker_instance=w-1]")
    assert outside.endswith("outside")
