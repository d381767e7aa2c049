"""Closing the store while a batch is being written on a worker thread, as a node stopping
under load does: the batch lands whole or not at all, and the process lives."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from bilayer import codec
from bilayer.ledger.entry import Entry, EntryHeader
from bilayer.ledger.operations import Data
from bilayer.node.storage import Storage
from tests.support.builders import TEST_POW_BITS, make_entry, seeded_signer
from tests.support.chain import make_genesis

BATCH = 2_000


@pytest.fixture(scope="module")
def batch() -> list[Entry]:
    genesis, signer = make_genesis(), seeded_signer(7)
    entries = []
    for seq in range(BATCH):
        id_, signed = make_entry(signer, genesis, seq=seq, payload=b"p" * 200, pow_bits=TEST_POW_BITS)
        entries.append(Entry(id_, codec.decode(signed.header, EntryHeader), signed, Data(media_type="text/plain")))
    return entries


@pytest.mark.parametrize("delay_ms", [0, 1, 3, 6])
def test_close_waits_for_a_write_in_flight(tmp_path: Path, batch: list[Entry], delay_ms: int) -> None:
    storage = Storage(tmp_path / "db.sqlite")
    failures: list[BaseException] = []

    def write() -> None:
        try:
            storage.store_entries(batch, received_ms=1)
        except BaseException as exc:  # reported below
            failures.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    time.sleep(delay_ms / 1000)
    storage.close()
    writer.join(timeout=30)
    assert not writer.is_alive()

    reopened = Storage(tmp_path / "db.sqlite")
    try:
        stored = reopened.count()
    finally:
        reopened.close()
    if failures:  # the write began after the close: refused cleanly, nothing half-written
        assert isinstance(failures[0], sqlite3.ProgrammingError)
        assert stored == 0
    else:
        assert stored == BATCH


def test_a_write_after_close_is_refused(tmp_path: Path, batch: list[Entry]) -> None:
    storage = Storage(tmp_path / "db.sqlite")
    storage.close()
    with pytest.raises(sqlite3.ProgrammingError):
        storage.store_entries(batch[:1], received_ms=1)
