"""Random histories of governed operations and a runner that executes them, for the guard's properties."""

from __future__ import annotations

import typing
from collections import Counter
from dataclasses import dataclass

from hypothesis import strategies as st

from bilayer import codec
from bilayer.apps.notary.operations import NotaryRegister, NotaryTransfer
from bilayer.apps.warehouse.operations import RegisterParty, RegisterWarehouse
from bilayer.execution.executor import EntryResult, execute_entry, genesis_state
from bilayer.execution.governance.actions import spec_of
from bilayer.execution.governance.context import MAX_BALANCE, ExecContext
from bilayer.execution.governance.council import Council
from bilayer.execution.governance.review import expire_holds
from bilayer.execution.state import State, author_key
from bilayer.genesis import (
    Allocation,
    ChainParams,
    Genesis,
    GenesisCouncilMember,
    GenesisRegulator,
    GenesisValidator,
    GovernanceParams,
)
from bilayer.keys.signing import Signer
from bilayer.ledger import operations as ops
from bilayer.ledger.entry import EntryHeader, build_entry
from tests.support.builders import seeded_signer
from tests.support.warehouse_samples import SAMPLES as WAREHOUSE_SAMPLES

COUNCIL = [seeded_signer(11), seeded_signer(12), seeded_signer(13)]

EXAMPLES = 600  # histories the determinism property runs


REGULATOR, PROVIDER, OPERATOR = seeded_signer(20), seeded_signer(21), seeded_signer(22)


ALICE, BOB, RICH, OUTSIDER = seeded_signer(1), seeded_signer(2), seeded_signer(3), seeded_signer(4)


VALIDATORS = [Signer(bytes([i + 1]) * 32) for i in range(2)]


ACTORS = [*COUNCIL, REGULATOR, PROVIDER, OPERATOR, ALICE, BOB, RICH, OUTSIDER, *VALIDATORS]


PARAMS = GovernanceParams(min_approvals=2, quorum_bps=5000, threshold_bps=6666, voting_period_ms=10_000,
                          timelock_ms=1_000, emergency_ratify_ms=5_000, review_ms=4_000)


GENESIS = Genesis(
    "guard-test", 0, params=ChainParams(pow_bits=0),
    allocations=(Allocation(ALICE.address, "BLY", 1000), Allocation(ALICE.address, "GLD", 5),
                 Allocation(BOB.address, "BLY", 1000), Allocation(RICH.address, "GLD", MAX_BALANCE),
                 Allocation(RICH.address, "BLY", MAX_BALANCE - 10)),
    validators=tuple(GenesisValidator(f"v{i}", s.public_key.hex(), 1) for i, s in enumerate(VALIDATORS)),
    council=tuple(GenesisCouncilMember(f"c{i}", s.public_key.hex(), 1) for i, s in enumerate(COUNCIL)),
    regulators=(GenesisRegulator("regulator", REGULATOR.public_key.hex()),),
    governance=PARAMS,
)


keys = st.sampled_from([s.public_key for s in ACTORS] + [b"\x00" * 31])


kinds = st.sampled_from(["transfer", "transfer", "data", "data", "notary.transfer", "gov.vote", "nope"])


documents = st.sampled_from([codec.sha256(b"deed"), codec.sha256(b"will"), b"\x01"])


assets = st.sampled_from(["BLY", "BLY", "GLD", "GLD", "bad asset"])


amounts = st.sampled_from([1, 5, 5, 500, 1000, MAX_BALANCE, 0])


identities = st.sampled_from([b"\x01" * 16, b"\x02" * 16, b"\x02" * 16, b"\x03" * 15])


rule_ids = st.sampled_from(["r1", "r1", "r2", "r2", "Bad Rule"])


levels = st.sampled_from([-1, 0, 1, 1, 2, 3])


reasons = st.sampled_from(["because", "because", "because", ""])


def _interception() -> st.SearchStrategy[ops.SetInterceptionRule]:
    return st.builds(ops.SetInterceptionRule, rule_id=rule_ids, min_amount=amounts,
                     asset=st.sampled_from(["", "BLY"]), counterparties=st.lists(keys, max_size=2).map(tuple),
                     max_identity_level=levels, outcome=st.sampled_from(["reject", "hold", "hold", "maybe"]),
                     review_ms=st.sampled_from([0, 2_000]))


