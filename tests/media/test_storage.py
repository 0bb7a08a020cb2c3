"""Storage over a local directory and fsspec's memory:// store: same behaviour on both."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import fsspec
import pytest

from aisubs.errors import InvalidRequest, MediaTooLarge, NotFound
from aisubs.media.storage import Storage, media_key, result_key
from aisubs.settings import MediaSettings


@pytest.fixture(params=["local", "memory"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "local":
        yield Storage.from_settings(
            MediaSettings(storage_url=str(tmp_path / "media"), results_url=str(tmp_path / "res"))
        )
    else:
        bucket = f"memory://test-{uuid.uuid4().hex}"
        yield Storage.from_settings(
            MediaSettings(storage_url=f"{bucket}/media", results_url=f"{bucket}/results")
        )
        with contextlib.suppress(FileNotFoundError):
            fsspec.filesystem("memory").rm(bucket.removeprefix("memory://"), recursive=True)


def chunks(n: int, size: int = 1000) -> Iterator[bytes]:
    for i in range(n):
        yield bytes([i % 256]) * size


def test_put_stream_and_read_back(storage: Storage) -> None:
    key = media_key("job1")
    assert key == "media/job1/source"
    assert storage.put_stream(key, chunks(5), max_bytes=5000) == 5000
    data = storage.get_bytes(key)
    assert data == b"".join(chunks(5))
    assert storage.exists(key)
    assert storage.size(key) == 5000
    with storage.open(key) as f:
        assert f.read(1000) == bytes([0]) * 1000


def test_size_limit_enforced_while_streaming_and_partial_removed(storage: Storage) -> None:
    key = media_key("job2")
    consumed = []

    def source() -> Iterator[bytes]:
        for c in chunks(100):
            consumed.append(len(c))
            yield c

    with pytest.raises(MediaTooLarge):
        storage.put_stream(key, source(), max_bytes=2500)
    assert len(consumed) == 3  # stopped at the first chunk over the limit, not at the end
    assert not storage.exists(key)
    assert storage.list_keys("media/job2") == []


def test_failing_source_leaves_nothing(storage: Storage) -> None:
    def broken() -> Iterator[bytes]:
        yield b"half"
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        storage.put_stream(result_key("job3", "subtitles.srt"), broken())
    assert not storage.exists(result_key("job3", "subtitles.srt"))


def test_overwrite_replaces_whole_object(storage: Storage) -> None:
    key = result_key("job4", "subtitles.srt")
    storage.put_bytes(key, b"first version, longer")
    storage.put_bytes(key, b"second")
    assert storage.get_bytes(key) == b"second"


def test_prefixes_route_to_their_roots(tmp_path: Path) -> None:
    settings = MediaSettings(storage_url=str(tmp_path / "m"), results_url=str(tmp_path / "r"))
    storage = Storage.from_settings(settings)
    storage.put_bytes(media_key("j"), b"audio")
    storage.put_bytes(result_key("j", "subtitles.vtt"), b"WEBVTT")
    assert (tmp_path / "m" / "media" / "j" / "source").read_bytes() == b"audio"
    assert (tmp_path / "r" / "results" / "j" / "subtitles.vtt").read_bytes() == b"WEBVTT"
    with pytest.raises(InvalidRequest):
        storage.put_bytes("elsewhere/j/x", b"")


def test_same_root_for_both_prefixes_never_collides(tmp_path: Path) -> None:
    root = str(tmp_path / "one")
    storage = Storage.from_settings(MediaSettings(storage_url=root, results_url=root))
    storage.put_bytes(media_key("j"), b"audio")
    storage.put_bytes(result_key("j", "source"), b"result")
    assert storage.delete_prefix("media/j") == 1
    assert storage.get_bytes(result_key("j", "source")) == b"result"


def test_local_write_is_atomic_rename(tmp_path: Path) -> None:
    """No temporary file remains and the final name appears only complete."""
    storage = Storage(tmp_path)
    storage.put_stream("results/j/out.json", chunks(3))
    assert sorted(p.name for p in (tmp_path / "results" / "j").iterdir()) == ["out.json"]

    seen_during_write: list[bool] = []

    def slow() -> Iterator[bytes]:
        yield b"a" * 10
        seen_during_write.append((tmp_path / "results" / "j" / "new.json").exists())
        yield b"b" * 10

    storage.put_stream("results/j/new.json", slow())
    assert seen_during_write == [False]
    assert (tmp_path / "results" / "j" / "new.json").read_bytes() == b"a" * 10 + b"b" * 10


def test_missing_keys(storage: Storage) -> None:
    key = result_key("nobody", "subtitles.srt")
    assert not storage.exists(key)
    with pytest.raises(NotFound):
        storage.get_bytes(key)
    with pytest.raises(NotFound), storage.local_path(key):
        pass
    with pytest.raises(NotFound):
        storage.size(key)
    assert storage.delete(key) is False
    assert storage.delete_prefix("results/nobody") == 0


def test_local_path_gives_a_readable_file(storage: Storage) -> None:
    key = media_key("job5", "source.wav")
    storage.put_bytes(key, b"RIFF....WAVE")
    with storage.local_path(key) as path:
        assert path.read_bytes() == b"RIFF....WAVE"
        assert path.suffix == ".wav"
    assert storage.exists(key)  # the stored object outlives the temporary copy


def test_local_path_of_remote_is_temporary() -> None:
    storage = Storage(f"memory://tmp-{uuid.uuid4().hex}")
    storage.put_bytes("media/j/source", b"data")
    with storage.local_path("media/j/source") as path:
        assert path.read_bytes() == b"data"
    assert not path.exists()


def test_delete_prefix_removes_everything_under_it(storage: Storage) -> None:
    for name in ("subtitles.srt", "subtitles.vtt", "transcript.json"):
        storage.put_bytes(result_key("job6", name), name.encode())
    storage.put_bytes(result_key("job7", "subtitles.srt"), b"keep")
    assert storage.list_keys("results/job6") == [
        "results/job6/subtitles.srt",
        "results/job6/subtitles.vtt",
        "results/job6/transcript.json",
    ]
    assert storage.delete_prefix("results/job6") == 3
    assert storage.list_keys("results/job6") == []
    assert storage.get_bytes(result_key("job7", "subtitles.srt")) == b"keep"


@pytest.mark.parametrize(
    "key", ["", "/etc/passwd", "media/../../etc/passwd", "media//x", "media/./x", "media\\x"]
)
def test_keys_cannot_escape_the_root(storage: Storage, key: str) -> None:
    with pytest.raises(InvalidRequest):
        storage.put_bytes(key, b"x")


def test_async_stream_upload(storage: Storage) -> None:
    async def upload() -> AsyncIterator[bytes]:
        for c in chunks(4):
            await asyncio.sleep(0)
            yield c

    size = asyncio.run(storage.aput_stream(media_key("job8"), upload(), max_bytes=10_000))
    assert size == 4000
    assert storage.get_bytes(media_key("job8")) == b"".join(chunks(4))

    with pytest.raises(MediaTooLarge):
        asyncio.run(storage.aput_stream(media_key("job9"), upload(), max_bytes=1500))
    assert not storage.exists(media_key("job9"))


def test_put_file_and_url(storage: Storage, tmp_path: Path) -> None:
    src = tmp_path / "in.bin"
    src.write_bytes(b"z" * 3_000_000)
    assert storage.put_file(media_key("job10"), src) == 3_000_000
    assert storage.size(media_key("job10")) == 3_000_000
    assert storage.url(media_key("job10")).endswith("media/job10/source")
