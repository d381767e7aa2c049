"""Management powers, one module per power, each the keeper of its own state keys.

    council.py        C, Ct, Gn, Gp, Gv   the council and its proposals: propose, vote, execute, cancel
    emergency.py      R, En, E, EF        regulators and their emergency freezes and rules
    freezes.py        F                   accounts the council froze
    identity.py       P, I, X, XI, Q      identity providers, attestations, banned keys and identities, identity rules
    rules.py          T:, Tl, K:, Kl      interception rules (transfers) and content rules (data)
    review.py         H, Hl               transfers held for review, in escrow
    services.py       S, O, Y             applications: the council's suspensions, operators and their pauses
    validator_set.py  V, Vk, Vc, Vh       the validator set and every change of it
    redaction.py      D                   redacted entries (their payloads are gone from every node)
    recovery.py       (balances)          assets of a lost key reissued to a new one
    params.py         Np, Nl              the chain parameters in force, and the loosest ever
    gate.py           (reads only)        the compliance gate that consults them, and the rule dry-run
    actions.py                            the registry of governance actions (one ActionSpec each)
    options.py                            the words users describe actions in (CLI, API, drafts)

Each keeper is a typed view (`Council(state)`, `Identities(state)`, ...) with read methods
for the API, the node and audit, and write methods for execution; nothing else parses their
keys. The balances (b"B") and authors' chains (b"A") are the state's own (`state.py`).
Every power module registers the specs of its own governance actions (name, proposer,
build from user options, effect, refusals), so importing this package makes the registry
whole, which is checked here.
"""

from __future__ import annotations

from . import (
    council,
    emergency,
    freezes,
    gate,
    identity,
    params,
    recovery,
    redaction,
    review,
    rules,
    services,
    validator_set,
)
from .actions import unregistered_actions

__all__ = ["council", "emergency", "freezes", "gate", "identity", "params", "recovery", "redaction", "review",
           "rules", "services", "validator_set"]

if unregistered_actions():
    raise ImportError(f"governance actions without a spec: {sorted(t.__name__ for t in unregistered_actions())}")
