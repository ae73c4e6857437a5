"""Bleach correction (detrending) of a time series before N&B.

Photobleaching adds a slow trend to every pixel. Left in, it inflates the
temporal variance and so the apparent brightness ``B``. The methods here follow
Nolan et al. 2017 and the R package detrendr by the same authors:

    Nolan, R., Alvarez, L. A. J., Elegheert, J., Iliopoulou, M., Jakobsdottir,
    G. M., Rodriguez-Munoz, M., Aricescu, A. R. & Padilla-Parra, S. (2017).
    nandb -- number and brightness in R with a novel automatic detrending
    algorithm. *Bioinformatics* 33(21), 3508-3510. doi:10.1093/bioinformatics/btx434

A correction is described by a small *model*, a JSON-serialisable dict made by
:func:`fit_correction` from the per-frame mean of the cell pixels. The N&B step
applies it while streaming the stack; no corrected stack is ever written.

Methods
-------
``none``
    Frames are used as recorded.
``linear``
    The replaced app's method: a straight line is fitted to the mean intensity
    of the cell pixels per frame and frame ``t`` is multiplied by
    ``fit(0) / fit(t)``. This is **biased** for N&B: scaling a frame by ``c``
    scales its mean by ``c`` but its variance by ``c^2``, so for pure shot noise
    the apparent brightness becomes about ``mean(c)`` instead of 1 (Nolan et
    al. 2017). It is kept only to reproduce the replaced app's numbers.
``boxcar``, ``exponential``, ``polynomial``
    Each pixel's time series ``x`` is smoothed into a trend ``s`` (see
    :func:`smooth`) and corrected to ``x' = m + (x - s) sqrt(m / s)`` with ``m``
    the pixel's mean (:func:`detrend_smoothed`). The pixel mean is kept and the
    fluctuations are rescaled to the Poisson level of the mean, so shot noise
    keeps ``B = 1``. These work per pixel, on every pixel of the image.
``robinhood``
    Counts are moved from frames brighter than the mean to frames dimmer than
    it, each count staying in its pixel (Nolan et al. 2018; detrendr's
    ``img_detrend_robinhood``). Pixel sums and integer counts are preserved
    exactly. It works on the cell pixels (``mask > 0``, or every pixel when
    the mask is empty); the other pixels are left as recorded.

    Known bias (measured, see README.md, "Bleach correction"): choosing the pixel in
    proportion to its count in the giving frame picks upward fluctuations
    preferentially (size-biased choice: ``E[x | chosen] = m + B``), so each
    swap removes about ``2 epsilon`` more variance from a mobile pixel than
    from an immobile one, which the immobile calibration does not undo.
    Brightness ``epsilon`` comes out low by about twice the fraction of counts
    moved: about 3% for a 10% bleach, 7-9% for 20%, 8-12% for 40%. The
    smoothing methods stay within about 2.5% at 40%; ``boxcar`` is therefore
    brightflow's default.

Rounding
--------
detrendr rounds the smoothing corrections stochastically to integers (floor
plus a Bernoulli draw on the fraction). brightflow does **not**: the corrected
values stay real numbers (float64), negative values included, because they are
only fed to the moment calculation and never written as an image. Stochastic
rounding adds a variance ``p (1 - p)`` per value (about 1/6 count^2 on average),
which biases ``B`` upward by about ``1 / (6 <k>)`` -- 0.03 at 5 counts per
frame. :func:`stochastic_round` implements detrendr's rounding for comparison;
the workflow does not use it.

Streaming design
----------------
The smoothing methods need each pixel's whole time series. The N&B rule reads
*tiles of pixel rows across all frames* (``stack[:, rows, :]``, a slice of the
memory map) sized by a memory budget, corrects each tile with
:func:`correct_tile` and feeds the moments accumulator. A tile result does not
depend on the tiling (every pixel is corrected on its own).

Robin Hood needs whole-frame random choices (which frames give, which take,
which pixels). To keep the result independent of the tiling and the memory
bounded, the choices are split in two levels with the same probability law as
one global draw:

1. The bleach-correction rule, which knows the per-frame, per-row sums of the
   cell pixels, makes the *swap plan* (:func:`robinhood_plan`): how many counts
   each pixel row gives up in each frame and how many it receives in each frame
   (an int32 array ``(rows, 2, frames)``, stored beside the JSON model as
   ``bleach_correction_swaps.npy``). Drawing the rows of the lost counts with a
   multivariate hypergeometric law on the row sums, then the pixels within a
   row the same way on the pixel counts, is exactly the law of drawing pixels
   in proportion to their counts over the whole frame; splitting the taking
   frames between rows the same way is exactly a uniformly random matching of
   lost counts to taking frames.
2. The N&B rule applies the plan row by row (:func:`robinhood_apply`), with a
   random generator seeded by ``(seed, row)``, so any tile size gives
   bit-identical results.

Automatic parameter
-------------------
:func:`auto_parameter` simulates an immobile image with the data's per-frame
mean trace (each frame Poisson with that frame's mean, independent draws;
Nolan 2017) on a bounded number of pixels and finds the parameter at which the
detrended simulation has mean ``B = 1``. If the simulation's mean ``B`` is
already ``<= 1`` no detrending is needed and the method ``none`` is used.
"""

