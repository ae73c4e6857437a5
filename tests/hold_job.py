"""The job that holds a test's workflow run open (tests/helpers.py, held_run): it says that it has
started, then waits until the test creates the release file.

Usage: python hold_job.py STARTED RELEASE LIMIT_SECONDS

The wait is bounded: a run that nobody releases within LIMIT_SECONDS (the test that held it died
without its clean-up) fails this job with a message saying so, and with it the run, which then ends
and gives back its output folder.
"""

import sys
import time
from pathlib import Path


def hold(started, release, limit):
    """Say the job has started, then wait (at most ``limit`` seconds) until ``release`` exists."""
    started.touch()
    deadline = time.monotonic() + limit
    while not release.exists():
        if time.monotonic() > deadline:
            sys.exit(
                f"held_by_the_test: not released within {limit:.0f} s ({release} was never created): the test that "
                "held this run open stopped without releasing it; this job fails so that the run ends."
            )
        time.sleep(0.1)  # polling a condition; the bound above is the deadline, not this interval


if __name__ == "__main__":
    hold(Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]))
