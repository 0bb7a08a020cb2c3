"""Import torchaudio's pure-Python parts when its compiled extension cannot load.

PyPI's Linux torchaudio wheels are CUDA builds: their ``_torchaudio.so`` links against
``libc10_cuda.so``, which a CPU build of torch does not ship, so a plain ``import torchaudio``
raises ``OSError`` and with it ``import pyannote.audio``. Everything pyannote needs when it is
handed an in-memory waveform (feature transforms, ``compliance.kaldi``) is pure Python, and
torchaudio itself treats a *missing* extension as a supported state
(``_IS_TORCHAUDIO_EXT_AVAILABLE = False``). We reproduce exactly that state: when the normal
import fails to load the library, a stand-in ``torchaudio._extension`` that reports "no
extension" is registered and the import is retried. Nothing is patched when the extension
loads (CPU wheels, GPU machines).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import threading
import types
from typing import Any

log = logging.getLogger(__name__)
_lock = threading.Lock()


def _extensionless_module() -> types.ModuleType:
    from torchaudio._internal.module_utils import fail_with_message, no_op  # noqa: F401

    module = types.ModuleType("torchaudio._extension")
    module.__doc__ = "Stand-in registered by aisubs: torchaudio without its compiled extension."
    module._IS_TORCHAUDIO_EXT_AVAILABLE = False  # type: ignore[attr-defined]
    module._IS_ALIGN_AVAILABLE = False  # type: ignore[attr-defined]
    module.fail_if_no_align = fail_with_message(  # type: ignore[attr-defined]
        "Requires torchaudio's alignment extension, which could not be loaded."
    )

    def _load_lib(lib: str) -> bool:  # the real one raises when the .so cannot load
        return False

    module._load_lib = _load_lib  # type: ignore[attr-defined]
    return module


def _purge_torchaudio() -> None:
    for name in [n for n in sys.modules if n == "torchaudio" or n.startswith("torchaudio.")]:
        del sys.modules[name]


def import_torchaudio() -> Any:
    """Import and return ``torchaudio``, without its extension if that cannot load."""
    with _lock:
        try:
            return importlib.import_module("torchaudio")
        except OSError as exc:
            log.info("torchaudio extension unavailable (%s); using its pure-Python parts", exc)
        _purge_torchaudio()
        # Importing torchaudio._internal runs torchaudio/__init__.py, which would load the
        # extension again: register the package shell first so only the helpers load.
        spec = importlib.util.find_spec("torchaudio")
        if spec is None or spec.submodule_search_locations is None:
            raise ImportError("torchaudio is not installed")
        shell = types.ModuleType("torchaudio")
        shell.__path__ = list(spec.submodule_search_locations)
        sys.modules["torchaudio"] = shell
        try:
            stand_in = _extensionless_module()
        finally:
            _purge_torchaudio()
        sys.modules["torchaudio._extension"] = stand_in
        try:
            module = importlib.import_module("torchaudio")
        except BaseException:
            _purge_torchaudio()
            raise
        module._extension = stand_in  # type: ignore[attr-defined]
        return module
