from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..api.client import NodeClient
from ..keys.address import public_key_from_address
from ..ledger.operations import (
    BanKey,
    FreezeAccount,
    GovAction,
    GovCancel,
    GovExecute,
    GovPropose,
    GovVote,
    UnbanKey,
    UnfreezeAccount,
)
from .output import console, emit, json_option, kv_table
from .query_cmd import node_option
from .tx_cmd import _common, _submit

ACTIONS = ("freeze", "unfreeze", "ban", "unban")


def make_action(action: str, target: bytes) -> GovAction:
    if action == "freeze":
        return FreezeAccount(target)
    if action == "unfreeze":
        return UnfreezeAccount(target)
    if action == "ban":
        return BanKey(target)
    return UnbanKey(target)


@click.group()
def gov() -> None:
    """Council governance: propose, vote, execute, cancel; list and show proposals."""


@gov.command("propose")
@click.option("--action", type=click.Choice(ACTIONS), required=True,
              help="freeze/unfreeze an account, ban/unban a key (deny it service).")
@click.option("--target", required=True, help="The address the action applies to.")
@click.option("--reason", required=True, help="Why (recorded on chain).")
@click.option("--legal-ref", default="", help="The legal basis (statute, court order...).")
@_common
def gov_propose(action: str, target: str, reason: str, legal_ref: str, node_url: str, key: str,
                keystore: Path | None, wait: bool, timeout: float, as_json: bool) -> None:
    """Propose a management action (council members only)."""
    made = make_action(action, public_key_from_address(target))
    _submit(node_url, keystore, key, GovPropose(action=made, reason=reason, legal_ref=legal_ref), b"", wait,
            timeout, as_json)


@gov.command("vote")
@click.argument("proposal", type=click.IntRange(min=1))
@click.argument("choice", type=click.Choice(["yes", "no", "abstain"]))
@_common
def gov_vote(proposal: int, choice: str, node_url: str, key: str, keystore: Path | None, wait: bool,
             timeout: float, as_json: bool) -> None:
    """Vote on a proposal (council members only; once, before its deadline)."""
    _submit(node_url, keystore, key, GovVote(proposal=proposal, choice=choice), b"", wait, timeout, as_json)


@gov.command("execute")
@click.argument("proposal", type=click.IntRange(min=1))
@_common
def gov_execute(proposal: int, node_url: str, key: str, keystore: Path | None, wait: bool, timeout: float,
                as_json: bool) -> None:
    """Carry out a passed proposal whose timelock has run out (anyone may)."""
    _submit(node_url, keystore, key, GovExecute(proposal=proposal), b"", wait, timeout, as_json)


@gov.command("cancel")
@click.argument("proposal", type=click.IntRange(min=1))
@_common
def gov_cancel(proposal: int, node_url: str, key: str, keystore: Path | None, wait: bool, timeout: float,
               as_json: bool) -> None:
    """Withdraw your own proposal before it executes."""
    _submit(node_url, keystore, key, GovCancel(proposal=proposal), b"", wait, timeout, as_json)


@gov.command("list")
@click.option("--status", type=click.Choice(["voting", "passed", "rejected", "executed", "cancelled"]), default=None)
@node_option
@json_option
def gov_list(status: str | None, node_url: str, as_json: bool) -> None:
    """Proposals, newest first, with their tallies."""
    data = NodeClient(node_url).get("/v1/gov/proposals" + (f"?status={status}" if status else ""))

    def human(d: dict[str, Any]) -> None:
        console.print(f"{len(d['proposals'])} proposals (height {d['height']})")
        for p in d["proposals"]:
            tally = p["tally"]
            console.print(f"#{p['number']:<4} {p['status']:<9} {p['action']['type']:<16} {p['action']['target']}"
                          f"  yes {tally['yes']} no {tally['no']} of {tally['council_weight']}  {p['reason']}")

    emit(data, as_json, human)


@gov.command("show")
@click.argument("proposal", type=click.IntRange(min=1))
@node_option
@json_option
def gov_show(proposal: int, node_url: str, as_json: bool) -> None:
    """One proposal with its votes."""
    data = NodeClient(node_url).get(f"/v1/gov/proposals/{proposal}")
    emit(data, as_json, lambda d: kv_table(f"proposal {proposal}", d))


@click.group()
def compliance() -> None:
    """What the council's decisions currently enforce."""


@compliance.command("list")
@node_option
@json_option
def compliance_list(node_url: str, as_json: bool) -> None:
    """Frozen accounts and banned keys, each with the proposal that decided it."""
    data = NodeClient(node_url).get("/v1/compliance")

    def human(d: dict[str, Any]) -> None:
        console.print(f"as of height {d['height']}")
        for title, rows in (("frozen accounts", d["frozen_accounts"]), ("banned keys", d["banned_keys"])):
            console.print(f"{title}: {len(rows)}")
            for row in rows:
                console.print(f"  {row['address']}  by proposal #{row['decision']}")

    emit(data, as_json, human)



