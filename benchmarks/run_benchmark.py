#!/usr/bin/env python
"""Speed and memory benchmark of brightflow against the N&B app it replaces (issue 6).

What it does (see benchmarks/README.md for how to run it and what to read):

1. Simulates (seeded) one ``T x 512 x 512`` uint16 stack with three large cells
   (mobile molecules, 30% bleaching) and writes it as an uncompressed TIFF, with
   the cells' label mask beside it. Cached under ``--workdir`` between runs, by
   frames, seed and a digest of the simulation's parameters.
2. Runs brightflow's per-experiment CPU path through the real workflow
   (``python -m snakemake`` on the repository's Snakefile, a sample sheet with the
   mask, ``segmentation.method: existing``) once per bleach-correction
   configuration: ``linear`` and the default method of ``config/config.yaml``.
   Each run is timed with ``/usr/bin/time -v`` (wall time; maximum resident set
   size, which for a process tree is the biggest single process: every rule is
   its own process). Per-rule wall time comes from the workflow's own ``benchmark:``
   records (``results/benchmarks/<experiment>/<rule>.tsv``: snakemake's ``s``, from the
   job's start to its end). Per-rule CPU time and peak memory come from
   ``rule_probe/sitecustomize.py``: snakemake samples a job's memory and CPU every 0.5 s,
   so it records none for the many rules that finish sooner, while the probe reads the
   process's own ``VmHWM`` and CPU times when it exits.
3. Times the N&B map computation alone (the streamed moments with the linear
   model's per-frame factors, and the ``nb_maps`` rule script run in-process on
   the same stack and bleach model), and the default configuration's ``bleach_correction``
   and ``nb_maps`` steps in-process (the fit with its automatic parameter, then the maps),
   against reading the stack once (summing it block by block with ``brightflow.io.Stack``),
   all with the file in the page cache.
4. Times a dry run (``snakemake -n``) of ``--dry-run-experiments`` experiments
   (symlinks to one tiny stack) against the 10 s target.
5. With ``--with-replaced-app``: runs ``numbers_and_brightness==0.1.14`` in its
   own virtual environment (``benchmarks/.venv-replaced``, made on first use) on
   the same stack and mask, timed the same way.
6. The fixed cost: the ``linear`` workflow on a stack of the same frame size and
   cells but ``--fixed-cost-frames`` (10) frames. What is left is what the DAG costs
   whatever the recording (snakemake, one Python process per rule, figures and
   tables of the same cells): the most speed-up over the replaced app this DAG allows.
7. With ``--batch N``: N experiments (the stack under N names) in one snakemake run,
   ``linear`` and the default method, and with ``--with-replaced-app`` the replaced
   app on N copies in one process: the cost per experiment of analysing a folder; and the
   fixed cost per experiment of a folder of N ``--fixed-cost-frames`` stacks.
8. Prints a table and the verdict on each of issue 17's targets (:data:`TARGETS`), and
   writes both as JSON and markdown under ``benchmarks/results/``.

All of issue 17's targets in one command::

    python benchmarks/run_benchmark.py --with-replaced-app --batch 4 --flatness

Options ``--flatness`` (memory of 1000 vs 4000 frames, bleach ``linear`` and the
default method), ``--memory-rules`` (each
rule's peak memory, one job at a time, on the stack and on a zlib-compressed copy)
and ``--profile`` (a pyinstrument or cProfile profile of every rule script) are
separate, slower runs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
PROBE_DIR = BENCH_DIR / "rule_probe"
REPLACED_VENV = BENCH_DIR / ".venv-replaced"
REPLACED_PINS = ("numbers_and_brightness==0.1.14", "torch==2.13.0")
TIME = "/usr/bin/time"
SHAPE = (512, 512)
#: Three large elliptical cells: (centre row, centre col), (row radius, col radius), rotation.
CELLS = (
    ((140.0, 150.0), (95.0, 75.0), 0.3),
    ((150.0, 380.0), (80.0, 90.0), -0.5),
    ((380.0, 260.0), (90.0, 110.0), 0.1),
)
#: Per cell: (brightness epsilon, mean number n) of the mobile molecules.
CELL_PHYSICS = ((1.0, 20.0), (2.0, 12.0), (4.0, 6.0))
BACKGROUND = 2.0
BLEACH_LOSS = 0.3
#: Issue 17's targets (2 cores): per experiment in a folder, the default configuration and the linear
#: correction against the replaced app's own folder mode; the fixed cost (CPU per experiment of a
#: folder of 10-frame stacks); the default correction's fit plus the maps against one read; memory
#: per rule, flat in T; a dry run of 500 experiments.
TARGETS = {
    "folder_speedup_default": 12.0,
    "folder_speedup_linear": 20.0,
    "fixed_cost_cpu_s": 2.5,
    "fit_and_maps_over_read": 4.0,
    "nb_over_read": 3.0,
    "peak_rss_mb": 600.0,
    "dry_run_s": 10.0,
}


# --- machine state ----------------------------------------------------------------------------


def load_average():
    with open("/proc/loadavg") as handle:
        one, five, fifteen = (float(v) for v in handle.read().split()[:3])
    return {"1min": one, "5min": five, "15min": fifteen}


def machine():
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    try:
        with open("/proc/cpuinfo") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
        info["cpu"] = names[0] if names else "unknown"
        with open("/proc/meminfo") as handle:
            total_kb = int(next(line for line in handle if line.startswith("MemTotal")).split()[1])
        info["memory_gib"] = round(total_kb / 2**20, 1)
    except (OSError, StopIteration):
        pass
    return info


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- data ---------------------------------------------------------------------------------------


def cell_labels():
    from skimage.draw import ellipse

    labels = np.zeros(SHAPE, dtype=np.uint16)
    for index, ((row, col), (row_radius, col_radius), rotation) in enumerate(CELLS):
        rr, cc = ellipse(row, col, row_radius, col_radius, shape=SHAPE, rotation=rotation)
        labels[rr, cc] = index + 1
    return labels


def simulate_stack(path, frames, seed, chunk=50):
    """Write a seeded ``frames x 512 x 512`` uint16 stack as an uncompressed TIFF, frame by frame.

    Mobile molecules in the cells (Digman 2008: a Poisson number of molecules per
    pixel and frame, Poisson photons of mean epsilon per molecule), bleaching
    exponentially by 30% over the recording, and an immobile Poisson background.
    """
    import tifffile

    labels = cell_labels()
    number_map = np.zeros(SHAPE)
    brightness_map = np.zeros(SHAPE)
    for index, (epsilon, n) in enumerate(CELL_PHYSICS):
        number_map[labels == index + 1] = n
        brightness_map[labels == index + 1] = epsilon
    survival = np.exp(np.log(1 - BLEACH_LOSS) * np.arange(frames) / max(frames - 1, 1))
    rng = np.random.default_rng(seed)

    def frame_blocks():
        for start in range(0, frames, chunk):
            stop = min(start + chunk, frames)
            molecules = rng.poisson(number_map[None] * survival[start:stop, None, None])
            photons = rng.poisson(brightness_map[None] * molecules)
            photons += rng.poisson(BACKGROUND, size=photons.shape)
            yield from photons.astype(np.uint16)

    tmp = path.with_suffix(".partial.tif")
    with tifffile.TiffWriter(tmp, bigtiff=frames * SHAPE[0] * SHAPE[1] * 2 > 2**31) as tif:
        tif.write(
            frame_blocks(),
            shape=(frames,) + SHAPE,
            dtype=np.uint16,
            photometric="minisblack",
            metadata={"axes": "TYX"},
            contiguous=True,
        )
    tmp.rename(path)
    return labels


def simulation_digest():
    """Eight hex digits naming the simulation's parameters (cells, physics, bleaching, shape)."""
    import hashlib

    text = repr((SHAPE, CELLS, CELL_PHYSICS, BACKGROUND, BLEACH_LOSS, "uint16", "contiguous"))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def compressed_copy(stack):
    """A zlib-compressed copy of ``stack`` beside it (cached), written frame by frame."""
    import tifffile

    target = stack.with_name(stack.stem + "_zlib.tif")
    if not target.exists():
        log(f"writing a zlib-compressed copy of {stack.name}")
        with tifffile.TiffFile(stack) as tif:
            frames = tif.series[0].shape[0]
            pages = tif.series[0].pages
            tmp = target.with_suffix(".partial.tif")
            with tifffile.TiffWriter(tmp, bigtiff=True) as out:
                out.write(
                    (page.asarray() for page in pages),
                    shape=(frames,) + SHAPE,
                    dtype=np.uint16,
                    photometric="minisblack",
                    compression="zlib",
                    metadata={"axes": "TYX"},
                )
        tmp.rename(target)
    return target


