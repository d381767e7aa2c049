"""How every command prints: a human table or line by default, one JSON document with --json."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console
from rich.table import Table


def _console(stderr: bool = False) -> Console:
    """Wrap to the terminal; when piped, keep lines and tables whole rather than 80 columns."""
    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console = Console(stderr=stderr, highlight=False, soft_wrap=True, width=200)
    return console


console = _console()
err_console = _console(stderr=True)

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")


def emit(data: Any, as_json: bool, human: Callable[[Any], None] | None = None) -> None:
    if as_json or human is None:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
    else:
        human(data)


def kv_table(title: str, rows: dict[str, Any]) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows.items():
        table.add_row(str(key), value if isinstance(value, str) else json.dumps(value))
    console.print(table)
