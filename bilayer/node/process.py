"""What a node process asks of the operating system: enough file descriptors, and its
home to itself."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import resource
import subprocess
from functools import cache
from pathlib import Path

from ..errors import NodeRunning

log = logging.getLogger("bilayer.node")

# A descriptor limit the node asks for when the hard limit is unlimited (Linux refuses
# an unlimited soft limit for open files).
FD_LIMIT_WHEN_UNLIMITED = 1 << 16


def raise_fd_limit() -> int:
    """Raise the soft limit of open files to the hard limit, as geth does; return the limit in force.

    Every connection costs a descriptor, and distributions start services with a soft
    limit of 1024 that the process may raise itself up to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = FD_LIMIT_WHEN_UNLIMITED if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, target, exc)
            return int(soft)
        log.info("open-file limit raised from %d to %d", soft, target)
        return target
    return int(soft)


@cache
def build_commit() -> str:
    """The source commit of this build: `BILAYER_BUILD_COMMIT` (set by packagers), else the
    git checkout the package runs from, else "unknown"."""
    from_env = os.environ.get("BILAYER_BUILD_COMMIT", "").strip()
    if from_env:
        return from_env[:40]
    package = Path(__file__).resolve().parent.parent
    try:
        run = subprocess.run(["git", "rev-parse", "--show-toplevel", "--short=12", "HEAD"], cwd=package,
                             capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    lines = run.stdout.split()
    # only a checkout of bilayer itself, not some repository an installed copy happens to sit in
    if run.returncode != 0 or len(lines) != 2 or Path(lines[0]).resolve() / "bilayer" != package:
        return "unknown"
    return lines[1]


LOCK_NAME = "LOCK"


class HomeLock:
    """An exclusive `flock` on `DATA_DIR/LOCK`, held while a process uses a node's store.

    Taken before the database is opened, so a second `node run` (or an offline tool such
    as `audit reindex`) on a live home is refused without touching the data. The kernel
    drops the lock when the process ends, even by SIGKILL: a stale file never blocks a
    restart. The file records the holder's pid for the refusal message."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self, purpose: str = "node run") -> HomeLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise NodeRunning(
                f"a node process (pid {holder}) is using {self.path.parent}; stop it before '{purpose}'",
                pid=holder,
            ) from None
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None

    def __enter__(self) -> HomeLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
