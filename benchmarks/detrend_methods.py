"""Accuracy and time of each bleach correction method with automatic parameter.

Run by hand:  PYTHONPATH=. python benchmarks/detrend_methods.py
Stack: 64 x 64 pixels, 500 frames, 40% exponential bleach (brightflow.simulate);
immobile signal of 10 counts/frame (true B = 1) and mobile molecules with epsilon 2, n 5
(true epsilon = 2). Times: fitting (auto parameter) and applying on one tile, on this machine.
"""

import time

import numpy as np

from brightflow import detrend, nb, simulate

SHAPE, FRAMES, BLEACH = (64, 64), 500, 0.4


def run(stack, method):
    cells = np.ones(SHAPE, dtype=bool)
    start = time.perf_counter()
    model = detrend.fit_correction(detrend.cell_trace(stack, cells), method, "auto", 1, cells.sum())
    plan, _ = model.correction.plan(model, detrend.row_sums(stack, cells), 1)
    fitted = time.perf_counter()
    if model.correction.tiles:
        out = model.correct_tile(stack, slice(0, SHAPE[0]), cells, plan)
    else:
        out = model.correct_frames(stack)
    done = time.perf_counter()
    mean, variance = nb.pixel_mean_variance(out)
    variance *= model.variance_scale()[0]
    return model.parameter, float(np.nanmean(variance / mean)), fitted - start, done - fitted


def main():
    survival = simulate.exponential_bleach(FRAMES, BLEACH)
    immobile = simulate.immobile_stack(np.full(SHAPE, 10.0), FRAMES, np.random.default_rng(1), survival=survival)
    mobile = simulate.mobile_stack(np.full(SHAPE, 5.0), 2.0, FRAMES, np.random.default_rng(2), survival=survival)
    print("| method | parameter (immobile) | mean B immobile (true 1) | epsilon mobile (true 2) | fit s | apply s |")
    print("|---|---|---|---|---|---|")
    for method in detrend.METHODS:
        parameter, b_immobile, fit_s, apply_s = run(immobile, method)
        _, b_mobile, fit_m, apply_m = run(mobile, method)
        print(
            f"| {method} | {parameter} | {b_immobile:.3f} | {b_mobile - 1:.3f} | "
            f"{(fit_s + fit_m) / 2:.2f} | {(apply_s + apply_m) / 2:.2f} |"
        )


if __name__ == "__main__":
    main()
