"""Guard properties of execution, over generated histories of every operation kind and every
governance action, hostile ones included (outsiders acting, malformed fields, overflowing
amounts, actions on what does not exist):

* a REJECTED entry leaves every key and the state root as they were, but for its author's
  chain, which advances by design;
* executing the same ordered entries twice from the same state gives the same roots, and the
  incrementally kept root equals one computed afresh from the keys (rollbacks leave no stale
  bucket root behind);
* a refusal whose cause names a proposal has a code its action's spec declares;
* every error code is unique across the package (`test_error_codes_are_unique`).
"""

from __future__ import annotations

import importlib
import pkgutil
import typing

import bilayer
from bilayer.errors import BilayerError, ContentRefused
from bilayer.execution.errors import ExecutionRejected
from bilayer.execution.governance.rules import ContentBlocked
from bilayer.ledger import operations as ops
from tests.support.guard import (
    ACTIONS,
    ALICE,
    OPERATIONS,
    RICH,
    Decide,
    Runner,
    _subclasses,
)

# --- generated fields: mostly valid, some hostile ---------------------------------------------






def test_the_generators_cover_every_operation_kind_and_every_governance_action() -> None:
    assert set(ACTIONS) == set(typing.get_args(ops.GovAction))
    assert set(OPERATIONS) == set(ops.operation_kinds())


def test_the_hostile_cases_that_once_left_writes_behind_are_generated() -> None:
    """The recovery whose second asset overflows the new account, as the property meets it."""
    runner = Runner()
    runner.run([Decide(ops.RecoverAssets(ALICE.public_key, RICH.public_key, ("BLY", "GLD")))])
    assert runner.results[-1].code == "balance_overflow"
    assert runner.state.balance(ALICE.public_key, "BLY") == 1000


# --- error codes ------------------------------------------------------------------------------

# One decision seen from two sides: execution rejects the entry, and the API then refuses to
# serve its payload, under the same code.
SHARED_CODES = {"content_blocked": {ContentRefused, ContentBlocked}}


def test_error_codes_are_unique() -> None:
    for module in pkgutil.walk_packages(bilayer.__path__, "bilayer."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    owners: dict[str, set[type]] = {}
    classes = _subclasses(BilayerError) | _subclasses(ExecutionRejected)
    for cls in classes:
        if "code" in vars(cls):  # a class that inherits its code adds no code of its own
            owners.setdefault(vars(cls)["code"], set()).add(cls)
    shared = {code: owners_ for code, owners_ in owners.items() if len(owners_) > 1}
    assert shared == SHARED_CODES
    assert len(classes) > 100