def prepare_data(workdir, frames, seed):
    import tifffile

    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    # the file name carries a digest of every simulation parameter: a cached stack is reused by
    # later runs (simulating 1000 frames takes a minute) and never when the simulation changed
    stack = data / f"bench_T{frames}_seed{seed}_{simulation_digest()}.tif"
    mask = data / "bench_mask.tif"
    if not mask.exists():
        tifffile.imwrite(mask, cell_labels())
    if not stack.exists():
        log(f"simulating {frames} x {SHAPE[0]} x {SHAPE[1]} uint16 (seed {seed}) -> {stack}")
        started = time.perf_counter()
        simulate_stack(stack, frames, seed)
        log(f"  written {stack.stat().st_size / 2**20:.0f} MiB in {time.perf_counter() - started:.1f} s")
    with tifffile.TiffFile(stack) as tif:
        assert tif.series[0].shape == (frames,) + SHAPE and not tif.pages[0].compression > 1
    return stack, mask


# --- timing a command ---------------------------------------------------------------------------


def timed(command, cwd=None, env=None, log_path=None, timeout=900):
    """Run ``command`` under ``/usr/bin/time -v``; return wall seconds, peak RSS (MB), return code."""
    with tempfile.NamedTemporaryFile("r", suffix=".time", delete=False) as stats_file:
        stats_path = stats_file.name
    full = [TIME, "-v", "-o", stats_path] + [str(c) for c in command]
    started = time.perf_counter()
    with open(log_path or os.devnull, "w") as output:
        process = subprocess.run(full, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT, timeout=timeout)
    elapsed = time.perf_counter() - started
    stats = Path(stats_path).read_text()
    os.unlink(stats_path)
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", stats).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", stats).group(1)
    seconds = 0.0
    for part in wall.split(":"):
        seconds = seconds * 60 + float(part)
    return {
        "wall_s": round(seconds, 2),
        "wall_s_perf_counter": round(elapsed, 2),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "returncode": process.returncode,
        "user_s": float(re.search(r"User time \(seconds\): (\S+)", stats).group(1)),
        "system_s": float(re.search(r"System time \(seconds\): (\S+)", stats).group(1)),
    }


