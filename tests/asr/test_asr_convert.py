"""CTranslate2 model.bin reading and conversion to an openai-whisper checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from aisubs.asr.bundled import resolve_model
from aisubs.asr.chunking import plan_cuts
from aisubs.asr.ct2_format import read_ct2_model
from aisubs.asr.openai_checkpoint import (
    build_model,
    cached_checkpoint,
    convert_ct2_whisper,
    load_checkpoint,
)
from aisubs.errors import ModelError
from aisubs.settings import ASRSettings


def test_reader_matches_ctranslate2_writer(tmp_path: Path) -> None:
    from ctranslate2.specs import model_spec

    class Leaf(model_spec.LayerSpec):
        def __init__(self, value: np.ndarray):
            self.weight = value

    class Tiny(model_spec.ModelSpec):
        def __init__(self) -> None:
            super().__init__()
            self.a = Leaf(np.arange(6, dtype=np.float32).reshape(2, 3))
            self.b = Leaf(np.arange(6, dtype=np.float32).reshape(2, 3))  # becomes an alias
            self.h = Leaf(np.array([1.5, -2.0], dtype=np.float16))
            self.n = np.dtype("int16").type(7)

        @property
        def name(self) -> str:
            return "TinySpec"

        @property
        def revision(self) -> int:
            return 2

    spec = Tiny()
    spec.validate()
    spec.optimize()
    spec._serialize(str(tmp_path / "model.bin"))
    model = read_ct2_model(tmp_path / "model.bin")
    assert (model.spec_name, model.spec_revision) == ("TinySpec", 2)
    np.testing.assert_array_equal(model["a/weight"], np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(model["b/weight"], model["a/weight"])
    assert model["h/weight"].dtype == np.float16 and model["h/weight"].tolist() == [1.5, -2.0]
    assert int(model["n"]) == 7


def test_truncated_model_file_is_a_model_error(tmp_path: Path) -> None:
    src = resolve_model("tiny.en", ASRSettings(cache_dir=tmp_path))
    cut = tmp_path / "cut.bin"
    with open(src / "model.bin", "rb") as f:
        cut.write_bytes(f.read(100_000))
    with pytest.raises(ModelError, match="truncated"):
        read_ct2_model(cut)


def test_conversion_loads_strictly_with_alignment_heads(tmp_path: Path) -> None:
    model_dir = resolve_model("tiny.en", ASRSettings(cache_dir=tmp_path))
    checkpoint = convert_ct2_whisper(model_dir)
    dims = checkpoint["dims"]
    assert (dims["n_audio_layer"], dims["n_text_layer"], dims["n_text_state"]) == (4, 4, 384)
    model = build_model(checkpoint)  # load_state_dict(strict=True) inside
    heads = json.loads((model_dir / "config.json").read_text())["alignment_heads"]
    mask = model.alignment_heads.to_dense()
    assert sorted(map(list, mask.nonzero().tolist())) == sorted(heads)
    # the fused QKV was split: query and key differ, and the key has no bias
    block = model.encoder.blocks[0].attn
    assert block.key.bias is None
    assert not np.allclose(block.query.weight.detach().numpy(), block.key.weight.detach().numpy())


def test_checkpoint_is_cached_and_rebuilt_when_the_source_changes(tmp_path: Path) -> None:
    model_dir = resolve_model("tiny.en", ASRSettings(cache_dir=tmp_path))
    first = cached_checkpoint(model_dir, "tiny.en", tmp_path)
    mtime = first.stat().st_mtime_ns
    assert cached_checkpoint(model_dir, "tiny.en", tmp_path) == first
    assert first.stat().st_mtime_ns == mtime  # not rewritten
    assert set(load_checkpoint(first)) == {"dims", "model_state_dict", "alignment_heads"}
    sidecar = first.with_suffix(".json")
    sidecar.write_text(json.dumps({"format": 0}))  # e.g. another source version
    cached_checkpoint(model_dir, "tiny.en", tmp_path)
    assert json.loads(sidecar.read_text())["size"] == (model_dir / "model.bin").stat().st_size


def test_cuts_fall_in_silence_or_on_boundaries() -> None:
    rate = 16000
    rng = np.random.default_rng(0)
    audio = (0.3 * rng.standard_normal(100 * rate)).astype(np.float32)
    audio[27 * rate : 28 * rate] = 0  # a quiet second just before the 30 s target
    cuts = plan_cuts(audio, 30.0)
    assert cuts[-1] == audio.size
    assert 27 * rate <= cuts[0] <= 28 * rate
    assert all(b - a <= 30 * rate for a, b in zip([0, *cuts[:-1]], cuts, strict=True))
    # preferred boundaries win when they lie in the second half of a piece
    assert plan_cuts(audio, 30.0, boundaries=[20 * rate, 40 * rate])[0] == 20 * rate
