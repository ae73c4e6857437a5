"""The automatic parameter of a bleach correction (Nolan et al. 2017, Bioinformatics 33:3508).

:func:`auto_parameter` simulates an immobile image with the data's per-frame
mean trace (each frame Poisson with that frame's mean, independent draws;
Nolan 2017) on a bounded number of pixels and finds the parameter at which the
detrended simulation has mean ``B = 1``. If the simulation's mean ``B`` is
already ``<= 1`` no detrending is needed and the method ``none`` is used.
"""

from __future__ import annotations

import numpy as np

from .. import compiled
from .robinhood import _best_swaps_naive
from .simulation import brightness_standard_error, mean_brightness, simulate_immobile
from .smoothing import detrend_smoothed, smooth

__all__ = ["AUTO_MAX_PIXELS", "AUTO_MAX_SWAPS", "AUTO_MAX_VALUES", "auto_parameter", "auto_sample_pixels"]

#: Largest number of pixels simulated for the automatic parameter.
AUTO_MAX_PIXELS = 2000
#: Largest number of simulated values (pixels x frames) for the automatic parameter.
AUTO_MAX_VALUES = 1_000_000
#: Largest expected number of swaps in one Robin Hood simulation (bounds its memory).
AUTO_MAX_SWAPS = 4_000_000
#: Number of simulations whose median gives the automatic Robin Hood swaps.
ROBINHOOD_AUTO_REPEATS = 5
#: ``auto`` (boxcar, exponential, polynomial) detrends only when the simulated immobile image's
#: mean B exceeds that of a trend-free simulation by more than this many standard errors.
AUTO_NOISE_STANDARD_ERRORS = 2.0
# Separate random streams (see brightflow.detrend.robinhood for the others).
_STREAM_AUTO, _STREAM_FLAT = 13, 14