ACTIONS: dict[type, st.SearchStrategy[typing.Any]] = {
    ops.FreezeAccount: st.builds(ops.FreezeAccount, keys),
    ops.UnfreezeAccount: st.builds(ops.UnfreezeAccount, keys),
    ops.BanKey: st.builds(ops.BanKey, keys),
    ops.UnbanKey: st.builds(ops.UnbanKey, keys),
    ops.SuspendService: st.builds(ops.SuspendService, kinds),
    ops.ResumeService: st.builds(ops.ResumeService, kinds),
    ops.RatifyEmergency: st.builds(ops.RatifyEmergency, st.integers(0, 4)),
    ops.AppointIdentityProvider: st.builds(ops.AppointIdentityProvider, keys),
    ops.RevokeIdentityProvider: st.builds(ops.RevokeIdentityProvider, keys),
    ops.BanIdentity: st.builds(ops.BanIdentity, identities),
    ops.UnbanIdentity: st.builds(ops.UnbanIdentity, identities),
    ops.SetIdentityRule: st.builds(ops.SetIdentityRule, kinds, levels, st.sampled_from([0, 100, -1])),
    ops.SetCouncilMember: st.builds(ops.SetCouncilMember, keys, st.integers(0, 3)),
    ops.SetInterceptionRule: _interception(),
    ops.RemoveInterceptionRule: st.builds(ops.RemoveInterceptionRule, rule_ids),
    ops.SetContentRule: st.builds(ops.SetContentRule, rule_id=rule_ids,
                                  payload_hash=st.sampled_from([b"", codec.sha256(b"x"), b"\x01"]),
                                  media_type=st.sampled_from(["", "text/plain"]), max_size=st.integers(-2, 3)),
    ops.RemoveContentRule: st.builds(ops.RemoveContentRule, rule_ids),
    ops.RedactEntries: st.builds(ops.RedactEntries, st.lists(st.binary(min_size=32, max_size=32), max_size=2)
                                 .map(tuple), st.sampled_from(["court_order", "Bad"])),
    ops.RecoverAssets: st.builds(ops.RecoverAssets, keys, keys, st.lists(assets, max_size=3).map(tuple)),
    ops.SetChainParams: st.builds(ops.SetChainParams, st.sampled_from(
        [ChainParams(pow_bits=0), ChainParams(pow_bits=0, max_memo_bytes=0, max_data_bytes=1),
         ChainParams(pow_bits=0, max_parents=0)])),
    ops.SetValidator: st.builds(ops.SetValidator, keys, st.integers(0, 2), st.sampled_from(["", "v9", "-x"])),
    ops.AppointOperator: st.builds(ops.AppointOperator, keys, kinds),
    ops.RevokeOperator: st.builds(ops.RevokeOperator, keys, kinds),
}


actions = st.one_of(*ACTIONS.values())


@dataclass(frozen=True)
class Decide:
    """Propose an action, have the whole council vote yes, and execute it after the timelock."""

    action: typing.Any


@dataclass(frozen=True)
class Review:
    """A regulator's decision on the entry at `index` among those written so far."""

    signer: Signer
    index: int
    decision: str


OPERATIONS: dict[str, st.SearchStrategy[typing.Any]] = {
    "transfer": st.builds(ops.Transfer, assets, amounts, keys),
    "data": st.builds(ops.Data, st.sampled_from(["text/plain", "Bad"])),
    "gov.propose": st.builds(ops.GovPropose, actions, reasons, st.just("")),
    "gov.vote": st.builds(ops.GovVote, st.integers(0, 4), st.sampled_from(["yes", "no", "abstain", "maybe"])),
    "gov.execute": st.builds(ops.GovExecute, st.integers(0, 4)),
    "gov.cancel": st.builds(ops.GovCancel, st.integers(0, 4)),
    "reg.freeze": st.builds(ops.RegFreeze, keys, reasons, st.just("")),
    "reg.intercept": st.builds(ops.RegIntercept, _interception(), reasons, st.just("")),
    "id.attest": st.builds(ops.IdAttest, keys, identities, levels, st.sampled_from([1, 10**13])),
    "reg.review": st.builds(Review, st.sampled_from([REGULATOR, OUTSIDER]), st.integers(0, 50),
                            st.sampled_from(["release", "reject", "drop"])),
    "app.pause": st.builds(ops.AppPause, kinds, reasons),
    "app.resume": st.builds(ops.AppResume, kinds, reasons),
    "notary.register": st.builds(NotaryRegister, documents, st.sampled_from(["deed", "deed", ""])),
    "notary.transfer": st.builds(NotaryTransfer, documents, keys),
    # the warehouse: appointments over the actors' keys (some succeed and write), a sample of every other kind
    **{kind: st.just(op) for kind, op in WAREHOUSE_SAMPLES.items()},
    "warehouse.register_party": st.builds(RegisterParty, keys, st.sampled_from(["bank", "supervisor", "depositor"]),
                                          st.just("Bank"), st.sampled_from(["91310000MA1FL0000X", "bad"]),
                                          st.just("Beijing")),
    "warehouse.register_warehouse": st.builds(RegisterWarehouse, keys, st.just("Store"), st.just("91310000MA1FL0000X"),
                                              st.just("Qingdao"), st.just("urn:epc:id:sgln:1.2.0"), keys,
                                              st.just(("A1",))),
}


signers = st.sampled_from(ACTORS)


steps = st.one_of(
    st.builds(Decide, actions),
    st.tuples(signers, st.one_of(*(s for k, s in OPERATIONS.items() if k != "reg.review")),
              st.sampled_from([b"", b"x", b"memo" * 100])),
    st.tuples(st.sampled_from([ALICE, BOB, RICH]), OPERATIONS["transfer"], st.just(b"")),
    OPERATIONS["reg.review"],
)


histories = st.lists(steps, min_size=2, max_size=20)


