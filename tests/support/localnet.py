"""Real node processes on loopback, stopped when the block ends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bilayer.devnet import localnet


@contextmanager
def running_localnet(directory: Path, timeout: float = 30.0, **options: Any) -> Iterator[dict[str, Any]]:
    """A localnet of real processes made with `localnet.create(directory, **options)`, up for the
    block; its manifest also names its `dir`. Every process is stopped afterwards."""
    localnet.create(directory, **options)
    try:
        manifest = localnet.up(directory, timeout=timeout)
        manifest["dir"] = directory
        yield manifest
    finally:
        localnet.down(directory)