def auto_sample_pixels(cell_pixels, frames, trace=None):
    """Number of simulated pixels: the cell pixels, bounded by :data:`AUTO_MAX_PIXELS`
    and by :data:`AUTO_MAX_VALUES` values in all (at least 100).

    With ``trace`` (Robin Hood), also bounded so that the expected number of
    possible swaps (the trend's imbalance plus Poisson noise, per pixel) stays
    below :data:`AUTO_MAX_SWAPS`, at least 20 pixels.
    """
    bound = min(AUTO_MAX_PIXELS, max(100, AUTO_MAX_VALUES // max(int(frames), 1)))
    if trace is not None:
        trace = np.asarray(trace, dtype=np.float64)
        level = max(float(trace.mean()), 0.0)
        per_pixel = float(np.maximum(trace - level, 0.0).sum()) + 0.4 * trace.size * np.sqrt(level)
        if per_pixel > 0:
            bound = min(bound, max(20, int(AUTO_MAX_SWAPS // per_pixel)))
    return int(max(1, min(int(cell_pixels), bound)))


def _search_record(value, brightness):
    return {"parameter": float(value), "mean_B": float(brightness)}


def _bisect_to_unit_brightness(brightness, lower, lower_b, upper, upper_b, method, smallest):
    """The parameter between ``lower`` and ``upper`` whose mean B is closest to 1 (Nolan 2017).

    ``brightness(parameter)`` is the mean B of the detrended simulation; it falls as the
    parameter falls (more severe detrending). When the search has not bracketed 1 yet
    (``lower == upper``, B above 1), ``lower`` is halved until B drops below 1, down to
    ``smallest``. Integer bounds (boxcar's half width) bisect on integers.
    """
    integer = isinstance(lower, (int, np.integer))
    if lower == upper:
        while lower_b > 1:
            lower = lower // 2 if integer else lower / 2
            if lower < smallest:
                raise ValueError(f"even the most severe {method} detrending leaves the simulated mean B above 1")
            lower_b = brightness(lower)
    while upper - lower > 1:
        middle = (lower + upper) // 2 if integer else (lower + upper) / 2
        middle_b = brightness(middle)
        if middle_b < 1:
            lower, lower_b = middle, middle_b
        elif middle_b > 1:
            upper, upper_b = middle, middle_b
        else:
            return middle
    return upper if abs(upper_b - 1) < abs(lower_b - 1) else lower


def _auto_boxcar(simulation, start):
    frames = simulation.shape[0]
    evaluations = []

    def brightness(half_width):
        if compiled.in_use():  # the same values (brightflow.compiled)
            detrended = compiled.boxcar_detrend(simulation, half_width)
        else:
            detrended = detrend_smoothed(simulation, smooth(simulation, "boxcar", half_width))
        value = mean_brightness(detrended)
        evaluations.append(_search_record(half_width, value))
        return value

    max_half_width = frames - 1
    upper = min(10, max_half_width)
    upper_b = brightness(upper)
    lower, lower_b = upper, upper_b
    while upper_b <= 1 and upper < max_half_width:
        lower, lower_b = upper, upper_b
        upper = min(max_half_width, 2 * upper)
        upper_b = brightness(upper)
    if upper_b <= 1:
        return upper, evaluations
    best = _bisect_to_unit_brightness(brightness, lower, lower_b, upper, upper_b, "boxcar", smallest=1)
    return best, evaluations


def _auto_exponential(simulation, start):
    evaluations = []

    def brightness(tau):
        value = mean_brightness(detrend_smoothed(simulation, smooth(simulation, "exponential", tau)))
        evaluations.append(_search_record(tau, value))
        return value

    upper = 100.0
    upper_b = brightness(upper)
    lower, lower_b = upper, upper_b
    steps = 0
    while upper_b <= 1:
        lower, lower_b = upper, upper_b
        upper *= 2
        upper_b = brightness(upper)
        steps += 1
        if steps > 40:
            return upper, evaluations
    best = _bisect_to_unit_brightness(brightness, lower, lower_b, upper, upper_b, "exponential", smallest=1e-3)
    return best, evaluations


def _auto_polynomial(simulation, start):
    frames = simulation.shape[0]
    evaluations = []
    lower, lower_b = 0, start
    max_degree = min(frames - 2, 30)
    for degree in range(1, max_degree + 1):
        value = mean_brightness(detrend_smoothed(simulation, smooth(simulation, "polynomial", degree)))
        evaluations.append(_search_record(degree, value))
        if value <= 1:
            return (degree if 1 - value < lower_b - 1 else lower), evaluations
        lower, lower_b = degree, value
    return max_degree, evaluations


def auto_parameter(trace, method, cell_pixels, seed=1):
    """The detrending parameter at which a simulated immobile image has mean ``B = 1``.

    Nolan et al. 2017 (detrendr's ``best_l``, ``best_tau``, ``best_degree``,
    ``best_swaps``): an immobile image with the data's per-frame mean
    ``trace`` is simulated (:func:`simulate_immobile`) on
    :func:`auto_sample_pixels` pixels, and

    - boxcar (from l = 10) and exponential (from tau = 100): double or halve to
      bracket mean ``B = 1``, then bisect (to 1 frame); the side closer to 1 wins;
    - polynomial: the degree whose mean ``B`` is closest to 1 (degrees from 1
      up to the first with ``B <= 1``);
    - robinhood: the number of swaps at which the simulation reaches mean
      ``B = 1``, minus the same estimate on a simulation of a trend-free trace
      (same mean, Poisson frame-to-frame noise of the real cell-pixel count),
      median over :data:`ROBINHOOD_AUTO_REPEATS` seeds each, floored at 0, and
      scaled from the simulated to the real number of cell pixels (the swaps
      per pixel are what matter).

    If the simulation's mean ``B`` is already ``<= 1`` no detrending is needed;
    brightflow also skips detrending when the simulation's mean ``B`` exceeds that
    of the same simulation without the trend (a flat trace at the data's mean) by
    no more than :data:`AUTO_NOISE_STANDARD_ERRORS` standard errors of the
    difference: such an excess is sampling noise, not a trend, and smoothing a
    trend-free series would only remove real variance. Robin Hood's estimate
    already subtracts the swaps of a trend-free simulation.

    Returns
    -------
    parameter : int, float or None
        None when no detrending is needed.
    info : dict
        How the parameter was found (simulated pixels, starting mean B, the
        search's evaluations or the Robin Hood estimates).
    """
    trace = np.asarray(trace, dtype=np.float64)
    frames = trace.size
    pixels = auto_sample_pixels(cell_pixels, frames, trace if method == "robinhood" else None)
    if method == "robinhood":
        naive, flat = [], []
        flat_trace_rng = np.random.default_rng([int(seed), _STREAM_FLAT])
        for repeat in range(ROBINHOOD_AUTO_REPEATS):
            naive.append(_best_swaps_naive(trace, pixels, np.random.default_rng([int(seed), _STREAM_AUTO, repeat])))
            flat_trace = flat_trace_rng.poisson(trace.mean() * cell_pixels, size=frames) / cell_pixels
            flat.append(
                _best_swaps_naive(flat_trace, pixels, np.random.default_rng([int(seed), _STREAM_FLAT, repeat]))
            )
        per_simulation = max(float(np.median(naive)) - float(np.median(flat)), 0.0)
        swaps = int(round(per_simulation * cell_pixels / pixels))
        info = {
            "simulated_pixels": pixels,
            "swaps_to_B1_on_simulation_with_trend": naive,
            "swaps_to_B1_on_trend_free_simulation": flat,
            "median_difference_on_simulation": per_simulation,
            "scaled_to_cell_pixels": int(cell_pixels),
        }
        if swaps == 0:
            info["note"] = "no detrending needed: the trend needs no more swaps than noise alone"
            return None, info
        return swaps, info
    rng = np.random.default_rng([int(seed), _STREAM_AUTO])
    simulation = simulate_immobile(trace, pixels, rng)
    start = mean_brightness(simulation)
    if not np.isfinite(start):
        raise ValueError("the cell pixels are too close to zero to simulate: every simulated value is 0")
    # the same simulation without the trend: its mean B differs from 1 only by noise and the
    # small upward bias of a variance-to-mean ratio, which the comparison cancels
    trend_free = simulate_immobile(np.full(frames, trace.mean()), pixels, np.random.default_rng([int(seed), _STREAM_FLAT]))
    baseline = mean_brightness(trend_free)
    standard_error = float(np.hypot(brightness_standard_error(simulation), brightness_standard_error(trend_free)))
    info = {
        "simulated_pixels": pixels,
        "simulated_mean_B_before": start,
        "trend_free_simulated_mean_B": baseline,
        "excess_standard_error": standard_error,
    }
    if start <= 1 or start - baseline <= AUTO_NOISE_STANDARD_ERRORS * standard_error:
        # Nolan et al. 2017 detrend when the simulation's mean B exceeds 1. An excess within the
        # noise of a trend-free simulation is no evidence of a trend, while detrending a
        # trend-free recording removes real variance (about 1/(2l+1) of it for a boxcar), so
        # brightflow leaves such a recording as it is.
        info["note"] = (
            f"no detrending needed: the simulated immobile image has mean B = {start:.4f}, the same "
            f"simulation without the trend {baseline:.4f}; the difference is within "
            f"{AUTO_NOISE_STANDARD_ERRORS:g} standard errors ({standard_error:.4f})"
        )
        return None, info
    search = {"boxcar": _auto_boxcar, "exponential": _auto_exponential, "polynomial": _auto_polynomial}[method]
    parameter, evaluations = search(simulation, start)
    info["search"] = evaluations
    if method == "polynomial" and parameter == 0:
        info["note"] = "no detrending needed: degree 0 (no fit) is closest to mean B = 1"
        return None, info
    return parameter, info
