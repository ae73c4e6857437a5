"""The automatic parameter of a bleach correction.

Two criteria.

**The leftover trend, against the standard error** (:func:`leftover_parameter`; brightflow's default,
with ``dof_correction``). Once the variance is divided by the smoother's residual degrees of freedom
(brightflow.detrend.dof), smoothing costs no accuracy, only a little precision (fewer degrees of
freedom); what can still bias ``B`` is bleaching the smoother leaves behind. For a pixel that follows
the cells' profile ``c`` with mean ``m``, the leftover ``G (I - S) c`` adds

    dB(m) = m * L,    L = || (I - J/T) G (I - S) c ||^2 / ((T - 1) <c>^2)

to its apparent brightness. ``L`` is measured on the cells' mean trace, whose own frame-to-frame
noise ``sigma^2`` would count as leftover: its expectation ``sigma^2 D`` (``D`` the residual degrees
of freedom) is subtracted, with ``sigma^2`` estimated from the trace's second differences (median
absolute deviation: robust to a jump). The parameter chosen is the least severe smoothing (largest
boxcar ``l``, largest exponential ``tau``, lowest polynomial degree) of a geometric ladder (ratio
2^(1/4)) whose leftover at the cells' mean intensity is at most
:data:`LEFTOVER_STANDARD_ERRORS` standard errors of the cells' mean ``B``,

    dB(<c>) <= 0.1 * B * sqrt(2 / ((T - 1) P))     (P cell pixels),

with ``B`` the apparent brightness of a seeded sample of up to 2,000 cell pixels, corrected without
bias (:func:`sample_brightness`): the data's own scale, 1 + epsilon for photon counts, S (1 + epsilon)
for an analog detector (the trace's own noise would overstate it by the pixels the PSF spans).

A recording without bleaching gets a window spanning the whole recording (the same as no
correction), one with bleaching a window narrow enough: every recording is corrected, and every
correction is unbiased, so siblings in one folder can no longer differ by a chance decision.

**detrendr's immobile simulation** (:func:`auto_parameter`; Nolan et al. 2017, Bioinformatics
33:3508: detrendr's ``best_l``, ``best_tau``, ``best_degree``, ``best_swaps``), used for Robin Hood
and, with ``dof_correction: false``, to reproduce detrendr's numbers: an immobile image with the
data's per-frame mean is simulated and the parameter at which the detrended simulation has mean
``B = 1`` is found. It balances detrending bias against leftover bleaching, and returns no
correction when the simulation's excess is within the noise of a trend-free one.
"""

from __future__ import annotations

import numpy as np

from . import dof
from .robinhood import _best_swaps_naive
from .simulation import brightness_standard_error, mean_brightness, simulate_immobile
from .smoothing import detrend_smoothed

__all__ = [
    "AUTO_MAX_PIXELS",
    "AUTO_MAX_SWAPS",
    "AUTO_MAX_VALUES",
    "LEFTOVER_STANDARD_ERRORS",
    "SevereTrendError",
    "auto_parameter",
    "auto_sample_pixels",
    "leftover_brightness",
    "leftover_parameter",
    "sample_brightness",
    "trace_noise_variance",
]

#: The leftover trend may add to the cells' mean B at most this many standard errors of it.
LEFTOVER_STANDARD_ERRORS = 0.1
#: Largest number of pixels simulated for detrendr's automatic parameter.
AUTO_MAX_PIXELS = 2000
#: Largest number of simulated values (pixels x frames) for detrendr's automatic parameter.
AUTO_MAX_VALUES = 1_000_000
#: Largest expected number of swaps in one Robin Hood simulation (bounds its memory).
AUTO_MAX_SWAPS = 4_000_000
#: Number of simulations whose median gives the automatic Robin Hood swaps.
ROBINHOOD_AUTO_REPEATS = 5
#: detrendr's criterion (boxcar, exponential, polynomial) detrends only when the simulated immobile
#: image's mean B exceeds that of a trend-free simulation by more than this many standard errors.
AUTO_NOISE_STANDARD_ERRORS = 2.0
# Separate random streams (see brightflow.detrend.robinhood for the others).
_STREAM_AUTO, _STREAM_FLAT = 13, 14


