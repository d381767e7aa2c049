"""The unit tier's guard: a test here that starts a process fails, even if it swallows the error,
and a test that starts none is untouched. Each case runs in an inner pytest session in this
process, with the same conftest the unit tier uses."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.no_processes import ProcessStarted

pytest_plugins = ["pytester"]

CONFTEST = "from tests.support.no_processes import pytest_runtest_makereport, refuse_processes\n"

CASES = '''
import asyncio
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor


def test_subprocess_run():
    subprocess.run([sys.executable, "-c", "pass"], check=True)


def test_popen_swallowed():
    try:
        subprocess.Popen([sys.executable, "-c", "pass"]).wait()
    except Exception:
        pass


def test_fork():
    if os.fork() == 0:
        os._exit(0)


def test_system():
    os.system("true")


def test_asyncio_subprocess():
    async def spawn():
        process = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
        await process.wait()
    asyncio.run(spawn())


def test_process_pool():
    with ProcessPoolExecutor(1) as pool:
        assert pool.submit(abs, -1).result(timeout=30) == 1


def test_in_process_only():
    assert sum(range(10)) == 45
'''


def test_a_unit_test_that_starts_a_process_fails(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_cases=CASES)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:randomly")
    outcomes = {report.nodeid.split("::")[-1]: report.outcome
                for report in result.reprec.getreports("pytest_runtest_logreport")  # type: ignore[attr-defined]
                if report.when == "call" or report.failed}
    assert outcomes == {"test_subprocess_run": "failed", "test_popen_swallowed": "failed", "test_fork": "failed",
                        "test_system": "failed", "test_asyncio_subprocess": "failed", "test_process_pool": "failed",
                        "test_in_process_only": "passed"}
    result.stdout.fnmatch_lines(["*test.process_started*"])


def test_the_refusal_names_its_code_and_where_the_test_belongs(refuse_processes: list[str]) -> None:
    with pytest.raises(ProcessStarted, match=r"test\.process_started: Popen\.__init__ called.*tests/e2e"):
        subprocess.Popen([sys.executable, "-c", "pass"])
    assert refuse_processes == ["Popen.__init__"]
    refuse_processes.clear()  # recorded as it should be; the attempt was this test's point
