"""How many clients the open-file limit can hold (Redis's maxclients adjustment)."""

from __future__ import annotations

import logging

log = logging.getLogger("nearkit.server")

# File descriptors kept free beyond the clients' (listening socket, SQLite, logs...),
# as Redis's CONFIG_MIN_RESERVED_FDS.
RESERVED_FDS = 32


def clients_within_fd_limit(wanted: int) -> int:
    """``wanted`` clients, or fewer if the open-file limit cannot hold them plus
    RESERVED_FDS: the soft limit is raised as far as the hard one allows first.
    Past the limit, accept() fails and clients hang without the error reply."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + RESERVED_FDS
    if soft == resource.RLIM_INFINITY or soft >= need:
        return wanted
    target = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft >= need:
        return wanted
    capped = max(1, soft - RESERVED_FDS)
    log.warning("maxclients %d needs %d open files but the limit is %d: maxclients reduced to %d",
                wanted, need, soft, capped)
    return capped
