"""Every test here runs real processes (nodes, localnets, the CLI, a browser), so all are `slow`:
`pytest -m "not slow"` leaves this tier out."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.slow)
