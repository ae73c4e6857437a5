"""Run ImageJ macros in tests: the real ImageJ 1.x, in batch mode, under a virtual X display.

Tests that check what ImageJ makes of brightflow's files (ROI sets, image calibration, ...)
write a macro, run it with :func:`run_imagej_macro` and read what it printed or wrote.

- ImageJ: the ``ij.jar`` named by ``$BRIGHTFLOW_IMAGEJ_JAR`` (e.g. Fiji's ``jars/ij-1.54f.jar``),
  else Debian's (package ``imagej``, ``/usr/share/java/ij.jar``); run with ``java`` from PATH.
  ``sudo ci/imagej-up.sh`` installs ``imagej``, ``xvfb`` and ``xauth``.
- ImageJ 1.x needs a display even in batch mode (``open()`` builds its menus; the ROI Manager is
  a window), so it runs under ``xvfb-run -a``. Its preferences come from a fresh home folder
  inside ``workdir``, never the user's ``~/.imagej``.
- A macro error opens a dialog that waits for a click, which never comes under xvfb: ImageJ is
  then stopped at ``timeout`` and :class:`ImageJError` says so. A macro that stops early (``exit``)
  is caught too: the helper appends a last ``print`` of a marker and checks that it came.
- :func:`imagej_or_skip` skips a test with the reason where ImageJ cannot run here;
  ``BRIGHTFLOW_REQUIRE_IMAGEJ=1`` (set by .ci/run) turns that skip into a failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

DEBIAN_IJ_JAR = Path("/usr/share/java/ij.jar")
#: the last line every macro prints through run_imagej_macro: ImageJ reached the macro's end
DONE_MARKER = "brightflow-imagej-macro-done"


class ImageJError(RuntimeError):
    """ImageJ failed, hung or stopped before the end of the macro; the message holds its output."""


def imagej_jar():
    """The ``ij.jar`` to run: ``$BRIGHTFLOW_IMAGEJ_JAR``, else Debian's, else None."""
    named = os.environ.get("BRIGHTFLOW_IMAGEJ_JAR")
    if named:
        return Path(named)
    return DEBIAN_IJ_JAR if DEBIAN_IJ_JAR.is_file() else None


def imagej_problem():
    """Why ImageJ cannot run here (a sentence), or None when it can."""
    jar = imagej_jar()
    if jar is None:
        return f"ImageJ is not installed ({DEBIAN_IJ_JAR} missing; install it with: sudo ci/imagej-up.sh)"
    if not jar.is_file():
        return f"BRIGHTFLOW_IMAGEJ_JAR={jar} is not a file"
    for program, package in (("java", "a Java runtime"), ("xvfb-run", "xvfb"), ("xauth", "xauth")):
        if shutil.which(program) is None:
            return f"{program} is not installed ({package}; install it with: sudo ci/imagej-up.sh)"
    return None


def imagej_or_skip():
    """Skip the calling test where ImageJ cannot run; fail instead with BRIGHTFLOW_REQUIRE_IMAGEJ=1."""
    problem = imagej_problem()
    if problem:
        if os.environ.get("BRIGHTFLOW_REQUIRE_IMAGEJ") == "1":
            pytest.fail(f"BRIGHTFLOW_REQUIRE_IMAGEJ=1 but {problem}")
        pytest.skip(problem)


def run_imagej_macro(macro_text, workdir, timeout=120, argument=None, memory_mb=1024):
    """Run an ImageJ macro in batch mode under ``xvfb-run -a``; return what it printed.

    Parameters
    ----------
    macro_text : str
        ImageJ macro language. ``print`` goes to the returned text; ``getArgument()`` returns
        ``argument``. Use absolute paths, or paths relative to ``workdir`` (the working folder).
    workdir : path
        Folder for the macro file, ImageJ's home (preferences) and anything the macro writes.
    timeout : float
        Seconds before ImageJ is stopped (``timeout`` inside ``xvfb-run``, which then stops its
        X server) and :class:`ImageJError` is raised.
    argument : str, optional
    memory_mb : int
        Java heap (``-Xmx``).

    Returns
    -------
    str
        ImageJ's standard output without the end marker (stderr is dropped when the run worked).
    """
    problem = imagej_problem()
    if problem:
        raise ImageJError(problem)
    workdir = Path(workdir).resolve()
    home = workdir / "imagej-home"
    home.mkdir(parents=True, exist_ok=True)
    macro = workdir / "macro.ijm"
    macro.write_text(f'{macro_text}\nprint("{DONE_MARKER}");\n')
    # timeout(1) inside xvfb-run stops a hung ImageJ, and xvfb-run then stops its X server
    command = [
        "xvfb-run", "-a", "-s", "-screen 0 1024x768x24",
        "timeout", "-k", "5", str(timeout),
        "java", f"-Xmx{int(memory_mb)}m", f"-Duser.home={home}",
        "-jar", str(imagej_jar()), "-batch", str(macro),
    ] + ([str(argument)] if argument is not None else [])  # fmt: skip
    for _attempt in range(3):
        # a session of its own: if even xvfb-run hangs, its whole group is killed
        process = subprocess.Popen(
            command, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        try:
            stdout, stderr = process.communicate(timeout=timeout + 60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
        if process.returncode in (124, 137, -signal.SIGKILL):
            raise ImageJError(
                f"ImageJ did not finish within {timeout} s (a macro error opens a dialog that nobody can "
                f"close under xvfb; run the macro {macro} in Fiji to see it)\n"
                f"--- stdout ---\n{stdout[-4000:]}\n--- stderr ---\n{stderr[-4000:]}"
            )
        # two xvfb-run -a started at once can pick the same display number: try again
        if "Xvfb failed to start" not in stderr:
            break
    lines = stdout.splitlines()
    if process.returncode != 0 or DONE_MARKER not in lines:
        raise ImageJError(
            f"ImageJ exited with status {process.returncode} "
            f"{'after' if DONE_MARKER in lines else 'before'} the end of the macro {macro}\n"
            f"--- stdout ---\n{stdout[-4000:]}\n--- stderr ---\n{stderr[-4000:]}"
        )
    return "".join(line + "\n" for line in lines if line != DONE_MARKER)
