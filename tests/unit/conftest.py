"""The unit tier runs in this process only: a test that starts a process fails."""

from tests.support.no_processes import (  # noqa: F401  (an autouse fixture and the hook it reads)
    pytest_runtest_makereport,
    refuse_processes,
)
