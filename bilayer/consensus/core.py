"""The consensus core: Tendermint, as a sans-IO state machine.

Protocol: E. Buchman, J. Kwon, Z. Milosevic, "The latest gossip on BFT consensus"
(arXiv:1807.04938, 2018), Algorithm 1. Each `upon` rule of the paper is one method
below (`_rule_...`), evaluated after every event until none fires; quorums are by voting
power (more than 2/3 for "2f+1", more than 1/3 for "f+1").

`step(event)` takes one event and returns the actions the caller must carry out, in order:
`Persist` before any `Broadcast` that follows it (a validator never signs anything that
conflicts with what it signed before, across crashes), `Commit` to apply a decision,
`FetchEntries` for data the proposal needs, `ScheduleTimeout` for the caller's clock.
No I/O, no clock, no randomness: the same events give the same actions, on a network
runtime or in the simulator.

The host answers three questions through `ConsensusApp`: what to propose, whether a
proposed checkpoint is valid (or which entries it needs first: data availability), and
whether there is work at all (no empty checkpoints while the DAG is idle).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

import msgspec

from ..keys.signing import Signer
from .messages import (
    NIL,
    Checkpoint,
    CommitCertificate,
    CommitSignature,
    FinalizedCheckpoint,
    Proposal,
    Vote,
    VoteType,
    proposal_signature_ok,
    sign_proposal,
    sign_vote,
    vote_signature_ok,
)
from .validators import ValidatorSet

# --- what the host tells the core about values --------------------------------------------


@dataclass(frozen=True, slots=True)
class Valid:
    pass


@dataclass(frozen=True, slots=True)
class Invalid:
    reason: str


@dataclass(frozen=True, slots=True)
class Missing:
    entry_ids: tuple[bytes, ...]


Verdict = Valid | Invalid | Missing


class ConsensusApp(Protocol):
    def propose_value(self, height: int, prev: Checkpoint | None) -> Checkpoint | None:
        """A checkpoint to propose at `height`, or None when there is nothing to order."""

    def check_value(self, value: Checkpoint) -> Verdict:
        """Whether this node can accept `value` now (holding every entry below it)."""

    def has_work(self, height: int) -> bool:
        """Whether entries wait to be ordered (else idle validators do not time out)."""


# --- events -----------------------------------------------------------------------------


class TimeoutKind(IntEnum):
    PROPOSE = 1
    PREVOTE = 2
    PRECOMMIT = 3
    REBROADCAST = 4


@dataclass(frozen=True, slots=True)
class Start:
    """Begin (or resume after a restart) at the restored height."""


@dataclass(frozen=True, slots=True)
class MessageReceived:
    message: Proposal | Vote


@dataclass(frozen=True, slots=True)
class TimeoutFired:
    kind: TimeoutKind
    height: int
    round: int


@dataclass(frozen=True, slots=True)
class EntriesAvailable:
    """New entries arrived: pending proposals may now be checkable, the proposer may have work."""


@dataclass(frozen=True, slots=True)
class HeightApplied:
    """The host applied the decision of `height` (or synced it from peers); go to `height + 1`.

    `validators` is the set of `height + 1` when it differs from this height's (a council
    decision): the core counts votes and picks proposers with it from then on."""

    height: int
    checkpoint: Checkpoint
    validators: ValidatorSet | None = None


Event = Start | MessageReceived | TimeoutFired | EntriesAvailable | HeightApplied

# --- actions ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Broadcast:
    message: Proposal | Vote


@dataclass(frozen=True, slots=True)
class ScheduleTimeout:
    kind: TimeoutKind
    height: int
    round: int
    delay_ms: int


@dataclass(frozen=True, slots=True)
class Persist:
    state: SignerState


@dataclass(frozen=True, slots=True)
class Commit:
    finalized: FinalizedCheckpoint


@dataclass(frozen=True, slots=True)
class FetchEntries:
    entry_ids: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Behind:
    """Peers have moved past `height`; the host should fetch finalized checkpoints."""

    height: int


@dataclass(frozen=True, slots=True)
class Equivocation:
    """Two conflicting signed messages from one validator: evidence."""

    first: Proposal | Vote
    second: Proposal | Vote


Action = Broadcast | ScheduleTimeout | Persist | Commit | FetchEntries | Behind | Equivocation

# --- persisted state ----------------------------------------------------------------------


class Phase(IntEnum):
    PROPOSE = 0
    PREVOTE = 1
    PRECOMMIT = 2
    DECIDED = 3


class SignerState(msgspec.Struct, frozen=True):
    """All a validator must remember across a crash to stay safe (and resume quickly)."""

    height: int
    round: int
    phase: int
    locked_round: int = -1
    locked_value: Checkpoint | None = None
    valid_round: int = -1
    valid_value: Checkpoint | None = None
    prev: Checkpoint | None = None
    proposals: tuple[Proposal, ...] = ()
    votes: tuple[Vote, ...] = ()
    valid_proof: tuple[Vote, ...] = ()


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Milliseconds; each grows by its delta per round (the paper's timeout(r) = base + r*delta)."""

    propose_ms: int = 1000
    propose_delta_ms: int = 500
    prevote_ms: int = 500
    prevote_delta_ms: int = 250
    precommit_ms: int = 500
    precommit_delta_ms: int = 250
    rebroadcast_ms: int = 2000


