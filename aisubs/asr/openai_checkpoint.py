"""Build an openai-whisper checkpoint from CTranslate2 Whisper weights.

Offline, the only Whisper weights on hand are the CTranslate2 ones faster-whisper loads, so
the openai-whisper engine (PyTorch) is built from the same numbers. This also makes engine
comparisons fair: same weights, different runtimes.

CTranslate2's layout (``ctranslate2/specs/whisper_spec.py`` and ``transformer_spec.py``)
differs from openai-whisper's ``whisper.model.Whisper`` in three ways handled here:

* self-attention stores Q, K and V fused in ``linear_0`` (and cross-attention K and V fused
  in ``linear_1``): they are split, and the key bias part, which Whisper does not have, is
  checked to be zero and dropped;
* positional encodings are stored as they are used (sinusoids for the encoder, learned for
  the decoder) and load unchanged;
* the decoder output projection is tied to the token embedding, so it is not a parameter of
  its own in openai-whisper.

The word-timestamp alignment heads come from the model's ``config.json``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from aisubs.asr.ct2_format import CT2Model, read_ct2_model
from aisubs.errors import ModelError

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1


def _t(array: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.array(array))  # copy: the reader returns read-only views


def _count_layers(model: CT2Model, prefix: str) -> int:
    n = 0
    while f"{prefix}/layer_{n}/ffn/linear_0/weight" in model:
        n += 1
    return n


def _split(array: np.ndarray, parts: int) -> list[np.ndarray]:
    if array.shape[0] % parts:
        raise ModelError(f"cannot split a fused projection of {array.shape[0]} rows in {parts}")
    return list(np.split(array, parts, axis=0))


def _linear(sd: dict[str, Any], dst: str, m: CT2Model, src: str, bias: bool = True) -> None:
    sd[f"{dst}.weight"] = _t(m[f"{src}/weight"])
    if bias:
        sd[f"{dst}.bias"] = _t(m[f"{src}/bias"])


def _norm(sd: dict[str, Any], dst: str, m: CT2Model, src: str) -> None:
    sd[f"{dst}.weight"] = _t(m[f"{src}/gamma"])
    sd[f"{dst}.bias"] = _t(m[f"{src}/beta"])


def _qkv(sd: dict[str, Any], dst: str, m: CT2Model, src: str) -> None:
    wq, wk, wv = _split(m[f"{src}/weight"], 3)
    bq, bk, bv = _split(m[f"{src}/bias"], 3)
    if np.any(bk != 0):
        raise ModelError(f"{src}: key bias is not zero; not a Whisper model")
    sd[f"{dst}.query.weight"], sd[f"{dst}.query.bias"] = _t(wq), _t(bq)
    sd[f"{dst}.key.weight"] = _t(wk)
    sd[f"{dst}.value.weight"], sd[f"{dst}.value.bias"] = _t(wv), _t(bv)


def _kv(sd: dict[str, Any], dst: str, m: CT2Model, src: str) -> None:
    wk, wv = _split(m[f"{src}/weight"], 2)
    bk, bv = _split(m[f"{src}/bias"], 2)
    if np.any(bk != 0):
        raise ModelError(f"{src}: key bias is not zero; not a Whisper model")
    sd[f"{dst}.key.weight"] = _t(wk)
    sd[f"{dst}.value.weight"], sd[f"{dst}.value.bias"] = _t(wv), _t(bv)


def _block(sd: dict[str, Any], dst: str, m: CT2Model, src: str, cross: bool) -> None:
    _qkv(sd, f"{dst}.attn", m, f"{src}/self_attention/linear_0")
    _linear(sd, f"{dst}.attn.out", m, f"{src}/self_attention/linear_1")
    _norm(sd, f"{dst}.attn_ln", m, f"{src}/self_attention/layer_norm")
    if cross:
        _linear(sd, f"{dst}.cross_attn.query", m, f"{src}/attention/linear_0")
        _kv(sd, f"{dst}.cross_attn", m, f"{src}/attention/linear_1")
        _linear(sd, f"{dst}.cross_attn.out", m, f"{src}/attention/linear_2")
        _norm(sd, f"{dst}.cross_attn_ln", m, f"{src}/attention/layer_norm")
    _linear(sd, f"{dst}.mlp.0", m, f"{src}/ffn/linear_0")
    _linear(sd, f"{dst}.mlp.2", m, f"{src}/ffn/linear_1")
    _norm(sd, f"{dst}.mlp_ln", m, f"{src}/ffn/layer_norm")


def convert_ct2_whisper(model_dir: Path) -> dict[str, Any]:
    """Return ``{"dims", "model_state_dict", "alignment_heads"}`` for openai-whisper."""
    m = read_ct2_model(model_dir / "model.bin")
    if m.spec_name != "WhisperSpec":
        raise ModelError(f"{model_dir} holds a {m.spec_name}, not a Whisper model")
    config = json.loads((model_dir / "config.json").read_text())
    n_audio_layer = _count_layers(m, "encoder")
    n_text_layer = _count_layers(m, "decoder")
    conv1 = m["encoder/conv1/weight"]
    enc_pos = m["encoder/position_encodings/encodings"]
    dec_pos = m["decoder/position_encodings/encodings"]
    embeddings = m["decoder/embeddings/weight"]
    dims = {
        "n_mels": int(conv1.shape[1]),
        "n_audio_ctx": int(enc_pos.shape[0]),
        "n_audio_state": int(enc_pos.shape[1]),
        "n_audio_head": int(m["encoder/num_heads"]),
        "n_audio_layer": n_audio_layer,
        "n_vocab": int(embeddings.shape[0]),
        "n_text_ctx": int(dec_pos.shape[0]),
        "n_text_state": int(dec_pos.shape[1]),
        "n_text_head": int(m["decoder/num_heads"]),
        "n_text_layer": n_text_layer,
    }
    if "decoder/projection/weight" in m and not np.array_equal(
        m["decoder/projection/weight"], embeddings
    ):
        raise ModelError("output projection is not tied to the token embedding")

    sd: dict[str, Any] = {}
    _linear(sd, "encoder.conv1", m, "encoder/conv1")
    _linear(sd, "encoder.conv2", m, "encoder/conv2")
    sd["encoder.positional_embedding"] = _t(enc_pos)
    for i in range(n_audio_layer):
        _block(sd, f"encoder.blocks.{i}", m, f"encoder/layer_{i}", cross=False)
    _norm(sd, "encoder.ln_post", m, "encoder/layer_norm")
    sd["decoder.token_embedding.weight"] = _t(embeddings)
    sd["decoder.positional_embedding"] = _t(dec_pos)
    for i in range(n_text_layer):
        _block(sd, f"decoder.blocks.{i}", m, f"decoder/layer_{i}", cross=True)
    _norm(sd, "decoder.ln", m, "decoder/layer_norm")
    heads = [[int(layer), int(head)] for layer, head in config.get("alignment_heads") or []]
    return {"dims": dims, "model_state_dict": sd, "alignment_heads": heads}


def build_model(checkpoint: dict[str, Any], device: str = "cpu") -> Any:
    """Instantiate ``whisper.model.Whisper`` from a checkpoint, strictly (no missing keys)."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    dims = ModelDimensions(**checkpoint["dims"])
    model = Whisper(dims)
    model.load_state_dict(checkpoint["model_state_dict"], strict=True)
    heads = checkpoint.get("alignment_heads")
    if heads:
        mask = torch.zeros(dims.n_text_layer, dims.n_text_head, dtype=torch.bool)
        for layer, head in heads:
            mask[layer, head] = True
        model.register_buffer("alignment_heads", mask.to_sparse(), persistent=False)
    return model.to(device)


