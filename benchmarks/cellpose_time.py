"""Time cellpose segmentation of one mean projection, per image, for both cellpose generations.

Pretrained weights cannot be downloaded everywhere, so by default this times networks of the
real size with weights made here:

* cellpose 3: the tiny model the test suite trains (cellpose 3's full-size residual U-net, 50
  epochs on 16 simulated 128 x 128 fields; about a minute on 2 cores), on simulated fields of
  cells at its training diameter (no rescaling). The network's cost does not depend on its
  weights, so this is the time of any cellpose 3 model (cyto3 included) on an image of that size
  after rescaling.
* cellpose 4: Cellpose-SAM's network (304.6 M parameters) with seeded random weights, from a
  146 KiB partial state dict (cellpose 4 loads files non-strictly). The network's cost is that
  of ``cpsam``; random weights find no cells, so the mask reconstruction, which grows with the
  cells found, costs less than with trained weights (with ``cpsam`` it is a small share).

Each generation runs in its own environment: cellpose 4 in a child process with the overlay
(``.cellpose4``, ``make venv``) first on ``PYTHONPATH``, as the workflow's worker runs it.

Usage (from the repository root)::

    .venv/bin/python benchmarks/cellpose_time.py                          # both generations
    .venv/bin/python benchmarks/cellpose_time.py --generation 4 --sizes 128 240 --precisions float32 bfloat16
    .venv/bin/python benchmarks/cellpose_time.py --generation 4 --model ~/.cellpose/models/cpsam

Prints a Markdown table: generation, image size, device, precision, tiles, wall-clock and CPU
seconds of the network and masks per image (median of the repeats; the model is loaded once
before them), the worker's peak memory, cells found.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

#: The tiny model is trained on cells of about this diameter (pixels); fields are timed at it, so
#: the network sees the image at its full size (no rescaling).
TRAINING_DIAMETER = 19.0


def train_tiny_model(folder):
    """The test suite's tiny cellpose 3 model (tests/test_cellpose.py), saved in ``folder``; returns its path."""
    import torch
    from cellpose import models, train

    from brightflow import segment, simulate

    torch.manual_seed(0)
    images, labels = [], []
    for seed in range(16):
        rng = np.random.default_rng(1000 + seed)
        truth = simulate.cell_field((128, 128), 9, rng, touching_pairs=2)
        images.append(simulate.cell_field_projection(truth, rng, frames=50))
        labels.append(segment.relabel_sequential(truth))
    net = models.CellposeModel(gpu=False, pretrained_model=False, diam_mean=17.0)
    return train.train_seg(
        net.net, train_data=images, train_labels=labels, channels=[0, 0], n_epochs=50,
        batch_size=8, bsize=64, learning_rate=0.005, min_train_masks=1,
        save_path=str(folder), model_name="tiny_cells",
    )[0]  # fmt: skip


def random_cpsam(path):
    """A partial Cellpose-SAM state dict (``W2`` and the diameters): cellpose 4 builds the whole
    network, seeded by brightflow, and loads these keys over it."""
    import torch

    torch.save({"W2": torch.eye(192).reshape(192, 3, 8, 8), "diam_mean": torch.tensor([30.0]),
                "diam_labels": torch.tensor([30.0])}, path)  # fmt: skip
    return str(path)


