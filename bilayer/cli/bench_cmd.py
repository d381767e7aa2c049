from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..devnet.localnet import WAN_PROFILES
from .output import console, emit, err_console, json_option

FC = TypeVar("FC", bound=Callable[..., Any])


def _made_workdir(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """A --workdir that does not exist yet is made, as `mkdir -p` would."""
    if value is not None:
        try:
            value.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise click.BadParameter(f"cannot make {value}: {exc.strerror}") from exc
    return value


def workdir_option(
    help: str = "Make the bench's files under this directory (default: a temporary one).",
) -> Callable[[FC], FC]:
    return click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
                        callback=_made_workdir, help=help)


@click.group()
def bench() -> None:
    """Benchmarks; each prints CONFIG and RESULTS (or one JSON document with --json)."""


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    if not enabled:
        yield lambda description, total: lambda n: None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:

        def task(description: str, total: int) -> Callable[[int], None]:
            task_id = bar.add_task(description, total=total)
            return lambda n: bar.advance(task_id, n)

        yield task


def _print_report(report: dict[str, Any]) -> None:
    console.print("[bold]CONFIG[/bold]")
    for key, value in report["config"].items():
        console.print(f"  {key}: {value}")
    console.print("[bold]RESULTS[/bold]")
    for key, value in report["results"].items():
        console.print(f"  {key}: {json.dumps(value)}")


