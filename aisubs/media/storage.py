"""Where uploaded media and produced results live: a local directory or any fsspec URL.

Keys are relative, slash-separated names such as ``media/<job_id>/source`` and
``results/<job_id>/subtitles.srt``. The first segment of a key picks a *root*: with
:meth:`Storage.from_settings`, ``media/...`` lives under ``MediaSettings.storage_url`` and
``results/...`` under ``MediaSettings.results_url`` (so results can sit in another bucket with
another lifecycle). The whole key, prefix included, is kept under its root, so two roots
pointing at the same place never collide.

Writes are all-or-nothing, because a crash must never leave half a result that a reader
would take for a whole one:

* local directories: the bytes go to a temporary file in the destination directory, which is
  renamed over the final name (``os.replace``, atomic on POSIX) once complete;
* object stores (gs://, s3://): an object becomes visible only when its upload completes;
  on failure the upload is discarded and anything already visible is removed. (fsspec's
  ``memory://`` store, used in tests, shows a file while it is written; the failure cleanup
  still removes it.)

Size limits are enforced while streaming: :class:`~aisubs.errors.MediaTooLarge` is raised
as soon as the limit is crossed and the partial object is removed.

Everything is synchronous (like the job store) except :meth:`Storage.aput_stream`, which
streams an async iterator (an HTTP upload) and does its blocking writes in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import shutil
import tempfile
from collections.abc import AsyncIterable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

import fsspec
from fsspec.implementations.local import LocalFileSystem

from aisubs.errors import InvalidRequest, MediaTooLarge, NotFound, StoreUnavailable
from aisubs.settings import MediaSettings

MEDIA_PREFIX = "media"
RESULTS_PREFIX = "results"
# What users read when an object is gone (the key itself is internal).
MISSING = "the file is no longer stored"


def media_key(job_id: str, name: str = "source") -> str:
    """Key of a job's uploaded or fetched media (``media/<job_id>/source``)."""
    return f"{MEDIA_PREFIX}/{job_id}/{name}"


def result_key(job_id: str, name: str) -> str:
    """Key of one of a job's artifacts (``results/<job_id>/subtitles.srt``)."""
    return f"{RESULTS_PREFIX}/{job_id}/{name}"


@dataclass(frozen=True)
class _Root:
    fs: fsspec.AbstractFileSystem
    base: str  # path inside fs, without protocol, no trailing slash

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)


