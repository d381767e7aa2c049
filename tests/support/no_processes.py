"""A fixture that fails a test which starts a process, so the fast tiers stay in-process.

Every way the standard library starts a process ends in one of the functions patched here.
Starting one raises `ProcessStarted`; and since code under test may catch that, the attempt is
also recorded, and a test that otherwise passed fails at teardown.
"""

from __future__ import annotations

import _posixsubprocess  # type: ignore[import-not-found]
import asyncio
import os
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest


class ProcessStarted(RuntimeError):
    """A test of an in-process tier tried to start a process."""

    code = "test.process_started"


CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[CALL_FAILED] = report.failed
    return report


# (owner, attribute) of every entry point that starts a process
ENTRY_POINTS: tuple[tuple[Any, str], ...] = (
    (subprocess.Popen, "__init__"),
    (_posixsubprocess, "fork_exec"),
    (os, "fork"),
    (os, "forkpty"),
    (os, "posix_spawn"),
    (os, "posix_spawnp"),
    (os, "system"),
    (asyncio, "create_subprocess_exec"),
    (asyncio, "create_subprocess_shell"),
)


@pytest.fixture(autouse=True)
def refuse_processes(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[list[str]]:
    attempts: list[str] = []

    def refuse(name: str) -> Callable[..., Any]:
        def refused(*args: Any, **kwargs: Any) -> Any:
            attempts.append(name)
            raise ProcessStarted(f"{ProcessStarted.code}: {name} called; a test that starts one belongs in tests/e2e")
        return refused

    for owner, attribute in ENTRY_POINTS:
        if hasattr(owner, attribute):
            name = f"{getattr(owner, '__name__', owner)}.{attribute}"
            monkeypatch.setattr(owner, attribute, refuse(name))
    yield attempts
    if attempts and not request.node.stash.get(CALL_FAILED, False):
        pytest.fail(f"{ProcessStarted.code}: this test tried to start a process ({', '.join(attempts)}); "
                    "move it to tests/e2e", pytrace=False)