class SevereTrendError(ValueError):
    """Even the most severe detrending leaves detrendr's simulated mean B above 1."""


# --- the leftover criterion ---------------------------------------------------------------------


def trace_noise_variance(values):
    """Frame-to-frame noise variance of a smooth series plus white noise, from its second differences.

    ``x[t+1] - 2 x[t] + x[t-1]`` of white noise of variance ``sigma^2`` has variance ``6 sigma^2`` and
    removes a smooth trend to second order; the spread is the median absolute deviation scaled to a
    normal standard deviation (1.4826), so a jump in the series does not inflate it. Series under 10
    frames use the mean square instead.
    """
    values = np.asarray(values, dtype=np.float64)
    second = values[2:] - 2.0 * values[1:-1] + values[:-2]
    if second.size == 0:
        return 0.0
    if second.size < 8:
        return float(np.mean(second**2) / 6.0)
    spread = 1.4826 * np.median(np.abs(second - np.median(second)))
    return float(spread**2 / 6.0)


def leftover_brightness(trace, smoother):
    """The brightness the smoother's leftover trend adds at the cells' mean intensity, ``dB(<c>)``.

    Module docstring: ``(||(I - J/T) G (I - S) trace||^2 - sigma^2 D) / ((T - 1) <c>)``, with the
    gains of the smoother's own trend. Returns ``(dB, residual degrees of freedom, sigma^2)``.
    """
    trace = np.asarray(trace, dtype=np.float64)
    frames = trace.size
    trend = smoother.apply(trace)
    if not (trend > 0).all():
        return np.inf, np.nan, np.nan
    gains = np.sqrt(trace.mean() / trend)
    residual = gains * (trace - trend)
    squares = float(((residual - residual.mean()) ** 2).sum())
    degrees = float(dof.residual_dof(smoother, gains)[0])
    noise = trace_noise_variance(gains * trace)
    return (squares - noise * degrees) / ((frames - 1) * trace.mean()), degrees, noise


def sample_brightness(sample, trace):
    """The apparent brightness of a sample of cell pixels (ratio of means), bleaching removed without bias.

    The sample's series ``(t, n)`` are corrected with a boxcar of half-width 5 and the cells' gains, and
    their variance divided by its residual degrees of freedom (brightflow.detrend.dof): the B that N&B
    will find, in the data's own units (1 + epsilon for photon counts, S (1 + epsilon) for an analog
    detector, far more for counts that are not photons), which sets the scale of its standard error.
    """
    from .smoothing import BoxcarSmoother, _detrend_with_gains_in_place

    sample = np.asarray(sample, dtype=np.float64)
    trace = np.asarray(trace, dtype=np.float64)
    frames = trace.size
    smoother = BoxcarSmoother(frames, min(5, frames - 1))
    trend = smoother.apply(trace)
    if not (trend > 0).all():
        return float("nan")
    gains = np.sqrt(trace.mean() / trend)
    corrected = _detrend_with_gains_in_place(sample.copy(), smoother.apply(sample), gains)
    degrees = float(dof.residual_dof(smoother, gains)[0])
    variance = corrected.var(axis=0, ddof=0) * frames / degrees
    mean = corrected.mean(axis=0)
    finite = np.isfinite(variance) & np.isfinite(mean)
    total = float(mean[finite].sum())
    return float(variance[finite].sum() / total) if total > 0 else float("nan")


