from __future__ import annotations

from typing import Any

import click

from ..api.client import NodeClient
from .output import console, emit, json_option
from .query_cmd import node_option


@click.group()
def audit() -> None:
    """Audit: the management log (every act, by whom, under which decision, with what effect)."""


@audit.command("actions")
@node_option
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--before", type=click.IntRange(min=1), default=None, help="Only acts finalized below this height.")
@json_option
def audit_actions(node_url: str, limit: int, before: int | None, as_json: bool) -> None:
    """Governance, regulator and identity entries, newest first, with outcomes and causes."""
    query = f"?limit={limit}" + (f"&before={before}" if before else "")
    data = NodeClient(node_url).get(f"/v1/audit/actions{query}")

    def human(d: dict[str, Any]) -> None:
        console.print(f"{len(d['actions'])} management acts (height {d['height']})")
        for act in d["actions"]:
            why = f" ({act['reason']})" if act["reason"] else ""
            console.print(f"h{act['height']:<6} {act['kind']:<12} {act['outcome']}{why:<28} by {act['author']}"
                          f"  {act['id'][:16]}…")
        for lapse in d["lapses"]:
            console.print(f"lapsed emergency #{lapse['emergency']} (freeze {lapse['account']}) at {lapse['time_ms']}")

    emit(data, as_json, human)