from __future__ import annotations

import numpy as np

from . import parallel

__all__ = [
    "METHODS",
    "SMOOTHING_METHODS",
    "TILE_METHODS",
    "cell_trace",
    "row_sums",
    "smooth",
    "exponential_half_width",
    "detrend_smoothed",
    "stochastic_round",
    "mean_brightness",
    "simulate_immobile",
    "auto_sample_pixels",
    "auto_parameter",
    "robinhood_frame_budget",
    "robinhood_plan",
    "robinhood_apply",
    "robinhood_corrected_sums",
    "fit_correction",
    "correct_frames",
    "frame_scale",
    "correct_series",
    "correct_tile",
    "corrected_trace",
]

METHODS = ("none", "linear", "boxcar", "exponential", "polynomial", "robinhood")
#: Methods that smooth each pixel's time series (need every frame of a pixel at once).
SMOOTHING_METHODS = ("boxcar", "exponential", "polynomial")
#: Methods the N&B rule applies on tiles of pixel rows across all frames.
TILE_METHODS = SMOOTHING_METHODS + ("robinhood",)
#: Exponential filter weights below this fraction of the largest are dropped (detrendr's cutoff).
EXPONENTIAL_CUTOFF = 0.05
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
#: Values (frames x pixels) that :func:`correct_series` smooths and corrects at a time (8 MiB of
#: float64): a block that stays in the CPU cache through the dozen passes, and several blocks
#: per tile of rows for the threads.
SERIES_BLOCK_VALUES = 2**20
# Separate random streams, so that each random step has its own reproducible generator.
_STREAM_PLAN, _STREAM_ROW, _STREAM_AUTO, _STREAM_FLAT = 11, 12, 13, 14
_HYPERGEOMETRIC_LIMIT = 10**9


# --- traces -------------------------------------------------------------------------------------


def _cells(mask, shape):
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != tuple(shape):
        raise ValueError(f"the cell mask has shape {mask.shape} but the frames are {tuple(shape)}")
    return mask if mask.any() else np.ones(mask.shape, dtype=bool)


def cell_trace(frames, mask):
    """Mean intensity of the pixels where ``mask`` is true, per frame.

    Parameters
    ----------
    frames : ndarray, shape (t, y, x)
    mask : ndarray of bool, shape (y, x)
        Cell pixels. An empty mask uses every pixel.
    """
    frames = np.asarray(frames)
    cells = _cells(mask, frames.shape[1:])
    return frames[:, cells].mean(axis=1, dtype=np.float64)


def row_sums(frames, mask):
    """Sum of the cell pixels of each pixel row in each frame, shape ``(t, y)``.

    Integer stacks give int64 sums (exact), others float64. An empty mask uses
    every pixel. The per-frame mean of the cell pixels is
    ``row_sums(...).sum(axis=1) / mask.sum()``. Only the cell pixels are read
    and converted (rows without cells sum to 0).
    """
    frames = np.asarray(frames)
    cells = _cells(mask, frames.shape[1:])
    dtype = np.int64 if np.issubdtype(frames.dtype, np.integer) else np.float64
    sums = np.zeros((frames.shape[0], cells.shape[0]), dtype=dtype)
    per_row = cells.sum(axis=1)
    rows = np.flatnonzero(per_row)
    if rows.size and frames.shape[0]:
        values = frames[:, cells]  # (t, cell pixels), in row-major order: row by row
        starts = np.concatenate([[0], np.cumsum(per_row[rows])[:-1]])
        sums[:, rows] = np.add.reduceat(values, starts, axis=1, dtype=dtype)
    return sums


# --- smoothing (Nolan 2017) ---------------------------------------------------------------------


def exponential_half_width(tau, frames):
    """Half-width ``l = min(floor(-tau ln 0.05), 2T - 3)`` of the exponential filter (detrendr)."""
    return int(min(np.floor(-tau * np.log(EXPONENTIAL_CUTOFF)), 2 * frames - 3))


