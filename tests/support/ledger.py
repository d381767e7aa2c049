"""A ledger driven entry by entry in this process, with the actors the rules name."""

from __future__ import annotations

from bilayer import codec
from bilayer.execution.executor import execute, genesis_state
from bilayer.execution.governance.context import ExecContext
from bilayer.genesis import Allocation, ChainParams, Genesis, GenesisCouncilMember, GenesisRegulator, GenesisValidator
from bilayer.keys.signing import Signer
from bilayer.ledger.entry import EntryHeader
from bilayer.ledger.operations import (
    GovExecute,
    GovPropose,
    GovVote,
    Operation,
)
from tests.support.builders import make_entry, seeded_signer
from tests.support.governance import PARAMS

A, B, C = seeded_signer(11), seeded_signer(12), seeded_signer(13)


ALICE, BOB, OUTSIDER = seeded_signer(1), seeded_signer(2), seeded_signer(3)


REGULATOR = seeded_signer(20)


VALIDATORS = [Signer(bytes([i + 1]) * 32) for i in range(4)]


GENESIS = Genesis(
    "rules-test", 0,
    params=ChainParams(pow_bits=0),
    allocations=tuple(Allocation(s.address, "BLY", 1000) for s in (ALICE, BOB)),
    validators=tuple(GenesisValidator(f"v{i}", s.public_key.hex(), 1) for i, s in enumerate(VALIDATORS)),
    council=(GenesisCouncilMember("a", A.public_key.hex(), 1), GenesisCouncilMember("b", B.public_key.hex(), 1),
             GenesisCouncilMember("c", C.public_key.hex(), 1)),
    regulators=(GenesisRegulator("regulator", REGULATOR.public_key.hex()),),
    governance=PARAMS,
)


FINAL = ("FINAL", "")


def rejected(code: str) -> tuple[str, str]:
    return ("REJECTED", code)


class Ledger:
    """Entries as authors write them; each `run` is one checkpoint at a given time."""

    def __init__(self) -> None:
        self.state = genesis_state(GENESIS)
        self.heads: dict[bytes, tuple[int, bytes]] = {}
        self.height = 0
        self.proposals = 0
        self.ids: list[bytes] = []

    def entry(self, signer: Signer, op: Operation, payload: bytes = b"") -> tuple[bytes, EntryHeader]:
        seq, head = self.heads.get(signer.public_key, (0, GENESIS.root))
        entry_id, signed = make_entry(signer, GENESIS, seq=seq, parents=[head], op=op, payload=payload)
        self.heads[signer.public_key] = (seq + 1, entry_id)
        self.ids.append(entry_id)
        return entry_id, codec.decode(signed.header, EntryHeader)

    def run(self, time_ms: int, *writes: tuple[Signer, Operation] | tuple[Signer, Operation, bytes],
            keywords: dict[int, tuple[str, ...]] | None = None) -> list[tuple[str, str]]:
        """`keywords` maps a write's index to the keywords validators found in its payload."""
        self.height += 1
        ordered = [self.entry(*write) for write in writes]
        found = {ordered[i][0]: k for i, k in (keywords or {}).items()}
        results = execute(ExecContext(self.height, time_ms, PARAMS, found), self.state, ordered)
        return [(str(r.outcome), r.code) for r in results]

    def decide(self, time_ms: int, action: object) -> None:
        """Propose, pass with two votes, and execute once the timelock has run out."""
        self.proposals += 1
        number = self.proposals
        propose = GovPropose(action=action, reason="order 5/2026", legal_ref="Act s.3")  # type: ignore[arg-type]
        assert self.run(time_ms, (A, propose), (A, GovVote(number, "yes")), (B, GovVote(number, "yes")),
                        (C, GovVote(number, "yes"))) == [FINAL] * 4
        assert self.run(time_ms + PARAMS.timelock_ms, (C, GovExecute(number))) == [FINAL]
