"""Plain helpers of the test suite: paths, and writing configs and stacks, reading snakemake's job table.

The workflow runner is a fixture (``run_workflow`` in conftest.py); these are functions with no set-up.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import tifffile

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def run_snakemake(workdir, *args, config=None, check=True, cores=2, timeout=900):
    """Run ``snakemake`` on the repository's Snakefile in ``workdir``.

    ``config`` is a dict of ``--config`` overrides (nested keys as ``a.b``-free dicts are
    not supported by --config; pass a config file in ``args`` for those). Returns the
    CompletedProcess with text stdout/stderr.
    """
    command = SNAKEMAKE + [
        "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir),
        "--cores", str(cores),
    ]
    if config:
        command += ["--config"] + [f"{key}={value}" for key, value in config.items()]
    command += [str(a) for a in args]
    env = dict(os.environ)
    env.setdefault("MPLBACKEND", "Agg")
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({result.returncode}): {' '.join(command)}\n"
            f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-12000:]}"
        )
    return result


def jobs_run(result):
    """Names of the rules snakemake ran (from its job-statistics table), as a dict rule -> count."""
    counts = {}
    lines = (result.stdout + result.stderr).splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("Job stats:"))
    except StopIteration:
        return counts
    for line in lines[start + 3 :]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        if parts[0] != "total":
            counts[parts[0]] = int(parts[1])
    return counts


def write_config(path, **sections):
    """Write a YAML config file with the given top-level keys (applied over the defaults)."""
    import yaml

    Path(path).write_text(yaml.safe_dump(sections, sort_keys=False))
    return path


def write_stack(path, stack):
    tifffile.imwrite(path, np.asarray(stack), imagej=True, metadata={"axes": "TYX"})
    return path
