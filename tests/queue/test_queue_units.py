"""Queue rules that need no database: backoff, options, error mapping, named SQL files."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aisubs.errors import PUBLIC_MESSAGES, InvalidRequest, PipelineError, UndecodableMedia
from aisubs.queue.models import JobError, JobOptions, JobState
from aisubs.queue.retry import backoff_seconds
from aisubs.queue.sql import migrations, parse_named_queries, queries
from aisubs.settings import QueueSettings


def test_backoff_doubles_from_the_seed_defaults_and_caps() -> None:
    rules = QueueSettings(retry_jitter=0)
    assert [backoff_seconds(n, rules) for n in range(1, 9)] == [
        60,
        120,
        240,
        480,
        960,
        1920,
        3600,
        3600,
    ]
    with pytest.raises(ValueError):
        backoff_seconds(0, rules)


@given(attempt=st.integers(1, 40), jitter=st.floats(0, 1), seed=st.integers(0, 2**32))
def test_backoff_jitter_stays_in_bounds(attempt: int, jitter: float, seed: int) -> None:
    rules = QueueSettings(retry_jitter=jitter)
    base = min(3600.0, 60.0 * 2 ** (attempt - 1))
    wait = backoff_seconds(attempt, rules, random.Random(seed))
    assert 0 <= wait <= 3600
    assert base * (1 - jitter) - 1e-9 <= wait <= base * (1 + jitter) + 1e-9


def test_job_options_refuse_unknown_keys_and_name_the_problem() -> None:
    assert JobOptions.parse(None) == JobOptions()
    opts = JobOptions.parse({"task": "translate", "num_speakers": 2, "formats": ["srt"]})
    assert opts.formats == ("srt",) and JobOptions.parse(opts.to_dict()) == opts
    for bad, needle in [
        ({"speakers": 2}, "speakers"),
        ({"num_speakers": 0}, "num_speakers"),
        ({"num_speakers": 5, "max_speakers": 3}, "num_speakers"),
        ({"formats": []}, "formats"),
        ({"prompt": "x" * 5000}, "prompt"),
    ]:
        with pytest.raises(InvalidRequest) as err:
            JobOptions.parse(bad)
        assert needle in str(err.value)


def test_job_error_from_exceptions() -> None:
    # The job keeps the public message of the code; the detail ("bad bytes") is for logs.
    assert JobError.from_exception(UndecodableMedia("bad bytes"), "decode") == JobError(
        "undecodable_media",
        PUBLIC_MESSAGES["undecodable_media"],
        retryable=False,
        stage="decode",
    )
    assert JobError.from_exception(PipelineError("oom", stage="asr")) == JobError(
        "pipeline_error",
        "processing the media failed in the asr stage",
        retryable=True,
        stage="asr",
    )
    safe = UndecodableMedia("decoder said: /tmp/x.wav", public="only the first 3 s decode")
    assert JobError.from_exception(safe).message == "only the first 3 s decode"
    unknown = JobError.from_exception(KeyError("x"), "align")
    assert (unknown.code, unknown.retryable, unknown.stage) == ("internal_error", True, "align")


def test_states_are_the_database_ones() -> None:
    for dialect in ("sqlite", "postgres"):
        schema = migrations(dialect)[0][1]
        assert all(f"'{s.value}'" in schema for s in JobState)
    assert {s for s in JobState if s.is_terminal} == {
        JobState.SUCCEEDED,
        JobState.FAILED,
        JobState.CANCELLED,
    }


def test_named_queries() -> None:
    parsed = parse_named_queries("-- header\n-- name: a\nSELECT 1;\n\n-- name: b\nSELECT 2;\n")
    assert parsed == {"a": "SELECT 1;", "b": "SELECT 2;"}
    with pytest.raises(ValueError):
        parse_named_queries("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;")
    assert queries("sqlite").keys() == queries("postgres").keys()
