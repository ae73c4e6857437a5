# What happens when a run starts and ends: the output folder's lock, and the closing summary that is
# the last thing a user reads (brightflow.io.summary), printed and written to run_summary.txt.

import atexit
import sys
import time

#: When this run's jobs started (onstart), for the summary's duration.
RUN_STARTED = []


def start_run():
    """onstart: hold the output folder's lock while this run's jobs run."""
    RUN_STARTED.append(time.monotonic())
    try:
        bio.lock.acquire(OUT)
    except bio.InputError as error:
        raise WorkflowError(str(error)) from error


def _say_last(lines):
    """Write the summary, and print it when the process exits: after snakemake's own last lines."""
    bio.write_run_summary(OUT, lines)
    atexit.register(lambda: print("\n" + "\n".join(lines), file=sys.stderr, flush=True))


def finish_run(log):
    """onsuccess: record what the run analysed (its report checks it), release the lock; the closing summary."""
    bio.write_run_record(OUT, list(UNITS), SETTINGS_RECORDED, RUN_SOURCE)
    bio.lock.release(OUT)
    seconds = time.monotonic() - RUN_STARTED[0] if RUN_STARTED else None
    _say_last(bio.run_summary(OUT, list(UNITS), seconds))


def fail_run(log):
    """onerror: release the lock; which experiments finished, which did not and why."""
    bio.lock.release(OUT)
    outputs, log_dirs = {}, {}
    for unit, (experiment, _) in UNITS.items():
        outputs[unit] = segmentation_outputs(experiment) + unit_outputs(unit)
        log_dirs[unit] = sorted({f"{LOG_DIR}/{unit}", f"{LOG_DIR}/{experiment}"})
    snakemake_log = log[0] if isinstance(log, (list, tuple)) and log else log
    lines = bio.failure_summary(outputs, log_dirs, snakemake_log)
    if lines:
        _say_last(lines)