def brightflow_env(extra=None):
    env = dict(os.environ)
    paths = [str(REPO), str(PROBE_DIR)] + (extra or [])
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["MPLBACKEND"] = "Agg"
    return env


def snakemake_command(directory, cores, *options):
    """The command line of a brightflow run: snakemake on this checkout's Snakefile in ``directory``."""
    return [sys.executable, "-m", "snakemake", "--snakefile", REPO / "Snakefile", "--directory", directory,
            "--cores", cores, *options]  # fmt: skip


def default_bleach_setting():
    """``[method, parameter, seed, dof_correction]`` of ``bleach_correction`` in config/config.yaml."""
    import yaml

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["bleach_correction"]
    return [config["method"], config["parameter"], config["seed"], config["dof_correction"]]


def default_bleach_method():
    return default_bleach_setting()[0]


# --- brightflow through the workflow ------------------------------------------------------------


def experiment_names(experiments):
    """``bench`` for one experiment; ``bench01``, ``bench02`` ... for a batch."""
    return ["bench"] if experiments == 1 else [f"bench{index + 1:02d}" for index in range(experiments)]


def snakemake_benchmarks(folder):
    """The workflow's own benchmark records (``benchmark:`` of every rule): one dict per job with
    ``rule``, ``unit`` (the experiment, or ``""`` for folder-level rules) and snakemake's ``s``
    (wall seconds from the job's start to its end), ``cpu_time`` and ``max_rss`` (MB; ``None`` when
    snakemake's 0.5 s sampling missed a short job)."""
    import csv

    def number(text):
        try:
            return float(text)
        except (TypeError, ValueError):
            return None

    records = []
    for path in sorted(Path(folder).rglob("*.tsv")):
        with open(path) as handle:
            row = next(csv.DictReader(handle, delimiter="\t"))
        unit = str(path.parent.relative_to(folder)) if path.parent != Path(folder) else ""
        records.append(
            {
                "rule": path.stem,
                "unit": unit,
                "s": number(row.get("s")),
                "cpu_time": number(row.get("cpu_time")),
                "max_rss": number(row.get("max_rss")),
            }
        )
    return sorted(records, key=lambda record: -(record["s"] or 0))


def run_workflow(workdir, name, stack, mask, bleach_method, cores, profile_dir=None, experiments=1):
    """``experiments`` experiments (each the same stack and mask under its own name) through one
    ``python -m snakemake``; returns timings and per-rule records."""
    import yaml

    run_dir = workdir / f"run_{name}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    names = experiment_names(experiments)
    rows = "".join(f"{experiment}\t{stack}\t{mask}\n" for experiment in names)
    (run_dir / "samples.tsv").write_text("experiment\tpath\tmask\n" + rows)
    config = {
        "samples": str(run_dir / "samples.tsv"),
        "output_dir": "results",
        "segmentation": {"method": "existing"},
        "bleach_correction": {"method": bleach_method},
    }
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    records = run_dir / "rules.jsonl"
    env = brightflow_env([str(PYINSTRUMENT_DIR)] if profile_dir else None)
    env["BRIGHTFLOW_BENCH_RULES"] = str(records)
    if profile_dir:
        env["BRIGHTFLOW_BENCH_PROFILE"] = str(profile_dir)
    command = snakemake_command(run_dir, cores, "--configfile", run_dir / "config.yaml")
    log(f"brightflow [{name}]: {experiments} experiment(s), bleach_correction.method={bleach_method}, --cores {cores}")
    result = timed(command, env=env, log_path=run_dir / "snakemake.out")
    if result["returncode"] != 0:
        tail = (run_dir / "snakemake.out").read_text()[-4000:]
        raise SystemExit(f"brightflow run {name} failed (exit {result['returncode']}):\n{tail}")
    rules = [json.loads(line) for line in records.read_text().splitlines()] if records.exists() else []
    result["rules"] = sorted(rules, key=lambda r: -r["wall_s"])
    result["rule_benchmarks"] = snakemake_benchmarks(run_dir / "results" / "benchmarks")
    result["rules_wall_sum_s"] = round(sum(r["wall_s"] for r in rules), 2)
    result["rules_max_rss_mb"] = max((r["max_rss_mb"] for r in rules), default=None)
    cells = (run_dir / "results" / names[0] / "average_values_in_roi.csv").read_text().splitlines()
    result["average_values_in_roi"] = cells
    result["bleach_method"] = bleach_method
    result["experiments"] = experiments
    result["run_dir"] = str(run_dir)
    log(f"  {result['wall_s']:.1f} s wall, peak RSS {result['peak_rss_mb']:.0f} MB")
    return result


# --- N&B alone vs reading the stack once ------------------------------------------------------

