"""Cost of the brightness explorer (rule brightness_explorer): its wall time and page size, and what
it adds to the workflow's wall time.

    # the rule script alone, on 512 x 512 maps with the benchmark's three cells (76,107 cell pixels)
    PYTHONPATH=$PWD .venv/bin/python benchmarks/explorer_cost.py

    # also the workflow on the benchmark's stack (1000 x 512 x 512 uint16; simulated and cached by
    # run_benchmark.py's prepare_data on first use), with and without the rule, runs alternating
    PYTHONPATH=$PWD .venv/bin/python benchmarks/explorer_cost.py --workflow 3

- Rule script alone: ``scripts/brightness_explorer.py`` in a fresh Python process (interpreter
  start-up and imports included, as in a job; not snakemake's own script preamble), given the
  inputs snakemake would give it: the six maps as .npy (made with numpy from the benchmark's cell
  mask: cells of epsilon 1, 2 and 4, a background of 2 counts), ``analysis_labels.tif``, a
  calibrated ``segmentation_image.tif`` and the per-cell CSV. Wall time from before the process
  starts to its exit, ``--repeats`` times; the page's size in bytes.
- Workflow: ``python -m snakemake --cores 2`` on the repository's Snakefile, as run_benchmark.py
  runs it (sample sheet with the mask, ``segmentation.method: existing``, ``bleach_correction.method``
  ``--bleach``, default ``linear``), once with every output and once with ``--omit-from
  brightness_explorer``, alternating; both with ``--omit-from all`` (leaving out the target rule
  ``all``, after which snakemake takes about a second more to end: the run without the explorer
  leaves it out anyway, as it comes after the explorer), ``--workflow N`` times each after one
  warm-up run, each in a fresh folder; wall time under ``/usr/bin/time``, and the rule's own wall
  time from ``benchmarks/rule_probe``.

Writes ``benchmarks/results/explorer-cost[-<tag>].json`` and ``.md`` (``--results``, ``--tag``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent


def _sibling(name):
    """A module of this folder (run_benchmark.py: its stack and workflow runner), loaded from its file."""
    spec = importlib.util.spec_from_file_location(name, BENCH_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _sibling("run_benchmark")

#: Runs scripts/brightness_explorer.py as snakemake does (a ``snakemake`` object with input, output,
#: params, wildcards and log), in the process this is passed to with ``python -c``.
RUNNER = r"""
import os, runpy, sys
from types import SimpleNamespace
from brightflow.nb import MAP_NAMES as names
repo, folder = sys.argv[1], sys.argv[2]
snakemake = SimpleNamespace(
    input=SimpleNamespace(maps=[f"{folder}/{n}.npy" for n in names], labels=f"{folder}/analysis_labels.tif",
                          image=f"{folder}/segmentation_image.tif", cells=f"{folder}/average_values_in_roi.csv"),
    output=[f"{folder}/brightness_explorer.html"],
    params=SimpleNamespace(detector={"offset": 0.0, "s_factor": 1.0, "readout_variance": 0.0}),
    wildcards=SimpleNamespace(experiment="bench"), log=[], threads=1)
runpy.run_path(os.path.join(repo, "scripts", "brightness_explorer.py"), init_globals={"snakemake": snakemake},
               run_name="__main__")
