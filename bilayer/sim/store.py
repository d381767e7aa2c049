"""A node's disk in the simulator: what survives a crash, and the faults a real disk has.

It holds what the node's SQLite store holds for finality: the finalized checkpoints with the
roots recorded beside them, the state after the last one, the entries each ordered, and the
signer state. Each commit is one transaction, as in SQLite. The faults, in the manner of
TigerBeetle's VOPR storage:

* a refused commit (a full or failing disk): nothing is written and the replica is told;
* a torn commit: the process dies halfway through writing; at the next start the journal
  rolls the half-written transaction back;
* a lost fsync: the disk acknowledges commits it has not made durable; a crash loses them.

The signer state is written with its own fsync, which is never lost: a validator that forgot
what it signed could sign twice, and that is outside the fault model of an honest node.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..consensus.core import SignerState
from ..consensus.messages import FinalizedCheckpoint
from ..execution.executor import genesis_state, results_root
from ..execution.state import State
from ..genesis import Genesis
from ..replica.chain import Applied, ChainState


@dataclass
class _Commit:
    """One committed checkpoint and what it changed, so that it can be undone before it is synced."""

    finalized: FinalizedCheckpoint
    state_root: bytes
    results_root: bytes
    ordered: tuple[bytes, ...]
    undo: list[tuple[bytes, bytes | None]]


@dataclass
class SimStore:
    genesis: Genesis
    state: dict[bytes, bytes] = field(default_factory=dict)
    commits: list[_Commit] = field(default_factory=list)
    signer_state: SignerState | None = None
    synced: int = 0  # commits[:synced] are durable; the rest a crash may lose
    torn: _Commit | None = None  # a transaction the process died in the middle of

    def __post_init__(self) -> None:
        if not self.state:
            self.state = dict(genesis_state(self.genesis).items())

    @property
    def height(self) -> int:
        return len(self.commits)

    @property
    def finalized(self) -> list[FinalizedCheckpoint]:
        return [c.finalized for c in self.commits]

    def commit(self, finalized: FinalizedCheckpoint, applied: Applied, changes: list[tuple[bytes, bytes | None]],
               fsync: bool) -> None:
        """One transaction; `fsync` False: the disk acknowledges it without making it durable."""
        self.commits.append(self._write(finalized, applied, changes, changes))
        if fsync:
            self.synced = len(self.commits)

    def commit_torn(self, finalized: FinalizedCheckpoint, applied: Applied,
                    changes: list[tuple[bytes, bytes | None]]) -> None:
        """The process dies after writing the first half of the transaction's changes."""
        self.torn = self._write(finalized, applied, changes, changes[: len(changes) // 2])

    def _write(self, finalized: FinalizedCheckpoint, applied: Applied, changes: list[tuple[bytes, bytes | None]],
               written: list[tuple[bytes, bytes | None]]) -> _Commit:
        undo = [(key, self.state.get(key)) for key, _ in written]
        for key, value in written:
            if value is None:
                self.state.pop(key, None)
            else:
                self.state[key] = value
        ordered = tuple(r.entry_id for r in applied.results)
        return _Commit(finalized, applied.state_root, applied.results_root, ordered, undo)

    def _undo(self, commit: _Commit) -> None:
        for key, value in reversed(commit.undo):
            if value is None:
                self.state.pop(key, None)
            else:
                self.state[key] = value

    def crash(self) -> int:
        """What a crash does to the disk: the torn transaction is rolled back (the journal), and
        commits that were never synced are gone. Returns how many acknowledged commits were lost."""
        if self.torn is not None:
            self._undo(self.torn)
            self.torn = None
        lost = self.commits[self.synced:]
        for commit in reversed(lost):
            self._undo(commit)
        del self.commits[self.synced:]
        return len(lost)

    def sync(self) -> None:
        self.synced = len(self.commits)

    def restore(self, chain: ChainState) -> None:
        """Make `chain` exactly what this disk holds (a start, or after a refused commit)."""
        last = self.commits[-1] if self.commits else None
        ordered = [entry_id for c in self.commits for entry_id in c.ordered]
        if last is None:
            chain.restore(State(self.state.items()), None, b"", results_root([]), ordered)
        else:
            chain.restore(State(self.state.items()), last.finalized.checkpoint, last.state_root, last.results_root,
                          ordered)
        chain.state.take_dirty()
