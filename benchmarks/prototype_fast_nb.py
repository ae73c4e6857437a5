"""Prototype (benchmark only, not used by the workflow): a faster, memory-flat N&B pass.

Measures, each in its own process (so peak memory is its own), on one stack and
bleach model:

- ``current``: what the ``nb_maps`` rule does now (``stackio.open_stack`` memory
  map of the whole file, 64 MiB float64 chunks, ``detrend.correct_frames`` then
  ``nb.StreamingMoments.update``);
- ``candidate``: the same moments from (1) a fresh ``np.memmap`` per chunk of
  frames, dropped after use, so pages of the file already read leave the
  process's resident set (the whole-file memory map keeps them mapped: peak RSS
  grows with the number of frames); and (2) cache-sized blocks (64 frames x 16
  rows) processed in place in float32 in one reusable buffer, with the sums
  accumulated in float64 around a per-pixel shift (the first frame; Chan, Golub
  & LeVeque 1983), instead of four new float64 arrays per chunk;
- ``read``: reading the stack once (summing it chunk by chunk).

Usage::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/prototype_fast_nb.py STACK.tif bleach_correction.json

It prints the times (best of 3, page cache warm), each one's peak RSS, and the
largest relative difference of the candidate's mean and variance from the
current implementation's.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO))


def frame_blocks(path, frames_per_block=64):
    """Yield ``(start, block)``: a fresh read-only memory map of each run of frames.

    Only for an uncompressed TIFF whose frames are stored contiguously (what
    ``tifffile.memmap`` needs too). Dropping each block unmaps it, so the
    process's resident set stays at one block however long the stack is.
    """
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        offset, shape, dtype = page.dataoffsets[0], page.shape, page.dtype
        frames = len(tif.pages)
        contiguous = tif.series[0].dataoffset is not None
    if not contiguous:
        raise ValueError(f"{path}: frames are not stored contiguously")
    frame_bytes = int(np.prod(shape)) * dtype.itemsize
    for start in range(0, frames, frames_per_block):
        count = min(frames_per_block, frames - start)
        block = np.memmap(path, dtype=dtype, mode="r", offset=offset + start * frame_bytes, shape=(count,) + shape)
        yield start, block
        del block


def moments_blocked(path, frame_factors, ddof=1, frames_per_block=64, rows_per_block=16):
    """Per-pixel mean and variance of the corrected frames ``x_t * f_t`` in one streamed pass."""
    factors = np.asarray(frame_factors, dtype=np.float64)
    shift = None
    for _, block in frame_blocks(path, 1):
        shift = np.asarray(block[0], dtype=np.float32) * np.float32(factors[0])
        break
    height, width = shift.shape
    sums = np.zeros((height, width))
    sums_squares = np.zeros((height, width))
    buffer = np.empty((frames_per_block, rows_per_block, width), dtype=np.float32)
    count = 0
    for start, block in frame_blocks(path, frames_per_block):
        frames = block.shape[0]
        scale = factors[start : start + frames, None, None].astype(np.float32)
        for row in range(0, height, rows_per_block):
            stop = min(row + rows_per_block, height)
            values = buffer[:frames, : stop - row]
            np.copyto(values, block[:, row:stop])
            values *= scale
            values -= shift[row:stop]
            sums[row:stop] += values.sum(axis=0, dtype=np.float64)
            np.multiply(values, values, out=values)
            sums_squares[row:stop] += values.sum(axis=0, dtype=np.float64)
        count += frames
    mean = shift + sums / count
    variance = np.maximum(sums_squares - sums**2 / count, 0.0) / (count - ddof)
    return mean, variance


def current(path, model):
    import stackio
    from brightflow import detrend, nb

    stack = stackio.open_stack(path)
    moments = nb.StreamingMoments(stack.shape[1:])
    for start, stop in stackio.frame_chunks(stack.shape[0], stack.shape[1:]):
        moments.update(detrend.correct_frames(model, stack[start:stop], start))
    return moments.mean(), moments.variance(1)


def read_once(path):
    total = 0
    for _, block in frame_blocks(path):
        total += int(block.sum(dtype=np.uint64))
    return total


def measure(which, path, model_path):
    model = json.loads(Path(model_path).read_text())
    function = {
        "current": lambda: current(path, model),
        "candidate": lambda: moments_blocked(path, model["frame_factors"]),
        "read": lambda: read_once(path),
    }[which]
    function()  # page cache warm-up
    times = []
    for _ in range(3):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    if which != "read":
        np.save(os.environ["PROTOTYPE_OUT"] + f"_{which}.npy", np.stack(result))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"which": which, "best_s": round(min(times), 3), "peak_rss_mb": round(peak, 1)}))


def main():
    if len(sys.argv) == 4:
        measure(sys.argv[1], sys.argv[2], sys.argv[3])
        return
    path, model_path = sys.argv[1], sys.argv[2]
    out = f"/tmp/prototype_fast_nb_{os.getpid()}"
    results = {}
    for which in ("read", "current", "candidate"):
        line = subprocess.run(
            [sys.executable, __file__, which, path, model_path],
            env=dict(os.environ, PROTOTYPE_OUT=out), capture_output=True, text=True, check=True,
        ).stdout.strip().splitlines()[-1]
        results[which] = json.loads(line)
        print(line)
    reference, candidate = np.load(out + "_current.npy"), np.load(out + "_candidate.npy")
    difference = np.abs(candidate - reference) / np.abs(reference)
    print(
        f"candidate vs current: max relative difference mean {difference[0].max():.2e}, "
        f"variance {difference[1].max():.2e}; speed-up "
        f"{results['current']['best_s'] / results['candidate']['best_s']:.1f}x; "
        f"candidate / read {results['candidate']['best_s'] / results['read']['best_s']:.1f}x"
    )
    for suffix in ("_current.npy", "_candidate.npy"):
        os.unlink(out + suffix)


if __name__ == "__main__":
    main()