"""


def write_maps(folder, seed=1):
    """The rule's inputs for the benchmark's cells: six 512 x 512 maps, labels and projection."""
    import tifffile

    from brightflow import nb, stats

    labels = bench.cell_labels()
    rng = np.random.default_rng(seed)
    epsilon = np.array([0.0, 1.0, 2.0, 4.0])[labels]
    number = np.array([0.0, 20.0, 12.0, 6.0])[labels]
    intensity = np.where(labels > 0, epsilon * number, bench.BACKGROUND) * rng.uniform(0.9, 1.1, labels.shape)
    variance = intensity * (1 + epsilon) * rng.gamma(50, 1 / 50, labels.shape)
    maps = nb.number_and_brightness(intensity, variance)
    for name, values in maps.items():
        np.save(folder / f"{name}.npy", values)
    stats.cell_table(maps, labels).to_csv(folder / "average_values_in_roi.csv", index=False)
    tifffile.imwrite(folder / "analysis_labels.tif", labels, imagej=True)
    tifffile.imwrite(
        folder / "segmentation_image.tif",
        intensity.astype(np.float32),
        imagej=True,
        resolution=(10.0, 10.0),
        metadata={"unit": "micron"},
    )
    return int((labels > 0).sum())


def rule_alone(repeats):
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        cell_pixels = write_maps(folder)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", RUNNER, str(REPO), str(folder)], check=True, env=env)
            times.append(round(time.perf_counter() - started, 2))
            bench.log(f"rule script alone: {times[-1]:.2f} s")
        size = (folder / "brightness_explorer.html").stat().st_size
    return {"cell_pixels": cell_pixels, "wall_s": times, "wall_s_median": statistics.median(times), "page_bytes": size}


def workflow_once(workdir, stack, mask, name, omit, bleach_method="linear"):
    import yaml

    run_dir = workdir / name
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    (run_dir / "samples.tsv").write_text(f"experiment\tpath\tmask\nbench\t{stack}\t{mask}\n")
    config = {
        "samples": str(run_dir / "samples.tsv"),
        "output_dir": "results",
        "segmentation": {"method": "existing"},
        "bleach_correction": {"method": bleach_method},
    }
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = bench.brightflow_env()
    env["BRIGHTFLOW_BENCH_RULES"] = str(run_dir / "rules.jsonl")
    command = bench.snakemake_command(run_dir, 2, "--configfile", run_dir / "config.yaml")
    # both runs leave out the target rule `all`: snakemake ends about a second later after running it
    # (measured), and --omit-from brightness_explorer leaves it out too, as it comes after the rule
    command += ["--omit-from", "all"] + (["brightness_explorer"] if omit else [])
    result = bench.timed(command, env=env, log_path=run_dir / "snakemake.out")
    if result["returncode"] != 0:
        raise SystemExit(f"workflow {name} failed: see {run_dir / 'snakemake.out'}")
    rules = [json.loads(line) for line in (run_dir / "rules.jsonl").read_text().splitlines()]
    explorer = [r["wall_s"] for r in rules if r["script"] == "brightness_explorer"]
    made = (run_dir / "results" / "bench" / "brightness_explorer.html").exists()
    if made == omit:
        raise SystemExit(f"workflow {name}: brightness_explorer.html {'made' if made else 'missing'}")
    bench.log(
        f"workflow {'without' if omit else 'with'} the explorer: {result['wall_s']:.2f} s wall"
        + (f" (rule {explorer[0]:.2f} s)" if explorer else "")
    )
    return {"wall_s": result["wall_s"], "explorer_rule_wall_s": explorer[0] if explorer else None}


def workflow_ab(workdir, runs, bleach_method):
    stack, mask = bench.prepare_data(workdir, 1000, 0)
    # the stack into the page cache; not counted
    workflow_once(workdir, stack, mask, "warm_up", omit=False, bleach_method=bleach_method)
    with_rule, without_rule = [], []
    for index in range(runs):
        without_rule.append(workflow_once(workdir, stack, mask, f"without_{index}", True, bleach_method))
        with_rule.append(workflow_once(workdir, stack, mask, f"with_{index}", False, bleach_method))
    median_without = statistics.median(r["wall_s"] for r in without_rule)
    # each run with the rule against the run without it just before: the machine's load changes
    # more between pairs than within one
    added = [round(w["wall_s"] - wo["wall_s"], 2) for w, wo in zip(with_rule, without_rule, strict=False)]
    return {
        "runs": runs,
        "bleach_method": bleach_method,
        "with": with_rule,
        "without": without_rule,
        "median_with_s": statistics.median(r["wall_s"] for r in with_rule),
        "median_without_s": median_without,
        "added_s": added,
        "median_added_s": statistics.median(added),
        "median_added_percent": round(100 * statistics.median(added) / median_without, 1),
    }


def markdown(report):
    rule = report["rule_alone"]
    lines = [
        f"# Brightness explorer cost ({report['date']})",
        "",
        f"Machine: {report['machine']}; load average before {report['load_before']}, after {report['load_after']}.",
        "",
        f"Rule script alone, 512 x 512 maps, {rule['cell_pixels']:,} cell pixels: "
        f"{', '.join(f'{t:.2f}' for t in rule['wall_s'])} s (median {rule['wall_s_median']:.2f} s); "
        f"page {rule['page_bytes'] / 1e6:.1f} MB ({rule['page_bytes']:,} bytes).",
    ]
    if "workflow" in report:
        flow = report["workflow"]
        lines += [
            "",
            f"Workflow, `bleach_correction.method: {flow['bleach_method']}`, `--cores 2`:",
            "",
            "| pair | without the explorer (s) | with (s) | added (s) | the rule's own wall time (s) |",
            "|---|---|---|---|---|",
        ]
        for index, (without, with_, added) in enumerate(
            zip(flow["without"], flow["with"], flow["added_s"], strict=False)
        ):
            lines.append(
                f"| {index + 1} | {without['wall_s']:.2f} | {with_['wall_s']:.2f} | {added:+.2f} | "
                f"{with_['explorer_rule_wall_s']:.2f} |"
            )
        lines += [
            "",
            f"Median without the explorer {flow['median_without_s']:.2f} s, "
            f"with {flow['median_with_s']:.2f} s; median of the pairs' differences "
            f"{flow['median_added_s']:+.2f} s "
            f"({flow['median_added_percent']:+.1f}% of the median without).",
        ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="runs of the rule script alone")
    parser.add_argument(
        "--workflow",
        type=int,
        default=0,
        metavar="N",
        help="also run the workflow N times with and N times without the rule",
    )
    parser.add_argument("--bleach", default="linear", help="bleach_correction.method of the workflow runs")
    parser.add_argument("--workdir", type=Path, default=BENCH_DIR / "work")
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "results")
    parser.add_argument("--tag", default="", help="written to explorer-cost-<tag>.json/.md")
    args = parser.parse_args(argv)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": bench.machine(),
        "load_before": bench.load_average(),
    }
    report["rule_alone"] = rule_alone(args.repeats)
    if args.workflow:
        report["workflow"] = workflow_ab(args.workdir, args.workflow, args.bleach)
    report["load_after"] = bench.load_average()
    args.results.mkdir(parents=True, exist_ok=True)
    stem = f"explorer-cost-{args.tag}" if args.tag else "explorer-cost"
    (args.results / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.results / f"{stem}.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