MAX_FUTURE_ROUNDS = 64
MAX_BUFFERED = 10_000


MAX_VALUES_PER_VOTER = 2


@dataclass
class _VoteSet:
    """The votes of one round and type.

    A validator's first vote is its participation ("2f+1 of any" counts voters). A second,
    conflicting vote is evidence of equivocation, and it still counts for its own value:
    a justification needs only signatures, and two quorums still intersect in an honest
    validator, so counting an equivocator on both sides is safe. Without that, honest nodes
    that saw different halves of an equivocation could never agree on a re-proposal.
    """

    first: dict[bytes, Vote] = field(default_factory=dict)
    by_value: dict[bytes, dict[bytes, Vote]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.first)

    def add(self, vote: Vote, known_value: bool = False) -> Vote | None:
        """Record a vote; return the earlier vote it conflicts with, if any. An equivocator's
        extra values are capped, except values some proposal of this height carries: junk
        values must not crowd out the vote that completes a proof of lock."""
        earlier = self.first.get(vote.validator)
        if earlier is None:
            self.first[vote.validator] = vote
            self.by_value.setdefault(vote.value_id, {})[vote.validator] = vote
            return None
        if earlier.value_id == vote.value_id or vote.validator in self.by_value.get(vote.value_id, {}):
            return None
        distinct = sum(1 for voters in self.by_value.values() if vote.validator in voters)
        if distinct < MAX_VALUES_PER_VOTER or known_value:
            self.by_value.setdefault(vote.value_id, {})[vote.validator] = vote
        return earlier

    def voters_for(self, value_id: bytes) -> list[Vote]:
        return list(self.by_value.get(value_id, {}).values())

    def all_votes(self) -> list[Vote]:
        return [vote for voters in self.by_value.values() for vote in voters.values()]


@dataclass
class _RoundBook:
    proposal: Proposal | None = None
    prevotes: _VoteSet = field(default_factory=_VoteSet)
    precommits: _VoteSet = field(default_factory=_VoteSet)

    def votes(self, type_: int) -> _VoteSet:
        return self.prevotes if type_ == VoteType.PREVOTE else self.precommits


