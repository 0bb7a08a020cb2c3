"""Reader for CTranslate2's ``model.bin`` format.

The openai-whisper engine has no weights of its own offline: it is built from the same
CTranslate2 files faster-whisper loads. CTranslate2's Python API cannot hand variables back,
so this module reads the binary layout written by ``ctranslate2.specs.model_spec
.ModelSpec._serialize``: a header (binary version, spec name, spec revision), then each
variable as name, rank, dims, dtype id, byte count and raw bytes, then aliases (a variable
stored once under another name, e.g. a tied projection).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from aisubs.errors import ModelError

# Order of CTranslate2's DataType enum (include/ctranslate2/types.h).
_DTYPES: tuple[str, ...] = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
SUPPORTED_BINARY_VERSIONS = range(5, 7)


@dataclass(frozen=True)
class CT2Model:
    """Variables of one CTranslate2 model, aliases resolved."""

    spec_name: str
    spec_revision: int
    variables: dict[str, np.ndarray]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.variables[name]

    def __contains__(self, name: object) -> bool:
        return name in self.variables


def _read_exact(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise ModelError(f"truncated CTranslate2 model file (wanted {n} bytes, got {len(data)})")
    return data


def _read(f: BinaryIO, fmt: str) -> int:
    return int(struct.unpack("<" + fmt, _read_exact(f, struct.calcsize(fmt)))[0])


def _read_string(f: BinaryIO) -> str:
    length = _read(f, "H")
    raw = _read_exact(f, length)
    return raw[:-1].decode("utf-8")  # stored with a trailing NUL


def _iter_variables(f: BinaryIO, count: int) -> Iterator[tuple[str, np.ndarray]]:
    for _ in range(count):
        name = _read_string(f)
        rank = _read(f, "B")
        shape = tuple(_read(f, "I") for _ in range(rank))
        type_id = _read(f, "B")
        nbytes = _read(f, "I")
        raw = _read_exact(f, nbytes)
        if type_id >= len(_DTYPES):
            raise ModelError(f"unknown CTranslate2 dtype id {type_id} for {name}")
        dtype_name = _DTYPES[type_id]
        if dtype_name == "bfloat16":
            # numpy has no bfloat16: widen the 16 stored bits into the top of a float32.
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            array = bits.view(np.float32)
        else:
            array = np.frombuffer(raw, dtype=np.dtype(dtype_name).newbyteorder("<"))
        yield name, array.reshape(shape)


def read_ct2_model(path: Path) -> CT2Model:
    """Read every variable of a CTranslate2 ``model.bin`` (arrays are read-only views)."""
    with open(path, "rb") as f:
        version = _read(f, "I")
        if version not in SUPPORTED_BINARY_VERSIONS:
            raise ModelError(f"unsupported CTranslate2 binary version {version} in {path}")
        spec_name = _read_string(f)
        revision = _read(f, "I")
        count = _read(f, "I")
        variables = dict(_iter_variables(f, count))
        alias_count = _read(f, "I")
        for _ in range(alias_count):
            alias = _read_string(f)
            target = _read_string(f)
            variables[alias] = variables[target]
    return CT2Model(spec_name=spec_name, spec_revision=revision, variables=variables)