def _boxcar(series, half_width):
    """Moving average of half-width ``l`` along axis 0, truncated and renormalised at the ends.

    From one running (cumulative) sum: the window sum of frame ``t`` is
    ``c[min(t + l, T - 1)] - c[t - l - 1]`` (``c[-1] = 0``), written into one new
    array with slices (two float64 arrays of the series' size in all). The running
    sum is accumulated in place frame by frame: the same additions in the same
    order as ``np.cumsum(axis=0)``, which is about ten times slower along the
    first axis of a large array.
    """
    frames = series.shape[0]
    half_width = int(min(half_width, 2 * frames - 3))
    running = np.array(series, dtype=np.float64)
    steps = running.reshape(frames, -1)  # a view: one row per frame
    for index in range(1, frames):
        np.add(steps[index], steps[index - 1], out=steps[index])
    h = half_width
    window = np.empty_like(running)
    starts_inside = min(h + 1, frames)  # t < h + 1: the window starts at frame 0 (c[t - l - 1] = 0)
    ends_inside = max(0, frames - h)  # t < T - l: the window ends at frame t + l
    both = min(starts_inside, ends_inside)
    window[:both] = running[h : h + both]
    window[ends_inside:starts_inside] = running[-1]  # empty unless 2l + 1 > T
    if ends_inside > h + 1:
        np.subtract(running[2 * h + 1 : h + ends_inside], running[: ends_inside - h - 1],
                    out=window[h + 1 : ends_inside])
    tail = max(h + 1, ends_inside)
    if tail < frames:
        np.subtract(running[-1], running[tail - h - 1 : frames - h - 1], out=window[tail:])
    del running
    index = np.arange(frames)
    width = np.minimum(index + half_width + 1, frames) - np.maximum(index - half_width, 0)
    window /= width.reshape((-1,) + (1,) * (series.ndim - 1))
    return window


def _one_sided_exponential(series, decay, half_width):
    """``sum_{i=0..l} decay^i x[t - i]`` with ``x`` zero before the first frame."""
    from scipy.signal import lfilter  # imported here: only the exponential method needs scipy

    full = lfilter([1.0], [1.0, -decay], series, axis=0)
    frames = series.shape[0]
    if half_width + 1 < frames:
        out = full.copy()
        out[half_width + 1 :] -= decay ** (half_width + 1) * full[: frames - half_width - 1]
        return out
    return full


def _exponential(series, tau):
    frames = series.shape[0]
    half_width = exponential_half_width(tau, frames)
    if half_width < 1:
        return series.copy()
    decay = np.exp(-1.0 / tau)

    def weighted_sum(values):
        forward = _one_sided_exponential(values, decay, half_width)
        backward = _one_sided_exponential(values[::-1], decay, half_width)[::-1]
        return forward + backward - values

    weights = weighted_sum(np.ones(frames)).reshape((-1,) + (1,) * (series.ndim - 1))
    return weighted_sum(series) / weights


def _polynomial(series, degree):
    frames = series.shape[0]
    degree = int(degree)
    if degree >= frames:
        raise ValueError(f"a polynomial of degree {degree} needs more than {degree} frames, got {frames}")
    from numpy.polynomial import legendre

    scaled_time = np.linspace(-1.0, 1.0, frames)
    basis, _ = np.linalg.qr(legendre.legvander(scaled_time, degree))
    flat = series.reshape(frames, -1)
    return (basis @ (basis.T @ flat)).reshape(series.shape)


def smooth(series, method, parameter):
    """The trend of each time series along axis 0 (Nolan et al. 2017; detrendr).

    Parameters
    ----------
    series : array_like, shape (t, ...)
        One time series per trailing index (e.g. ``(t, y, x)`` or ``(t, pixels)``).
    method : {'boxcar', 'exponential', 'polynomial'}
    parameter : number
        ``boxcar``: half-width ``l`` in frames (window ``2l + 1``, integer part
        used). ``exponential``: time constant ``tau`` in frames, weights
        ``exp(-|i| / tau)`` for ``|i| <= l = min(floor(-tau ln 0.05), 2T - 3)``.
        ``polynomial``: degree of a least-squares fit in time per series,
        computed in a Legendre basis on time scaled to [-1, 1] (orthonormalised
        by QR), which stays well conditioned at high degrees.

    Returns
    -------
    ndarray of float64, same shape
        For the moving averages the window is truncated at the series ends and
        the remaining weights renormalised to sum to 1.
    """
    series = np.asarray(series, dtype=np.float64)
    if method == "boxcar":
        half_width = int(parameter)
        if half_width < 1:
            raise ValueError(f"the boxcar half-width must be at least 1 frame, got {parameter}")
        return _boxcar(series, half_width)
    if method == "exponential":
        if not parameter > 0:
            raise ValueError(f"the exponential time constant tau must be > 0, got {parameter}")
        return _exponential(series, float(parameter))
    if method == "polynomial":
        if int(parameter) != parameter or parameter < 1:
            raise ValueError(f"the polynomial degree must be a whole number >= 1, got {parameter}")
        return _polynomial(series, int(parameter))
    raise ValueError(f"{method!r} is not a smoothing method; use one of {SMOOTHING_METHODS}")