NB_ALONE = r"""
import json, os, sys, tempfile, time
import numpy as np
from brightflow import io, nb
from brightflow.blocks import frame_chunks
from brightflow.steps import maps
stack_path, model_path, repeats = sys.argv[2], sys.argv[3], int(sys.argv[4])
default_method, default_parameter, default_seed, default_dof = json.loads(sys.argv[5])
# nb_maps' settings as in config/config.yaml's defaults
MAPS_SETTINGS = dict(variance_ddof=1, detector=None, threshold_setting="none", filter_method="none",
                     convention="brightflow")

def read_once():
    stack = io.open_stack(stack_path)
    total = 0
    for start, stop in frame_chunks(stack.shape[0], stack.shape[1:]):
        total += int(stack[start:stop].sum(dtype=np.uint64))
    return total

def compute_only():
    stack = io.open_stack(stack_path)
    model = io.read_correction_model(model_path, stack.shape[0], stack_path)
    moments = nb.StreamingMoments(stack.shape[1:])
    for start, stop in frame_chunks(stack.shape[0], stack.shape[1:]):
        moments.update(stack[start:stop], scale=model.frame_scale(start, stop))
    return nb.number_and_brightness(moments.mean(), moments.variance(1))

def rule_script():
    out = tempfile.mkdtemp()
    names = nb.MAP_NAMES
    folder = os.path.dirname(model_path)
    maps.nb_maps(
        stack=stack_path, model=model_path, swaps=None, labels=os.path.join(folder, "analysis_labels.tif"),
        samples=os.path.join(folder, "sample_quality.npy"),
        npy=[os.path.join(out, f"{n}.npy") for n in names], tif=[os.path.join(out, f"{n}.tif") for n in names],
        threshold_record=os.path.join(out, "nb_threshold.json"),
        corrected_trace=os.path.join(out, "bleach_corrected_trace.json"), **MAPS_SETTINGS,
    )

def default_fit_and_maps():
    # the default configuration's bleach_correction and nb_maps steps, in-process: the fit (with its
    # automatic parameter and the doubtful-sample counts) and the maps of the corrected stack
    from brightflow.steps import bleach
    out = tempfile.mkdtemp()
    folder = os.path.dirname(model_path)
    labels = os.path.join(folder, "analysis_labels.tif")
    paths = {name: os.path.join(out, name) for name in ("model.json", "swaps.npy", "samples.npy")}
    bleach.bleach_correction(stack_path, labels, paths["model.json"], paths["swaps.npy"], paths["samples.npy"],
                             default_method, default_parameter, default_seed, default_dof)
    names = nb.MAP_NAMES
    maps.nb_maps(
        stack=stack_path, model=paths["model.json"], swaps=paths["swaps.npy"], labels=labels,
        samples=paths["samples.npy"],
        npy=[os.path.join(out, f"{n}.npy") for n in names], tif=[os.path.join(out, f"{n}.tif") for n in names],
        threshold_record=os.path.join(out, "nb_threshold.json"),
        corrected_trace=os.path.join(out, "bleach_corrected_trace.json"), **MAPS_SETTINGS,
    )

def best(function):
    times = []
    for _ in range(repeats):
        started = time.perf_counter(); function(); times.append(time.perf_counter() - started)
    return {"best_s": round(min(times), 3), "all_s": [round(t, 3) for t in times]}

read_once()  # page cache warm-up
result = {"read_once": best(read_once), "nb_compute": best(compute_only), "nb_rule_script": best(rule_script),
          "default_fit_and_maps": best(default_fit_and_maps)}
import resource
result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
print("RESULT " + json.dumps(result))
"""


def nb_versus_read(stack, model, repeats):
    log("N&B maps alone vs reading the stack once (page cache warm)")
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            NB_ALONE,
            str(REPO),
            str(stack),
            str(model),
            str(repeats),
            json.dumps(default_bleach_setting()),
        ],
        env=brightflow_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    if result.returncode != 0:
        raise SystemExit(f"N&B-alone measurement failed:\n{result.stderr[-4000:]}")
    line = next(text for text in result.stdout.splitlines() if text.startswith("RESULT "))
    data = json.loads(line[len("RESULT ") :])
    data["nb_compute_over_read"] = round(data["nb_compute"]["best_s"] / data["read_once"]["best_s"], 2)
    data["nb_rule_script_over_read"] = round(data["nb_rule_script"]["best_s"] / data["read_once"]["best_s"], 2)
    data["default_fit_and_maps_over_read"] = round(
        data["default_fit_and_maps"]["best_s"] / data["read_once"]["best_s"], 2
    )
    log(
        f"  read once {data['read_once']['best_s']:.2f} s, N&B compute {data['nb_compute']['best_s']:.2f} s "
        f"({data['nb_compute_over_read']}x), nb_maps script {data['nb_rule_script']['best_s']:.2f} s "
        f"({data['nb_rule_script_over_read']}x), default fit + maps {data['default_fit_and_maps']['best_s']:.2f} s "
        f"({data['default_fit_and_maps_over_read']}x)"
    )
    return data


# --- dry run of many experiments ----------------------------------------------------------------


def dry_run(workdir, experiments):
    import tifffile

    folder = workdir / f"dryrun_{experiments}"
    if folder.exists():
        shutil.rmtree(folder)
    stacks = folder / "stacks"
    stacks.mkdir(parents=True)
    tiny = folder / "tiny.tif"
    tifffile.imwrite(tiny, np.random.default_rng(0).poisson(5, (5, 32, 32)).astype(np.uint16))
    for index in range(experiments):
        (stacks / f"exp{index:04d}.tif").symlink_to(tiny)
    command = snakemake_command(folder, 1, "-n", "--config", f"input_dir={stacks}", "output_dir=results")
    log(f"dry run of {experiments} experiments")
    result = timed(command, env=brightflow_env(), log_path=folder / "snakemake.out")
    if result["returncode"] != 0:
        raise SystemExit(f"dry run failed:\n{(folder / 'snakemake.out').read_text()[-4000:]}")
    text = (folder / "snakemake.out").read_text()
    match = re.search(r"^total\s+(\d+)", text, re.MULTILINE)
    result["jobs"] = int(match.group(1)) if match else None
    result["experiments"] = experiments
    log(f"  {result['wall_s']:.1f} s for {result['jobs']} jobs")
    return result