def leftover_parameter(trace, correction, cell_pixels, sample=None):
    """The least severe smoothing whose leftover trend is negligible (module docstring).

    Parameters
    ----------
    trace : ndarray, shape (t,)
        The cells' mean intensity per frame (> 0).
    correction : brightflow.detrend.methods.SmoothingCorrection
        The method: its smoother and its ladder of candidates, least severe first.
    cell_pixels : int
        Number of cell pixels ``P`` the trace is the mean of.
    sample : ndarray, shape (t, n), optional
        The series of a sample of cell pixels: the standard error is that of their apparent brightness
        :func:`sample_brightness` (the data's own scale); without it, that of B = 1 (photon counting).

    Returns
    -------
    parameter : int or float
    info : dict
        The criterion in words, the tolerance, the standard error, and every candidate's leftover.
    """
    trace = np.asarray(trace, dtype=np.float64)
    frames = trace.size
    brightness = 1.0 if sample is None else sample_brightness(sample, trace)
    if not np.isfinite(brightness) or brightness <= 0:
        brightness = 1.0
    standard_error = float(brightness * np.sqrt(2.0 / ((frames - 1) * max(int(cell_pixels), 1))))
    tolerance = LEFTOVER_STANDARD_ERRORS * standard_error
    info = {
        "criterion": (
            f"the least severe {correction.name} smoothing whose leftover bleaching trend adds at most "
            f"{LEFTOVER_STANDARD_ERRORS:g} standard errors of the cells' mean B to B at their mean intensity "
            "(the variance is divided by the smoother's residual degrees of freedom)"
        ),
        "apparent_brightness_of_cells": brightness,
        "standard_error_of_mean_B": standard_error,
        "tolerance": tolerance,
        "cell_pixels": int(cell_pixels),
        "search": [],
    }
    candidates = correction.candidates(frames)
    chosen = None
    for candidate in candidates:
        smoother = correction.smoother(frames, candidate)
        excess, degrees, noise = leftover_brightness(trace, smoother)
        info["search"].append(
            {
                "parameter": candidate,
                "leftover_B": float(excess),
                "residual_dof": degrees,
                "trace_noise_variance": noise,
            }
        )
        if excess <= tolerance:
            chosen = candidate
            break
    info["tolerance_met"] = chosen is not None
    if chosen is None:
        chosen = candidates[-1]
        excess = info["search"][-1]["leftover_B"]
        info["leftover_standard_errors"] = float(excess / standard_error)
        info["note"] = (
            f"even {correction.parameter_name} = {chosen}, the most severe setting tried, leaves a bleaching trend "
            f"that adds {excess:.3g} to B at the cells' mean intensity ({excess / standard_error:.3g} standard errors "
            f"of their mean B; the tolerance is {LEFTOVER_STANDARD_ERRORS:g}): it is used, the brightness may be high, "
            "and the per-cell Warnings say 'bleaching left'. Causes: a sudden change in the recording (a jump, a "
            "focus drift), or values far above photon counts (an analog detector: describe it with nb.detector, "
            "offset, s_factor and readout_variance, Dalal et al. 2008)"
        )
    elif chosen == candidates[0]:
        info["note"] = (
            f"no bleaching trend beyond the noise: {correction.parameter_name} = {chosen} is the least severe "
            "smoothing (for boxcar, a window over the whole recording: the same as no correction)"
        )
    return chosen, info


# --- detrendr's immobile simulation -------------------------------------------------------------


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
                raise SevereTrendError(f"even the most severe {method} detrending leaves the simulated mean B above 1")
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


def bracket_and_bisect(brightness, start, method, smallest, limit=None, max_doublings=None):
    """detrendr's search of a moving average's parameter: from ``start``, double until the detrended
    simulation's mean B exceeds 1 (up to ``limit``, or ``max_doublings`` times), then bisect
    (:func:`_bisect_to_unit_brightness`)."""
    upper = start
    upper_b = brightness(upper)
    lower, lower_b = upper, upper_b
    doublings = 0
    while upper_b <= 1 and (limit is None or upper < limit):
        lower, lower_b = upper, upper_b
        upper = 2 * upper if limit is None else min(limit, 2 * upper)
        upper_b = brightness(upper)
        doublings += 1
        if max_doublings is not None and doublings > max_doublings:
            return upper
    if upper_b <= 1:
        return upper
    return _bisect_to_unit_brightness(brightness, lower, lower_b, upper, upper_b, method, smallest)


def ascending_search(brightness, start, largest):
    """detrendr's search of a polynomial degree: degrees from 1 up to the first with mean B <= 1, the
    one closer to 1 of it and the one before (0: no fit, mean B ``start``)."""
    lower, lower_b = 0, start
    for degree in range(1, largest + 1):
        value = brightness(degree)
        if value <= 1:
            return degree if 1 - value < lower_b - 1 else lower
        lower, lower_b = degree, value
    return largest


