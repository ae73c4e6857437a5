"""Threads for numpy loops over independent blocks (numpy releases the GIL while it computes).

Used where a result is a set of independent per-pixel computations (moment sums of bands of
rows, per-pixel bleach corrections), so that the values do not depend on the number of threads.
"""

from __future__ import annotations

import os

__all__ = ["available_cpus", "set_thread_limit", "thread_map"]

_POOLS = {}
#: Threads granted to this process by its caller (a Snakemake job's ``threads``); None: no limit.
_THREAD_LIMIT = None


def set_thread_limit(count):
    """Use at most ``count`` threads from now on (``None``: only the CPU affinity limits them).

    A rule script calls it with the job's ``threads``, so that Snakemake, which runs several
    jobs at once, never has more threads working than the cores it was given.
    """
    global _THREAD_LIMIT
    _THREAD_LIMIT = None if count is None else max(1, int(count))


def available_cpus(limit=2):
    """CPUs this process may use, at most ``limit``.

    The CPUs it may run on (its affinity: a SLURM job's allocation), the thread limit set by
    :func:`set_thread_limit`, and ``limit``, whichever is smallest.
    """
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        count = os.cpu_count() or 1
    if _THREAD_LIMIT is not None:
        count = min(count, _THREAD_LIMIT)
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