class TendermintCore:
    def __init__(
        self,
        chain_id: str,
        signer: Signer,
        validators: ValidatorSet,
        app: ConsensusApp,
        state: SignerState | None = None,
        timeouts: Timeouts = Timeouts(),
    ) -> None:
        self.chain_id = chain_id
        self.signer = signer
        self.me = signer.public_key
        self.validators = validators
        self.app = app
        self.timeouts = timeouts
        state = state or SignerState(height=1, round=0, phase=Phase.PROPOSE)
        self.height = state.height
        self.round = state.round
        self.phase = Phase(state.phase)
        self.locked_round = state.locked_round
        self.locked_value = state.locked_value
        self.valid_round = state.valid_round
        self.valid_value = state.valid_value
        self.valid_proof = state.valid_proof
        self.prev = state.prev
        self._own_proposals: dict[int, Proposal] = {p.round: p for p in state.proposals}
        self._own_votes: dict[tuple[int, int], Vote] = {(v.round, v.type): v for v in state.votes}
        self._rounds: dict[int, _RoundBook] = {}
        self._proposed_values: set[bytes] = set()
        self._future: list[Proposal | Vote] = []
        self._verdicts: dict[bytes, Verdict] = {}
        self._fired: set[tuple[str, int]] = set()
        self._proposal_pending = False
        self._actions: list[Action] = []
        for proposal in state.proposals:
            self._book(proposal.round).proposal = proposal
            self._proposed_values.add(proposal.value.id)
        for value in (state.locked_value, state.valid_value):
            if value is not None:
                self._proposed_values.add(value.id)
        for vote in (*state.votes, *state.valid_proof):
            self._book(vote.round).votes(vote.type).add(vote, True)

    # --- public interface -------------------------------------------------------------

    @property
    def is_validator(self) -> bool:
        return self.me in self.validators

    def snapshot(self) -> SignerState:
        return SignerState(
            height=self.height, round=self.round, phase=int(self.phase),
            locked_round=self.locked_round, locked_value=self.locked_value,
            valid_round=self.valid_round, valid_value=self.valid_value, prev=self.prev,
            valid_proof=self.valid_proof,
            proposals=tuple(self._own_proposals[r] for r in sorted(self._own_proposals)),
            votes=tuple(self._own_votes[k] for k in sorted(self._own_votes)),
        )

    def step(self, event: Event) -> list[Action]:
        """Feed one event; return the actions to carry out, in order."""
        self._actions = []
        if isinstance(event, Start):
            self._on_start()
        elif isinstance(event, MessageReceived):
            self._on_message(event.message)
        elif isinstance(event, TimeoutFired):
            self._on_timeout(event)
        elif isinstance(event, EntriesAvailable):
            self._verdicts = {k: v for k, v in self._verdicts.items() if not isinstance(v, Missing)}
            if self._proposal_pending:
                self._try_propose()
        elif isinstance(event, HeightApplied):
            self._on_applied(event)
        self._run_rules()
        actions, self._actions = self._actions, []
        return actions

    # --- helpers --------------------------------------------------------------------------

    def _emit(self, action: Action) -> None:
        self._actions.append(action)

    def _book(self, round_: int) -> _RoundBook:
        book = self._rounds.get(round_)
        if book is None:
            book = self._rounds[round_] = _RoundBook()
        return book

    def _verdict(self, value: Checkpoint) -> Verdict:
        value_id = value.id
        verdict = self._verdicts.get(value_id)
        if verdict is None:
            if value.height != self.height or value.chain != self.chain_id:
                verdict = Invalid("wrong height or chain")
            else:
                verdict = self.app.check_value(value)
            self._verdicts[value_id] = verdict
            if isinstance(verdict, Missing):
                self._emit(FetchEntries(verdict.entry_ids))
        return verdict

    def _valid(self, value: Checkpoint) -> bool:
        return isinstance(self._verdict(value), Valid)

    def _once(self, rule: str, round_: int) -> bool:
        key = (rule, round_)
        if key in self._fired:
            return False
        self._fired.add(key)
        return True

    def _power(self, votes: Iterable[Vote]) -> int:
        return self.validators.power_of(v.validator for v in votes)

    def _quorum_for(self, round_: int, type_: VoteType, value_id: bytes) -> bool:
        return self.validators.is_quorum(self._power(self._book(round_).votes(type_).voters_for(value_id)))

    def _quorum_any(self, round_: int, type_: VoteType) -> bool:
        return self.validators.is_quorum(self._power(self._book(round_).votes(type_).first.values()))

    def _timeout(self, kind: TimeoutKind) -> None:
        t = self.timeouts
        base, delta = {
            TimeoutKind.PROPOSE: (t.propose_ms, t.propose_delta_ms),
            TimeoutKind.PREVOTE: (t.prevote_ms, t.prevote_delta_ms),
            TimeoutKind.PRECOMMIT: (t.precommit_ms, t.precommit_delta_ms),
        }[kind]
        self._emit(ScheduleTimeout(kind, self.height, self.round, base + delta * self.round))

    def _persist(self) -> None:
        self._emit(Persist(self.snapshot()))

    # --- signing (never twice differently) ------------------------------------------------

    def _vote(self, type_: VoteType, value_id: bytes) -> None:
        if not self.is_validator:
            return
        key = (self.round, int(type_))
        vote = self._own_votes.get(key)
        if vote is not None and vote.value_id != value_id:
            return  # already voted differently in this round (e.g. before a crash): stay silent
        if vote is None:
            vote = sign_vote(self.signer, self.chain_id, self.height, self.round, type_, value_id)
            self._own_votes[key] = vote
            self._persist()
        self._emit(Broadcast(vote))
        self._add_vote(vote)

    def _propose(self, value: Checkpoint, valid_round: int) -> None:
        proposal = self._own_proposals.get(self.round)
        if proposal is None:
            proof = self.valid_proof if valid_round >= 0 else ()
            proposal = sign_proposal(self.signer, self.chain_id, self.height, self.round, valid_round, value, proof)
            self._own_proposals[self.round] = proposal
            self._persist()
        self._emit(Broadcast(proposal))
        self._add_proposal(proposal)

    # --- events ---------------------------------------------------------------------------

    def _on_start(self) -> None:
        self._emit(ScheduleTimeout(TimeoutKind.REBROADCAST, self.height, self.round, self.timeouts.rebroadcast_ms))
        if self.phase == Phase.DECIDED:
            return  # waiting for the host to apply (or re-deliver) the decision
        self._start_round(self.round, resume=True)

    def _start_round(self, round_: int, resume: bool = False) -> None:
        if not resume:  # not persisted: only what was signed (and the lock) must survive a crash
            self.round = round_
            self.phase = Phase.PROPOSE
        self._proposal_pending = False
        if self.validators.proposer(self.height, self.round) == self.me:
            self._try_propose()
        self._timeout(TimeoutKind.PROPOSE)
        for message in self._take_future(self.height):
            self._on_message(message)

    def _try_propose(self) -> None:
        if self.phase != Phase.PROPOSE or self.validators.proposer(self.height, self.round) != self.me:
            self._proposal_pending = False
            return
        own = self._own_proposals.get(self.round)
        if own is not None:
            self._proposal_pending = False
            self._emit(Broadcast(own))
            return
        if self.valid_value is not None:
            self._proposal_pending = False
            self._propose(self.valid_value, self.valid_round)
            return
        value = self.app.propose_value(self.height, self.prev)
        if value is None:
            self._proposal_pending = True  # nothing to order yet; retry on EntriesAvailable
            return
        self._proposal_pending = False
        self._verdicts[value.id] = Valid()
        self._propose(value, -1)

    def _on_applied(self, event: HeightApplied) -> None:
        if event.height < self.height:
            if event.height + 1 == self.height:
                # resumed at a height ahead of the host's chain (a disk that lost commits): only now
                # that the chain caught up is the set of this height known, and values judged
                # against the chain while it was behind must be judged again
                if event.validators is not None:
                    self.validators = event.validators
                self._verdicts.clear()
            return
        self.height = event.height + 1
        self.prev = event.checkpoint
        if event.validators is not None:
            self.validators = event.validators
        self.round = 0
        self.phase = Phase.PROPOSE
        self.locked_round, self.locked_value = -1, None
        self.valid_round, self.valid_value = -1, None
        self.valid_proof = ()
        self._own_proposals.clear()
        self._own_votes.clear()
        self._rounds.clear()
        self._proposed_values.clear()
        self._verdicts.clear()
        self._fired.clear()  # the host recorded the decision durably before telling us
        self._start_round(0, resume=True)

    def _on_timeout(self, event: TimeoutFired) -> None:
        if event.kind == TimeoutKind.REBROADCAST:
            self._rebroadcast()
            return
        if event.height != self.height or event.round != self.round:
            return
        if event.kind == TimeoutKind.PROPOSE and self.phase == Phase.PROPOSE:
            if self._book(self.round).proposal is None and not self.app.has_work(self.height):
                self._timeout(TimeoutKind.PROPOSE)  # idle DAG: wait rather than churn rounds
                return
            self._vote(VoteType.PREVOTE, NIL)
            self.phase = Phase.PREVOTE
        elif event.kind == TimeoutKind.PREVOTE and self.phase == Phase.PREVOTE:
            self._vote(VoteType.PRECOMMIT, NIL)
            self.phase = Phase.PRECOMMIT
        elif event.kind == TimeoutKind.PRECOMMIT:
            self._start_round(self.round + 1)

    def _rebroadcast(self) -> None:
        """Resend this validator's messages of the current height, and relay the proposals and
        votes of the rounds that matter now (current, locked, valid): this is the paper's gossip
        assumption (what one correct process receives, all eventually receive) made real over
        lossy links."""
        self._emit(ScheduleTimeout(TimeoutKind.REBROADCAST, self.height, self.round, self.timeouts.rebroadcast_ms))
        for round_ in sorted(self._own_proposals):
            self._emit(Broadcast(self._own_proposals[round_]))
        for key in sorted(self._own_votes):
            self._emit(Broadcast(self._own_votes[key]))
        if self.phase == Phase.DECIDED:
            return
        for round_ in sorted({self.round, self.locked_round, self.valid_round} - {-1}):
            book = self._rounds.get(round_)
            if book is None:
                continue
            if book.proposal is not None and book.proposal.proposer != self.me:
                self._emit(Broadcast(book.proposal))
            for vote in book.prevotes.all_votes() + book.precommits.all_votes():
                if vote.validator != self.me:
                    self._emit(Broadcast(vote))

    # --- messages -------------------------------------------------------------------------

    def _on_message(self, message: Proposal | Vote) -> None:
        if message.chain != self.chain_id or message.round < 0 or message.round > self.round + MAX_FUTURE_ROUNDS:
            return
        if message.height < self.height:
            return
        if message.height > self.height or self.phase == Phase.DECIDED:
            if message.height > self.height + 1:
                self._emit(Behind(message.height - 1))
            if len(self._future) < MAX_BUFFERED and message.height <= self.height + 1:
                self._future.append(message)
            return
        if isinstance(message, Vote):
            if vote_signature_ok(message) and message.validator in self.validators and \
                    message.type in (VoteType.PREVOTE, VoteType.PRECOMMIT):
                self._add_vote(message)
        elif proposal_signature_ok(message):
            self._add_proposal(message)

    def _take_future(self, height: int) -> list[Proposal | Vote]:
        now = [m for m in self._future if m.height == height]
        self._future = [m for m in self._future if m.height > height]
        return now

    def _add_vote(self, vote: Vote) -> None:
        known = vote.value_id in self._proposed_values
        conflict = self._book(vote.round).votes(vote.type).add(vote, known)
        if conflict is not None:
            self._emit(Equivocation(conflict, vote))

    def _add_proposal(self, proposal: Proposal) -> None:
        if proposal.proposer != self.validators.proposer(proposal.height, proposal.round):
            return
        if proposal.valid_round >= proposal.round or proposal.valid_round < -1:
            return
        if proposal.value.height != proposal.height:
            return
        self._proposed_values.add(proposal.value.id)
        for vote in proposal.proof[: 2 * len(self.validators)]:  # the proof of a re-proposal
            if (vote.chain == self.chain_id and vote.height == proposal.height and vote.round == proposal.valid_round
                    and vote.type == VoteType.PREVOTE and vote.value_id == proposal.value.id
                    and vote.validator in self.validators and vote_signature_ok(vote)):
                self._add_vote(vote)
        book = self._book(proposal.round)
        if book.proposal is None:
            book.proposal = proposal
        elif book.proposal.value.id != proposal.value.id or book.proposal.valid_round != proposal.valid_round:
            self._emit(Equivocation(book.proposal, proposal))

    # --- the upon rules ------------------------------------------------------------------

    def _run_rules(self) -> None:
        for _ in range(1000):  # each rule changes state monotonically; this bound is never reached
            if not (
                self._rule_decide()
                or self._rule_skip_round()
                or self._rule_prevote_new_proposal()
                or self._rule_prevote_reproposal()
                or self._rule_prevote_quorum_timeout()
                or self._rule_lock_and_precommit()
                or self._rule_precommit_nil()
                or self._rule_precommit_quorum_timeout()
            ):
                return

    def _rule_prevote_new_proposal(self) -> bool:
        """upon PROPOSAL(h, r, v, -1) from proposer(h, r) while step = propose."""
        proposal = self._book(self.round).proposal
        if self.phase != Phase.PROPOSE or proposal is None or proposal.valid_round != -1:
            return False
        verdict = self._verdict(proposal.value)
        if isinstance(verdict, Missing):
            return False  # fetching; the propose timeout bounds the wait
        value_id = proposal.value.id
        if isinstance(verdict, Valid) and (self.locked_round == -1 or self._locked_id() == value_id):
            self._vote(VoteType.PREVOTE, value_id)
        else:
            self._vote(VoteType.PREVOTE, NIL)
        self.phase = Phase.PREVOTE
        return True

    def _rule_prevote_reproposal(self) -> bool:
        """upon PROPOSAL(h, r, v, vr) and 2f+1 PREVOTE(h, vr, id(v)) while step = propose, 0 <= vr < r."""
        proposal = self._book(self.round).proposal
        if self.phase != Phase.PROPOSE or proposal is None or not 0 <= proposal.valid_round < self.round:
            return False
        value_id = proposal.value.id
        if not self._quorum_for(proposal.valid_round, VoteType.PREVOTE, value_id):
            return False
        verdict = self._verdict(proposal.value)
        if isinstance(verdict, Missing):
            return False
        if isinstance(verdict, Valid) and (self.locked_round <= proposal.valid_round or self._locked_id() == value_id):
            self._vote(VoteType.PREVOTE, value_id)
        else:
            self._vote(VoteType.PREVOTE, NIL)
        self.phase = Phase.PREVOTE
        return True

    def _rule_prevote_quorum_timeout(self) -> bool:
        """upon 2f+1 PREVOTE(h, r, *) while step = prevote for the first time."""
        if self.phase != Phase.PREVOTE or not self._quorum_any(self.round, VoteType.PREVOTE):
            return False
        if not self._once("prevote-timeout", self.round):
            return False
        self._timeout(TimeoutKind.PREVOTE)
        return True

    def _rule_lock_and_precommit(self) -> bool:
        """upon PROPOSAL(h, r, v, *) and 2f+1 PREVOTE(h, r, id(v)) while valid(v), step >= prevote, first time."""
        proposal = self._book(self.round).proposal
        if proposal is None or self.phase < Phase.PREVOTE or self.phase == Phase.DECIDED:
            return False
        value_id = proposal.value.id
        if not self._quorum_for(self.round, VoteType.PREVOTE, value_id) or not self._valid(proposal.value):
            return False
        if not self._once("lock", self.round):
            return False
        if self.phase == Phase.PREVOTE:
            self.locked_value, self.locked_round = proposal.value, self.round
            self._vote(VoteType.PRECOMMIT, value_id)
            self.phase = Phase.PRECOMMIT
        self.valid_value, self.valid_round = proposal.value, self.round
        self.valid_proof = tuple(self._book(self.round).prevotes.voters_for(value_id))
        self._persist()
        return True

    def _rule_precommit_nil(self) -> bool:
        """upon 2f+1 PREVOTE(h, r, nil) while step = prevote."""
        if self.phase != Phase.PREVOTE or not self._quorum_for(self.round, VoteType.PREVOTE, NIL):
            return False
        self._vote(VoteType.PRECOMMIT, NIL)
        self.phase = Phase.PRECOMMIT
        return True

    def _rule_precommit_quorum_timeout(self) -> bool:
        """upon 2f+1 PRECOMMIT(h, r, *) for the first time."""
        if self.phase == Phase.DECIDED or not self._quorum_any(self.round, VoteType.PRECOMMIT):
            return False
        if not self._once("precommit-timeout", self.round):
            return False
        self._timeout(TimeoutKind.PRECOMMIT)
        return True

    def _rule_decide(self) -> bool:
        """upon PROPOSAL(h, r, v, *) and 2f+1 PRECOMMIT(h, r, id(v)) while decision[h] = nil."""
        if self.phase == Phase.DECIDED:
            return False
        for round_ in sorted(self._rounds):
            book = self._rounds[round_]
            for value_id in list(book.precommits.by_value):
                if value_id == NIL:
                    continue
                votes = book.precommits.voters_for(value_id)
                if not self.validators.is_quorum(self._power(votes)):
                    continue
                proposal = book.proposal
                if proposal is None or proposal.value.id != value_id:
                    proposal = self._find_proposal(value_id)
                if proposal is None:
                    if self._once("behind", round_):
                        self._emit(Behind(self.height))  # decided without us seeing the value
                    continue
                if isinstance(self._verdict(proposal.value), Missing):
                    continue  # a quorum decided it; fetch the data, then apply
                certificate = CommitCertificate(
                    self.height, round_, value_id,
                    tuple(CommitSignature(v.validator, v.signature) for v in sorted(votes, key=lambda v: v.validator)),
                )
                self.phase = Phase.DECIDED  # not persisted: after a crash the precommits decide again
                self._emit(Commit(FinalizedCheckpoint(proposal.value, certificate)))
                return True
        return False

    def _find_proposal(self, value_id: bytes) -> Proposal | None:
        for round_ in sorted(self._rounds):
            proposal = self._rounds[round_].proposal
            if proposal is not None and proposal.value.id == value_id:
                return proposal
        return None

    def _rule_skip_round(self) -> bool:
        """upon f+1 messages (h, round, *) with round > r: StartRound(round)."""
        if self.phase == Phase.DECIDED:
            return False
        target = -1
        for round_, book in self._rounds.items():
            if round_ <= self.round:
                continue
            senders = set(book.prevotes.first) | set(book.precommits.first)
            if book.proposal is not None:
                senders.add(book.proposal.proposer)
            if self.validators.is_one_third(self.validators.power_of(senders)):
                target = max(target, round_)
        if target < 0:
            return False
        self._start_round(target)
        return True

    def _locked_id(self) -> bytes | None:
        return self.locked_value.id if self.locked_value is not None else None
