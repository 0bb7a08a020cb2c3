"""SQLite connections are pooled: thread pools that come and go do not pile them up."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from aisubs.queue.sqlite_store import MAX_IDLE_CONNECTIONS, SqliteJobStore
from aisubs.settings import QueueSettings


def open_files_of(path: Path) -> int:
    """File descriptors of this process open on ``path`` (the database file itself)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                count += 1
        except OSError:
            continue
    return count


def test_short_lived_threads_reuse_connections(tmp_path: Path) -> None:
    db = tmp_path / "jobs.sqlite3"
    store = SqliteJobStore(db, QueueSettings())
    job = store.submit("alice", "u://1")

    def read() -> None:
        assert store.get(job.id).owner == "alice"

    for _ in range(200):  # like a thread pool whose idle workers exit and new ones start
        t = threading.Thread(target=read)
        t.start()
        t.join()
    assert open_files_of(db) <= 2

    # Many at once open more, but only a bounded number stay open afterwards.
    start = threading.Barrier(40)

    def read_together() -> None:
        start.wait()
        read()

    threads = [threading.Thread(target=read_together) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # (SQLite itself may hold on to closed connections' descriptors while others of the
    # process keep locks on the file, and reuses them for the next ones it opens.)
    assert store.backend.idle_connections <= MAX_IDLE_CONNECTIONS
    store.close()
    assert open_files_of(db) == 0