# --- the replaced app -----------------------------------------------------------------------------

REPLACED_RUNNER = BENCH_DIR / "replaced_app_runner.py"


def ensure_replaced_venv():
    python = REPLACED_VENV / "bin" / "python"
    if not python.exists():
        log(f"creating {REPLACED_VENV} and installing {' '.join(REPLACED_PINS)}")
        subprocess.run(["python3.11", "-m", "venv", str(REPLACED_VENV)], check=True)
    check = subprocess.run([str(python), "-c", "import numbers_and_brightness, torch"], capture_output=True)
    if check.returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "-q", *REPLACED_PINS], check=True)
    versions = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.metadata as m; print({p: m.version(p) for p in "
            "('numbers_and_brightness', 'torch', 'cellpose', 'numpy', 'scipy', 'tifffile')})",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return python, versions


def run_replaced_app(workdir, stack, mask, experiments=1, name="replaced"):
    """The replaced app on ``experiments`` copies (symlinks) of the stack, one after the other in
    one process (as its folder mode does: its imports are paid once), in ``workdir / name``."""
    import tifffile

    python, versions = ensure_replaced_venv()
    folder = workdir / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    labels = tifffile.imread(mask).astype(np.uint16)
    # the app segments a projection saved as segmentation_image.tif; give it the mean projection
    projection = np.zeros(SHAPE)
    with tifffile.TiffFile(stack) as tif:
        memmap = tif.series[0].asarray(out="memmap")
        for start in range(0, memmap.shape[0], 100):
            projection += memmap[start : start + 100].sum(axis=0, dtype=np.float64)
        projection /= memmap.shape[0]
    targets = []
    for experiment in experiment_names(experiments):
        target = folder / f"{experiment}.tif"
        target.symlink_to(stack)
        output = folder / f"{target.stem}_n_and_b_output"
        output.mkdir()
        np.save(output / "segmentation_image_seg.npy", {"masks": labels}, allow_pickle=True)
        tifffile.imwrite(output / "segmentation_image.tif", projection.astype(np.float32))
        targets.append(target)
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["MPLBACKEND"] = "Agg"
    log(f"replaced app, {experiments} experiment(s) ({versions})")
    result = timed([python, REPLACED_RUNNER, *targets], env=env, log_path=folder / "run.out")
    if result["returncode"] != 0:
        raise SystemExit(f"replaced app failed:\n{(folder / 'run.out').read_text()[-4000:]}")
    result["versions"] = versions
    result["experiments"] = experiments
    result["outputs"] = sorted(p.name for p in output.iterdir())
    result["run_log_tail"] = (folder / "run.out").read_text()[-1500:]
    log(f"  {result['wall_s']:.1f} s wall, peak RSS {result['peak_rss_mb']:.0f} MB")
    return result


# --- report -------------------------------------------------------------------------------------


def table_rows(report):
    replaced = report.get("replaced_app")
    rows = []

    def cpu(run):
        return run["user_s"] + run["system_s"]

    def row(label, run, note="", compare=True):
        """``compare``: ratios to the replaced app (only for runs on the same stack)."""
        wall, rss = run["wall_s"], run["peak_rss_mb"]
        compare = compare and replaced
        ratio = f"{replaced['wall_s'] / wall:.1f}x" if compare and wall else "-"
        cpu_ratio = f"{cpu(replaced) / cpu(run):.1f}x" if compare and cpu(run) else "-"
        rss_ratio = f"{rss / replaced['peak_rss_mb']:.2f}" if compare and rss else "-"
        rows.append([label, f"{wall:.1f}", f"{cpu(run):.1f}", f"{rss:.0f}", ratio, cpu_ratio, rss_ratio, note])

    if replaced:
        rows.append(
            [
                "replaced app (numbers_and_brightness 0.1.14)",
                f"{replaced['wall_s']:.1f}",
                f"{cpu(replaced):.1f}",
                f"{replaced['peak_rss_mb']:.0f}",
                "1.0x",
                "1.0x",
                "1.00",
                "reference",
            ]
        )
    for name, run in report.get("workflow", {}).items():
        row(
            f"brightflow workflow, bleach {run['bleach_method']} ({name})",
            run,
            f"rules' own wall sum {run['rules_wall_sum_s']:.1f} s",
        )
    floor = report.get("fixed_cost")
    if floor:
        rows.append(
            [
                f"fixed cost: the linear workflow on {floor['frames']} frames (same size and cells)",
                f"{floor['wall_s']:.1f}",
                f"{cpu(floor):.1f}",
                f"{floor['peak_rss_mb']:.0f}",
                f"{replaced['wall_s'] / floor['wall_s']:.1f}x" if replaced else "-",
                f"{cpu(replaced) / cpu(floor):.1f}x" if replaced else "-",
                "-",
                "the most speed-up this DAG allows for one experiment (no recording work left)",
            ]
        )
    batch = report.get("batch")
    if batch:
        reference = batch.get("replaced_app") or replaced
        count = batch["experiments"]

        def per_experiment(run):
            n = run.get("experiments", 1)
            return {"wall": run["wall_s"] / n, "cpu": cpu(run) / n}

        if batch.get("replaced_app"):
            each = per_experiment(batch["replaced_app"])
            rows.append(
                [
                    f"replaced app, {count} experiments in one process: per experiment",
                    f"{each['wall']:.1f}",
                    f"{each['cpu']:.1f}",
                    f"{batch['replaced_app']['peak_rss_mb']:.0f}",
                    "-",
                    "-",
                    "-",
                    f"whole run {batch['replaced_app']['wall_s']:.1f} s",
                ]
            )
        floor = batch.get("fixed_cost")
        if floor:
            each = per_experiment(floor)
            rows.append(
                [
                    f"fixed cost: {count} experiments of {floor['frames']} frames in one run, bleach linear: "
                    "per experiment",
                    f"{each['wall']:.1f}",
                    f"{each['cpu']:.1f}",
                    f"{floor['peak_rss_mb']:.0f}",
                    "-",
                    "-",
                    "-",
                    f"whole run {floor['wall_s']:.1f} s",
                ]
            )
        for name, run in batch["workflow"].items():
            each = per_experiment(run)
            speed = cpu_speed = "-"
            if reference:
                ref = per_experiment(reference)
                speed, cpu_speed = f"{ref['wall'] / each['wall']:.1f}x", f"{ref['cpu'] / each['cpu']:.1f}x"
            rows.append(
                [
                    f"brightflow, {count} experiments in one run, bleach {name}: per experiment",
                    f"{each['wall']:.1f}",
                    f"{each['cpu']:.1f}",
                    f"{run['peak_rss_mb']:.0f}",
                    speed,
                    cpu_speed,
                    "-",
                    f"whole run {run['wall_s']:.1f} s; ratios to the replaced app per experiment",
                ]
            )
    nb = report.get("nb_alone")
    if nb:
        dash = ["-"] * 5
        rows.append(
            ["read the stack once (sum, block by block)", f"{nb['read_once']['best_s']:.2f}", *dash, "page cache warm"]
        )
        rows.append(
            [
                "N&B maps compute alone",
                f"{nb['nb_compute']['best_s']:.2f}",
                *dash,
                f"{nb['nb_compute_over_read']}x read (target <= {TARGETS['nb_over_read']:.0f}x)",
            ]
        )
        rows.append(
            [
                "nb_maps rule script (compute + write maps)",
                f"{nb['nb_rule_script']['best_s']:.2f}",
                *dash,
                f"{nb['nb_rule_script_over_read']}x read",
            ]
        )
        if "default_fit_and_maps" in nb:
            rows.append(
                [
                    "default correction's fit + N&B maps (bleach_correction and nb_maps steps, in-process)",
                    f"{nb['default_fit_and_maps']['best_s']:.2f}",
                    *dash,
                    f"{nb['default_fit_and_maps_over_read']}x read",
                ]
            )
    dry = report.get("dry_run")
    if dry:
        rows.append(
            [
                f"dry run, {dry['experiments']} experiments ({dry['jobs']} jobs)",
                f"{dry['wall_s']:.1f}",
                f"{cpu(dry):.1f}",
                f"{dry['peak_rss_mb']:.0f}",
                "-",
                "-",
                "-",
                f"target < {TARGETS['dry_run_s']:.0f} s",
            ]
        )
    for name, run in report.get("flatness", {}).items():
        name = name if "," in str(name) else f"linear, T={name}"  # results written before both methods
        row(f"flatness: workflow, bleach {name}", run, f"largest rule {run['rules_max_rss_mb']} MB", compare=False)
    for name, run in report.get("memory_rules", {}).items():
        row(f"one job at a time (--cores 1): {name}", run, f"largest rule {run['rules_max_rss_mb']} MB", compare=False)
    return rows


HEADER = ["configuration", "wall s", "CPU s", "peak RSS MB", "wall speed-up", "CPU speed-up", "RSS / replaced", "note"]


def format_table(rows):
    widths = [max(len(str(r[i])) for r in rows + [HEADER]) for i in range(len(HEADER))]
    line = "  ".join(h.ljust(w) for h, w in zip(HEADER, widths, strict=False))
    out = [line, "-" * len(line)]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)) for r in rows]
    return "\n".join(out)


