"""What must hold on every step of every run, and what must hold once faults stop.

Safety (checked as each honest node applies a checkpoint):
* one checkpoint per height across all honest nodes, ever;
* a node's history only grows, one height at a time (never rolls back, never skips);
* honest nodes agree on the state root and results root after every height;
* an entry's outcome (FINAL or REJECTED, and its reason) never differs between nodes or
  changes later;
* at most one entry per author and sequence number is ever FINAL (forks).

Liveness (checked at the end): entries submitted after the network healed are ordered by
every honest node within the liveness window, and every fork any honest node found is
known as evidence to every honest node. Liveness is owed only while at most f = (n-1)//3
validators are faulty, and a node whose disk lost a commit it had acknowledged (a lost fsync)
counts as faulty: it may have been the only one to hold a decision, and it has signed past it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..replica.chain import Applied

if TYPE_CHECKING:
    from .world import World


class Checker:
    def __init__(self, world: World) -> None:
        self.world = world
        self.committed: dict[int, bytes] = {}
        self.roots: dict[int, tuple[bytes, bytes]] = {}
        self.outcomes: dict[bytes, tuple[str, str]] = {}
        self.heights: dict[int, int] = {}
        self.liveness_failures: list[str] = []
        self.liveness_waived = False  # liveness failed with more validators faulty than the protocol tolerates
        self.final_at: dict[tuple[bytes, int], bytes] = {}  # (author, seq) -> the FINAL entry

    def restarted(self, node: int, height: int) -> None:
        """A restarted node goes on from what its disk holds, which a lost fsync may have set back."""
        if node in self.heights:
            self.heights[node] = height

    def on_applied(self, node: int, applied: Applied) -> None:
        if not self.world.nodes[node].honest:
            return
        height = applied.height
        previous = self.heights.get(node, 0)
        if height != previous + 1:
            self.world.violation(f"node {node} went from height {previous} to {height}")
        self.heights[node] = height
        checkpoint_id = applied.checkpoint.id
        first = self.committed.setdefault(height, checkpoint_id)
        if first != checkpoint_id:
            self.world.violation(f"two checkpoints at height {height}: {first.hex()[:12]} and "
                                 f"{checkpoint_id.hex()[:12]} (node {node})")
        roots = (applied.state_root, applied.results_root)
        if self.roots.setdefault(height, roots) != roots:
            self.world.violation(f"node {node} computed other roots at height {height}")
        for result, header in zip(applied.results, applied.headers, strict=True):
            if str(result.outcome) == "FINAL":
                winner = self.final_at.setdefault((header.author, header.seq), result.entry_id)
                if winner != result.entry_id:
                    self.world.violation(f"two FINAL entries by author {header.author.hex()[:12]} at sequence"
                                         f" {header.seq}: {winner.hex()[:12]} and {result.entry_id.hex()[:12]}")
            outcome = (str(result.outcome), result.code)
            if self.outcomes.setdefault(result.entry_id, outcome) != outcome:
                self.world.violation(f"entry {result.entry_id.hex()[:12]} was {self.outcomes[result.entry_id]}"
                                     f" and then {outcome} (node {node})")

    def faulty(self) -> set[int]:
        world = self.world
        return {n.index for n in world.nodes if not n.honest} | world.lost_commits

    def finish(self) -> None:
        self._check_liveness()
        world = self.world
        stalled = [f for f in self.liveness_failures if "did not order" in f]
        if stalled and len(self.faulty()) > (len(world.signers) - 1) // 3:
            self.liveness_waived = True  # not owed: reported apart (evidence is owed all the same)
            self.liveness_failures = [f for f in self.liveness_failures if f not in stalled]

    def _check_liveness(self) -> None:
        forks = set().union(*(n.evidence for n in self.world.nodes if n.honest))
        for node in self.world.nodes:
            if not node.honest:
                continue
            unknown = forks - node.evidence.keys()
            if unknown:
                self.liveness_failures.append(f"node {node.index} lacks evidence of {len(unknown)} of {len(forks)}"
                                              " forks after the network healed")
            missing = [e for e in self.world.liveness_entries if e not in node.chain.ordered]
            if missing:
                self.liveness_failures.append(
                    f"node {node.index} did not order {len(missing)} of {len(self.world.liveness_entries)} entries"
                    f" within {self.world.config.liveness_window_ms} ms after faults stopped"
                    f" (height {node.chain.height})")

    @property
    def max_height(self) -> int:
        return max(self.committed, default=0)
