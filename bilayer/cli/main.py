"""Entry point: the command tree, and the one place errors become one clear line."""

from __future__ import annotations

import importlib
import json
import os
import sys

import click

from .. import __version__
from ..errors import BilayerError
from ..execution.application import installed_applications
from . import audit_cmd, bench_cmd, genesis_cmd, gov_cmd, keys_cmd, localnet_cmd, node_cmd, query_cmd, sim_cmd, tx_cmd


@click.group()
@click.version_option(__version__, prog_name="bilayer")
def cli() -> None:
    """bilayer: a manageable blockchain on a two-layer ledger."""


cli.add_command(keys_cmd.keys)
cli.add_command(node_cmd.node)
cli.add_command(genesis_cmd.genesis)
cli.add_command(tx_cmd.tx)
cli.add_command(query_cmd.query)
cli.add_command(localnet_cmd.localnet)
cli.add_command(bench_cmd.bench)
cli.add_command(sim_cmd.sim)
cli.add_command(gov_cmd.gov)
cli.add_command(gov_cmd.compliance)
cli.add_command(gov_cmd.reg)
cli.add_command(gov_cmd.identity)
cli.add_command(gov_cmd.app)
cli.add_command(audit_cmd.audit)
for _app in installed_applications():  # each installed application's own command group
    _module, _, _name = _app.cli.partition(":")
    cli.add_command(getattr(importlib.import_module(_module), _name))


def _fail(code: str, message: str, exit_code: int = 1) -> None:
    if "--json" in sys.argv[1:]:
        sys.stdout.write(json.dumps({"error": {"code": code, "message": message}}) + "\n")
    else:
        sys.stderr.write(f"error [{code}]: {message}\n")
    sys.exit(exit_code)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except BilayerError as exc:
        body = exc.to_json()["error"]
        _fail(body["code"], body["message"])
    except click.exceptions.Abort:
        _fail("aborted", "aborted", 130)
    except click.ClickException as exc:
        _fail("usage", exc.format_message(), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", "interrupted", 130)
    except Exception as exc:  # a bug: say so plainly, keep the traceback for BILAYER_DEBUG
        if os.environ.get("BILAYER_DEBUG"):
            raise
        _fail("internal", f"{type(exc).__name__}: {exc} (set BILAYER_DEBUG=1 for a traceback)")
