"""The content of an input file, cheaply: SHA-256 digests cached by a fingerprint of the file.

A digest is computed once per content. :func:`content_digest` keeps, in a small JSON cache, each
file's digest beside its fingerprint (size, modification time, inode, device); while the
fingerprint stays the digest is taken from the cache, and when it moves (the file was replaced,
renamed over, edited, touched or copied) the file is read and hashed again. The workflow passes
the digest to the rules that read the file as a parameter, and marks the file itself ``ancient``:
a rule then reruns when the content changes (whatever the modification time says) and not when
only the modification time does.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .stacks import sha256

__all__ = ["content_digest"]


def _fingerprint(stat):
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_dev]


def _path_fingerprint(path):
    """The fingerprint of a file, or of a folder (an OME-Zarr): every file's, summed up (total size,
    newest modification time, number of files, and the folder's inode and device)."""
    stat = os.stat(path)
    if not os.path.isdir(path):
        return _fingerprint(stat)
    sizes, newest, count = 0, stat.st_mtime_ns, 0
    for folder, _, names in os.walk(path):
        for name in names:
            one = os.stat(os.path.join(folder, name))
            sizes, newest, count = sizes + one.st_size, max(newest, one.st_mtime_ns), count + 1
    return [sizes, newest, stat.st_ino, stat.st_dev, count]


#: The cache's entries as last read by this process, by cache path, with the cache file's fingerprint:
#: the workflow asks for the digests of every stack of a folder (several rules per stack) while it
#: builds the DAG, and reads the file again only when it changed.
_READ = {}


def _read_cache(cache):
    try:
        stat = os.stat(cache)
    except OSError:
        return {}
    fingerprint = _fingerprint(stat)
    remembered = _READ.get(cache)
    if remembered and remembered[0] == fingerprint:
        return dict(remembered[1])
    try:
        with open(cache) as handle:
            entries = json.load(handle)
    except (OSError, ValueError):
        return {}
    entries = entries if isinstance(entries, dict) else {}
    _READ[cache] = (fingerprint, entries)
    return dict(entries)


def _write_cache(cache, entries):
    """Write the cache whole, atomically (a run of its own, or a job reading it, never sees half a file)."""
    cache = Path(cache)
    cache.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".digests-", dir=cache.parent)
    try:
        with os.fdopen(handle, "w") as stream:
            json.dump(entries, stream, sort_keys=True)  # no indent: the C encoder, written once per new file
        os.replace(temporary, cache)
    except OSError:
        Path(temporary).unlink(missing_ok=True)  # a read-only folder: the digests are computed again next time


def content_digest(path, cache):
    """SHA-256 of the file at ``path``, from ``cache`` when the file's fingerprint is unchanged.

    Parameters
    ----------
    path : str
        A file, or a folder (an OME-Zarr: every file under it).
    cache : str
        The JSON cache (created when missing; an unreadable cache is started anew).

    Returns
    -------
    str or None
        The hex digest; None when the file does not exist.
    """
    try:
        fingerprint = _path_fingerprint(path)
    except OSError:
        return None
    key = os.path.abspath(path)
    entries = _read_cache(cache)
    entry = entries.get(key)
    if entry and entry.get("fingerprint") == fingerprint:
        return entry["sha256"]
    digest = sha256(path)
    entries = _read_cache(cache)  # another job may have written meanwhile
    entries[key] = {"fingerprint": fingerprint, "sha256": digest}
    _write_cache(cache, entries)
    return digest