@bench.command("ledger")
@click.option("--entries", type=click.IntRange(100, 1_000_000), default=20_000, show_default=True)
@click.option("--authors", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--batch", type=click.IntRange(1, 5000), default=500, show_default=True)
@click.option("--connections", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option(
    "--pow-bits",
    type=click.IntRange(0, 24),
    default=8,
    show_default=True,
    help="Difficulty of the benchmark chain (stamps are made before timing starts).",
)
@click.option("--repeats", type=click.IntRange(1, 20), default=3, show_default=True)
@workdir_option()
@json_option
def bench_ledger(
    entries: int,
    authors: int,
    batch: int,
    connections: int,
    pow_bits: int,
    repeats: int,
    workdir: Path | None,
    as_json: bool,
) -> None:
    """Entries one ledger node accepts per second vs plain Ed25519 verifications per second."""
    from ..bench.ledger import LedgerBenchConfig, run_ledger_bench

    config = LedgerBenchConfig(
        entries=entries, authors=authors, batch=batch, connections=connections, pow_bits=pow_bits, repeats=repeats
    )
    with _progress(not as_json) as progress:
        report = run_ledger_bench(config, progress, workdir)
    emit(report, as_json, _print_report)


@bench.command("network")
@click.option("--validators", type=click.IntRange(1, 16), default=4, show_default=True)
@click.option("--ledger-nodes", type=click.IntRange(0, 8), default=0, show_default=True,
              help="Ledger nodes; when present, clients submit to and watch them instead of validators.")
@click.option("--transactions", type=click.IntRange(100, 1_000_000), default=20_000, show_default=True)
@click.option("--accounts", type=click.IntRange(1, 100_000), default=200, show_default=True,
              help="Distinct signing accounts (each one's transfers form its own chain).")
@click.option("--rate", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Offered load in tx/s; 0 submits as fast as the network accepts.")
@click.option("--resend-refused", is_flag=True, default=False,
              help="With --rate: a batch refused early (429/503) is sent again after Retry-After, as a client "
                   "would; without it the offered load stays fixed and refusals are only counted.")
@click.option("--batch", type=click.IntRange(1, 5000), default=250, show_default=True)
@click.option("--connections", type=click.IntRange(1, 64), default=8, show_default=True)
@click.option("--pow-bits", type=click.IntRange(0, 24), default=8, show_default=True,
              help="Difficulty of the benchmark chain (stamps are made before timing starts).")
@click.option("--forks", type=click.IntRange(0, 100_000), default=0, show_default=True,
              help="An attacker races this many fork pairs (two entries at one seq) to two nodes during the run.")
@click.option("--fork-rate", type=click.FloatRange(min=0.1), default=50.0, show_default=True,
              help="Fork pairs per second.")
@click.option("--wan", type=click.Choice(sorted(WAN_PROFILES)), default=None,
              help="Delay every peer link as between the regions of this profile (see localnet up --wan).")
@workdir_option()
@json_option
def bench_network(validators: int, ledger_nodes: int, transactions: int, accounts: int, rate: float,
                  resend_refused: bool, batch: int, connections: int, pow_bits: int, forks: int, fork_rate: float,
                  wan: str | None, workdir: Path | None, as_json: bool) -> None:
    """Finalized tx/s and submit-to-final latency of a local network, against the Ed25519 bound."""
    from ..bench.network import NetworkBenchConfig, run_network_bench

    config = NetworkBenchConfig(validators=validators, ledger_nodes=ledger_nodes, transactions=transactions,
                                accounts=accounts, rate=rate, resend_refused=resend_refused, batch=batch,
                                connections=connections, pow_bits=pow_bits, forks=forks, fork_rate=fork_rate,
                                wan=wan or "")
    with _progress(not as_json) as progress:
        report = run_network_bench(config, progress, workdir)
    emit(report, as_json, _print_report)


@bench.command("warehouse")
@click.option("--validators", type=click.IntRange(1, 16), default=4, show_default=True)
@click.option("--transfers", type=click.IntRange(100, 1_000_000), default=5_000, show_default=True,
              help="Plain transfers finalized first, as the baseline of the same run.")
@click.option("--readings", type=click.IntRange(100, 1_000_000), default=3_000, show_default=True,
              help="EPCIS weighbridge readings, each signed by its device.")
@click.option("--receipts", type=click.IntRange(10, 100_000), default=300, show_default=True,
              help="Whole receipt lifecycles (12 acts each, in 10 waves).")
@click.option("--warehouses", type=click.IntRange(1, 1_000), default=8, show_default=True)
@click.option("--banks", type=click.IntRange(1, 1_000), default=4, show_default=True)
@click.option("--batch", type=click.IntRange(1, 5000), default=250, show_default=True)
@click.option("--connections", type=click.IntRange(1, 64), default=8, show_default=True)
@click.option("--pow-bits", type=click.IntRange(0, 24), default=8, show_default=True)
@workdir_option()
@click.option("--devices", type=click.IntRange(1, 100_000), default=None,
              help="Instead: N devices of mixed kinds, each signing readings that agree with the book; sustained "
                   "readings/s through reconciliation, the devices supervised at one reading a minute, and the "
                   "end-of-checkpoint share of execution in process.")
@click.option("--events", type=click.IntRange(100, 1_000_000), default=5_000, show_default=True,
              help="With --devices: the readings sent, round-robin over the devices.")
@click.option("--live-receipts", type=click.IntRange(10, 1_000_000), default=10_000, show_default=True,
              help="With --devices: live receipts in the in-process state (a third pledged).")
@click.option("--state-devices", type=click.IntRange(1, 100_000), default=1_000, show_default=True,
              help="With --devices: devices in the in-process state.")
@click.option("--checkpoint-entries", type=click.IntRange(10, 100_000), default=1_000, show_default=True,
              help="With --devices: entries in the timed checkpoint.")
@click.option("--repeats", type=click.IntRange(1, 100), default=9, show_default=True,
              help="With --devices: timed executions of that checkpoint (medians).")
@click.option("--cost-only", is_flag=True,
              help="With --devices: only the in-process end-of-checkpoint cost, with no localnet.")
@json_option
def bench_warehouse(validators: int, transfers: int, readings: int, receipts: int, warehouses: int, banks: int,
                    batch: int, connections: int, pow_bits: int, workdir: Path | None, devices: int | None,
                    events: int, live_receipts: int, state_devices: int, checkpoint_entries: int, repeats: int,
                    cost_only: bool, as_json: bool) -> None:
    """Receipt lifecycle acts and device readings finalized per second, against transfers in the same run;
    with --devices, device readings through reconciliation and its cost per checkpoint."""
    from ..bench.warehouse import DeviceBenchConfig, WarehouseBenchConfig, run_device_bench, run_warehouse_bench

    if devices is not None:
        device_config = DeviceBenchConfig(validators=validators, devices=devices, events=events,
                                          live_receipts=live_receipts, state_devices=state_devices,
                                          checkpoint_entries=checkpoint_entries, repeats=repeats, batch=batch,
                                          connections=connections, pow_bits=pow_bits, network=not cost_only)
        with _progress(not as_json) as progress:
            report = run_device_bench(device_config, progress, workdir)
        emit(report, as_json, _print_report)
        return
    config = WarehouseBenchConfig(validators=validators, transfers=transfers, readings=readings, receipts=receipts,
                                  warehouses=warehouses, banks=banks, batch=batch, connections=connections,
                                  pow_bits=pow_bits)
    with _progress(not as_json) as progress:
        report = run_warehouse_bench(config, progress, workdir)
    emit(report, as_json, _print_report)


@bench.command("gate")
@click.option("--transfers", type=click.IntRange(100, 1_000_000), default=20_000, show_default=True)
@click.option("--rules", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@click.option("--repeats", type=click.IntRange(1, 20), default=3, show_default=True)
@json_option
def bench_gate(transfers: int, rules: int, repeats: int, as_json: bool) -> None:
    """Execution throughput with an empty rule set against N active interception rules."""
    from ..bench.gate import GateBenchConfig, run_gate_bench

    emit(run_gate_bench(GateBenchConfig(transfers=transfers, rules=rules, repeats=repeats)), as_json, _print_report)


@bench.command("listing")
@click.option("--accounts", type=click.IntRange(1000, 10_000_000), default=1_000_000, show_default=True)
@click.option("--records", type=click.IntRange(1, 10_000), default=100, show_default=True,
              help="Compliance records of each kind (freezes, bans, providers, redactions, rules).")
@click.option("--repeats", type=click.IntRange(1, 50), default=5, show_default=True)
@json_option
def bench_listing(accounts: int, records: int, repeats: int, as_json: bool) -> None:
    """Time the compliance and council listings (read by prefix) in a state of N accounts."""
    from ..bench.listing import ListingBenchConfig, run_listing_bench

    emit(run_listing_bench(ListingBenchConfig(accounts=accounts, records=records, repeats=repeats)), as_json,
         _print_report)


@bench.command("proof")
@click.option("--validators", type=click.IntRange(1, 100), default=4, show_default=True)
@click.option("--checkpoints", type=click.IntRange(3, 100_000), default=200, show_default=True)
@click.option("--entries", type=click.IntRange(1, 10_000), default=50, show_default=True,
              help="Transfers per checkpoint (the results tree the audit path climbs).")
@click.option("--changes", type=click.IntRange(0, 50), default=3, show_default=True,
              help="Validator set changes along the chain (each adds one link to every proof).")
@click.option("--repeats", type=click.IntRange(1, 100), default=15, show_default=True)
@json_option
def bench_proof(validators: int, checkpoints: int, entries: int, changes: int, repeats: int, as_json: bool) -> None:
    """Size of an entry proof and of an account proof, and the median time to check one offline."""
    from ..bench.proof import run_proof_bench

    with _progress(not as_json) as progress:
        report = run_proof_bench(validators=validators, checkpoints=checkpoints, entries=entries, changes=changes,
                                 repeats=repeats, progress=progress)
    emit(report, as_json, _print_report)


@bench.command("trace")
@click.option("--transfers", type=click.IntRange(1000, 10_000_000), default=1_000_000, show_default=True)
@click.option("--accounts", type=click.IntRange(100, 10_000_000), default=100_000, show_default=True)
@click.option("--hubs", type=click.IntRange(1, 10_000), default=50, show_default=True,
              help="Heavy accounts that take in and pay out a large share of the traffic.")
@click.option("--starts", type=click.IntRange(10, 100_000), default=300, show_default=True,
              help="Random starts per kind (entry/address, forward/backward).")
@click.option("--hops", type=click.IntRange(1, 10), default=5, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@workdir_option("Keep the SQLite file here (default: a temporary directory).")
@json_option
def bench_trace(transfers: int, accounts: int, hubs: int, starts: int, hops: int, seed: int, workdir: Path | None,
                as_json: bool) -> None:
    """Build a large indexed history on disk, then time FIFO traces from random starts (p50, p99)."""
    from ..bench.trace import TraceBenchConfig, run_trace_bench

    config = TraceBenchConfig(transfers=transfers, accounts=accounts, hubs=min(hubs, accounts), starts=starts,
                              hops=hops, seed=seed)
    with _progress(not as_json) as progress:
        report = run_trace_bench(config, progress, workdir)
    emit(report, as_json, _print_report)


@bench.command("state")
@click.option("--accounts", type=click.IntRange(1000, 100_000_000), default=100_000, show_default=True)
@click.option("--checkpoint-keys", type=click.IntRange(1, 1_000_000), default=1000, show_default=True,
              help="Keys each timed checkpoint changes.")
@click.option("--checkpoints", type=click.IntRange(2, 100_000), default=20, show_default=True)
@click.option("--build-batch", type=click.IntRange(1000, 10_000_000), default=200_000, show_default=True,
              help="Accounts committed per version while building.")
@click.option("--proofs", type=click.IntRange(1, 1_000_000), default=500, show_default=True,
              help="Proofs timed per kind (inclusion, absence) and version (latest, first checkpoint's).")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--reuse", is_flag=True, default=False,
              help="Run the checkpoints and proofs on the state an earlier run left in --workdir, without building.")
@click.option("--node", "node_format", is_flag=True, default=False,
              help="Build the node's format (ledger.sqlite: state table and tree), update it through the node's"
                   " State, and report the peak RSS and a node's start-up time on it.")
@click.option("--legacy-start", is_flag=True, default=False,
              help="With --node: also time the start that loads every value and re-hashes the state (before).")
@workdir_option("Keep the SQLite file here (default: a temporary directory).")
@json_option
def bench_state(accounts: int, checkpoint_keys: int, checkpoints: int, build_batch: int, proofs: int, seed: int,
                reuse: bool, node_format: bool, legacy_start: bool, workdir: Path | None, as_json: bool) -> None:
    """Build N accounts in the versioned state on disk, then time checkpoints' root updates and proofs."""
    from ..bench.state import StateBenchConfig, node_reusable, reusable, run_node_state_bench, run_state_bench

    if reuse and (workdir is None or not (node_reusable if node_format else reusable)(workdir)):
        raise click.UsageError("--reuse needs a --workdir where an earlier bench state run left its state")
    if legacy_start and not node_format:
        raise click.UsageError("--legacy-start goes with --node")
    config = StateBenchConfig(accounts=accounts, checkpoint_keys=checkpoint_keys, checkpoints=checkpoints,
                              build_batch=build_batch, proofs=proofs, seed=seed, node=node_format,
                              legacy_start=legacy_start)
    with _progress(not as_json) as progress:
        if node_format:
            report = run_node_state_bench(config, progress, workdir, reuse)
        else:
            report = run_state_bench(config, progress, workdir, reuse)
    emit(report, as_json, _print_report)


@bench.command("state-sync")
@click.option("--accounts", type=click.IntRange(1000, 100_000_000), default=100_000, show_default=True)
@click.option("--chunk-nodes", type=click.IntRange(1, 100_000), default=4000, show_default=True,
              help="Nodes per chunk asked for.")
@click.option("--batch-nodes", type=click.IntRange(1, 10_000_000), default=20_000, show_default=True,
              help="Nodes per durable write of the joining store.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--reuse", is_flag=True, default=False,
              help="Sync from the source an earlier run left in --workdir, without building it.")
@workdir_option("Keep the source and the restored SQLite files here (default: a temporary directory).")
@json_option
def bench_state_sync(accounts: int, chunk_nodes: int, batch_nodes: int, seed: int, reuse: bool,
                     workdir: Path | None, as_json: bool) -> None:
    """Build N accounts, then restore a fresh store from them by verified snapshot chunks; against the rebuild."""
    from ..bench.state_sync import StateSyncBenchConfig, reusable, run_state_sync_bench

    if reuse and (workdir is None or not reusable(workdir)):
        raise click.UsageError("--reuse needs a --workdir where an earlier bench state-sync run left its source")
    config = StateSyncBenchConfig(accounts=accounts, chunk_nodes=chunk_nodes, batch_nodes=batch_nodes, seed=seed)
    with _progress(not as_json) as progress:
        report = run_state_sync_bench(config, progress, workdir, reuse)
    emit(report, as_json, _print_report)