def detrend_smoothed(series, smoothed):
    """Correct each time series with its trend: ``x' = m + (x - s) sqrt(m / s)``.

    ``m`` is the series mean along axis 0 and ``s`` the trend, clipped at 0
    from below; where ``m / s`` is not finite the factor is 1 (Nolan et al.
    2017; detrendr's ``img_detrend_smoothed``). The mean of each series is kept
    and its fluctuations are rescaled to the Poisson level of the mean, so pure
    shot noise keeps ``B = 1``.

    The result is **not rounded**: float64 values, negatives kept (see the
    module docstring, "Rounding").
    """
    series = np.array(series, dtype=np.float64)
    trend = np.array(smoothed, dtype=np.float64)
    return _detrend_smoothed_in_place(series, trend)


def _detrend_smoothed_in_place(series, trend):
    """:func:`detrend_smoothed` written over ``series`` (float64), using ``trend`` (float64) as
    scratch: the same operations in the same order, so the same values, without temporaries."""
    np.maximum(trend, 0.0, out=trend)
    mean = series.mean(axis=0)
    series -= trend
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(mean, trend, out=trend)
        np.sqrt(trend, out=trend)
    trend[~np.isfinite(trend)] = 1.0
    series *= trend
    series += mean
    return series


def stochastic_round(values, rng):
    """detrendr's rounding: floor plus a Bernoulli draw on the fraction, negatives set to 0.

    Not used by the workflow (it adds about ``1 / (6 <k>)`` to ``B``); kept to
    compare with detrendr.
    """
    values = np.asarray(values, dtype=np.float64)
    floor = np.floor(values)
    rounded = floor + (rng.random(values.shape) < (values - floor))
    return np.maximum(rounded, 0.0).astype(np.int64)


# --- brightness of a simulation -----------------------------------------------------------------


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


# --- Robin Hood (Nolan et al. 2018; detrendr img_detrend_robinhood) -----------------------------


def _draw_without_replacement(colours, count, rng):
    """Multivariate hypergeometric draw of ``count`` units from boxes holding ``colours`` units.

    Exact; above numpy's limit (10^9 units in a box or in the rest) a box's
    share falls back to a binomial draw clipped to what is feasible, which
    differs from the hypergeometric law by less than count / total.
    """
    colours = np.asarray(colours, dtype=np.int64)
    count = int(count)
    if count == 0:
        return np.zeros(colours.shape, dtype=np.int64)
    total = int(colours.sum())
    if count > total:
        raise ValueError(f"cannot draw {count} units from {total}")
    if total < _HYPERGEOMETRIC_LIMIT:
        return rng.multivariate_hypergeometric(colours, count).astype(np.int64)
    out = np.zeros(colours.shape, dtype=np.int64)
    remaining_total, remaining = total, count
    for index in np.flatnonzero(colours):
        if remaining == 0:
            break
        good = int(colours[index])
        bad = remaining_total - good
        if good < _HYPERGEOMETRIC_LIMIT and bad < _HYPERGEOMETRIC_LIMIT:
            taken = int(rng.hypergeometric(good, bad, remaining)) if bad else remaining
        else:
            taken = int(rng.binomial(remaining, good / remaining_total))
            taken = min(max(taken, remaining - bad), good, remaining)
        out[index] = taken
        remaining -= taken
        remaining_total -= good
    return out


def _round_with_leftovers(values, rng):
    """Integer parts plus ``floor(sum of fractions)`` extra units, given to entries in
    proportion to their fraction (at most one each), as detrendr does."""
    base = np.floor(values)
    fraction = values - base
    extra = int(np.floor(fraction.sum() + 1e-9))
    base = base.astype(np.int64)
    if extra > 0:
        chosen = rng.choice(values.size, size=extra, replace=False, p=fraction / fraction.sum())
        base[chosen] += 1
    return base


def robinhood_frame_budget(frame_sums, rng):
    """Counts each frame can give and take: ``w_t = S_t - mean(S)``.

    Returns ``(give, take)`` integer arrays: ``give`` the positive part of
    ``w`` and ``take`` the positive part of ``-w``, each rounded with
    :func:`_round_with_leftovers` (Nolan et al. 2018; detrendr).
    """
    frame_sums = np.asarray(frame_sums, dtype=np.float64)
    weights = frame_sums - frame_sums.mean()
    return (
        _round_with_leftovers(np.maximum(weights, 0.0), rng),
        _round_with_leftovers(np.maximum(-weights, 0.0), rng),
    )


