"""Time cellpose segmentation of one mean projection, per image, on the CPU and (when torch sees one) the GPU.

Pretrained weights cannot be downloaded everywhere, so by default this trains the same tiny model
the test suite trains (cellpose's full-size network, 50 epochs on 16 simulated 128x128 fields;
about a minute on 2 cores) and times brightflow's cellpose adapter on new simulated fields of
cells. The network's cost does not depend on its weights, so the time per image is that of any
cellpose 3 model (cyto3 included) on an image of the same size after rescaling; the mask
reconstruction depends on how many cells are found, and the simulated fields are full of cells.
Give ``--model`` (a path or a cached built-in name) to time your own model instead.

Usage (from the repository root)::

    .venv/bin/python benchmarks/cellpose_time.py                 # 256, 512, 1024 pixel fields
    .venv/bin/python benchmarks/cellpose_time.py --sizes 512 --repeats 5 --model /path/to/model

Prints a Markdown table: image size, device, seconds per image (median of the repeats, after one
warm-up call that loads the model), cells found.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time

import numpy as np

from brightflow import cellpose_adapter, segment, simulate

#: The tiny model is trained on cells of about this diameter (pixels); fields are timed at it, so
#: the network sees the image at its full size (no rescaling).
TRAINING_DIAMETER = 19.0


def train_tiny_model(folder):
    """The test suite's tiny model (tests/test_cellpose.py), saved in ``folder``; returns its path."""
    import torch
    from cellpose import models, train

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


def field(size, seed=7):
    """A simulated mean projection of ``size`` x ``size`` pixels, about one cell per 1000 pixels."""
    rng = np.random.default_rng(seed)
    truth = simulate.cell_field((size, size), max(1, size * size // 1000), rng, touching_pairs=2)
    return simulate.cell_field_projection(truth, rng, frames=50)


def time_per_image(image, model, gpu, repeats, diameter):
    cellpose_adapter.segment(image, model, diameter=diameter, gpu=gpu)  # warm-up: loads the model
    times, cells = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        result = cellpose_adapter.segment(image, model, diameter=diameter, gpu=gpu)
        times.append(time.perf_counter() - start)
        cells = int(result.masks.max())
    return statistics.median(times), cells, result.device


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", help="a model file or a cached built-in name (default: train the tiny model)")
    parser.add_argument("--diameter", type=float, default=TRAINING_DIAMETER)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        os.environ.setdefault("CELLPOSE_LOCAL_MODELS_PATH", folder)
        model = args.model
        if model is None:
            start = time.perf_counter()
            model = train_tiny_model(folder)
            print(f"trained the tiny model in {time.perf_counter() - start:.0f} s")
        devices = [False] + ([True] if cellpose_adapter.cuda_available() else [])
        print(f"\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
              f"GPU: {'yes' if len(devices) > 1 else 'none'}\n")  # fmt: skip
        print("| image | device | s per image | cells found |")
        print("|---|---|---|---|")
        for size in args.sizes:
            image = field(size)
            for gpu in devices:
                seconds, cells, device = time_per_image(image, model, gpu, args.repeats, args.diameter)
                print(f"| {size} x {size} | {device} | {seconds:.2f} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