def target_verdicts(report):
    """One line per target of :data:`TARGETS` the report measured: the value, met or missed, by how much."""
    verdicts = []

    def verdict(name, value, target, unit, higher_is_better):
        met = value >= target if higher_is_better else value <= target
        factor = (target / value if higher_is_better else value / target) if value else float("inf")
        miss = "" if met else f", missed by {factor:.1f}x"
        relation = ">=" if higher_is_better else "<="
        verdicts.append(
            f"{name}: {value:.2f}{unit} (target {relation} {target:g}{unit}): {'met' if met else 'MISSED'}{miss}"
        )

    def cpu(run):
        return run["user_s"] + run["system_s"]

    batch = report.get("batch") or {}
    reference = batch.get("replaced_app")
    if reference:
        per_app = reference["wall_s"] / reference["experiments"]
        default = default_bleach_method()
        for method, key in ((default, "folder_speedup_default"), ("linear", "folder_speedup_linear")):
            run = batch["workflow"].get(method)
            if run:
                verdict(
                    f"folder of {batch['experiments']}, bleach {method}: speed-up per experiment",
                    per_app / (run["wall_s"] / batch["experiments"]),
                    TARGETS[key],
                    "x",
                    True,
                )
    if batch.get("fixed_cost"):
        verdict(
            f"fixed cost ({batch['fixed_cost']['frames']}-frame stacks, folder of {batch['experiments']}): "
            "CPU per experiment",
            cpu(batch["fixed_cost"]) / batch["experiments"],
            TARGETS["fixed_cost_cpu_s"],
            " s",
            False,
        )
    nb = report.get("nb_alone") or {}
    if "default_fit_and_maps_over_read" in nb:
        verdict(
            "default correction's fit + maps, in reads of the stack",
            nb["default_fit_and_maps_over_read"],
            TARGETS["fit_and_maps_over_read"],
            "x",
            False,
        )
    if "nb_compute_over_read" in nb:
        verdict(
            "N&B maps compute alone, in reads of the stack",
            nb["nb_compute_over_read"],
            TARGETS["nb_over_read"],
            "x",
            False,
        )
    runs = list(report.get("workflow", {}).values()) + list(report.get("flatness", {}).values())
    if runs:
        verdict(
            "largest rule's peak memory",
            max(run["rules_max_rss_mb"] for run in runs),
            TARGETS["peak_rss_mb"],
            " MB",
            False,
        )
    dry = report.get("dry_run")
    if dry:
        verdict(f"dry run of {dry['experiments']} experiments", dry["wall_s"], TARGETS["dry_run_s"], " s", False)
    return verdicts


