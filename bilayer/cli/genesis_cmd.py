"""`bilayer genesis`: write a chain's genesis from the keys its operators sent, and show its root.

Validators on separate machines each run `bilayer node init` (which prints the node key);
one coordinator collects the keys and writes the genesis with `genesis new`, sends the file
to every operator, and each checks `genesis show` prints the same root the coordinator
announced over a second channel before `node init --genesis FILE --force`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError
from ..genesis import (
    ChainParams,
    Genesis,
    GenesisCouncilMember,
    GenesisRegulator,
    GenesisValidator,
    load_genesis,
    validate_genesis,
    write_genesis,
)
from .node_cmd import _parse_fund
from .output import console, emit, json_option, kv_table


@click.group()
def genesis() -> None:
    """Write a chain's genesis and check its root."""


def _named_keys(values: tuple[str, ...], option: str) -> list[tuple[str, str, int]]:
    """NAME=PUBLIC_KEY[:WEIGHT] → (name, key, weight); the key is checked by `validate_genesis`."""
    parsed = []
    for text in values:
        name, _, rest = text.partition("=")
        key, _, weight = rest.partition(":")
        if not name or not key or (weight and not (weight.isascii() and weight.isdigit())):
            raise ConfigError(f"{option} {text!r}: use NAME=PUBLIC_KEY_HEX[:WEIGHT]")
        parsed.append((name, key.lower(), int(weight) if weight else 1))
    return parsed


@genesis.command("new")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Where to write it.")
@click.option("--chain-id", required=True, help="1-48 characters of a-z, 0-9 and '-'.")
@click.option("--validator", "validators", multiple=True,
              help="NAME=NODE_KEY_HEX[:POWER], as `node init` printed it (repeatable).")
@click.option("--council", "council", multiple=True, help="NAME=PUBLIC_KEY_HEX[:WEIGHT] (repeatable).")
@click.option("--regulator", "regulators", multiple=True, help="NAME=PUBLIC_KEY_HEX (repeatable).")
@click.option("--fund", multiple=True, help="ADDRESS=AMOUNT[:ASSET] (repeatable).")
@click.option("--pow-bits", type=click.IntRange(0, 32), default=16, show_default=True)
@click.option("--time-ms", type=click.IntRange(0), default=None, help="Genesis time (default: now).")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@json_option
def genesis_new(out: Path, chain_id: str, validators: tuple[str, ...], council: tuple[str, ...],
                regulators: tuple[str, ...], fund: tuple[str, ...], pow_bits: int, time_ms: int | None,
                force: bool, as_json: bool) -> None:
    """Write a new chain's genesis from its validators', council's and regulators' keys."""
    if out.exists() and not force:
        raise ConfigError(f"{out} exists; use --force to overwrite it")
    made = validate_genesis(Genesis(
        chain_id=chain_id,
        genesis_time_ms=int(time.time() * 1000) if time_ms is None else time_ms,
        params=ChainParams(pow_bits=pow_bits),
        allocations=tuple(_parse_fund(f) for f in fund),
        validators=tuple(GenesisValidator(n, k, w) for n, k, w in _named_keys(validators, "--validator")),
        council=tuple(GenesisCouncilMember(n, k, w) for n, k, w in _named_keys(council, "--council")),
        regulators=tuple(GenesisRegulator(n, k) for n, k, _ in _named_keys(regulators, "--regulator")),
    ))
    write_genesis(made, out)
    _show(made, out, as_json)


@genesis.command("show")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@json_option
def genesis_show(file: Path, as_json: bool) -> None:
    """Check a genesis file and print its root: every operator must see the same root."""
    _show(load_genesis(file), file, as_json)


def _show(made: Genesis, path: Path, as_json: bool) -> None:
    summary = {
        "file": str(path), "chain_id": made.chain_id, "root": made.root.hex(),
        "genesis_time_ms": made.genesis_time_ms,
        "validators": [{"name": v.name, "public_key": v.public_key, "power": v.power} for v in made.validators],
        "council": [{"name": m.name, "public_key": m.public_key, "weight": m.weight} for m in made.council],
        "regulators": [{"name": r.name, "public_key": r.public_key} for r in made.regulators],
        "allocations": len(made.allocations),
    }

    def human(d: dict[str, Any]) -> None:
        kv_table(f"genesis {d['file']}", {
            "chain id": d["chain_id"], "root": d["root"],
            "validators": ", ".join(f"{v['name']} ({v['power']})" for v in d["validators"]) or "none (one node)",
            "council": ", ".join(m["name"] for m in d["council"]) or "none",
            "regulators": ", ".join(r["name"] for r in d["regulators"]) or "none",
            "allocations": d["allocations"],
        })
        console.print("every operator checks this root before starting a node on this file")

    emit(summary, as_json, human)


@genesis.command("export")
@click.option("--home", "home", type=click.Path(file_okay=False, exists=True, path_type=Path), required=True,
              help="The stopped node's home (its config/ and data/).")
@click.option("--chain-id", required=True, help="The new chain's id (not the old one's).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Where to write it.")
@click.option("--time-ms", type=click.IntRange(0), default=None, help="The new genesis time (default: now).")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@json_option
def genesis_export(home: Path, chain_id: str, out: Path, time_ms: int | None, force: bool, as_json: bool) -> None:
    """Export the state at a stopped node's last checkpoint into a new chain's genesis, which
    names the chain it continues (the way from one chain format to the next). Reads the
    store, never writes it."""
    from ..node.config import NodeHome, load_config
    from ..node.process import HomeLock
    from ..node.upgrade import export_genesis

    if out.exists() and not force:
        raise ConfigError(f"{out} exists; use --force to overwrite it")
    node_home = NodeHome(home)
    old = load_genesis(node_home.genesis_file(load_config(node_home)))
    with HomeLock(node_home.data_dir).acquire("genesis export"):
        exported = export_genesis(str(node_home.ledger_db), old, chain_id,
                                  int(time.time() * 1000) if time_ms is None else time_ms)
    made = exported.genesis
    write_genesis(made, out)
    previous = made.previous
    assert previous is not None
    summary = {"file": str(out), "chain_id": made.chain_id, "root": made.root.hex(),
               "previous": {"chain_id": previous.chain_id, "height": previous.height,
                            "checkpoint_id": previous.checkpoint_id, "chain_format": previous.chain_format},
               "balances": exported.accounts, "allocations": len(made.allocations),
               "validators": len(made.validators), "council": len(made.council),
               "left_behind": exported.left_behind}

    def human(d: dict[str, Any]) -> None:
        kv_table(f"genesis {d['file']}", {
            "chain id": d["chain_id"], "root": d["root"],
            "continues": f"{previous.chain_id} at height {previous.height} (checkpoint"
                         f" {previous.checkpoint_id[:16]}…, chain format {previous.chain_format})",
            "allocations": d["allocations"], "validators": d["validators"], "council": d["council"],
            "state keys left behind": d["left_behind"],
        })
        console.print("give this file to every operator; each checks the root, then starts a node on a new home"
                      " with it (bilayer node init --genesis FILE)")

    emit(summary, as_json, human)
