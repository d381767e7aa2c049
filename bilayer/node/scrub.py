"""Deleted payloads leave the disk, not only the tables.

A redaction (or a content block) deletes a payload row inside the checkpoint's transaction.
With `secure_delete` (set on every connection, whatever the SQLite build's default) the
page written by that transaction no longer holds the bytes, but in WAL mode older copies
of the page stay in the `-wal` file, and in the database file until the WAL is checkpointed.
So after each checkpoint that wrote tombstones the node runs `wal_checkpoint(TRUNCATE)` on a
worker thread: the clean pages are copied into the database file and the WAL is cut to
zero bytes. A node killed before that does it when it starts again, before it serves.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

from .storage import Storage

log = logging.getLogger("bilayer.node")

RETRY_S = 0.5  # readers in the middle of a query can hold the WAL; try again shortly
MAX_ATTEMPTS = 120


def truncate_wal(conn: sqlite3.Connection) -> bool:
    """Copy the WAL into the database file and truncate it; False if a reader kept it busy."""
    busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return int(busy) == 0


class PayloadScrubber:
    """Watches the tombstone count after each applied checkpoint; when it grew, truncates the
    WAL off the event loop (one run at a time; a request during a run queues one more)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scrub")
        self._reader = storage.read_connection()
        self._tombstones = self._count()
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self.scrubbed = 0  # completed runs, for tests and metrics

    def _count(self) -> int:
        return int(self._reader.execute("SELECT count(*) FROM tombstones").fetchone()[0])

    def scrub_now(self) -> None:
        """At start, before serving: whatever a killed process left in the WAL goes now."""
        started = time.monotonic()
        if self.storage.with_writer(truncate_wal):
            log.info("write-ahead log truncated at start in %.3f s", time.monotonic() - started)
        else:
            log.warning("write-ahead log still in use at start; it is truncated after the next deletion")

    def after_checkpoint(self) -> None:
        count = self._count()
        if count <= self._tombstones:
            return
        self._tombstones = count
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._scrub())

    async def _scrub(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._again = False
            started = time.monotonic()
            for _ in range(MAX_ATTEMPTS):
                try:
                    done = await loop.run_in_executor(self._executor, self.storage.with_writer, truncate_wal)
                except sqlite3.Error as exc:
                    log.error("cannot truncate the write-ahead log after a deletion: %s", exc)
                    done = False
                if done:
                    self.scrubbed += 1
                    log.info("deleted payloads scrubbed from disk (write-ahead log truncated in %.3f s)",
                             time.monotonic() - started)
                    break
                await asyncio.sleep(RETRY_S)
            else:
                log.error("the write-ahead log stayed busy for %.0f s; deleted payloads may remain in it until"
                          " the next deletion or restart", MAX_ATTEMPTS * RETRY_S)
            if not self._again:
                return

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._executor.shutdown(wait=True)
        self._reader.close()