def _source_identity(model_dir: Path) -> dict[str, Any]:
    st = (model_dir / "model.bin").stat()
    return {
        "format": CHECKPOINT_FORMAT,
        "source": str(model_dir.resolve()),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
    }


def cached_checkpoint(model_dir: Path, name: str, cache_dir: Path) -> Path:
    """Path of the converted checkpoint for ``model_dir``, converting once per source version.

    The ``.pt`` file is written to a temporary name and renamed into place, so concurrent
    processes either see a complete file or none; a JSON sidecar records which source files
    (path, size, mtime) it was built from.
    """
    import torch

    out_dir = cache_dir / "openai-whisper"
    safe = name.replace(os.sep, "_").strip("._") or "model"
    target = out_dir / f"{safe}.from-ct2.pt"
    sidecar = target.with_suffix(".json")
    identity = _source_identity(model_dir)
    try:
        if target.is_file() and json.loads(sidecar.read_text()) == identity:
            return target
    except (OSError, ValueError):
        pass
    out_dir.mkdir(parents=True, exist_ok=True)
    log.info("converting CTranslate2 Whisper %s to an openai-whisper checkpoint", model_dir)
    checkpoint = convert_ct2_whisper(model_dir)
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{safe}-", suffix=".pt")
    os.close(fd)
    try:
        torch.save(checkpoint, tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{safe}-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(identity, f)
    os.replace(tmp, sidecar)
    return target


def load_checkpoint(path: Path) -> dict[str, Any]:
    import torch

    data: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    return data
