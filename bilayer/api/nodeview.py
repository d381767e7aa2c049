"""What the API reads from a node, and nothing more: the routes depend on these protocols,
never on the node's classes, so the node can be rebuilt behind them (and a test can serve
the API over any object that has these members). The node object satisfies them as it is."""

from __future__ import annotations

import sqlite3
from collections.abc import Container, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..consensus.validators import ValidatorSet
from ..errors import BilayerError
from ..execution.governance.validator_set import ValidatorSetChange
from ..execution.state import State
from ..genesis import ChainParams, Genesis
from ..ledger.dag import Dag
from ..ledger.entry import SignedEntry

if TYPE_CHECKING:
    from ..audit.proof import ChainSource
    from ..node.ingest import SubmitResult
    from ..node.metrics import NodeMetrics
    from ..node.storage import ForkEvidence, StoredCheckpoint, StoredEntry, StoredResult
    from .responses import Status
    from .stream import StreamHub


class StorageView(Protocol):
    """The node's store, read only: entries, results, checkpoints, evidence."""

    @property
    def path(self) -> Path: ...

    def get(self, entry_id: bytes) -> StoredEntry | None: ...

    def result(self, entry_id: bytes) -> StoredResult | None: ...

    def list_after(self, after_seqno: int, limit: int) -> list[StoredEntry]: ...

    def checkpoint(self, height: int) -> StoredCheckpoint | None: ...

    def results_at(self, height: int) -> list[StoredResult]: ...

    def results_caused_by(self, cause: str, limit: int) -> list[StoredResult]: ...

    def final_results_since(self, height: int, limit: int) -> list[StoredResult]: ...

    def management_results(self, before_height: int, limit: int) -> list[StoredResult]: ...

    def fork_evidence(self, limit: int = 1000) -> list[ForkEvidence]: ...

    def equivocations(self, limit: int = 1000) -> list[tuple[bytes, int, int, str, bytes, bytes, int]]: ...

    def read_connection(self) -> sqlite3.Connection: ...


class IngestView(Protocol):
    """Layer 1 ingress: submitting entries, and the DAG and orphans it holds."""

    @property
    def dag(self) -> Dag: ...

    @property
    def orphans(self) -> Container[bytes]: ...

    @property
    def params(self) -> ChainParams: ...

    def admit(self, count: int) -> None: ...

    async def submit(self, signed: SignedEntry, source: str) -> SubmitResult: ...

    async def submit_many(self, items: Sequence[SignedEntry], source: str) -> list[SubmitResult | BilayerError]: ...

    def payload_of(self, entry_id: bytes) -> bytes | None: ...


class EpochView(Protocol):
    """A validator set and the change that made it govern."""

    @property
    def change(self) -> ValidatorSetChange: ...

    @property
    def validators(self) -> ValidatorSet: ...

    @property
    def height(self) -> int: ...


class IndexView(Protocol):
    async def caught_up(self, timeout_s: float) -> bool: ...


class CommittedHead(Protocol):
    """The last checkpoint on disk."""

    @property
    def height(self) -> int: ...


class ChainView(Protocol):
    """The finalized chain: its height, the state after it, and the validator sets."""

    @property
    def height(self) -> int: ...

    @property
    def state(self) -> State: ...

    @property
    def state_root(self) -> bytes: ...

    @property
    def committed(self) -> CommittedHead: ...

    @property
    def epochs(self) -> Sequence[EpochView]: ...

    @property
    def indexer(self) -> IndexView | None: ...

    def epoch_at(self, height: int) -> EpochView: ...

    def knows_validators_of(self, height: int) -> bool: ...


class PeersView(Protocol):
    def peer_list(self) -> list[dict[str, str]]: ...


class NodeView(Protocol):
    """A node as the API sees it."""

    @property
    def genesis(self) -> Genesis: ...

    @property
    def metrics(self) -> NodeMetrics: ...

    @property
    def storage(self) -> StorageView: ...

    @property
    def ingest(self) -> IngestView: ...

    @property
    def chain(self) -> ChainView | None: ...

    @property
    def peers(self) -> PeersView: ...

    @property
    def stream(self) -> StreamHub: ...

    @property
    def started_s(self) -> float: ...

    def status(self) -> Status: ...

    def proof_source(self) -> AbstractContextManager[ChainSource]:
        """The chain as proofs read it, on a store connection of the caller's thread."""
        ...

    def not_ready(self) -> list[str]: ...

    async def wait_for_entry(self, entry_id: bytes, timeout: float) -> None: ...
