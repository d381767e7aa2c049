"""What a node process asks of the operating system: enough file descriptors."""

from __future__ import annotations

import logging
import resource

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
