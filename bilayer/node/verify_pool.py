"""Entry signatures checked on worker threads.

PyNaCl calls libsodium through cffi, which lets go of the interpreter lock for the length of
the C call: Ed25519 verifications on two threads run on two cores, beside the event loop
that decodes and places what is already verified. A batch is checked in chunks, each one
work item, so the first chunk's verdicts are ready while later ones are still being checked.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from ..ledger.entry import Entry
from ..ledger.validation import signature_holds

CHUNK = 64  # entries per work item: a thread hop costs about one verification, so it is amortized
# A batch this small is checked on the loop: handing it to a thread would add more than it saves.
INLINE_MAX = 2


def default_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _verdicts(entries: Sequence[Entry]) -> list[bool]:
    return [signature_holds(entry) for entry in entries]


class VerifyPool:
    """Owns the verifying threads. After `close`, chunks already handed over are still
    checked (the threads drain their queue before they exit) and new ones are checked on
    the caller's thread, so a batch in flight at shutdown gets its verdicts either way."""

    def __init__(self, threads: int = 0) -> None:
        self.threads = threads or default_threads()
        self._executor: ThreadPoolExecutor | None = ThreadPoolExecutor(self.threads, thread_name_prefix="verify")

    def check(self, entries: Sequence[Entry]) -> asyncio.Future[list[bool]]:
        """One verdict per entry, in order: True when its author's signature holds."""
        executor = self._executor
        if executor is None or len(entries) <= INLINE_MAX:
            done: asyncio.Future[list[bool]] = asyncio.get_running_loop().create_future()
            done.set_result(_verdicts(entries))
            return done
        return asyncio.get_running_loop().run_in_executor(executor, _verdicts, entries)

    def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)
