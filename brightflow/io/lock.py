"""One run at a time per output folder: a lock file in ``{output_dir}/.brightflow/``.

Snakemake locks its working directory, not the output folder: two runs started from different
working directories (or the same one) with the same ``output_dir`` would write the same files.
The workflow checks :func:`holder` when it starts and refuses with a clear message while another
live run holds the folder, takes the lock (:func:`acquire`) before its first job and gives it back
(:func:`release`) when it ends. A lock left by a run that died (its process is gone) is stale and
taken over; a lock from another machine cannot be checked and is reported as such.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from .errors import InputError

__all__ = ["LOCK_NAME", "holder", "acquire", "release"]

#: The lock file, under the output folder.
LOCK_NAME = ".brightflow/run.lock"


def _path(output_dir):
    return Path(output_dir) / LOCK_NAME


def _alive(pid):
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, OverflowError):
        return True  # a process of another user, or an unreadable pid: assume it runs
    return True


def holder(output_dir, me=None):
    """The record of the run holding ``output_dir`` (dict: pid, host, directory, started), or None when
    no other live run holds it. A lock of a process that no longer runs on this host is stale: None.
    ``me``: this run's pid (its own lock is not another run's)."""
    path = _path(output_dir)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if me is not None and record.get("pid") == me and record.get("host") == socket.gethostname():
        return None
    if record.get("host") == socket.gethostname() and not _alive(record.get("pid", -1)):
        return None
    return record


def busy_message(output_dir, record):
    here = os.path.abspath(record.get("directory", "?")) == os.path.abspath(os.getcwd())
    where = "from this same working directory" if here else f"from the working directory {record.get('directory')}"
    return (
        f"{output_dir}: another brightflow run is writing this output folder (process {record.get('pid')} on "
        f"{record.get('host')}, started {record.get('started')}, {where}). Wait for it to finish, or give this run "
        f"another output_dir. If that run is dead (e.g. its machine was restarted), delete {_path(output_dir)}."
    )


def acquire(output_dir, pid=None):
    """Take the lock of ``output_dir`` for process ``pid`` (this one by default).

    Raises
    ------
    InputError
        Another live run holds it (the message says which and what to do).
    """
    pid = os.getpid() if pid is None else pid
    path = _path(output_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "pid": pid,
        "host": socket.gethostname(),
        "directory": os.getcwd(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    for _ in range(2):
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            other = holder(output_dir, me=pid)
            if other is not None:
                raise InputError(busy_message(output_dir, other)) from None
            path.unlink(missing_ok=True)  # stale, or our own from before: take it over
            continue
        with os.fdopen(descriptor, "w") as handle:
            json.dump(record, handle)
        return record
    raise InputError(f"{path}: cannot take the output folder's lock; try again.")


def release(output_dir, pid=None):
    """Give back the lock of ``output_dir`` if process ``pid`` (this one by default) holds it."""
    pid = os.getpid() if pid is None else pid
    path = _path(output_dir)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if record.get("pid") == pid and record.get("host") == socket.gethostname():
        path.unlink(missing_ok=True)
