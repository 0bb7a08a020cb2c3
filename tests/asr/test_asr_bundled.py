"""Offline model resolution: pinned checksums, atomic assembly, clear errors."""

from __future__ import annotations

import json
import multiprocessing
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from aisubs.asr import bundled
from aisubs.asr.bundled import BUNDLED_MODEL_NAMES, BUNDLED_MODELS, MARKER, resolve_model
from aisubs.errors import ModelChecksumMismatch, ModelNotFound
from aisubs.settings import ASRSettings


def _settings(tmp_path: Path, **kw: object) -> ASRSettings:
    return ASRSettings(cache_dir=tmp_path, **kw)  # type: ignore[arg-type]


def test_bundled_names() -> None:
    assert set(BUNDLED_MODEL_NAMES) == {"base", "tiny.en"}


@pytest.mark.parametrize("name", ["base", "tiny.en"])
def test_bundled_model_assembles_complete_directory(tmp_path: Path, name: str) -> None:
    path = resolve_model(name, _settings(tmp_path))
    assert path == tmp_path / "bundled" / name
    for f in ("model.bin", "config.json", "tokenizer.json"):
        assert (path / f).is_file()
    marker = json.loads((path / MARKER).read_text())["files"]
    assert marker["model.bin"]["sha256"] == BUNDLED_MODELS[name].files[0].sha256
    # no temporary directories left behind
    assert [p.name for p in (tmp_path / "bundled").iterdir()] == [name]


def test_warm_start_does_not_rehash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(tmp_path)
    first = resolve_model("tiny.en", settings)

    def boom(path: Path) -> str:
        raise AssertionError(f"re-hashed {path}")

    monkeypatch.setattr(bundled, "_sha256", boom)
    assert resolve_model("tiny.en", settings) == first


def test_tampered_cache_is_detected_and_rebuilt(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    path = resolve_model("tiny.en", settings)
    model_bin = path / "model.bin"
    original = model_bin.read_bytes()
    with open(model_bin, "r+b") as f:  # same size, one byte changed
        f.seek(len(original) // 2)
        f.write(bytes([original[len(original) // 2] ^ 0xFF]))
    assert resolve_model("tiny.en", settings) == path
    assert model_bin.read_bytes() == original


def test_modified_package_weights_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = BUNDLED_MODELS["tiny.en"]
    bad_file = replace(model.files[1], sha256="0" * 64)
    bad_part = replace(bad_file.parts[0], sha256="0" * 64)
    bad = replace(model, files=(model.files[0], replace(bad_file, parts=(bad_part,))))
    monkeypatch.setitem(BUNDLED_MODELS, "tiny.en", bad)
    with pytest.raises(ModelChecksumMismatch) as err:
        resolve_model("tiny.en", _settings(tmp_path))
    assert "config.json" in str(err.value)
    assert list((tmp_path / "bundled").iterdir()) == []  # nothing half-built is visible


def test_missing_model_names_the_settings_that_fix_it(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound) as err:
        resolve_model("small", _settings(tmp_path))
    message = str(err.value)
    assert "AISUBS_ASR__MODEL" in message and "AISUBS_ASR__ALLOW_DOWNLOAD" in message
    assert not (tmp_path / "bundled").exists()  # no silent fallback to a bundled model


def test_missing_directory_path(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="does not exist"):
        resolve_model(str(tmp_path / "nope"), _settings(tmp_path))


def test_directory_without_tokenizer_is_refused_offline(tmp_path: Path) -> None:
    src = resolve_model("tiny.en", _settings(tmp_path))
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    for f in ("model.bin", "config.json"):
        (incomplete / f).symlink_to(src / f)
    with pytest.raises(ModelNotFound, match=r"tokenizer\.json"):
        resolve_model(str(incomplete), _settings(tmp_path))


def test_baked_model_in_cache_dir_is_used(tmp_path: Path) -> None:
    src = resolve_model("tiny.en", _settings(tmp_path / "a"))
    baked = tmp_path / "b" / "small"
    shutil.copytree(src, baked)
    assert resolve_model("small", _settings(tmp_path / "b")) == baked


def _resolve_in_child(cache: str) -> str:
    return str(resolve_model("tiny.en", ASRSettings(cache_dir=Path(cache))))


def test_concurrent_processes_assemble_once_safely(tmp_path: Path) -> None:
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        paths = pool.map(_resolve_in_child, [str(tmp_path)] * 2)
    assert len(set(paths)) == 1
    assert [p.name for p in (tmp_path / "bundled").iterdir()] == ["tiny.en"]
    # and the result verifies
    assert bundled._verified(Path(paths[0]), BUNDLED_MODELS["tiny.en"])
