"""Simulated immobile recordings and their mean apparent brightness (the automatic parameter's yardstick).

An immobile sample has, in each frame, independent Poisson counts whose mean follows the
recording's per-frame mean (Nolan et al. 2017, Bioinformatics 33:3508): its true apparent
brightness is 1, so a correction that leaves the simulation's mean ``B`` at 1 neither leaves
bleaching in nor removes real fluctuations.
"""

from __future__ import annotations

import numpy as np

__all__ = ["brightness_standard_error", "mean_brightness", "simulate_immobile", "stochastic_round"]


def stochastic_round(values, rng):
    """detrendr's rounding: floor plus a Bernoulli draw on the fraction, negatives set to 0.

    Not used by the workflow (it adds about ``1 / (6 <k>)`` to ``B``); kept to
    compare with detrendr.
    """
    values = np.asarray(values, dtype=np.float64)
    floor = np.floor(values)
    rounded = floor + (rng.random(values.shape) < (values - floor))
    return np.maximum(rounded, 0.0).astype(np.int64)


def brightness_standard_error(series):
    """Standard error of :func:`mean_brightness` over the pixels of ``series`` ``(t, pixels)``."""
    series = np.asarray(series, dtype=np.float64)
    mean = series.mean(axis=0)
    valid = mean > 0
    if valid.sum() < 2:
        return float("nan")
    brightness = series[:, valid].var(axis=0, ddof=1) / mean[valid]
    return float(brightness.std(ddof=1) / np.sqrt(valid.sum()))


def mean_brightness(series, mean=None):
    """Mean over pixels of ``B = var / mean`` (ddof = 1) of series ``(t, pixels)``.

    Pixels with a zero mean are left out. ``mean`` may give the known pixel
    means (Robin Hood keeps them).
    """
    series = np.asarray(series, dtype=np.float64)
    mean = series.mean(axis=0) if mean is None else mean
    variance = ((series - mean) ** 2).sum(axis=0) / (series.shape[0] - 1)
    valid = mean > 0
    if not valid.any():
        return float("nan")
    return float(np.mean(variance[valid] / mean[valid]))


def simulate_immobile(trace, pixels, rng):
    """An immobile image with the per-frame mean ``trace``: ``(t, pixels)`` Poisson counts.

    Each frame is Poisson with that frame's mean, independent across frames
    and pixels (Nolan et al. 2017): the true brightness is ``B = 1``, so any
    excess is the trend's.
    """
    trace = np.maximum(np.asarray(trace, dtype=np.float64), 0.0)
    return rng.poisson(trace[:, None], size=(trace.size, int(pixels)))
