"""Running one workflow step as a job: its log file, its threads, and clear errors.

A rule script calls :func:`run` with the step function and the step's arguments (the rule's
inputs, outputs and parameters). Nothing here imports snakemake: the script hands over the
log path and thread count as plain values.
"""

from __future__ import annotations

import errno
import logging
import sys
from pathlib import Path

from .errors import InputError

__all__ = ["run"]

log = logging.getLogger("brightflow")


def run(step, log_path=None, threads=1, /, **arguments):
    """Run ``step(**arguments)`` as a job: log to ``log_path`` and stderr, use up to ``threads``
    threads, and end an :class:`InputError` with its message and exit status 1 instead of a traceback.

    Parameters
    ----------
    step : callable
        A function of brightflow.steps.
    log_path : str or sequence of str, optional
        The rule's log file (snakemake's ``log``: a list of at most one path).
    threads : int
        The job's threads (the rule's ``threads:``, capped by snakemake at ``--cores``).
    **arguments
        The step's keyword arguments.
    """
    if log_path is not None and not isinstance(log_path, (str, Path)):
        log_path = log_path[0] if len(log_path) else None
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", handlers=handlers, force=True)
    from brightflow import parallel

    parallel.set_thread_limit(threads or 1)
    try:
        return step(**arguments)
    except InputError as error:
        log.error("brightflow: %s", error)
        sys.exit(1)
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            log.exception("brightflow: the step failed unexpectedly")
            raise
        where = f" writing {error.filename}" if error.filename else ""
        log.error(
            "brightflow: the disk is full%s (%s): free space there, or set output_dir (results) or TMPDIR "
            "(temporary files) to a disk with room, and run again",
            where,
            error.strerror or error,
        )
        sys.exit(1)
    except MemoryError:
        log.error(
            "brightflow: the step ran out of memory: raise the job's memory (--default-resources mem_mb=..., or "
            "the profile's), or run fewer jobs at once (--cores)"
        )
        sys.exit(1)
    except Exception:
        # a bug or an unforeseen input: the traceback goes to the job's log too, where the failure
        # summary at the end of the run finds it
        log.exception("brightflow: the step failed unexpectedly")
        raise
