"""Rule missing_input: an input file named for an experiment is not there."""

from __future__ import annotations

from .. import io


def report_missing(path, origin, kind="path"):
    """Fail the experiment with the file's path and where it was named.

    Parameters
    ----------
    path : str
        The stack (``kind`` ``"path"``) or mask (``"mask"``) that does not exist.
    origin : str
        Where it was named (the sample sheet and its row, or the input folder).
    """
    what = "stack" if kind == "path" else "mask"
    raise io.InputError(
        f"{path}: {what} file not found (named in {origin}). Check the path (relative paths are relative to the "
        "sample sheet's folder), or remove the experiment; the other experiments are not affected."
    )