def field(size, seed=7):
    """A simulated mean projection of ``size`` x ``size`` pixels, about one cell per 1000 pixels."""
    from brightflow import simulate

    rng = np.random.default_rng(seed)
    truth = simulate.cell_field((size, size), max(1, size * size // 1000), rng, touching_pairs=2)
    return simulate.cell_field_projection(truth, rng, frames=50)


def time_here(model, sizes, precisions, repeats, diameter, gpus, threads):
    """Rows of the table, timed in this process (its cellpose must be the model's generation)."""
    from brightflow import cellpose_adapter

    rows = []
    for size in sizes:
        image = field(size)
        for gpu in gpus:
            for precision in precisions:
                kwargs = dict(diameter=diameter, gpu=gpu, precision=precision, threads=threads)
                cellpose_adapter.segment(image, model, **kwargs)  # warm-up: loads torch's kernels
                walls, cpus = [], []
                for _ in range(repeats):
                    result = cellpose_adapter.segment(image, model, **kwargs)
                    walls.append(result.seconds["eval"])
                    cpus.append(result.seconds["eval_cpu"])
                rows.append({
                    "generation": result.model.generation, "size": size, "device": result.device,
                    "precision": result.precision, "tiles": result.tiles, "wall": statistics.median(walls),
                    "load": result.seconds["load"], "cpu": statistics.median(cpus), "cells": int(result.masks.max()),
                    "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                })  # fmt: skip
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--generation", type=int, choices=[3, 4], nargs="+", default=[3, 4])
    parser.add_argument("--sizes", type=int, nargs="+", help="default: 256 512 1024 (3), 128 240 (4)")
    parser.add_argument("--precisions", nargs="+", default=["auto"], help="cellpose 4: auto, bfloat16, float32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--model", help="a model file or a cached built-in name (default: made here)")
    parser.add_argument("--diameter", type=float, help="default: 19 (3, the tiny model's cells), 0 (4: no rescaling)")
    parser.add_argument("--overlay", default=str(REPO / ".cellpose4"), help="cellpose 4's overlay folder")
    parser.add_argument("--json", help=argparse.SUPPRESS)  # the child process's output file
    args = parser.parse_args()

    from brightflow import cellpose_adapter, cellpose_models, cellpose_worker

    if args.json:  # the child: one generation, in this process
        os.environ.setdefault("CELLPOSE_LOCAL_MODELS_PATH", tempfile.mkdtemp())
        model = cellpose_models.resolve_model(args.model)
        gpus = [False] + ([True] if cellpose_adapter.cuda_available() else [])
        diameter = args.diameter if args.diameter is not None else (TRAINING_DIAMETER if model.generation == 3 else 0)
        rows = time_here(model, args.sizes, args.precisions, args.repeats, diameter, gpus, args.threads)
        Path(args.json).write_text(json.dumps(rows))
        return

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for generation in args.generation:
            model = args.model
            if model is None and generation == 3:
                start = time.perf_counter()
                model = train_tiny_model(folder)
                print(f"trained the tiny model in {time.perf_counter() - start:.0f} s", file=sys.stderr)
            elif model is None:
                model = random_cpsam(Path(folder) / "random_cpsam.pt")
            sizes = args.sizes or ([256, 512, 1024] if generation == 3 else [128, 240])
            precisions = args.precisions if generation == 4 else ["float32"]
            output = Path(folder) / f"rows{generation}.json"
            command = [sys.executable, "-s", __file__, "--json", str(output), "--model", model, "--sizes",
                       *map(str, sizes), "--precisions", *precisions, "--repeats", str(args.repeats),
                       "--threads", str(args.threads)]  # fmt: skip
            if args.diameter is not None:
                command += ["--diameter", str(args.diameter)]
            env = cellpose_worker.worker_environment(generation, args.overlay)
            subprocess.run(command, env=env, check=True)
            rows += json.loads(output.read_text())

    import torch

    bf16 = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    print(f"\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
          f"{torch.__version__}, native CPU bfloat16: {'yes' if bf16 else 'no'}; {args.threads} threads\n")  # fmt: skip
    print(
        "| cellpose | image | device | precision | tiles | s per image | CPU s per image | model load s | peak MB | cells |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['generation']} | {row['size']} x {row['size']} | {row['device']} | {row['precision']} | "
              f"{row['tiles'] or '-'} | {row['wall']:.2f} | {row['cpu']:.1f} | {row['load']:.1f} | {row['peak_mb']:.0f} | "
              f"{row['cells']} |")  # fmt: skip


if __name__ == "__main__":
    main()
