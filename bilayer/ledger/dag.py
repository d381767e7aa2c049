"""The DAG index: which entries a node holds, each author's chain, the tips, the forks.

This module owns placement rules, the checks that need the DAG:

* every parent must be held (or be the genesis root), else the entry is an orphan;
* for `seq > 0` the first parent is the author's previous entry (`seq - 1`), so each
  author's entries form a chain;
* one author, one sequence number, one entry: a second one is a fork, refused and kept as
  evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import codec
from ..errors import MissingAuthorParent, SequenceGap, SequenceReused
from .entry import EntryHeader


@dataclass(frozen=True, slots=True)
class DagNode:
    author: bytes
    seq: int
    parents: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Placed:
    """The entry fits: every parent is held and the author's chain is respected."""


@dataclass(frozen=True, slots=True)
class Known:
    """The node already holds this very entry."""


@dataclass(frozen=True, slots=True)
class Orphan:
    """Some parents are not held yet; they must be fetched."""

    missing: tuple[bytes, ...]


Placement = Placed | Known | Orphan


class ForkDetected(SequenceReused):
    """The author signed two different entries with one sequence number."""

    def __init__(self, message: str, existing_id: bytes) -> None:
        super().__init__(message)
        self.existing_id = existing_id


NO_FORKS = bytes(32)


def fork_digest_with(digest: bytes, author: bytes, seq: int) -> bytes:
    """The digest of a set of forks is the XOR of one hash per (author, seq): order-free and
    updated in place, so two nodes holding the same evidence have the same digest."""
    one = codec.sha256(author + seq.to_bytes(8, "big"))
    return bytes(a ^ b for a, b in zip(digest, one, strict=True))


class Dag:
    def __init__(self, root: bytes) -> None:
        self.root = root
        self.nodes: dict[bytes, DagNode] = {}
        self.by_author_seq: dict[tuple[bytes, int], bytes] = {}
        self.heads: dict[bytes, tuple[int, bytes]] = {}
        self.tips: set[bytes] = {root}

    def __len__(self) -> int:
        return len(self.nodes)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self.nodes

    def holds(self, entry_id: bytes) -> bool:
        return entry_id == self.root or entry_id in self.nodes

    def placement(self, entry_id: bytes, header: EntryHeader, allow_fork: bool = False) -> Placement:
        """Decide where an entry stands; raise when it breaks a placement rule.

        `allow_fork` admits the second entry of a fork when other entries need it as a
        parent (the DAG must stay complete); execution then rejects one of the two.
        """
        if entry_id in self.nodes:
            return Known()
        existing = self.by_author_seq.get((header.author, header.seq))
        if existing is not None and not allow_fork:
            raise ForkDetected(f"author already has entry {existing.hex()} at sequence {header.seq}", existing)
        missing = tuple(p for p in header.parents if not self.holds(p))
        if missing:
            return Orphan(missing)
        if header.seq > 0:
            first = self.nodes.get(header.parents[0])
            if first is None or first.author != header.author:
                raise MissingAuthorParent(
                    f"sequence {header.seq} needs the author's entry {header.seq - 1} as its first parent"
                )
            if first.seq != header.seq - 1:
                raise SequenceGap(f"sequence {header.seq} follows the author's entry {first.seq}")
        return Placed()

    def add(self, entry_id: bytes, header: EntryHeader) -> None:
        """Record an entry that `placement` accepted."""
        self.nodes[entry_id] = DagNode(header.author, header.seq, header.parents)
        self.by_author_seq.setdefault((header.author, header.seq), entry_id)
        head = self.heads.get(header.author)
        if head is None or head[0] < header.seq:
            self.heads[header.author] = (header.seq, entry_id)
        self.tips.difference_update(header.parents)
        self.tips.add(entry_id)

    def next_seq(self, author: bytes) -> tuple[int, bytes | None]:
        """The sequence number the author's next entry takes, and its required first parent."""
        head = self.heads.get(author)
        if head is None:
            return 0, None
        return head[0] + 1, head[1]
