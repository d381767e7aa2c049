"""The `bilayer` command run as a user runs it, and checks of its coded errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

TIMEOUT = 60.0


UNREACHABLE = "http://127.0.0.1:1"


ERROR_LINE = re.compile(r"error \[([a-z_]+)\]: (.+)\n")


class Result:
    def __init__(self, completed: subprocess.CompletedProcess[str]) -> None:
        self.code = completed.returncode
        self.out = completed.stdout
        self.err = completed.stderr

    def json(self) -> Any:
        return json.loads(self.out)

    def __repr__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


def _env(keystore: Path | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILAYER_")}
    if keystore is not None:
        env["BILAYER_KEYSTORE"] = str(keystore)
    env.update(extra or {})
    return env


def bilayer(
    *args: str, keystore: Path | None = None, env: dict[str, str] | None = None, timeout: float = TIMEOUT
) -> Result:
    completed = subprocess.run(
        [sys.executable, "-m", "bilayer", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(keystore, env),
        stdin=subprocess.DEVNULL,
        check=False,
    )
    result = Result(completed)
    assert "Traceback" not in result.out + result.err, result
    return result


def bilayer_all(calls: Sequence[Sequence[str]], keystore: Path | None = None) -> list[Result]:
    """Run independent invocations side by side (each is a separate process); results in order."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda args: bilayer(*args, keystore=keystore), calls))


def assert_error(result: Result, code: str, exit_code: int = 1) -> str:
    """The human error contract: non-zero exit, exactly one `error [code]: ...` line on stderr, no stdout."""
    assert result.code == exit_code, result
    assert result.out == "", result
    match = ERROR_LINE.fullmatch(result.err)
    assert match is not None, result
    assert match.group(1) == code, result
    return match.group(2)


@pytest.fixture
def keystore(tmp_path: Path) -> Path:
    return tmp_path / "keystore"
