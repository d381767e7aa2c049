from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import click
import msgspec

from .. import codec
from ..api.actions import ACTIONS, make_action
from ..api.client import NodeClient
from ..execution.governance.actions import action_specs
from ..execution.governance.options import ActionOptions, parse_identity
from ..genesis import ChainParams
from ..keys.address import public_key_from_address
from ..ledger.operations import (
    IDENTITY_ID_SIZE,
    IDENTITY_LEVELS,
    MAX_VALIDATOR_POWER,
    AppPause,
    AppResume,
    GovCancel,
    GovExecute,
    GovPropose,
    GovVote,
    IdAttest,
    RegFreeze,
    RegIntercept,
    RegReview,
    SetInterceptionRule,
)
from .output import console, emit, json_option, kv_table
from .query_cmd import node_option
from .tx_cmd import _common, _submit


@click.group()
def gov() -> None:
    """Council governance: propose, vote, execute, cancel; list and show proposals."""


def _param(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, int]:
    changes = {}
    for text in values:
        name, _, value = text.partition("=")
        try:
            changes[name.strip()] = int(value)
        except ValueError:
            raise click.BadParameter(f"{text!r}: expected NAME=INTEGER") from None
    return changes


def _action_options(f: Any) -> Any:
    """The options that describe a management action: shared by propose and dry-run."""
    options = [
        click.option("--action", type=click.Choice(ACTIONS), required=True,
                     help="What the council would decide: " + "; ".join(
                         f"{spec.name}: {spec.summary}" for spec in action_specs()) + "."),
        click.option("--target", default=None,
                     help="The address the action applies to (freeze, ban, providers, council-member; recover:"
                          " the lost key); set-validator also takes the validator's public key in hex."),
        click.option("--service", default=None,
                     help="The operation kind (application) to suspend, resume, or give an operator (e.g. data)."),
        click.option("--emergency", type=click.IntRange(min=1), default=None, help="The emergency number to ratify."),
        click.option("--identity", default=None, help="An identity id (hex) to ban or unban."),
        click.option("--min-level", type=click.Choice(sorted(IDENTITY_LEVELS)), default=None,
                     help="identity-rule: the level entries of --service need (unverified removes the rule)."),
        click.option("--above", type=click.IntRange(min=0), default=0, show_default=True,
                     help="identity-rule: only transfer amounts above this; intercept: the minimum amount."),
        click.option("--weight", type=click.IntRange(0, 1_000_000), default=None,
                     help="council-member: the member's new weight (0 removes it)."),
        click.option("--power", type=click.IntRange(0, MAX_VALIDATOR_POWER), default=None,
                     help="set-validator: the validator's voting power (0 removes it). The change governs consensus"
                          " from the second checkpoint after the one that executes the proposal."),
        click.option("--name", default="",
                     help="set-validator: the validator's name (default: kept, or from its address)."),
        click.option("--rule-id", default=None, help="intercept / content-rule: the rule's name (a-z, 0-9, -, _)."),
        click.option("--asset", "assets", multiple=True,
                     help="intercept: only transfers of this asset; recover: an asset to reissue (repeatable)."),
        click.option("--counterparty", "counterparties", multiple=True,
                     help="intercept: only transfers from or to these addresses (repeatable)."),
        click.option("--max-level", type=click.Choice(sorted(IDENTITY_LEVELS)), default=None,
                     help="intercept: only authors whose identity level is at most this."),
        click.option("--outcome", type=click.Choice(["reject", "hold"]), default="reject", show_default=True,
                     help="intercept: refuse a matching transfer, or hold it for a regulator's review."),
        click.option("--review-hours", type=click.FloatRange(0, 720), default=0,
                     help="intercept with --outcome hold: how long a regulator has (0: the chain's default)."),
        click.option("--payload-hash", default=None, help="content-rule: block this SHA-256 payload hash (hex)."),
        click.option("--keyword", default=None, help="content-rule: block payloads containing this (ASCII, any case)."),
        click.option("--media-type", default=None, help="content-rule: block data entries of this media type."),
        click.option("--max-size", type=click.IntRange(min=0), default=None,
                     help="content-rule: block payloads larger than this many bytes."),
        click.option("--entry", "entries", multiple=True, help="redact: an entry id whose payload goes (repeatable)."),
        click.option("--reason-code", default=None, help="redact: the reason code its tombstones show."),
        click.option("--to", default=None, help="recover: the new address that receives the assets."),
        click.option("--param", "params", multiple=True, callback=_param,
                     help="chain-params: NAME=VALUE (repeatable), e.g. max_data_bytes=4096."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _options(values: dict[str, Any]) -> ActionOptions:
    asset_list = tuple(values.pop("assets", ()))
    hours = values.pop("review_hours", 0)
    return ActionOptions(**values, asset=asset_list[0] if asset_list else None, assets=asset_list,
                         review_ms=int(hours * 3_600_000))


def _current_params(node_url: str, action: str) -> ChainParams | None:
    if action != "chain-params":
        return None
    return msgspec.convert(NodeClient(node_url).get("/v1/params")["params"], ChainParams)


@gov.command("propose")
@_action_options
@click.option("--reason", required=True, help="Why (recorded on chain).")
@click.option("--legal-ref", default="", help="The legal basis (statute, court order...).")
@_common
def gov_propose(action: str, reason: str, legal_ref: str, node_url: str, key: str, keystore: Path | None,
                wait: bool, timeout: float, as_json: bool, **values: Any) -> None:
    """Propose a management action (council members only)."""
    made = make_action(action, _options(values), _current_params(node_url, action))
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
@_action_options
@click.option("--since", type=click.IntRange(min=1), default=1, show_default=True,
              help="Examine final entries from this checkpoint height on.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@node_option
@json_option
def gov_dry_run(action: str, since: int, limit: int, node_url: str, as_json: bool, **values: Any) -> None:
    """Which already-final entries a proposed rule would have refused (writes nothing)."""
    options = _options(values)
    make_action(action, options, _current_params(node_url, action))  # refuse bad input before asking
    query: list[tuple[str, Any]] = [("action", action), ("since", since), ("limit", limit)]
    for name, value in dataclasses.asdict(options).items():
        if isinstance(value, tuple):
            query.extend((name, item) for item in value)
        elif isinstance(value, dict):
            query.extend(("param", f"{k}={v}") for k, v in value.items())
        elif value is not None and value != ActionOptions.__dataclass_fields__[name].default:
            query.append((name, value))
    data = NodeClient(node_url).get("/v1/gov/dry-run?" + urlencode(query))

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
    """The regulator's powers: emergency freezes and interception rules (they lapse unless the
    council ratifies them)."""


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


@reg.command("intercept")
@click.option("--rule-id", required=True, help="The rule's name (a-z, 0-9, -, _); not one the council made.")
@click.option("--above", type=click.IntRange(min=0), default=0, show_default=True,
              help="Only transfers of at least this amount.")
@click.option("--asset", default=None, help="Only transfers of this asset.")
@click.option("--counterparty", "counterparties", multiple=True,
              help="Only transfers from or to these addresses (repeatable).")
@click.option("--max-level", type=click.Choice(sorted(IDENTITY_LEVELS)), default=None,
              help="Only authors whose identity level is at most this.")
@click.option("--outcome", type=click.Choice(["reject", "hold"]), default="reject", show_default=True)
@click.option("--review-hours", type=click.FloatRange(0, 720), default=0,
              help="With --outcome hold: how long a regulator has (0: the chain's default).")
@click.option("--reason", required=True)
@click.option("--legal-ref", default="")
@_common
def reg_intercept(rule_id: str, above: int, asset: str | None, counterparties: tuple[str, ...],
                  max_level: str | None, outcome: str, review_hours: float, reason: str, legal_ref: str,
                  node_url: str, key: str, keystore: Path | None, wait: bool, timeout: float, as_json: bool) -> None:
    """Put an interception rule in force now (regulators only); it lapses unless the council ratifies it."""
    options = ActionOptions(rule_id=rule_id, above=above, asset=asset, counterparties=counterparties,
                            max_level=max_level, outcome=outcome, review_ms=int(review_hours * 3_600_000))
    rule = make_action("intercept", options)
    assert isinstance(rule, SetInterceptionRule)
    _submit(node_url, keystore, key, RegIntercept(rule=rule, reason=reason, legal_ref=legal_ref), b"", wait,
            timeout, as_json)


@click.group()
def app() -> None:
    """Application operators: pause and resume the application the council made them operators of."""


def _operator_act(op_type: type[AppPause] | type[AppResume]) -> Any:
    @click.argument("kind")
    @click.option("--reason", required=True, help="Why (recorded on chain).")
    @_common
    def command(kind: str, reason: str, node_url: str, key: str, keystore: Path | None, wait: bool,
                timeout: float, as_json: bool) -> None:
        _submit(node_url, keystore, key, op_type(kind=kind, reason=reason), b"", wait, timeout, as_json)

    command.__doc__ = {
        AppPause: "Pause an application at once: its entries are refused (service_suspended) until resumed.",
        AppResume: "End the operators' pause of an application (a council suspension stays).",
    }[op_type]
    return command


app.command("pause")(_operator_act(AppPause))
app.command("resume")(_operator_act(AppResume))


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
    """Everything the gate enforces, each with the proposal that decided it."""
    data = NodeClient(node_url).get("/v1/compliance")

    def by(row: dict[str, Any]) -> str:
        if row.get("emergency"):
            return f"  by emergency #{row['emergency']}" + ("" if row["in_force"] else " (lapsed)")
        return f"  by proposal #{row['decision']}"

    sections: list[tuple[str, str, Callable[[dict[str, Any]], str]]] = [
        ("frozen accounts", "frozen_accounts", lambda r: r["address"] + by(r)),
        ("banned keys", "banned_keys", lambda r: r["address"] + by(r)),
        ("suspended services", "suspended_services", lambda r: r["kind"] + by(r)),
        ("paused by operators", "paused_services",
         lambda r: f"{r['kind']}  by {r['operator']}  since {r['time_ms']}  {r['reason']}"),
        ("application operators", "operators", lambda r: f"{r['address']} of {r['kind']}" + by(r)),
        ("identity providers", "identity_providers", lambda r: r["address"] + by(r)),
        ("banned identities", "banned_identities", lambda r: r["identity"] + by(r)),
        ("identity rules", "identity_rules",
         lambda r: f"{r['kind']} above {r['above_amount']} needs level {r['min_level']}" + by(r)),
        ("interception rules", "interception_rules",
         lambda r: f"{r['rule_id']}: {r['outcome']} transfers of at least {r['min_amount']}"
                   f" {r['asset'] or ''}" + by(r)),
        ("content rules", "content_rules",
         lambda r: f"{r['rule_id']}: " + ", ".join(f"{k} {r[k]}" for k in ("payload_hash", "keyword", "media_type",
                                                                             "max_size") if r[k] is not None) + by(r)),
        ("held for review", "review_queue", lambda r: f"{r['entry']}  {r['amount']} {r['asset']}  until"
                                                      f" {r['deadline_ms']}"),
        ("redacted entries", "redactions", lambda r: f"{r['entry']}  {r['reason_code']}" + by(r)),
        ("emergency actions", "emergencies", lambda r: f"#{r['number']} {r['status']:<8} {r['action']}"
                                                       f" {r['account'] or r.get('rule_id')}  until {r['expires_ms']}"
                                                       f"  {r['reason']}"),
    ]

    def human(d: dict[str, Any]) -> None:
        console.print(f"as of height {d['height']}")
        for title, key, line in sections:
            console.print(f"{title}: {len(d[key])}")
            for row in d[key]:
                console.print("  " + line(row))

    emit(data, as_json, human)





@compliance.command("review")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@node_option
@json_option
def compliance_review(limit: int, node_url: str, as_json: bool) -> None:
    """The review queue: transfers held by an interception rule, soonest deadline first."""
    data = NodeClient(node_url).get(f"/v1/compliance/review?limit={limit}")

    def human(d: dict[str, Any]) -> None:
        console.print(f"{d['count']} held for review (height {d['height']})")
        for row in d["held"]:
            console.print(f"  {row['entry']}  {row['amount']} {row['asset']} {row['from']} -> {row['to']}"
                          f"  rule {row['rule_id']}  until {row['deadline_ms']}")

    emit(data, as_json, human)


def _review(decision: str) -> Any:
    @click.argument("entry")
    @click.option("--reason", required=True, help="Why (recorded on chain).")
    @_common
    def command(entry: str, reason: str, node_url: str, key: str, keystore: Path | None, wait: bool,
                timeout: float, as_json: bool) -> None:
        entry_id = codec.from_hex(entry, 32)
        if entry_id is None:
            raise click.BadParameter("ENTRY is an entry id of 64 hex characters")
        _submit(node_url, keystore, key, RegReview(entry=entry_id, decision=decision, reason=reason), b"", wait,
                timeout, as_json)

    command.__doc__ = {"release": "Release a held transfer: it applies now (regulators only).",
                       "reject": "Reject a held transfer: its funds go back to the sender (regulators only)."}[decision]
    return command


compliance.command("release")(_review("release"))
compliance.command("reject")(_review("reject"))