def robinhood_plan(sums, swaps, seed):
    """The Robin Hood swap plan from the per-frame, per-row sums of the cell pixels.

    A swap removes one count from a pixel of a giving frame (a frame whose sum
    of cell pixels is above the mean), the pixel chosen in proportion to its
    count, and adds it to the same pixel in a taking frame (below the mean).
    This function draws, for ``swaps`` swaps, which frames give and take
    (without replacement from their budgets, :func:`robinhood_frame_budget`)
    and how many of the counts given and taken in each frame fall in each
    pixel row; :func:`robinhood_apply` then chooses the pixels within a row.
    The two levels together have the law of choosing pixels over whole frames
    (see the module docstring).

    Parameters
    ----------
    sums : ndarray of int, shape (t, y)
        :func:`row_sums` of the stack on the cell pixels.
    swaps : int
        Number of swaps wanted; at most the smaller of the total give and take
        budgets is done.
    seed : int

    Returns
    -------
    plan : ndarray of int32, shape (y, 2, t)
        ``plan[r, 0, t]`` counts row ``r`` gives up in frame ``t``,
        ``plan[r, 1, t]`` counts it receives in frame ``t``. Each row gives as
        many as it receives.
    info : dict
        ``swaps_done`` and ``max_swaps``.
    """
    sums = np.asarray(sums)
    if not np.issubdtype(sums.dtype, np.integer) or (sums < 0).any():
        raise ValueError("Robin Hood detrending moves whole counts: it needs non-negative integer pixel values")
    sums = sums.astype(np.int64)
    frames, rows = sums.shape
    rng = np.random.default_rng([int(seed), _STREAM_PLAN])
    give, take = robinhood_frame_budget(sums.sum(axis=1), rng)
    max_swaps = int(min(give.sum(), take.sum()))
    done = int(min(max(int(swaps), 0), max_swaps))
    giving = _draw_without_replacement(give, done, rng)
    taking = _draw_without_replacement(take, done, rng)
    plan = np.zeros((rows, 2, frames), dtype=np.int64)
    for frame in np.flatnonzero(giving):
        plan[:, 0, frame] = _draw_without_replacement(sums[frame], giving[frame], rng)
    remaining = taking.copy()
    for row in np.flatnonzero(plan[:, 0].sum(axis=1)):
        received = _draw_without_replacement(remaining, plan[row, 0].sum(), rng)
        plan[row, 1] = received
        remaining -= received
    if plan.max(initial=0) > np.iinfo(np.int32).max:
        raise ValueError("a row gives or takes more than 2^31 counts in one frame")
    return plan.astype(np.int32), {"swaps_done": done, "max_swaps": max_swaps}


