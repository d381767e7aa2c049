"""Byzantine validators: they run the honest core for signed material, then misbehave.

Each behaviour attacks one assumption: equivocating proposers and double voters try to make
honest nodes decide different values; silent nodes and withholders test liveness with f
faulty; garbage and replayed messages test input handling and idempotence.
"""

from __future__ import annotations

import random

from ..consensus.messages import (
    NIL,
    Checkpoint,
    FinalizedCheckpoint,
    Proposal,
    Vote,
    VoteType,
    sign_proposal,
    sign_vote,
)
from ..errors import BilayerError
from ..keys.signing import Signer
from ..replica.finality import default_core
from ..replica.messages import PeerMessage, ProposalMsg, VoteMsg, WantMsg, decode_message
from .world import CHAIN_ID, SimNode, World


class ByzantineNode(SimNode):
    def __init__(self, world: World, index: int, signer: Signer, kind: str) -> None:
        super().__init__(world, index, signer, default_core)
        self.kind = kind
        self.rng = random.Random(world.seed * 7919 + index)
        self.seen: list[bytes] = []  # consensus frames heard, for the replayer
        self.side_a, self.side_b = self._halves()  # split_brain keeps one split for the whole run
        self.twins: dict[bytes, bytes] = {}

    @property
    def honest(self) -> bool:
        return False

    def _halves(self) -> tuple[list[int], list[int]]:
        others = [i for i in range(len(self.world.nodes)) if i != self.index]
        self.rng.shuffle(others)
        middle = len(others) // 2
        return others[:middle], others[middle:]

    def _send_split(self, first: PeerMessage, second: PeerMessage) -> None:
        one, two = self._halves()
        for dst in one:
            self.world.send(self.index, dst, first)
        for dst in two:
            self.world.send(self.index, dst, second)
        self.world.stats.byzantine_actions += 1

    def send_message(self, message: Proposal | Vote | FinalizedCheckpoint) -> None:
        if isinstance(message, FinalizedCheckpoint):
            super().send_message(message)
            return
        if self.kind == "silent":
            return
        if self.kind == "split_brain":
            self._split_brain(message)
            return
        if self.kind == "equivocate" and isinstance(message, Proposal):
            other = self._conflicting_value(message.value)
            twin = sign_proposal(self.signer, CHAIN_ID, message.height, message.round, message.valid_round, other)
            self._send_split(ProposalMsg(message), ProposalMsg(twin))
            return
        if self.kind == "double_vote" and isinstance(message, Vote):
            other_value = NIL if message.value_id != NIL else bytes(self.rng.randrange(256) for _ in range(32))
            twin_vote = sign_vote(self.signer, CHAIN_ID, message.height, message.round, VoteType(message.type),
                                  other_value)
            self._send_split(VoteMsg(message), VoteMsg(twin_vote))
            return
        if self.kind == "withhold" and isinstance(message, Proposal):
            hidden = bytes(self.rng.randrange(256) for _ in range(32))
            value = message.value
            withheld = Checkpoint(value.chain, value.height, value.prev_id, value.proposer,
                                  tuple(sorted({*value.frontier, hidden})), value.state_root, value.results_root,
                                  value.time_ms)
            proposal = sign_proposal(self.signer, CHAIN_ID, message.height, message.round, message.valid_round,
                                     withheld)
            self.broadcast(ProposalMsg(proposal))
            self.world.stats.byzantine_actions += 1
            return
        if self.kind == "garbage":
            self._spray_garbage(message)
        super().send_message(message)

    def _split_brain(self, message: Proposal | Vote) -> None:
        """Tell each half of the network a different story, consistently: its own proposal
        value to one half and a twin value to the other, and votes to match."""
        if isinstance(message, Proposal):
            twin_value = self._conflicting_value(message.value)
            self.twins[message.value.id] = twin_value.id
            second: Proposal | Vote = sign_proposal(self.signer, CHAIN_ID, message.height, message.round,
                                                    message.valid_round, twin_value)
        else:
            other = self.twins.get(message.value_id, NIL if message.value_id != NIL else message.value_id)
            second = sign_vote(self.signer, CHAIN_ID, message.height, message.round, VoteType(message.type), other)
        for dst in self.side_a:
            self.world.send(self.index, dst, wrap(message))
        for dst in self.side_b:
            self.world.send(self.index, dst, wrap(second))
        self.world.stats.byzantine_actions += 1

    def _conflicting_value(self, value: Checkpoint) -> Checkpoint:
        frontier = value.frontier[: max(0, len(value.frontier) - 1)] or value.frontier
        return Checkpoint(value.chain, value.height, value.prev_id, value.proposer, frontier, value.state_root,
                          value.results_root, value.time_ms + 1)

    def _spray_garbage(self, message: Proposal | Vote) -> None:
        rng = self.rng
        height = message.height
        junk: list[Proposal | Vote] = [
            Vote(CHAIN_ID, height, message.round, int(VoteType.PREVOTE), bytes(32), self.signer.public_key,
                 bytes(64)),  # bad signature
            sign_vote(self.signer, CHAIN_ID, height + rng.randint(2, 50), rng.randint(0, 9), VoteType.PRECOMMIT,
                      bytes(rng.randrange(256) for _ in range(32))),  # far future height
            sign_vote(self.signer, CHAIN_ID, max(1, height - 1), rng.randint(0, 3), VoteType.PREVOTE, NIL),
            sign_vote(self.signer, CHAIN_ID, height, message.round + rng.randint(1, 100), VoteType.PREVOTE, NIL),
            sign_vote(self.signer, "other-chain", height, message.round, VoteType.PRECOMMIT, NIL),
        ]
        for item in junk:
            self.broadcast(wrap(item))
        if rng.random() < 0.1:  # a frame no honest node sends: it costs the sender its links for a while
            self.broadcast(bytes(rng.randrange(256) for _ in range(rng.randint(1, 40))))
        self.world.stats.byzantine_actions += 1

    def broadcast(self, message: PeerMessage | bytes) -> None:
        """To every node, over whatever link is up: a byzantine node ignores the protocol's rules."""
        for dst in range(len(self.world.nodes)):
            if dst != self.index:
                self.world.send(self.index, dst, message)

    def receive(self, src: int, data: bytes) -> None:
        if self.kind in ("replay", "withhold"):
            try:
                message = decode_message(data)
            except BilayerError:
                message = None
            if self.kind == "replay" and isinstance(message, ProposalMsg | VoteMsg) and len(self.seen) < 5000:
                self.seen.append(data)
            if self.kind == "withhold" and isinstance(message, WantMsg):
                return  # never helps anyone fetch
        super().receive(src, data)

    def tick(self) -> None:
        if self.kind == "silent":
            return
        super().tick()
        if self.kind == "replay" and self.seen:
            for _ in range(min(20, len(self.seen))):
                dst = self.rng.randrange(len(self.world.nodes))
                if dst != self.index:
                    self.world.send(self.index, dst, self.rng.choice(self.seen))
            self.world.stats.byzantine_actions += 1


def wrap(message: Proposal | Vote) -> ProposalMsg | VoteMsg:
    return ProposalMsg(message) if isinstance(message, Proposal) else VoteMsg(message)


def byzantine_node(world: World, index: int, signer: Signer, kind: str) -> SimNode:
    return ByzantineNode(world, index, signer, kind)
