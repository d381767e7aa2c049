"""The way from one chain format to the next: the state at a chain's last checkpoint exported
into the genesis of a new chain (as Cosmos's "export genesis" upgrade), which records the
chain it continues (`Genesis.previous`).

A store of an earlier format cannot be run (its checkpoints sign roots of the old state
commitment), and cannot be rewritten (validators signed those roots), so the network restarts
from a new genesis. The store is read without a write (SQLite read-only), under the data
directory's lock, so no node runs on it meanwhile.

A genesis carries balances, the validator set, the council, the regulators and the chain and
governance parameters. The rest of the state (freezes, bans, identities, proposals and
votes, interception and content rules, application records, authors' sequence numbers) has
no place in a genesis: it is counted in the export's summary as left behind, and stays
provable in the previous chain's history.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from .. import codec
from ..errors import BilayerError, ConfigError
from ..execution.executor import genesis_state
from ..execution.governance.council import Council
from ..execution.governance.params import Params
from ..execution.governance.validator_set import Validators
from ..execution.state import State
from ..genesis import (
    Allocation,
    Genesis,
    GenesisCouncilMember,
    GenesisValidator,
    PreviousChain,
    validate_genesis,
)
from ..keys.address import address_from_public_key
from .storage import CHAIN_FORMAT, recorded_format

FORMAT1_FULL_STATE = "state_includes_genesis"  # format 1's mark of a state table holding all of it


class NothingToExport(BilayerError):
    """The data directory holds no finalized checkpoint, so there is no state to carry over."""

    code = "export_nothing"


@dataclass(frozen=True)
class Exported:
    genesis: Genesis
    accounts: int
    left_behind: int  # state keys a genesis has no place for


def read_last_state(path: str, old: Genesis) -> tuple[State, int, bytes, bytes, int]:
    """The state after the last checkpoint of the store at `path`, with that checkpoint's
    height, id and state root (as recorded), and the store's chain format."""
    store = Path(path)
    found = recorded_format(store)
    if found is None:
        raise NothingToExport(f"{store} holds no chain state")
    with closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as conn:
        row = conn.execute("SELECT height, id, state_root FROM checkpoints ORDER BY height DESC LIMIT 1").fetchone()
        if row is None:
            raise NothingToExport(f"{store} holds no finalized checkpoint")
        height, checkpoint_id, state_root = int(row[0]), bytes(row[1]), bytes(row[2])
        full = conn.execute("SELECT 1 FROM meta WHERE key = ?", (FORMAT1_FULL_STATE,)).fetchone() is not None
        stored = {bytes(k): bytes(v) for k, v in conn.execute("SELECT key, value FROM state")}
    if not full and found == 1:  # the oldest stores kept only the keys changed since genesis
        items = dict(genesis_state(old).items())
        items.update(stored)
    else:
        items = stored
    return State(items.items()), height, checkpoint_id, state_root, found


def export_genesis(path: str, old: Genesis, chain_id: str, time_ms: int) -> Exported:
    """The genesis of a new chain (`chain_id`, starting at `time_ms`) holding the carried-over
    state of the chain whose store is at `path`."""
    if chain_id == old.chain_id:
        raise ConfigError("the new chain needs a chain id of its own")
    state, height, checkpoint_id, state_root, found = read_last_state(path, old)
    carried = 0
    allocations = []
    for key, value in state.scan(b"B"):
        if len(key) <= 33:
            continue
        amount = codec.decode(value, int)
        carried += 1
        if amount > 0:
            allocations.append(Allocation(address_from_public_key(key[1:33]), key[33:].decode(), amount))
    validators = Validators(state).members()
    names = {bytes.fromhex(m.public_key): m.name for m in old.council}
    council = [GenesisCouncilMember(names.get(key, f"member-{key.hex()[:8]}"), key.hex(), weight)
               for key, weight in Council(state).members()]
    genesis = validate_genesis(Genesis(
        chain_id=chain_id,
        genesis_time_ms=time_ms,
        params=Params(state).current(),
        allocations=tuple(allocations),
        validators=tuple(GenesisValidator(m.name, m.key.hex(), m.power) for m in validators),
        council=tuple(council),
        regulators=old.regulators,
        governance=old.governance,
        previous=PreviousChain(old.chain_id, old.root.hex(), height, checkpoint_id.hex(), state_root.hex(), found),
    ))
    # what the new genesis itself writes stands for what it carried over
    fresh = genesis_state(genesis)
    left_behind = sum(1 for key, _ in state.items() if fresh.get(key) is None and key[:1] not in (b"B", b"A", b"V"))
    return Exported(genesis, carried, left_behind)


__all__ = ["CHAIN_FORMAT", "Exported", "NothingToExport", "export_genesis", "read_last_state"]