def robinhood_apply(tile, plan_rows, cells_rows, first_row, seed):
    """Apply the swap plan to a tile of pixel rows across all frames.

    Parameters
    ----------
    tile : ndarray of int, shape (t, r, x)
        Rows ``first_row .. first_row + r - 1`` of the stack, every frame.
    plan_rows : ndarray, shape (r, 2, t)
        Those rows of :func:`robinhood_plan`'s plan.
    cells_rows : ndarray of bool, shape (r, x)
        Those rows of the cell mask (the pixels the swaps are drawn among).
    first_row : int
    seed : int
        The seed of the plan. Each row draws from its own generator seeded by
        ``(seed, row)``, so the result does not depend on the tiling.

    Returns
    -------
    ndarray of int64, shape (t, r, x)
        Each pixel keeps its sum over frames exactly; values stay non-negative
        integers. In a giving frame the row's counts to give are taken from its
        cell pixels in proportion to their counts (sequential hypergeometric
        draws); the counts a row gave are then matched to its taking frames in
        a uniformly random order and each is added back to the pixel it came
        from.
    """
    tile = np.asarray(tile)
    if not np.issubdtype(tile.dtype, np.integer):
        raise ValueError(f"Robin Hood needs integer counts, got {tile.dtype}")
    out = tile.astype(np.int64, copy=True)
    frames = out.shape[0]
    plan_rows = np.asarray(plan_rows, dtype=np.int64)
    cells_rows = np.asarray(cells_rows, dtype=bool)
    if plan_rows.shape != (out.shape[1], 2, frames) or cells_rows.shape != out.shape[1:]:
        raise ValueError(
            f"the swap plan {plan_rows.shape} and cell rows {cells_rows.shape} do not fit the tile {out.shape}"
        )
    for index in range(out.shape[1]):
        loss, gain = plan_rows[index]
        total = int(loss.sum())
        if total == 0:
            continue
        if int(gain.sum()) != total:
            raise ValueError(f"row {first_row + index}: the swap plan gives {total} counts but takes {gain.sum()}")
        rng = np.random.default_rng([int(seed), _STREAM_ROW, first_row + index])
        columns = np.flatnonzero(cells_rows[index])
        giving_frames = np.flatnonzero(loss)
        counts = out[giving_frames, index][:, columns]  # (giving frames, cell pixels)
        remaining_total = counts.sum(axis=1)
        remaining = loss[giving_frames].copy()
        if (remaining > remaining_total).any():
            raise ValueError(
                f"row {first_row + index}: the swap plan takes more counts than the row holds; "
                "the stack or the mask changed since the plan was made"
            )
        taken = np.zeros_like(counts)
        for column in range(columns.size):
            good = counts[:, column]
            bad = remaining_total - good
            draw = rng.hypergeometric(np.maximum(good, 0), bad, remaining) if remaining.any() else 0
            taken[:, column] = draw
            remaining -= draw
            remaining_total = bad
            if not remaining.any():
                break
        lost_pixels = np.repeat(np.arange(columns.size), taken.sum(axis=0))
        rng.shuffle(lost_pixels)
        receiving_frames = np.repeat(np.arange(frames), gain)
        returned = np.bincount(
            receiving_frames * columns.size + lost_pixels, minlength=frames * columns.size
        ).reshape(frames, columns.size)
        row = out[:, index, :]
        row_cells = row[:, columns]
        row_cells[giving_frames] -= taken
        row_cells += returned
        row[:, columns] = row_cells
    return out


def robinhood_corrected_sums(sums, plan):
    """Per-frame sums of the cell pixels after the swaps, from :func:`row_sums` and the plan."""
    plan = np.asarray(plan, dtype=np.int64)
    return np.asarray(sums).sum(axis=1) - plan[:, 0].sum(axis=0) + plan[:, 1].sum(axis=0)


class _SwapSequence:
    """Nested Robin Hood swaps on a simulation ``(t, pixels)``: the first ``n`` swaps of one
    random sequence, so ``n`` swaps always include the first ``n - 1`` (for the search).

    The first ``n`` swaps have the law of :func:`robinhood_plan` + :func:`robinhood_apply`
    with ``n`` swaps: giving and taking frames are prefixes of uniform random orders of
    the frames' budgets (multivariate hypergeometric), pixels of a giving frame are taken
    in a uniform random order of its counts.
    """

    def __init__(self, simulation, rng):
        self.simulation = np.asarray(simulation, dtype=np.int64)
        frames, pixels = self.simulation.shape
        give, take = robinhood_frame_budget(self.simulation.sum(axis=1), rng)
        self.max_swaps = int(min(give.sum(), take.sum()))
        giving = rng.permutation(np.repeat(np.arange(frames), give))[: self.max_swaps]
        taking = rng.permutation(np.repeat(np.arange(frames), take))[: self.max_swaps]
        pixel = np.empty(self.max_swaps, dtype=np.int64)
        order = np.argsort(giving, kind="stable")
        starts = np.searchsorted(giving[order], np.arange(frames + 1))
        for frame in range(frames):
            positions = order[starts[frame] : starts[frame + 1]]
            if positions.size:
                per_pixel = _draw_without_replacement(self.simulation[frame], positions.size, rng)
                pixel[positions] = rng.permutation(np.repeat(np.arange(pixels), per_pixel))
        self.lose = giving * pixels + pixel
        self.gain = taking * pixels + pixel
        self.pixel_means = self.simulation.mean(axis=0)

    def mean_brightness(self, swaps):
        size = self.simulation.size
        delta = np.bincount(self.gain[:swaps], minlength=size) - np.bincount(self.lose[:swaps], minlength=size)
        swapped = self.simulation + delta.reshape(self.simulation.shape)
        return mean_brightness(swapped, self.pixel_means)


