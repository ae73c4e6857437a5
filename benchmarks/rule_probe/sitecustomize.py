"""Benchmark probe: per-rule wall time, peak memory and (optionally) a profile.

``run_benchmark.py`` puts this folder on ``PYTHONPATH`` of the snakemake command it
times, so Python imports this module at start-up in snakemake and in every rule
script process snakemake starts. It does nothing unless the process is a rule
script (snakemake runs ``.snakemake/scripts/tmpXXXX.<script>.py``) and
``BRIGHTFLOW_BENCH_RULES`` names a file: then, at exit, it appends one JSON line
``{"script", "wall_s", "cpu_s", "max_rss_mb", "pid"}`` to that file. The wall time counts
from the process's creation (interpreter start-up and imports included).

With ``BRIGHTFLOW_BENCH_PROFILE`` set to a folder, it also profiles the whole
script (imports included) with pyinstrument when importable, else cProfile, and
writes ``<script>.txt`` (and ``<script>.prof`` for cProfile) there.

The peak memory is the script's own (``VmHWM``), not the snakemake process it was forked
from (see :func:`_peak_rss_kb`).
"""

import os
import re


def _script_name():
    try:
        with open("/proc/self/cmdline", "rb") as handle:
            argv = handle.read().split(b"\0")
    except OSError:
        return None
    for arg in argv:
        match = re.search(rb"[\\/]\.snakemake[\\/]scripts[\\/]tmp[^.]*\.(.+)\.py$", arg)
        if match:
            return match.group(1).decode()
    return None


def _process_start_time(time):
    """When this process was created (epoch seconds), from /proc (psutil's way, without the
    30 ms of importing psutil in every rule); psutil, then now, where /proc is missing."""
    try:
        with open("/proc/self/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as handle:
            uptime = float(handle.read().split()[0])
        started_after_boot = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22, "starttime"
        return time.time() - (uptime - started_after_boot)
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil

        return psutil.Process().create_time()
    except Exception:
        return time.time()


def _peak_rss_kb(usage):
    """This script's own peak resident memory in KiB.

    ``VmHWM`` of /proc/self/status, the high-water mark of the process's current memory
    image, which starts afresh when snakemake's forked child executes Python. Not
    ``ru_maxrss``: Linux carries it across ``execve``, so every rule would report at least
    the RSS of the snakemake process it was forked from. ``ru_maxrss`` only where /proc is
    missing.
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1])
    except OSError:
        pass
    return float(usage.ru_maxrss)


def _start_probe(script, record_path, profile_dir):
    import atexit
    import json
    import resource
    import time

    started = _process_start_time(time)

    profiler = None
    if profile_dir:
        try:
            import pyinstrument

            profiler = pyinstrument.Profiler(interval=0.001)
            profiler.start()
        except ImportError:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()

    def finish():
        wall = time.time() - started
        if profiler is not None:
            os.makedirs(profile_dir, exist_ok=True)
            stem = os.path.join(profile_dir, f"{script}-{os.getpid()}")
            if hasattr(profiler, "output_text"):
                profiler.stop()
                with open(stem + ".txt", "w") as handle:
                    handle.write(profiler.output_text(unicode=False, color=False, show_all=False))
                with open(stem + ".html", "w") as handle:
                    handle.write(profiler.output_html())
            else:
                import io
                import pstats

                profiler.disable()
                profiler.dump_stats(stem + ".prof")
                text = io.StringIO()
                pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(40)
                with open(stem + ".txt", "w") as handle:
                    handle.write(text.getvalue())
        usage = resource.getrusage(resource.RUSAGE_SELF)
        line = {
            "script": script,
            "wall_s": round(wall, 3),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
            "max_rss_mb": round(_peak_rss_kb(usage) / 1024.0, 1),
            "pid": os.getpid(),
        }
        with open(record_path, "a") as handle:
            handle.write(json.dumps(line) + "\n")

    atexit.register(finish)


_record = os.environ.get("BRIGHTFLOW_BENCH_RULES")
if _record:
    _script = _script_name()
    if _script:
        _start_probe(_script, _record, os.environ.get("BRIGHTFLOW_BENCH_PROFILE"))
