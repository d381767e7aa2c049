"""What the consensus core asks of a replica: a value to propose, and whether a value is acceptable.

Pure: it reads the chain state and the DAG; the clock is given to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..consensus.core import ConsensusApp, Invalid, Missing, Valid, Verdict
from ..consensus.linearize import MissingEntry
from ..consensus.messages import MAX_FRONTIER, Checkpoint
from ..ledger.dag import Dag
from ..ledger.entry import EntryHeader
from .chain import ChainState

MAX_CLOCK_SKEW_MS = 30_000


class HoldsDag(Protocol):
    dag: Dag


class ChainApp(ConsensusApp):
    """What the core asks of this node: values to propose and whether a value is acceptable.

    Shared by the node runtime and the simulator: it reads only the chain state and the DAG."""

    def __init__(self, chain: ChainState, ingest: HoldsDag, me: bytes, clock_ms: Callable[[], int],
                 heartbeat_ms: int, header_of: Callable[[bytes], EntryHeader | None] = lambda entry_id: None,
                 payload_of: Callable[[bytes], bytes | None] = lambda entry_id: None) -> None:
        self.chain = chain
        self.ingest = ingest
        self.me = me
        self.clock_ms = clock_ms
        self.heartbeat_ms = heartbeat_ms
        self.header_of = header_of
        self.payload_of = payload_of

    def _header_of(self, entry_id: bytes) -> EntryHeader:
        """Content keywords are looked for only while content rules are in force."""
        header = self.header_of(entry_id)
        if header is None:
            raise MissingEntry(entry_id)
        return header

    def propose_value(self, height: int, prev: Checkpoint | None) -> Checkpoint | None:
        if height != self.chain.height + 1:
            return None
        frontier = self.chain.uncovered_tips(self.ingest.dag)[:MAX_FRONTIER]
        now = self.clock_ms()
        if not frontier and (self.heartbeat_ms <= 0 or now - self.chain.last_time_ms < self.heartbeat_ms):
            return None
        return Checkpoint(
            chain=self.chain.genesis.chain_id,
            height=height,
            prev_id=self.chain.prev_id,
            proposer=self.me,
            frontier=tuple(frontier),
            state_root=self.chain.state_root,
            results_root=self.chain.results_root,
            time_ms=max(now, self.chain.last_time_ms + 1),
            keywords=self.chain.keywords_found(tuple(frontier), self.ingest.dag, self._header_of, self.payload_of),
        )

    def check_value(self, value: Checkpoint) -> Verdict:
        chain = self.chain
        if value.height != chain.height + 1 or value.prev_id != chain.prev_id:
            return Invalid("does not extend the last checkpoint")
        if value.state_root != chain.state_root or value.results_root != chain.results_root:
            return Invalid("state or results root differs from this node's")
        if value.proposer not in chain.validators:
            return Invalid("proposer is not a validator")
        if len(value.frontier) > MAX_FRONTIER or list(value.frontier) != sorted(set(value.frontier)):
            return Invalid("frontier must be sorted, distinct and bounded")
        if value.time_ms <= chain.last_time_ms or value.time_ms > self.clock_ms() + MAX_CLOCK_SKEW_MS:
            return Invalid("timestamp out of range")
        missing = chain.missing_entries(value, self.ingest.dag)
        if missing:
            return Missing(missing)
        try:
            keywords = chain.keywords_found(value.frontier, self.ingest.dag, self._header_of, self.payload_of)
        except MissingEntry as absent:
            return Missing((absent.entry_id,))
        if value.keywords != keywords:
            return Invalid("the content keywords it reports differ from the payloads")
        return Valid()

    def has_work(self, height: int) -> bool:
        return bool(self.chain.uncovered_tips(self.ingest.dag))
