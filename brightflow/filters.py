"""NaN-aware smoothing of N&B maps, as nandb's ``median_filter`` and ``smooth_filter``.

Per-pixel brightness and number are noisy (their relative error scales as
``1 / sqrt(frames)``); a small spatial filter trades resolution for precision.
The filter is that of nandb (Nolan, R., Alvarez, L. A. J., Elegheert, J.,
Iliopoulou, M., Jakobsdottir, G. M., Rodriguez-Muñoz, M., Aricescu, A. R. &
Padilla-Parra, S. (2017). nandb — number and brightness in R with a novel
automatic detrending algorithm. *Bioinformatics* 33(21), 3508-3510), followed in
nandb 2.1.1's src/ImageFilters.cc (``median_filter``, ``smooth_filter``, called
with ``size = 1`` and ``na_count = TRUE`` by R/brightness.R and R/number.R) and
in the Rcpp functions it calls (inst/include/Rcpp/sugar/functions/median.h,
mean.h, traits/is_na.h):

- the window is the 3x3 square around the pixel, and at the image border the
  image is padded with its nearest border pixel (ImageFilters.cc moves an
  outside row or column back inside one step at a time): a corner pixel is 4 of
  its own 9 neighbours, an edge pixel 3;
- a neighbour is missing when it is NA or NaN (Rcpp's ``is_na`` on doubles is
  ``R_isnancpp``, true for both); the result is NaN when more than half of the 9
  are missing (``sum(is_na) > 9 / 2``), else the median or mean of the others;
- ``Inf`` is not missing: it is a value, sorted last by the median and making the
  mean infinite;
- the median of an even count is the mean of the two middle values; the mean is
  R's: summed in long double, divided, then corrected by the mean residual;
- nandb filters the brightness or number image *after* the threshold set its
  excluded pixels to NA, and keeps what the filter gives: an excluded pixel with
  at most 4 missing neighbours receives their median (mean).

Two conventions (``convention=``, brightflow.threshold.CONVENTIONS) differ only in
what is missing and what happens to excluded pixels:

``"brightflow"`` (default): every non-finite value is missing (brightflow.nb gives
NaN, not Inf, for a zero denominator, so there is none in its maps), and the pixels
outside ``kept`` stay NaN after the filter (:func:`filter_maps`). Filling them would
give brightness and number to pixels whose intensity and variance are NaN and which
every per-cell value leaves out: the maps and the tables would disagree.

``"nandb"``: only NaN is missing (``Inf`` counts), and the filter fills excluded
pixels, so the maps are nandb's.

The implementation is brightflow's own (numpy over the whole image), not a copy of
nandb's C++.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FILTERED_MAPS", "FILTERS", "filter_maps", "nan_filter", "neighbourhood_stack"]

#: The filters ``nb.filter`` accepts (besides ``none``).
FILTERS = ("mean", "median")
#: The N&B maps ``nb.filter`` smooths (intensity and variance stay raw: the per-cell ratio of
#: means uses them).
FILTERED_MAPS = ("apparent_brightness", "apparent_number", "brightness", "number")


def _convention(convention):
    from .threshold import check_convention

    return check_convention(convention)


def neighbourhood_stack(image, size=3):
    """The ``size`` x ``size`` neighbourhood of every pixel, shape ``(size**2, y, x)``, float64.

    Outside the image the nearest border pixel is repeated (nandb's border rule). The
    neighbours are in nandb's order (R's column-major ``square``): column offset outer,
    row offset inner, each from ``-size // 2`` to ``size // 2``.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"a map must be 2D (y, x), got shape {image.shape}")
    if size < 1 or size % 2 == 0:
        raise ValueError(f"the filter size must be an odd positive integer, got {size}")
    radius = size // 2
    padded = np.pad(image, radius, mode="edge")
    height, width = image.shape
    values = np.empty((size * size, height, width))
    index = 0
    for dx in range(size):
        for dy in range(size):
            values[index] = padded[dy : dy + height, dx : dx + width]
            index += 1
    return values


def _r_mean(values, present):
    """R's (Rcpp sugar's) mean of the present values of each pixel's neighbourhood.

    Sum in long double in the neighbours' order, divide by the count, and, when the result is
    finite, add the mean residual (also in long double); round to double.
    """
    count = present.sum(axis=0)
    extended = np.where(present, values, 0.0).astype(np.longdouble)  # a missing value adds +0
    total = extended[0].copy()
    for layer in extended[1:]:
        total += layer
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        finite = np.isfinite(mean)
        if finite.any():
            extended -= mean
            extended[~present] = 0.0
            residual = extended[0].copy()
            for layer in extended[1:]:
                residual += layer
            mean = np.where(finite, mean + residual / count, mean)
    return mean.astype(np.float64)


def _r_median(values, present):
    """The median of the present values (the mean of the two middle ones for an even count)."""
    count = present.sum(axis=0)
    ordered = np.sort(np.where(present, values, np.nan), axis=0)  # missing last, after +Inf
    upper = np.minimum(count // 2, values.shape[0] - 1)
    lower = np.maximum(upper - 1, 0)
    high = np.take_along_axis(ordered, upper[None], axis=0)[0]
    low = np.take_along_axis(ordered, lower[None], axis=0)[0]
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(count % 2 == 1, high, (high + low) / 2.0)


def nan_filter(image, method, size=3, *, convention="brightflow"):
    """NaN-aware mean or median filter with nandb's border and "more than half missing" rules.

    Parameters
    ----------
    image : ndarray (y, x)
    method : {"mean", "median"}
    size : int
        Window side (3 for nandb's 3x3, its ``size = 1`` radius).
    convention : {"brightflow", "nandb"}
        What is missing: ``"brightflow"`` every non-finite value, ``"nandb"`` NaN only
        (``Inf`` is a value, as in R).

    Returns
    -------
    ndarray (y, x), float64
        NaN where more than half of the ``size**2`` neighbours (the border pixel repeated
        outside the image) are missing, else the median or mean of the others. Missing
        pixels are filled like any other: :func:`filter_maps` decides whether they stay so.
    """
    if method not in FILTERS:
        raise ValueError(f"unknown filter {method!r}; use one of {', '.join(FILTERS)} (or none)")
    convention = _convention(convention)
    values = neighbourhood_stack(image, size)
    present = ~np.isnan(values) if convention == "nandb" else np.isfinite(values)
    missing = values.shape[0] - present.sum(axis=0)
    defined = missing * 2 <= values.shape[0]
    result = _r_mean(values, present) if method == "mean" else _r_median(values, present)
    return np.where(defined, result, np.nan)


def filter_maps(maps, kept, method, names=FILTERED_MAPS, *, convention="brightflow"):
    """The maps with those named in ``names`` smoothed by :func:`nan_filter` (``method``).

    ``convention="brightflow"``: the pixels outside ``kept`` are left NaN (the filter would
    fill them from their neighbours). ``convention="nandb"``: the filter's result is kept
    everywhere, as nandb does, so an excluded pixel with at most 4 missing neighbours gets
    a value.

    ``method`` ``"none"`` returns the maps unchanged. Returns a new dict; the maps not named
    are the same arrays.
    """
    convention = _convention(convention)
    maps = dict(maps)
    if method != "none":
        for name in names:
            filtered = nan_filter(maps[name], method, convention=convention)
            maps[name] = filtered if convention == "nandb" else np.where(kept, filtered, np.nan)
    return maps