class Runner:
    """Runs a history one entry at a time, checking the rejection property at every entry."""

    def __init__(self) -> None:
        self.state = genesis_state(GENESIS)
        self.state.take_dirty()
        self.heads: dict[bytes, tuple[int, bytes]] = {}
        self.ids: list[bytes] = []
        self.height = 0
        self.time_ms = 0
        self.results: list[EntryResult] = []
        self.roots: list[bytes] = []
        self.outcomes: Counter[str] = Counter()

    def entry(self, signer: Signer, op: ops.Operation, payload: bytes = b"") -> tuple[bytes, EntryHeader]:
        seq, head = self.heads.get(signer.public_key, (0, GENESIS.root))
        entry_id, signed = build_entry(signer, chain_id=GENESIS.chain_id, seq=seq, parents=[head], op=op,
                                       payload=payload, time_ms=self.time_ms, pow_bits=0)
        self.heads[signer.public_key] = (seq + 1, entry_id)
        self.ids.append(entry_id)
        return entry_id, codec.decode(signed.header, EntryHeader)

    def checkpoint(self, writes: list[tuple[Signer, ops.Operation, bytes]], advance_ms: int = 700) -> None:
        self.height += 1
        self.time_ms += advance_ms
        ctx = ExecContext(self.height, self.time_ms, PARAMS)
        expire_holds(ctx, self.state)
        for signer, op, payload in writes:
            entry_id, header = self.entry(signer, op, payload)
            before = dict(self.state.items())
            result = execute_entry(ctx, self.state, entry_id, header)
            self.outcomes[str(result.outcome)] += 1
            if result.outcome == "REJECTED":
                self.check_unchanged(before, header.author)
            self.check_declared(result)
            self.results.append(result)
        self.roots.append(self.state.root())

    def check_unchanged(self, before: dict[bytes, bytes], author: bytes) -> None:
        after = dict(self.state.items())
        head = author_key(author)
        assert after.pop(head) is not None
        expected_root = State([*before.items(), (head, self.state.get(head) or b"")]).root()
        before.pop(head, None)
        assert after == before, "a REJECTED entry changed state"
        assert self.state.root() == expected_root, "a REJECTED entry changed the state root"

    def check_declared(self, result: EntryResult) -> None:
        """A refusal that names a decision is one its action's spec declares it can cause."""
        kind, _, number = result.cause.partition(":")
        if kind == "proposal" and result.code:
            action = Council(self.state).proposal(int(number)).action
            assert result.code in spec_of(action).refusals, (result.code, type(action).__name__)

    def run(self, history: list[typing.Any]) -> None:
        for step in history:
            if isinstance(step, Decide):
                number = self.proposal_count() + 1
                propose = ops.GovPropose(step.action, "decided in a test", "")
                self.checkpoint([(COUNCIL[0], propose, b""), *((m, ops.GovVote(number, "yes"), b"") for m in COUNCIL)])
                self.checkpoint([(OUTSIDER, ops.GovExecute(number), b"")], advance_ms=PARAMS.timelock_ms)
            elif isinstance(step, Review):
                entry = self.ids[step.index % len(self.ids)] if self.ids else b"\x00" * 32
                self.checkpoint([(step.signer, ops.RegReview(entry, step.decision, "checked"), b"")])
            else:
                self.checkpoint([step])

    def proposal_count(self) -> int:
        return Council(self.state).proposal_count()


RICH_HISTORY = [
    Decide(ops.SetInterceptionRule("r1", min_amount=5, outcome="hold")),
    (ALICE, ops.Transfer("BLY", 5, BOB.public_key), b""),
    (RICH, ops.Transfer("BLY", 500, BOB.public_key), b""),
    Review(REGULATOR, 10, "release"),
    Decide(ops.SetInterceptionRule("r2", counterparties=(BOB.public_key,))),
    (ALICE, ops.Transfer("BLY", 1, BOB.public_key), b""),
    Decide(ops.SuspendService("data")),
    (ALICE, ops.Data("text/plain"), b"x"),
    Decide(ops.SetIdentityRule("transfer", 1)),
    (ALICE, ops.Transfer("GLD", 1, RICH.public_key), b""),
    Decide(ops.AppointIdentityProvider(PROVIDER.public_key)),
    (PROVIDER, ops.IdAttest(ALICE.public_key, b"\x01" * 16, 2, 10**13), b""),
    (ALICE, ops.Transfer("GLD", 1, RICH.public_key), b""),
    Decide(ops.RecoverAssets(ALICE.public_key, RICH.public_key, ("BLY", "GLD"))),
    (REGULATOR, ops.RegFreeze(BOB.public_key, "order", ""), b""),
    (BOB, ops.Transfer("BLY", 1, ALICE.public_key), b""),
    Decide(ops.AppointOperator(OPERATOR.public_key, "data")),
    (OPERATOR, ops.AppResume("data", "try"), b""),
    Decide(ops.SetValidator(VALIDATORS[0].public_key, 0)),
    Decide(ops.SetValidator(VALIDATORS[1].public_key, 0)),
]


def _subclasses(root: type) -> set[type]:
    found, todo = set(), [root]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                todo.append(sub)
    return found
