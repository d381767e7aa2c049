from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import click

from ..api.actions import ACTIONS, make_action, parse_identity
from ..api.client import NodeClient
from ..keys.address import public_key_from_address
from ..ledger.operations import (
    IDENTITY_ID_SIZE,
    IDENTITY_LEVELS,
    MAX_VALIDATOR_POWER,
    GovCancel,
    GovExecute,
    GovPropose,
    GovVote,
    IdAttest,
    RegFreeze,
)
from .output import console, emit, json_option, kv_table
from .query_cmd import node_option
from .tx_cmd import _common, _submit


@click.group()
def gov() -> None:
    """Council governance: propose, vote, execute, cancel; list and show proposals."""


@gov.command("propose")
@click.option("--action", type=click.Choice(ACTIONS), required=True,
              help="freeze/unfreeze an account, ban/unban a key (deny it service), suspend/resume a service"
                   " (an operation kind), ratify a regulator's emergency freeze, add/reweight/remove a council"
                   " member or a validator.")
@click.option("--target", default=None,
              help="The address the action applies to (freeze, unfreeze, ban, unban, council-member);"
                   " set-validator also takes the validator's public key in hex.")
@click.option("--service", default=None, help="The operation kind to suspend or resume (e.g. data).")
@click.option("--emergency", type=click.IntRange(min=1), default=None, help="The emergency number to ratify.")
@click.option("--identity", default=None, help="An identity id (hex) to ban or unban.")
@click.option("--min-level", type=click.Choice(sorted(IDENTITY_LEVELS)), default=None,
              help="identity-rule: the level entries of --service need (unverified removes the rule).")
@click.option("--above", type=click.IntRange(min=0), default=0, show_default=True,
              help="identity-rule for transfers: only amounts above this need the level.")
@click.option("--weight", type=click.IntRange(0, 1_000_000), default=None,
              help="council-member: the member's new weight (0 removes it).")
@click.option("--power", type=click.IntRange(0, MAX_VALIDATOR_POWER), default=None,
              help="set-validator: the validator's voting power (0 removes it). The change governs consensus from"
                   " the second checkpoint after the one that executes the proposal.")
@click.option("--name", default="", help="set-validator: the validator's name (default: kept, or from its address).")
@click.option("--rule-id", default=None, help="intercept / remove-intercept: the rule's name (a-z, 0-9, -, _).")
@click.option("--asset", default=None, help="intercept: only transfers of this asset.")
@click.option("--counterparty", "counterparties", multiple=True,
              help="intercept: only transfers from or to these addresses (repeatable).")
@click.option("--max-level", type=click.Choice(sorted(IDENTITY_LEVELS)), default=None,
              help="intercept: only authors whose identity level is at most this.")
@click.option("--reason", required=True, help="Why (recorded on chain).")
@click.option("--legal-ref", default="", help="The legal basis (statute, court order...).")
@_common
def gov_propose(action: str, target: str | None, service: str | None, emergency: int | None,
                identity: str | None, min_level: str | None, above: int, weight: int | None, power: int | None,
                name: str, rule_id: str | None, asset: str | None, counterparties: tuple[str, ...],
                max_level: str | None, reason: str, legal_ref: str, node_url: str, key: str, keystore: Path | None,
                wait: bool, timeout: float, as_json: bool) -> None:
    """Propose a management action (council members only). For intercept, --above is the minimum amount."""
    made = make_action(action, target, service, emergency, identity, min_level, above, weight, rule_id, asset,
                       counterparties, max_level, power, name)
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


