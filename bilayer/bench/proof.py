"""Audit proofs by the numbers: how large a proof is and how long an offline check takes.

The chain is built in process on a real SQLite store with the production finality path
(`Chain.apply`: certificates, execution, roots), signed by real validator keys, with
validator set changes decided by council proposals along the way, so proofs carry a real
validator chain.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import codec
from ..audit.proof import ChainSource, decode_proof, encode_proof, prove_account, prove_entry, verify_proof
from ..consensus.messages import (
    Checkpoint,
    CommitCertificate,
    CommitSignature,
    FinalizedCheckpoint,
    VoteType,
    _verified,
    sign_vote,
)
from ..genesis import (
    Allocation,
    ChainParams,
    Genesis,
    GenesisCouncilMember,
    GenesisRegulator,
    GenesisValidator,
    GovernanceParams,
)
from ..keys.signing import Signer
from ..ledger.dag import Dag
from ..ledger.entry import Entry, EntryHeader, build_entry
from ..ledger.operations import (
    GovAction,
    GovExecute,
    GovPropose,
    GovVote,
    Operation,
    SetValidator,
    Transfer,
    decode_operation,
)
from ..node.chain import Chain
from ..node.storage import Storage

CHAIN_ID = "proof-bench"
GENESIS_TIME_MS = 1_700_000_000_000


def seeded(n: int, tag: int) -> Signer:
    return Signer(bytes([tag]) + n.to_bytes(31, "big"))


class ChainBuilder:
    """A chain written and finalized in process: entries from known keys, one causal chain, each
    checkpoint signed by every validator of its height."""

    def __init__(self, path: Path, validators: int = 4) -> None:
        self.validator_keys = [seeded(i, 1) for i in range(validators)]
        self.council = [seeded(i, 2) for i in range(2)]
        self.alice, self.bob = seeded(0, 3), seeded(1, 3)
        self.regulator = seeded(0, 7)
        self.genesis = Genesis(
            CHAIN_ID, GENESIS_TIME_MS, params=ChainParams(pow_bits=0),
            allocations=(Allocation(self.alice.address, "BLY", 10**12),),
            validators=tuple(GenesisValidator(f"v{i}", s.public_key.hex(), 1)
                             for i, s in enumerate(self.validator_keys)),
            council=tuple(GenesisCouncilMember(f"c{i}", s.public_key.hex(), 1) for i, s in enumerate(self.council)),
            regulators=(GenesisRegulator("regulator", self.regulator.public_key.hex()),),
            governance=GovernanceParams(timelock_ms=0),
        )
        self.signers = {s.public_key: s for s in self.validator_keys}
        self.storage = Storage(path)
        self.chain = Chain(self.storage, self.genesis)
        self.chain.load()
        self.dag = Dag(self.genesis.root)
        self.headers: dict[bytes, EntryHeader] = {}
        self.heads: dict[bytes, tuple[int, bytes]] = {}
        self.last: bytes | None = None
        self.proposals = 0
        self.time_ms = GENESIS_TIME_MS
        self.unstored: list[Entry] = []

    def flush(self) -> None:
        """Store what was written since the last call, as one durable batch (as a node commits them)."""
        if self.unstored:
            self.storage.store_entries(self.unstored, self.time_ms)
            self.unstored = []

    def write(self, signer: Signer, op: Operation, payload: bytes = b"") -> bytes:
        seq, head = self.heads.get(signer.public_key, (0, self.genesis.root))
        parents = [head] if self.last is None or self.last == head else [head, self.last]
        self.time_ms += 1
        id_, signed = build_entry(signer, chain_id=CHAIN_ID, seq=seq, parents=parents, op=op, payload=payload,
                                  time_ms=self.time_ms, pow_bits=0)
        header = codec.decode(signed.header, EntryHeader)
        self.unstored.append(Entry(id_, header, signed, decode_operation(header.kind, header.body)))
        self.dag.add(id_, header)
        self.headers[id_] = header
        self.heads[signer.public_key] = (seq + 1, id_)
        self.last = id_
        return id_

    def transfer(self, amount: int = 1) -> bytes:
        return self.write(self.alice, Transfer(asset="BLY", amount=amount, to=self.bob.public_key))

    def add_validator(self, signer: Signer) -> None:
        """A set change: it governs two checkpoints after the one that orders this decision."""
        self.signers[signer.public_key] = signer
        self.decide(SetValidator(signer.public_key, 1, f"n{self.proposals + 1}"))

    def decide(self, action: GovAction) -> int:
        """Propose, pass (two yes votes of two) and execute a council decision; its number."""
        self.proposals += 1
        first, second = self.council
        self.write(first, GovPropose(action=action, reason="audit test", legal_ref=""))
        self.write(first, GovVote(self.proposals, "yes"))
        self.write(second, GovVote(self.proposals, "yes"))
        self.write(second, GovExecute(self.proposals))
        return self.proposals

    def checkpoint(self) -> FinalizedCheckpoint:
        self.flush()
        chain = self.chain
        height = chain.height + 1
        voters = chain.validators_at(height)
        self.time_ms += 1000
        checkpoint = Checkpoint(CHAIN_ID, height, chain.prev_id, voters.members[0].public_key,
                                tuple(chain.uncovered_tips(self.dag)), chain.state_root, chain.results_root,
                                self.time_ms)
        signatures = tuple(
            CommitSignature(v.public_key, sign_vote(self.signers[v.public_key], CHAIN_ID, height, 0,
                                                    VoteType.PRECOMMIT, checkpoint.id).signature)
            for v in voters.members)
        finalized = FinalizedCheckpoint(checkpoint, CommitCertificate(height, 0, checkpoint.id, signatures))
        chain.apply(finalized, self.dag, self.headers.__getitem__)
        return finalized

    def source(self) -> ChainSource:
        self.flush()
        return ChainSource(self.genesis, self.storage, self.dag, self.headers.get)

    def close(self) -> None:
        self.storage.close()


def run_proof_bench(*, validators: int, checkpoints: int, entries: int, changes: int, repeats: int,
                    progress: Callable[[str, int], Callable[[int], None]]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bilayer-proof-bench-") as tmp:
        builder = ChainBuilder(Path(tmp) / "chain.sqlite", validators)
        try:
            every = max(1, checkpoints // (changes + 1))
            target = b""
            step = progress("building the chain", checkpoints)
            for height in range(1, checkpoints + 1):
                if changes and height % every == 0 and len(builder.signers) - validators < changes:
                    builder.add_validator(seeded(len(builder.signers), 4))
                for _ in range(entries):
                    id_ = builder.transfer()
                if height == checkpoints - 1:
                    target = id_
                builder.checkpoint()
                step(1)
            source = builder.source()
            started = time.perf_counter()
            proof = prove_entry(source, target)
            prove_ms = (time.perf_counter() - started) * 1000
            document = encode_proof(proof)
            account = encode_proof(prove_account(source, builder.alice.address, "BLY"))
            timings = []
            check = progress("verifying offline", repeats)
            for _ in range(repeats):
                _verified.cache_clear()  # no signature checked in an earlier run may count
                started = time.perf_counter()
                verify_proof(decode_proof(document), builder.genesis)
                timings.append((time.perf_counter() - started) * 1000)
                check(1)
            summary = verify_proof(decode_proof(document), builder.genesis)
        finally:
            builder.close()
    return {
        "config": {"validators": validators, "checkpoints": checkpoints, "entries_per_checkpoint": entries,
                   "validator_changes": changes, "repeats": repeats},
        "results": {
            "entry_proof_bytes": len(document),
            "account_proof_bytes": len(account),
            "verify_ms_median": round(statistics.median(timings), 3),
            "verify_ms_min": round(min(timings), 3),
            "prove_ms": round(prove_ms, 1),
            "proven_height": summary["height"],
            "validator_changes_in_proof": summary["validator_changes"],
        },
    }
