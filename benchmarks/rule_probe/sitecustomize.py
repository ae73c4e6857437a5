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


def _start_probe(script, record_path, profile_dir):
    import atexit
    import json
    import resource
    import time

    try:
        import psutil

        started = psutil.Process().create_time()
    except Exception:  # psutil is a snakemake dependency; fall back to now
        started = time.time()

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
            "max_rss_mb": round(usage.ru_maxrss / 1024.0, 1),
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