def auto_parameter(trace, correction, cell_pixels, seed=1):
    """detrendr's automatic parameter: the one at which a simulated immobile image has mean ``B = 1``.

    Nolan et al. 2017 (detrendr's ``best_l``, ``best_tau``, ``best_degree``, ``best_swaps``): an
    immobile image with the data's per-frame mean ``trace`` is simulated
    (:func:`simulate_immobile`) on :func:`auto_sample_pixels` pixels and each method's search
    (``correction.detrendr_search``) finds the parameter. Robin Hood: the number of swaps at which
    the simulation reaches mean ``B = 1``, minus the same estimate on a simulation of a trend-free
    trace (same mean, Poisson frame-to-frame noise of the real cell-pixel count), median over
    :data:`ROBINHOOD_AUTO_REPEATS` seeds each, floored at 0, and scaled from the simulated to the
    real number of cell pixels.

    If the simulation's mean ``B`` is already ``<= 1`` no detrending is needed; brightflow also
    skips detrending when the simulation's mean ``B`` exceeds that of the same simulation without
    the trend by no more than :data:`AUTO_NOISE_STANDARD_ERRORS` standard errors of the difference.

    Parameters
    ----------
    correction : brightflow.detrend.methods.Correction
        A smoothing method, or Robin Hood (``correction.swap_plan``).

    Returns
    -------
    parameter : int, float or None
        None when no detrending is needed.
    info : dict
        How the parameter was found; ``note`` says why when it is None.
    """
    trace = np.asarray(trace, dtype=np.float64)
    if correction.swap_plan:
        return _robinhood_swaps(trace, cell_pixels, seed)
    frames = trace.size
    pixels = auto_sample_pixels(cell_pixels, frames)
    rng = np.random.default_rng([int(seed), _STREAM_AUTO])
    simulation = simulate_immobile(trace, pixels, rng)
    start = mean_brightness(simulation)
    if not np.isfinite(start):
        raise ValueError("the cell pixels are too close to zero to simulate: every simulated value is 0")
    # the same simulation without the trend: its mean B differs from 1 only by noise and the
    # small upward bias of a variance-to-mean ratio, which the comparison cancels
    trend_free = simulate_immobile(
        np.full(frames, trace.mean()), pixels, np.random.default_rng([int(seed), _STREAM_FLAT])
    )
    baseline = mean_brightness(trend_free)
    standard_error = float(np.hypot(brightness_standard_error(simulation), brightness_standard_error(trend_free)))
    info = {
        "simulated_pixels": pixels,
        "simulated_mean_B_before": start,
        "trend_free_simulated_mean_B": baseline,
        "excess_standard_error": standard_error,
    }
    if start <= 1 or start - baseline <= AUTO_NOISE_STANDARD_ERRORS * standard_error:
        info["note"] = (
            f"no detrending needed: the simulated immobile image has mean B = {start:.4f}, the same "
            f"simulation without the trend {baseline:.4f}; the difference is within "
            f"{AUTO_NOISE_STANDARD_ERRORS:g} standard errors ({standard_error:.4f})"
        )
        return None, info
    evaluations = []

    def brightness(parameter):
        smoothed = correction.smoother(frames, parameter).apply(simulation)
        value = mean_brightness(detrend_smoothed(simulation, smoothed))
        evaluations.append(_search_record(parameter, value))
        return value

    parameter = correction.detrendr_search(brightness, frames, start)
    info["search"] = evaluations
    if parameter == 0:
        info["note"] = "no detrending needed: degree 0 (no fit) is closest to mean B = 1"
        return None, info
    return parameter, info


def _robinhood_swaps(trace, cell_pixels, seed):
    frames = trace.size
    pixels = auto_sample_pixels(cell_pixels, frames, trace)
    naive, flat = [], []
    flat_trace_rng = np.random.default_rng([int(seed), _STREAM_FLAT])
    for repeat in range(ROBINHOOD_AUTO_REPEATS):
        naive.append(_best_swaps_naive(trace, pixels, np.random.default_rng([int(seed), _STREAM_AUTO, repeat])))
        flat_trace = flat_trace_rng.poisson(trace.mean() * cell_pixels, size=frames) / cell_pixels
        flat.append(_best_swaps_naive(flat_trace, pixels, np.random.default_rng([int(seed), _STREAM_FLAT, repeat])))
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
