"""The `aisubs` command line, run in-process with typer's test runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aisubs.cli import app
from tests.support.paths import JFK, MODELS


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("AISUBS_STORE__SQLITE_PATH", str(tmp_path / "q.sqlite3"))
    monkeypatch.setenv("AISUBS_ASR__CACHE_DIR", str(MODELS))
    return tmp_path


@pytest.mark.slow
def test_transcribe_writes_the_json_contract(env: Path) -> None:
    out = env / "jfk.json"
    result = CliRunner().invoke(
        app,
        [
            "transcribe",
            str(JFK),
            "-o",
            str(out),
            "--format",
            "json",
            "--model",
            "tiny.en",
            "--no-diarize",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert set(doc) >= {"language", "duration", "speakers", "segments"}
    words = [w for s in doc["segments"] for w in s["words"]]
    assert set(words[0]) >= {"start", "end", "word", "speaker", "probability"}
    assert "country" in " ".join(s["text"] for s in doc["segments"])


def test_bad_media_is_a_readable_error(env: Path) -> None:
    junk = env / "junk.wav"
    junk.write_bytes(b"\x00\x01garbage" * 1000)
    result = CliRunner().invoke(
        app, ["transcribe", str(junk), "--model", "tiny.en", "--no-diarize"]
    )
    assert result.exit_code == 2
    assert "undecodable_media" in result.output


def test_missing_model_names_the_setting(env: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["transcribe", str(JFK), "--model", "small", "--no-diarize"],
    )
    assert result.exit_code == 2
    assert "AISUBS_ASR__MODEL" in result.output


def test_unknown_format_is_refused(env: Path) -> None:
    result = CliRunner().invoke(app, ["transcribe", str(JFK), "--format", "docx"])
    assert result.exit_code != 0
    assert "docx" in result.output


def test_apikey_create_prints_the_key_alone_on_the_last_line(env: Path) -> None:
    result = CliRunner().invoke(app, ["apikey", "create", "--owner", "demo", "--max-priority", "7"])
    assert result.exit_code == 0, result.output
    key = result.stdout.strip().splitlines()[-1]
    assert " " not in key and len(key) >= 20
    from aisubs.queue import open_store
    from aisubs.settings import load_settings

    with open_store(load_settings()) as store:
        api_key = store.authenticate(key)
    assert api_key.owner == "demo" and api_key.max_priority == 7