def _best_swaps_naive(trace, pixels, rng):
    """Swaps at which a simulation with this trace reaches mean B = 1 (detrendr's best_swaps_naive)."""
    simulation = simulate_immobile(trace, pixels, rng)
    start = mean_brightness(simulation)
    if not start > 1:
        return 0
    sequence = _SwapSequence(simulation, rng)
    if sequence.max_swaps == 0:
        return 0
    fewer, fewer_b = 0, start
    more = min(1, sequence.max_swaps)
    more_b = sequence.mean_brightness(more)
    while more_b > 1 and more < sequence.max_swaps:
        fewer, fewer_b = more, more_b
        more = min(2 * more, sequence.max_swaps)
        more_b = sequence.mean_brightness(more)
    if more_b > 1:
        return sequence.max_swaps
    while more - fewer > max(1, more // 1000):
        middle = (fewer + more) // 2
        middle_b = sequence.mean_brightness(middle)
        if middle_b > 1:
            fewer, fewer_b = middle, middle_b
        else:
            more, more_b = middle, middle_b
    return more if abs(more_b - 1) < abs(fewer_b - 1) else fewer


# --- automatic parameter (Nolan 2017) -----------------------------------------------------------


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
        value = mean_brightness(detrend_smoothed(simulation, smooth(simulation, "boxcar", half_width)))
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


# --- the model ----------------------------------------------------------------------------------


def fit_correction(trace, method="none", parameter="auto", seed=1, cell_pixels=None):
    """Make the correction model for a per-frame mean intensity trace of the cell pixels.

    Parameters
    ----------
    trace : ndarray, shape (t,)
        Mean intensity of the cell pixels in each frame.
    method : str
        One of :data:`METHODS`.
    parameter : 'auto' or number
        boxcar half-width l (frames), exponential tau (frames), polynomial
        degree, Robin Hood number of swaps; ``auto`` finds it with
        :func:`auto_parameter`. Unused by ``none`` and ``linear``.
    seed : int
        Seed of every random step (simulations, swaps).
    cell_pixels : int, optional
        Number of cell pixels the trace is the mean of (needed by ``auto``).

    Returns
    -------
    dict
        ``method`` (the method applied: ``none`` when ``auto`` finds no
        detrending is needed), ``method_requested``, ``parameter``,
        ``parameter_source``, ``seed``, ``frames``, ``cell_pixels``, ``trace``,
        ``trend`` (the trend of the cell-pixel mean), ``auto`` (how the
        parameter was found) and, for ``none``/``linear``, ``frame_factors``.
    """
    trace = np.asarray(trace, dtype=np.float64)
    if trace.ndim != 1 or trace.size < 3:
        raise ValueError(f"the intensity trace needs at least 3 frames, got shape {trace.shape}")
    if method not in METHODS:
        raise ValueError(f"unknown bleach correction method {method!r}; use one of {METHODS}")
    frames = trace.size
    cell_pixels = int(cell_pixels) if cell_pixels else 1
    model = {
        "method": method,
        "method_requested": method,
        "parameter": None,
        "parameter_source": "not used by this method",
        "seed": int(seed),
        "frames": int(frames),
        "cell_pixels": cell_pixels,
        "auto": None,
        "trace": trace.tolist(),
    }
    frame_index = np.arange(frames, dtype=np.float64)
    if method == "linear":
        slope, intercept = np.polyfit(frame_index, trace, 1)
        trend = intercept + slope * frame_index
        if np.any(trend <= 0):
            raise ValueError(
                "the linear bleach fit reaches zero or below within the recording; "
                "the linear correction cannot be applied (choose another method)"
            )
        model.update(trend=trend.tolist(), frame_factors=(trend[0] / trend).tolist())
        return model
    if method in TILE_METHODS:
        if parameter == "auto":
            chosen, info = auto_parameter(trace, method, cell_pixels, seed)
            model["auto"] = info
            if chosen is None:
                model.update(method="none", parameter_source="auto: " + info["note"])
                return _none_model(model, trace)
            model["parameter"] = chosen
            model["parameter_source"] = (
                f"auto: simulated immobile image ({info['simulated_pixels']} pixels, seed {seed}) "
                "with the cell-pixel mean trace reaches mean B = 1 here (Nolan et al. 2017)"
            )
        else:
            value = float(parameter)
            if not value > 0:
                raise ValueError(f"bleach_correction.parameter must be 'auto' or a number > 0, got {parameter!r}")
            if method in ("boxcar", "polynomial", "robinhood"):
                if value != int(value):
                    raise ValueError(f"the {method} parameter must be a whole number, got {parameter!r}")
                value = int(value)
            if method == "polynomial" and value >= frames:
                raise ValueError(f"polynomial degree {value} needs more than {value} frames; the stack has {frames}")
            model["parameter"] = value
            model["parameter_source"] = "set in the configuration (bleach_correction.parameter)"
        if method in SMOOTHING_METHODS:
            model["trend"] = smooth(trace, method, model["parameter"]).tolist()
        else:
            model["trend"] = None
        return model
    return _none_model(model, trace)


def _none_model(model, trace):
    model.update(trend=np.full(trace.size, trace.mean()).tolist(), frame_factors=np.ones(trace.size).tolist())
    return model


def correct_frames(model, frames, start=0):
    """Apply a per-frame model (``none``, ``linear``) to frames ``start .. start + len(frames)``.

    Returns float64 frames: ``frames * frame_scale(model, start, stop)[:, None, None]``.
    """
    frames = np.asarray(frames, dtype=np.float64)
    scale = frame_scale(model, start, start + frames.shape[0])
    return frames.copy() if scale is None else frames * scale[:, None, None]


def frame_scale(model, start=0, stop=None):
    """The factors by which a per-frame model (``none``, ``linear``) multiplies frames ``start .. stop - 1``.

    ``None`` for ``none`` (frames as recorded). :func:`correct_frames` is
    ``frames * frame_scale(model, start, stop)[:, None, None]``; the N&B rule passes
    the factors to brightflow.nb.StreamingMoments.update instead of making a
    corrected float64 copy of the frames.

    Returns
    -------
    ndarray of float64, shape (stop - start,), or None
    """
    if model["method"] in TILE_METHODS:
        raise ValueError(f"the {model['method']} correction works on whole time series: use correct_tile")
    frames = len(model["frame_factors"])
    stop = frames if stop is None else stop
    if not 0 <= start <= stop <= frames:
        raise ValueError(
            f"the correction model covers {frames} frames; frames {start}..{stop - 1} are outside it"
        )
    if model["method"] == "none":
        return None
    return np.asarray(model["frame_factors"][start:stop], dtype=np.float64)


def correct_series(model, series):
    """Apply a smoothing model (boxcar, exponential, polynomial) to time series ``(t, ...)``.

    Every series (trailing index: a pixel) is corrected on its own
    (:func:`detrend_smoothed` of its :func:`smooth` trend), so any selection of
    pixels, e.g. only the cell pixels ``tile[:, cells]``, gives those pixels' values
    of the whole-image correction. Returns a new float64 array; the work is done on
    blocks of :data:`SERIES_BLOCK_VALUES` values, in place.
    """
    if model["method"] not in SMOOTHING_METHODS:
        raise ValueError(f"{model['method']!r} is not a smoothing method; use one of {SMOOTHING_METHODS}")
    series = np.asarray(series)
    frames = series.shape[0]
    if frames != model["frames"]:
        raise ValueError(f"the series have {frames} frames, the model {model['frames']}")
    flat = series.reshape(frames, -1)
    out = np.empty(flat.shape)
    # a few pixels' series at a time, so that the dozen passes of smoothing and correction run
    # over a block that stays in the CPU cache; each pixel is corrected on its own, so blocks
    # run on up to two threads without changing any value
    step = max(1, SERIES_BLOCK_VALUES // max(frames, 1))

    def correct(start):
        block = np.array(flat[:, start : start + step], dtype=np.float64)
        out[:, start : start + step] = _detrend_smoothed_in_place(
            block, smooth(block, model["method"], model["parameter"])
        )

    parallel.thread_map(correct, range(0, flat.shape[1], step), parallel.available_cpus())
    return out.reshape(series.shape)


def correct_tile(model, tile, rows, cells=None, plan=None):
    """Correct a tile of pixel rows across all frames, ``tile = stack[:, rows, :]``.

    Parameters
    ----------
    model : dict
        From :func:`fit_correction`.
    tile : ndarray, shape (t, r, x)
        Every frame of the rows ``rows``.
    rows : slice
        The rows of the tile (``slice(start, stop)``).
    cells : ndarray of bool, shape (y, x), optional
        The whole cell mask (Robin Hood only).
    plan : ndarray, shape (y, 2, t), optional
        :func:`robinhood_plan`'s plan (Robin Hood only).

    Returns
    -------
    ndarray, shape (t, r, x)
        float64 for the smoothing methods, int64 for Robin Hood.
    """
    tile = np.asarray(tile)
    if tile.shape[0] != model["frames"]:
        raise ValueError(f"the tile has {tile.shape[0]} frames, the model {model['frames']}")
    method = model["method"]
    if method in ("none", "linear"):
        return correct_frames(model, tile, 0)
    if method in SMOOTHING_METHODS:
        return correct_series(model, tile)
    if method == "robinhood":
        if cells is None or plan is None:
            raise ValueError("Robin Hood needs the cell mask and the swap plan")
        return robinhood_apply(tile, plan[rows], _cells(cells, cells.shape)[rows], rows.start or 0, model["seed"])
    raise ValueError(f"unknown bleach correction method {method!r}")


def corrected_trace(model):
    """The cell-pixel mean per frame after a per-frame correction (``none``, ``linear``)."""
    return np.asarray(model["trace"]) * np.asarray(model["frame_factors"])
