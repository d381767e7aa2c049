from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from ..errors import BadRequest
from .bench_cmd import _progress
from .output import console, emit, json_option


@click.command("sim")
@click.option("--seeds", type=click.IntRange(1, 1_000_000), default=100, show_default=True,
              help="How many seeds to run (from --start).")
@click.option("--start", type=click.IntRange(0), default=0, show_default=True, help="First seed of the campaign.")
@click.option("--seed", type=click.IntRange(0), default=None, help="Run (replay) this one seed only.")
@click.option("--validators", type=click.IntRange(1, 31), default=4, show_default=True)
@click.option("--byzantine", type=click.IntRange(0, 10), default=1, show_default=True,
              help="Byzantine validators (at most f = (n-1)//3 for the liveness check to apply).")
@click.option("--faults", default="all", show_default=True,
              help="Comma-separated fault kinds: loss,delay,reorder,duplicate,partition,crash,skew,"
                   "refused_commit,torn_commit,lost_fsync (or all, none).")
@click.option("--entries", type=click.IntRange(0, 10_000), default=40, show_default=True,
              help="Transfers submitted while faults are active.")
@click.option("--reconfigure", is_flag=True,
              help="The council adds a validator, then removes one, by proposal during the fault window.")
@json_option
def sim(seeds: int, start: int, seed: int | None, validators: int, byzantine: int, faults: str, entries: int,
        reconfigure: bool, as_json: bool) -> None:
    """Deterministic simulation of the consensus layer under faults: a campaign of seeds."""
    from ..sim.campaign import parse_faults, run_campaign
    from ..sim.world import SimConfig

    try:
        kinds = parse_faults(faults)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if byzantine > (validators - 1) // 3:
        raise BadRequest(f"{validators} validators tolerate at most {(validators - 1) // 3} byzantine")
    config = SimConfig(validators=validators, byzantine=byzantine, faults=kinds, entries=entries,
                       reconfigure=reconfigure)
    chosen = [seed] if seed is not None else range(start, start + seeds)
    with _progress(not as_json) as progress:
        tick = progress(f"simulating n={validators} f={byzantine}", len(chosen))
        report = run_campaign(chosen, config, tick=lambda result: tick(1))
    data = report.to_json()

    def human(d: dict[str, Any]) -> None:
        table = Table(title="simulation campaign", show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column()
        rows = {
            "validators / byzantine": f"{validators} / {byzantine}",
            "seeds run": str(d["seeds"]),
            "checkpoints committed": str(d["checkpoints"]),
            "safety violations": str(d["safety_violations"]),
            "liveness failures": str(d["liveness_failures"]),
            "wall time": f"{d['seconds']} s",
            "simulated checkpoints / s": str(d["checkpoints_per_second"]),
            "message trace (sha-256)": d["trace"],
        }
        for kind, count in d["faults_injected"].items():
            rows[f"faults: {kind}"] = str(count)
        for kind, count in d["byzantine_behaviours"].items():
            rows[f"byzantine: {kind}"] = str(count)
        for kind, count in d["hostile_authors"].items():
            rows[f"hostile authors: {kind}"] = str(count)
        for kind, count in d["disk"].items():
            rows[f"disk: {kind}"] = str(count)
        for key, value in rows.items():
            table.add_row(key, value)
        console.print(table)
        for failure in d["failures"]:
            console.print(f"[red]seed {failure['seed']}[/red]: {(failure['violations'] or failure['liveness'])[0]}")
            console.print(f"  replay: {failure['replay']}")

    emit(data, as_json, human)
    if data["safety_violations"] or data["liveness_failures"]:
        raise SystemExit(1)