def markdown(report, rows):
    lines = [
        f"# brightflow benchmark, {report['started']}",
        "",
        f"Stack: {report['frames']} x {SHAPE[0]} x {SHAPE[1]} uint16, seed {report['seed']}, "
        f"{report['cell_pixels']} cell pixels in 3 cells; snakemake --cores {report['cores']}.",
        f"Machine: {report['machine'].get('cpu', '?')}, {report['machine']['cpus']} CPUs, "
        f"{report['machine'].get('memory_gib', '?')} GiB.",
        f"Load average (1/5/15 min) before: {report['load_before']['1min']:.2f} / "
        f"{report['load_before']['5min']:.2f} / {report['load_before']['15min']:.2f}; after: "
        f"{report['load_after']['1min']:.2f} / {report['load_after']['5min']:.2f} / "
        f"{report['load_after']['15min']:.2f}.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    verdicts = target_verdicts(report)
    if verdicts:
        lines += ["", "Targets (issue 17, 2 cores):", ""] + [f"- {line}" for line in verdicts]
    runs = list(report.get("workflow", {}).items())
    if report.get("fixed_cost"):
        runs.append((f"fixed cost, {report['fixed_cost']['frames']} frames", report["fixed_cost"]))
    runs += [
        (f"batch of {report['batch']['experiments']}, {name}", run)
        for name, run in report.get("batch", {}).get("workflow", {}).items()
    ]
    runs += [(f"flatness, {name}", run) for name, run in report.get("flatness", {}).items()]
    runs += [(f"memory per rule, {name}, --cores 1", run) for name, run in report.get("memory_rules", {}).items()]
    for name, run in runs:
        lines += ["", f"Per rule ({name}): wall s from process start, CPU s (user + system), peak RSS MB", ""]
        lines += [
            f"- {r['script']}: {r['wall_s']:.2f} s wall, {r.get('cpu_s', float('nan')):.2f} s CPU, "
            f"{r['max_rss_mb']:.0f} MB"
            for r in run["rules"]
        ]
        if run.get("rule_benchmarks"):
            lines += ["", f"Per job ({name}), snakemake's benchmark records: wall s", ""]
            lines += [
                f"- {b['rule']}{' ' + b['unit'] if b['unit'] else ''}: {b['s']:.2f} s"
                for b in run["rule_benchmarks"]
                if b["s"] is not None
            ]
    if report.get("replaced_app"):
        lines += ["", f"Replaced app versions: {report['replaced_app']['versions']}"]
    return "\n".join(lines) + "\n"


PYINSTRUMENT_DIR = Path(os.environ.get("BRIGHTFLOW_BENCH_PYINSTRUMENT", "/tmp/bench-pyinstrument"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1000, help="frames T of the simulated stack (default 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cores", type=int, default=2, help="snakemake --cores (default 2)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=BENCH_DIR / "work",
        help="where stacks and runs go (default benchmarks/work, git-ignored)",
    )
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "results")
    parser.add_argument(
        "--with-replaced-app",
        action="store_true",
        help="also run numbers_and_brightness 0.1.14 in benchmarks/.venv-replaced",
    )
    parser.add_argument("--dry-run-experiments", type=int, default=500, help="0 skips the dry run")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the N&B-alone timings (best kept)")
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["workflow", "default", "nb", "dryrun"], help="parts to leave out"
    )
    parser.add_argument(
        "--flatness",
        action="store_true",
        help="also run the workflow (linear, and the default method unless --skip default) on "
        "1000 and 4000 frames and compare peak memory with T",
    )
    parser.add_argument(
        "--memory-rules",
        action="store_true",
        help="also run the workflow one job at a time (--cores 1) with bleach linear and the default "
        "method on the stack and on a zlib-compressed copy: each rule's peak memory",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="write a profile of every rule script (pyinstrument from "
        "$BRIGHTFLOW_BENCH_PYINSTRUMENT, else cProfile) to this folder",
    )
    parser.add_argument(
        "--fixed-cost-frames",
        type=int,
        default=10,
        help="frames of the stack for the fixed-cost run (the linear workflow on a recording of the "
        "same frame size and cells but almost no frames: what the DAG costs whatever the "
        "recording); 0 skips it",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=0,
        help="also run N experiments (the stack under N names) in one snakemake run, linear and "
        "the default method, and, with --with-replaced-app, the replaced app on N in one "
        "process: the cost per experiment when a folder is analysed",
    )
    parser.add_argument("--tag", default="", help="suffix of the results file names")
    parser.add_argument(
        "--from-json",
        type=Path,
        default=None,
        help="only print the table of a results JSON written before (and rewrite its .md)",
    )
    args = parser.parse_args(argv)

    if args.from_json:
        report = json.loads(args.from_json.read_text())
        rows = table_rows(report)
        print(format_table(rows))
        for line in target_verdicts(report):
            print(line)
        args.from_json.with_suffix(".md").write_text(markdown(report, rows))
        return

    started = datetime.datetime.now().isoformat(timespec="seconds")
    report = {
        "started": started,
        "frames": args.frames,
        "seed": args.seed,
        "cores": args.cores,
        "machine": machine(),
        "load_before": load_average(),
        "targets": TARGETS,
    }
    log(f"load average before: {report['load_before']}")
    args.workdir.mkdir(parents=True, exist_ok=True)
    stack, mask = prepare_data(args.workdir, args.frames, args.seed)
    report["cell_pixels"] = int(np.count_nonzero(cell_labels()))
    report["stack_mb"] = round(stack.stat().st_size / 2**20, 1)

    if "workflow" not in args.skip:
        report["workflow"] = {}
        methods = ["linear"]
        default = default_bleach_method()
        if "default" not in args.skip and default != "linear":
            methods.append(default)
        report["default_bleach_method"] = default
        for method in methods:
            name = f"{method}" + (" = default" if method == default else "")
            report["workflow"][name] = run_workflow(args.workdir, method, stack, mask, method, args.cores, args.profile)
    if args.fixed_cost_frames and "workflow" not in args.skip:
        short_stack, short_mask = prepare_data(args.workdir, args.fixed_cost_frames, args.seed)
        report["fixed_cost"] = run_workflow(args.workdir, "fixed_cost", short_stack, short_mask, "linear", args.cores)
        report["fixed_cost"]["frames"] = args.fixed_cost_frames
    if "nb" not in args.skip:
        model = args.workdir / "run_linear" / "results" / "bench" / "bleach_correction.json"
        if not model.exists():
            raise SystemExit(f"{model} missing: run without --skip workflow first")
        report["nb_alone"] = nb_versus_read(stack, model, args.repeats)
    if args.dry_run_experiments and "dryrun" not in args.skip:
        report["dry_run"] = dry_run(args.workdir, args.dry_run_experiments)
    if args.with_replaced_app:
        report["replaced_app"] = run_replaced_app(args.workdir, stack, mask)
    if args.batch:
        report["batch"] = {"experiments": args.batch, "workflow": {}}
        methods = ["linear"] + ([] if "default" in args.skip else [default_bleach_method()])
        for method in dict.fromkeys(methods):
            report["batch"]["workflow"][method] = run_workflow(
                args.workdir,
                f"batch{args.batch}_{method}",
                stack,
                mask,
                method,
                args.cores,
                experiments=args.batch,
            )
        if args.fixed_cost_frames:
            short_stack, short_mask = prepare_data(args.workdir, args.fixed_cost_frames, args.seed)
            report["batch"]["fixed_cost"] = run_workflow(
                args.workdir,
                f"batch{args.batch}_fixed_cost",
                short_stack,
                short_mask,
                "linear",
                args.cores,
                experiments=args.batch,
            )
            report["batch"]["fixed_cost"]["frames"] = args.fixed_cost_frames
        if args.with_replaced_app:
            report["batch"]["replaced_app"] = run_replaced_app(
                args.workdir, stack, mask, args.batch, f"replaced_batch{args.batch}"
            )
    if args.flatness:
        report["flatness"] = {}
        methods = ["linear"] + ([] if "default" in args.skip else [default_bleach_method()])
        for method in dict.fromkeys(methods):  # per-frame chunks (linear) and tiles of rows (default)
            for frames in (1000, 4000):
                flat_stack, flat_mask = prepare_data(args.workdir, frames, args.seed)
                report["flatness"][f"{method}, T={frames}"] = run_workflow(
                    args.workdir, f"flat{frames}_{method}", flat_stack, flat_mask, method, args.cores
                )
    if args.memory_rules:
        report["memory_rules"] = {}
        default = default_bleach_method()
        for label, path in (("uncompressed", stack), ("zlib", compressed_copy(stack))):
            for method in dict.fromkeys(["linear", default]):
                report["memory_rules"][f"{label}, {method}"] = run_workflow(
                    args.workdir, f"mem_{label}_{method}", path, mask, method, 1
                )
    report["load_after"] = load_average()
    log(f"load average after: {report['load_after']}")

    args.results.mkdir(parents=True, exist_ok=True)
    stem = f"benchmark-T{args.frames}" + (f"-{args.tag}" if args.tag else "")
    # the measurements first: the table can be made again from them with --from-json
    (args.results / f"{stem}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    rows = table_rows(report)
    print()
    print(format_table(rows))
    for line in target_verdicts(report):
        print(line)
    (args.results / f"{stem}.md").write_text(markdown(report, rows))
    print(f"\nwritten {args.results / (stem + '.json')} and .md")


if __name__ == "__main__":
    main()
