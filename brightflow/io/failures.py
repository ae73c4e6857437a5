"""What failed in a run, read from the outputs that are missing and the jobs' logs.

At the end of a run with failures (the Snakefile's ``onerror``), :func:`failure_summary` lists
each experiment that did not finish, the cause (the error line of its first failed job's log)
and that log's path, so a user of ``--keep-going`` sees at a glance which recordings to fix.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["failure_summary"]


def _first_error(logs):
    """(message, log path) of the first log (by modification time) holding an error line."""
    found = []
    for path in logs:
        try:
            lines = Path(path).read_text(errors="replace").splitlines()
        except OSError:
            continue
        errors = [line for line in lines if line.startswith(("ERROR ", "CRITICAL "))]
        if errors:
            message = errors[-1].split(" ", 1)[1].removeprefix("brightflow: ")
            found.append((os.path.getmtime(path), message, str(path)))
    if not found:
        return None, None
    _, message, path = min(found)
    return message, path


def failure_summary(outputs, log_dirs):
    """Lines saying which units failed and why.

    Parameters
    ----------
    outputs : dict of str -> list of str
        Each unit (experiment, or experiment/ch<c>) and the files the workflow makes for it.
    log_dirs : dict of str -> list of str
        Each unit's log folders (its own and, for a channel, its experiment's).

    Returns
    -------
    list of str
        Empty when every unit has all its outputs.
    """
    failed = []
    for unit, files in outputs.items():
        missing = [path for path in files if not os.path.exists(path)]
        if not missing:
            continue
        logs = [path for folder in log_dirs.get(unit, []) for path in sorted(Path(folder).glob("*.log"))]
        message, log_path = _first_error(logs)
        if message is None:
            failed.append(f"  - {unit}: {len(missing)} output(s) missing, e.g. {missing[0]} (a job failed or was not "
                          "run; see snakemake's messages above)")
        else:
            failed.append(f"  - {unit}: {message} (log: {log_path})")
    if not failed:
        return []
    return [f"brightflow: {len(failed)} of {len(outputs)} experiment(s) did not finish:"] + failed
