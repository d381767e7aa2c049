"""A node's disk in the simulator: what survives a crash, and the faults a real disk has.

It holds what the node's SQLite store holds for finality: the finalized checkpoints with the
roots recorded beside them, the state after the last one with the nodes of its tree (every
version's, as the node's store before pruning), the entries each ordered, and the signer
state. The replica reads the state's values through it (`MemoryValues`), as a node reads its
`state` table: what a commit acknowledged leaves the replica's overlay. Each commit is one
transaction, as in SQLite. The faults, in the manner of TigerBeetle's VOPR storage:

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
from ..execution.smt import Child, Node, NodeKey, NodeMissing, TreeUpdate
from ..execution.state import MemoryValues, State, StateTree
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
    tree: TreeUpdate | None  # the nodes and root it wrote (for a torn commit, part of them)


@dataclass
class SimStore:
    genesis: Genesis
    state: MemoryValues = field(default_factory=MemoryValues)  # the `state` table: the replica reads through it
    nodes: dict[NodeKey, Node] = field(default_factory=dict)  # the state tree's nodes, every version's
    roots: dict[int, Child | None] = field(default_factory=dict)  # version (height) -> root
    commits: list[_Commit] = field(default_factory=list)
    signer_state: SignerState | None = None
    synced: int = 0  # commits[:synced] are durable; the rest a crash may lose
    torn: _Commit | None = None  # a transaction the process died in the middle of
    reading: State | None = None  # the state restored from this disk, told which writes are durable

    def __post_init__(self) -> None:
        if not self.state:
            state = genesis_state(self.genesis)
            update = state.commit_version(0)
            self.state = MemoryValues(state.items())
            self.nodes.update(update.nodes)
            self.roots[0] = update.root

    def read_node(self, key: NodeKey) -> Node:
        node = self.nodes.get(key)
        if node is None:
            raise NodeMissing(f"no node at version {key[0]}, path {key[1].hex()}")
        return node

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
        if self.reading is not None:  # acknowledged: read from the disk from now on, as a node does
            self.reading.durable(changes)
        if fsync:
            self.synced = len(self.commits)

    def commit_torn(self, finalized: FinalizedCheckpoint, applied: Applied,
                    changes: list[tuple[bytes, bytes | None]]) -> None:
        """The process dies after writing the first half of the transaction's changes."""
        tree = applied.tree
        if tree is not None:  # half of the tree's nodes, and no root yet
            half = dict(list(tree.nodes.items())[: len(tree.nodes) // 2])
            tree = TreeUpdate(tree.version, tree.root, half, ())
        self.torn = self._write(finalized, applied, changes, changes[: len(changes) // 2], tree, root=False)

    def _write(self, finalized: FinalizedCheckpoint, applied: Applied, changes: list[tuple[bytes, bytes | None]],
               written: list[tuple[bytes, bytes | None]], tree: TreeUpdate | None = None, *,
               root: bool = True) -> _Commit:
        if tree is None:
            tree = applied.tree
        if tree is None or tree.version != applied.height:
            raise ValueError(f"checkpoint {applied.height} comes without its state tree's version")
        undo = [(key, self.state.get(key)) for key, _ in written]
        self.state.apply(written)
        self.nodes.update(tree.nodes)
        if root:
            self.roots[tree.version] = tree.root
        ordered = tuple(r.entry_id for r in applied.results)
        return _Commit(finalized, applied.state_root, applied.results_root, ordered, undo, tree)

    def _undo(self, commit: _Commit) -> None:
        self.state.apply(reversed(commit.undo))
        if commit.tree is not None:
            for node_key in commit.tree.nodes:
                self.nodes.pop(node_key, None)
            self.roots.pop(commit.tree.version, None)

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
        height = self.height
        state = State(tree=StateTree(self, self.roots[height], height), source=self.state)
        self.reading = state
        if last is None:
            chain.restore(state, None, b"", results_root([]), ordered)
        else:
            chain.restore(state, last.finalized.checkpoint, last.state_root, last.results_root, ordered)
        chain.state.take_dirty()
