"""Threads for numpy loops over independent blocks (numpy releases the GIL while it computes).

Used where a result is a set of independent per-pixel computations (moment sums of bands of
rows, per-pixel bleach corrections), so that the values do not depend on the number of threads.
"""

from __future__ import annotations

import os

__all__ = ["available_cpus", "thread_map"]

_POOLS = {}


def available_cpus(limit=2):
    """CPUs this process may run on (its affinity: a SLURM job's allocation), at most ``limit``."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        count = os.cpu_count() or 1
    return max(1, min(int(limit), count))


def thread_map(function, items, workers):
    """``[function(item) for item in items]``, on ``workers`` threads when more than one."""
    items = list(items)
    workers = max(1, min(int(workers), len(items)))
    if workers == 1:
        return [function(item) for item in items]
    if workers not in _POOLS:
        from concurrent.futures import ThreadPoolExecutor

        _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="brightflow")
    return list(_POOLS[workers].map(function, items))