class Storage:
    """Byte storage for media and results over fsspec (local directory by default)."""

    def __init__(
        self, roots: str | Path | Mapping[str, str | Path], **storage_options: Any
    ) -> None:
        """``roots``: one URL for every key, or a mapping from first key segment to URL.

        ``storage_options`` go to fsspec (credentials, project...) for every root.
        """
        if isinstance(roots, str | Path):
            self._default: _Root | None = _make_root(str(roots), storage_options)
            self._roots: dict[str, _Root] = {}
        else:
            self._default = None
            self._roots = {
                prefix: _make_root(str(url), storage_options) for prefix, url in roots.items()
            }
            if not self._roots:
                raise InvalidRequest("storage needs at least one root")

    @classmethod
    def from_settings(cls, settings: MediaSettings, **storage_options: Any) -> Storage:
        """``media/...`` under ``storage_url``; ``results/...`` under ``results_url``."""
        return cls(
            {MEDIA_PREFIX: settings.storage_url, RESULTS_PREFIX: settings.results_url},
            **storage_options,
        )

    # ------------------------------------------------------------ writing
    def put_stream(self, key: str, chunks: Iterable[bytes], max_bytes: int | None = None) -> int:
        """Store the concatenated ``chunks`` under ``key``; return the number of bytes.

        Raises :class:`MediaTooLarge` (and stores nothing) once more than ``max_bytes``
        arrive. Any other failure also leaves no object behind.
        """
        writer = _Writer(*self._locate(key))
        try:
            for chunk in chunks:
                writer.write(chunk, max_bytes)
            writer.commit()
        except BaseException:
            writer.abort()
            raise
        return writer.size

    async def aput_stream(
        self, key: str, chunks: AsyncIterable[bytes], max_bytes: int | None = None
    ) -> int:
        """:meth:`put_stream` for an async source; file IO runs in a worker thread."""
        writer = await asyncio.to_thread(_Writer, *self._locate(key))
        try:
            async for chunk in chunks:
                await asyncio.to_thread(writer.write, chunk, max_bytes)
            await asyncio.to_thread(writer.commit)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(writer.abort))
            raise
        return writer.size

    def put_bytes(self, key: str, data: bytes, max_bytes: int | None = None) -> int:
        """Store ``data`` under ``key`` atomically (a whole object or none)."""
        return self.put_stream(key, [data], max_bytes)

    def put_file(self, key: str, path: Path, max_bytes: int | None = None) -> int:
        """Copy a local file into storage under ``key``."""
        with open(path, "rb") as src:
            return self.put_stream(key, iter(lambda: src.read(1024 * 1024), b""), max_bytes)

    # ------------------------------------------------------------ reading
    def open(self, key: str) -> BinaryIO:
        """Open ``key`` for reading (binary); the caller closes it. :class:`NotFound` if absent."""
        root, path = self._locate(key)
        try:
            return root.fs.open(path, "rb")
        except FileNotFoundError as exc:
            raise NotFound(f"no stored object {key!r}", public=MISSING) from exc
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot read {key!r}: {exc}", public="the file storage is unavailable; retry later"
            ) from exc

    def get_bytes(self, key: str) -> bytes:
        """The whole content of ``key``; for small objects (results), not media."""
        with self.open(key) as f:
            return f.read()

    @contextlib.contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        """A local file holding ``key`` for the duration of the ``with`` block.

        Decoders need a real file. For a local root this is the stored file itself (do not
        modify it); for a remote root the object is downloaded to a temporary file that is
        deleted when the block ends.
        """
        root, path = self._locate(key)
        if root.is_local:
            if not os.path.isfile(path):
                raise NotFound(f"no stored object {key!r}", public=MISSING)
            yield Path(path)
            return
        suffix = posixpath.splitext(path)[1]
        with tempfile.TemporaryDirectory(prefix="aisubs-media-") as tmp:
            local = Path(tmp) / f"object{suffix}"
            try:
                root.fs.get_file(path, str(local))
            except FileNotFoundError as exc:
                raise NotFound(f"no stored object {key!r}", public=MISSING) from exc
            yield local

    def exists(self, key: str) -> bool:
        root, path = self._locate(key)
        return bool(root.fs.isfile(path))

    def size(self, key: str) -> int:
        """Size in bytes of ``key``; :class:`NotFound` if absent."""
        root, path = self._locate(key)
        try:
            return int(root.fs.size(path))
        except FileNotFoundError as exc:
            raise NotFound(f"no stored object {key!r}", public=MISSING) from exc

    def list_keys(self, prefix: str) -> list[str]:
        """Keys of every object under ``prefix`` (a key folder such as ``results/<job>``)."""
        root, path = self._locate(prefix)
        if not root.fs.isdir(path):
            return []
        found = root.fs.find(path)
        base = root.base.rstrip("/")
        return sorted(
            posixpath.relpath(_strip(root.fs, p), base)
            for p in found
            if not posixpath.basename(p).endswith(".part")
        )

    def url(self, key: str) -> str:
        """A full fsspec URL for ``key`` (for logs and for tools that take URLs)."""
        root, path = self._locate(key)
        return str(root.fs.unstrip_protocol(path))

    # ------------------------------------------------------------ deleting
    def delete(self, key: str) -> bool:
        """Remove one object; return whether it existed."""
        root, path = self._locate(key)
        try:
            root.fs.rm_file(path)
        except FileNotFoundError:
            return False
        return True

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object under ``prefix`` (e.g. ``media/<job_id>``); return how many."""
        root, path = self._locate(prefix)
        if root.fs.isfile(path):
            root.fs.rm_file(path)
            return 1
        if not root.fs.isdir(path):
            return 0
        found = root.fs.find(path)
        if root.is_local:
            shutil.rmtree(path, ignore_errors=True)
        else:
            root.fs.rm(path, recursive=True)
        return len(found)

    # ------------------------------------------------------------ internals
    def _locate(self, key: str) -> tuple[_Root, str]:
        parts = _validate_key(key)
        if self._default is not None:
            root = self._default
        else:
            try:
                root = self._roots[parts[0]]
            except KeyError:
                raise InvalidRequest(
                    f"storage key {key!r} must start with one of {sorted(self._roots)}"
                ) from None
        return root, posixpath.join(root.base, *parts)


class _Writer:
    """One object being written: to a temp file renamed at commit (local) or directly."""

    def __init__(self, root: _Root, path: str) -> None:
        self.root = root
        self.path = path
        self.size = 0
        self._tmp: str | None = None
        self._file: IO[bytes]
        if root.is_local:
            directory = os.path.dirname(path)
            os.makedirs(directory, exist_ok=True)
            fd, self._tmp = tempfile.mkstemp(
                prefix=f".{os.path.basename(path)}.", suffix=".part", dir=directory
            )
            self._file = os.fdopen(fd, "wb")
        else:
            self._file = root.fs.open(path, "wb")

    def write(self, chunk: bytes, max_bytes: int | None) -> None:
        self.size += len(chunk)
        if max_bytes is not None and self.size > max_bytes:
            raise MediaTooLarge(f"the upload is larger than the limit of {max_bytes} bytes")
        self._file.write(chunk)

    def commit(self) -> None:
        if self._tmp is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._tmp, self.path)
            self._tmp = None
        else:
            self._file.close()

    def abort(self) -> None:
        discard = getattr(self._file, "discard", None)
        with contextlib.suppress(Exception):
            if callable(discard):
                discard()  # abort a pending multipart upload (s3fs, gcsfs)
            self._file.close()
        if self._tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp)
            self._tmp = None
        else:
            with contextlib.suppress(Exception):
                if self.root.fs.isfile(self.path):
                    self.root.fs.rm_file(self.path)


def _make_root(url: str, storage_options: Mapping[str, Any]) -> _Root:
    fs, base = fsspec.core.url_to_fs(url, **storage_options)
    base = base.rstrip("/") or "/"
    if isinstance(fs, LocalFileSystem):
        base = os.path.abspath(base)
        os.makedirs(base, exist_ok=True)
    return _Root(fs=fs, base=base)


def _validate_key(key: str) -> list[str]:
    """Refuse keys that could escape their root (``..``, absolute paths, empty segments)."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise InvalidRequest(f"invalid storage key {key!r}")
    parts = key.strip("/").split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise InvalidRequest(f"invalid storage key {key!r}")
    return parts


def _strip(fs: fsspec.AbstractFileSystem, path: str) -> str:
    return str(fs._strip_protocol(path))