@gov.command("dry-run")
@click.option("--action", type=click.Choice(ACTIONS), required=True)
@click.option("--target", default=None)
@click.option("--service", default=None)
@click.option("--identity", default=None)
@click.option("--min-level", type=click.Choice(sorted(IDENTITY_LEVELS)), default=None)
@click.option("--above", type=click.IntRange(min=0), default=0)
@click.option("--since", type=click.IntRange(min=1), default=1, show_default=True,
              help="Examine final entries from this checkpoint height on.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@node_option
@json_option
def gov_dry_run(action: str, target: str | None, service: str | None, identity: str | None, min_level: str | None,
                above: int, since: int, limit: int, node_url: str, as_json: bool) -> None:
    """Which already-final entries a proposed rule would have refused (writes nothing)."""
    make_action(action, target, service, None, identity, min_level, above)  # refuse bad input before asking
    query = {"action": action, "since": since, "limit": limit, "above": above, "target": target, "service": service,
             "identity": identity, "min_level": min_level}
    data = NodeClient(node_url).get("/v1/gov/dry-run?" + urlencode({k: v for k, v in query.items() if v is not None}))

    def human(d: dict[str, Any]) -> None:
        console.print(f"examined {d['examined']} final entries since height {d['since']}:"
                      f" {d['would_refuse']} would have been refused")
        for entry in d["entries"]:
            console.print(f"  h{entry['height']:<6} {entry['kind']:<10} {entry['reason']:<24} {entry['id']}")

    emit(data, as_json, human)


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
            action = p["action"]
            what = action.get("target") or action.get("kind") or f"emergency #{action.get('emergency')}"
            console.print(f"#{p['number']:<4} {p['status']:<9} {action['type']:<16} {what}"
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
def reg() -> None:
    """The regulator's emergency powers (they lapse unless the council ratifies them)."""


@reg.command("freeze")
@click.option("--account", required=True, help="The address to freeze now.")
@click.option("--reason", required=True)
@click.option("--legal-ref", default="")
@_common
def reg_freeze(account: str, reason: str, legal_ref: str, node_url: str, key: str, keystore: Path | None,
               wait: bool, timeout: float, as_json: bool) -> None:
    """Freeze an account immediately (regulators only)."""
    op = RegFreeze(account=public_key_from_address(account), reason=reason, legal_ref=legal_ref)
    _submit(node_url, keystore, key, op, b"", wait, timeout, as_json)


@click.group()
def identity() -> None:
    """Identities: providers appointed by the council bind keys to opaque identity ids."""


@identity.command("attest")
@click.option("--subject", required=True, help="The address whose identity is attested.")
@click.option("--identity", "identity_id", required=True, help=f"The opaque identity id ({IDENTITY_ID_SIZE * 2} hex).")
@click.option("--level", type=click.Choice(sorted(IDENTITY_LEVELS)), required=True)
@click.option("--expires-days", type=click.IntRange(1, 36500), default=365, show_default=True)
@_common
def identity_attest(subject: str, identity_id: str, level: str, expires_days: int, node_url: str, key: str,
                    keystore: Path | None, wait: bool, timeout: float, as_json: bool) -> None:
    """Attest a key's identity (identity providers only)."""
    import time

    op = IdAttest(subject=public_key_from_address(subject), identity=parse_identity(identity_id),
                  level=IDENTITY_LEVELS[level], expires_ms=int(time.time() * 1000) + expires_days * 86_400_000)
    _submit(node_url, keystore, key, op, b"", wait, timeout, as_json)


@identity.command("show")
@click.argument("address")
@node_option
@json_option
def identity_show(address: str, node_url: str, as_json: bool) -> None:
    """The identity attested for an address, if any."""
    public_key_from_address(address)
    emit(NodeClient(node_url).get(f"/v1/identities/{address}"), as_json, lambda d: kv_table(f"identity {address}", d))


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
        console.print(f"suspended services: {len(d['suspended_services'])}")
        for row in d["suspended_services"]:
            console.print(f"  {row['kind']}  by proposal #{row['decision']}")
        console.print(f"identity providers: {len(d['identity_providers'])}")
        for row in d["identity_providers"]:
            console.print(f"  {row['address']}  by proposal #{row['decision']}")
        console.print(f"banned identities: {len(d['banned_identities'])}")
        for row in d["banned_identities"]:
            console.print(f"  {row['identity']}  by proposal #{row['decision']}")
        console.print(f"identity rules: {len(d['identity_rules'])}")
        for row in d["identity_rules"]:
            console.print(f"  {row['kind']} above {row['above_amount']} needs level {row['min_level']}"
                          f"  by proposal #{row['decision']}")
        console.print(f"emergency actions: {len(d['emergencies'])}")
        for row in d["emergencies"]:
            console.print(f"  #{row['number']} {row['status']:<8} freeze {row['account']}  until {row['expires_ms']}"
                          f"  {row['reason']}")

    emit(data, as_json, human)



