"""Plain helpers of the test suite: paths, and writing configs and stacks, reading snakemake's job table.

The workflow runner is a fixture (``run_workflow`` in conftest.py); these are functions with no set-up.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import tifffile

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


#: The per-cell columns of the replaced app's average_values_in_roi.csv, first in brightflow's tables
#: (../shared/seeds/000_*.txt).
CELL_COLUMNS = [
    "Cell ID",
    "Pixels",
    "Intensity",
    "Variance",
    "Apparent brightness",
    "Apparent number",
    "Brightness",
    "Number",
]


def _snakemake_command(snakefile, workdir, args, config, cores):
    command = SNAKEMAKE + [
        "--snakefile",
        str(snakefile),
        "--directory",
        str(workdir),
        "--cores",
        str(cores),
    ]
    if config:
        command += ["--config"] + [f"{key}={value}" for key, value in config.items()]
    return command + [str(a) for a in args]


def _snakemake_env():
    env = dict(os.environ)
    env.setdefault("MPLBACKEND", "Agg")
    return env


def run_snakemake(workdir, *args, config=None, check=True, cores=2, timeout=900):
    """Run ``snakemake`` on the repository's Snakefile in ``workdir``.

    ``config`` is a dict of ``--config`` overrides (nested keys as ``a.b``-free dicts are
    not supported by --config; pass a config file in ``args`` for those). Returns the
    CompletedProcess with text stdout/stderr.
    """
    command = _snakemake_command(REPO / "Snakefile", workdir, args, config, cores)
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=_snakemake_env())
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


def wait_until(condition, timeout, what, interval=0.1):
    """Wait until ``condition()`` is true; AssertionError naming ``what`` after ``timeout`` seconds.

    For waiting on something another process makes happen (a file it writes, its end), never for
    letting time pass: the timeout is a generous bound for a slow or loaded machine, not a guess
    at how long the other process takes.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}")
        time.sleep(interval)


#: How long a held run's hold job waits for its release before it fails the run (seconds). Far
#: beyond what the checks made while a run is held take, even on a loaded machine where every
#: snakemake start also waits up to 10 s for an unreachable SLURM controller: the bound only keeps a
#: forgotten hold (a test process killed before its clean-up) from holding an output folder for ever.
HOLD_LIMIT_S = 900

#: The test's Snakefile of a held run: the repository's workflow, and one more rule.
HELD_SNAKEFILE = """\
# Written by tests/helpers.py (held_run): the repository's workflow, and one more job, which holds
# the run open until the test releases it (tests/hold_job.py).
include: {snakefile}


rule held_by_the_test:
    output:
        touch({held}),
    # first of all jobs: the test's checks then come while the workflow's own jobs still run
    priority: 1000
    shell:
        {hold}
"""


def _tail(path, characters=6000):
    return Path(path).read_text(errors="replace")[-characters:]


def _stop(process):
    """End ``process`` and everything it started (its own session): TERM, then KILL."""
    for sent in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sent)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=60)
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def held_run(workdir, *args, config=None, cores=2, limit=HOLD_LIMIT_S, start_timeout=600, must_succeed=True):
    """A workflow run in ``workdir`` that cannot end while the ``with`` block runs.

    The run is snakemake on the repository's workflow (``args``, ``config`` and ``cores`` as for
    :func:`run_snakemake`), in the background, with one more job, ``held_by_the_test``
    (tests/hold_job.py). Its output is one of the run's targets; it is scheduled first (the
    workflow's own jobs go on beside it on the other cores); it says when it starts, then waits for
    a file that only this function creates, when the block ends. So, deterministically and however
    slow the machine:

    - the block starts once the hold job runs: the run has started its jobs, so its ``onstart``
      hooks (the output folder's lock, brightflow.io.lock) have run;
    - the run cannot finish, nor give its lock back, before the block ends.

    Yields the run's Popen (its ``pid`` is the snakemake process). When the block ends normally the
    run is released and must then finish with status 0 (else AssertionError with its output; with
    ``must_succeed`` false it may fail, and the test reads the Popen's ``returncode``). When
    the block raises, the run and its jobs are stopped (TERM, then KILL) and the error goes on. The
    hold job's wait is bounded (``limit`` seconds, :data:`HOLD_LIMIT_S`): a run nobody releases
    fails with a message saying so rather than holding its output folder for ever. A run whose hold
    job has not started after ``start_timeout`` seconds is stopped (AssertionError with its output).

    The test's Snakefile lies in ``{workdir}/held_run/`` (with the run's output, ``snakemake.log``),
    beside links to the repository's ``config/`` and ``workflow/``, which the workflow finds from
    its main Snakefile's folder (``workflow.basedir``).
    """
    folder = Path(workdir) / "held_run"
    folder.mkdir()
    for name in ("config", "workflow"):
        (folder / name).symlink_to(REPO / name, target_is_directory=True)
    started, release, held = folder / "started", folder / "release", folder / "held"
    hold = shlex.join(
        [sys.executable, str(Path(__file__).with_name("hold_job.py")), str(started), str(release), str(limit)]
    )
    snakefile = folder / "Snakefile"
    snakefile.write_text(
        HELD_SNAKEFILE.format(
            snakefile=json.dumps(str(REPO / "Snakefile")), held=json.dumps(str(held)), hold=json.dumps(hold)
        )
    )
    # the targets, everything the workflow makes (rule all) and the hold job's output, before --config
    # (which takes every word after it)
    command = _snakemake_command(snakefile, workdir, ["all", held, *args], config=None, cores=cores)
    if config:
        command += ["--config"] + [f"{key}={value}" for key, value in config.items()]
    log = folder / "snakemake.log"
    with open(log, "w") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=_snakemake_env(), start_new_session=True
        )  # its own process group: stopped with its jobs
    failed = True
    try:
        try:
            wait_until(
                lambda: started.exists() or process.poll() is not None,
                start_timeout,
                "the held run's hold job to start",
            )
        except AssertionError as error:
            raise AssertionError(f"{error}:\n{_tail(log)}") from None
        if not started.exists():
            raise AssertionError(
                f"the held run ended ({process.returncode}) before its hold job started:\n{_tail(log)}"
            )
        yield process
        failed = False
    finally:
        release.touch()  # also frees a hold job left running by a snakemake process that died
        if failed:
            _stop(process)
    try:
        returncode = process.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        _stop(process)
        raise AssertionError(f"the held run did not finish within {limit} s of its release:\n{_tail(log)}") from None
    if returncode != 0 and must_succeed:
        raise AssertionError(f"the held run failed ({returncode}) after its release:\n{_tail(log)}")
