"""NaN-aware smoothing of N&B maps.

Per-pixel brightness and number are noisy (their relative error scales as
``1 / sqrt(frames)``); a small spatial filter trades resolution for precision.
The convention is that of nandb (Nolan, R., Alvarez, L. A. J., Elegheert, J.,
Iliopoulou, M., Jakobsdottir, G. M., Rodriguez-Muñoz, M., Aricescu, A. R. &
Padilla-Parra, S. (2017). nandb — number and brightness in R with a novel
automatic detrending algorithm. *Bioinformatics* 33(21), 3508-3510): each
pixel becomes the mean (or median) of the finite values of its 3x3
neighbourhood, and NaN when more than half of that neighbourhood is NaN. At the
image border the neighbourhood is the part of the 3x3 window inside the image.

A NaN pixel whose neighbourhood is mostly finite receives the neighbours'
value (nandb's behaviour); callers that must keep excluded pixels excluded
(a threshold, pixels outside cells) re-apply their mask after filtering.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FILTERED_MAPS", "FILTERS", "filter_maps", "nan_filter", "neighbourhood_stack"]

#: The filters ``nb.filter`` accepts (besides ``none``).
FILTERS = ("mean", "median")
#: The N&B maps ``nb.filter`` smooths (intensity and variance stay raw: the per-cell ratio of
#: means uses them).
FILTERED_MAPS = ("apparent_brightness", "apparent_number", "brightness", "number")


def neighbourhood_stack(image, size=3):
    """The ``size`` x ``size`` neighbourhood of every pixel, shape ``(size**2, y, x)``.

    Returns
    -------
    values : ndarray, float64
        The neighbours' values (NaN outside the image).
    inside : ndarray, bool
        True where the neighbour lies inside the image.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"a map must be 2D (y, x), got shape {image.shape}")
    if size < 1 or size % 2 == 0:
        raise ValueError(f"the filter size must be an odd positive integer, got {size}")
    radius = size // 2
    padded = np.pad(image, radius, constant_values=np.nan)
    inside_padded = np.pad(np.ones(image.shape, dtype=bool), radius, constant_values=False)
    height, width = image.shape
    values = np.empty((size * size, height, width))
    inside = np.empty((size * size, height, width), dtype=bool)
    index = 0
    for dy in range(size):
        for dx in range(size):
            values[index] = padded[dy : dy + height, dx : dx + width]
            inside[index] = inside_padded[dy : dy + height, dx : dx + width]
            index += 1
    return values, inside


def nan_filter(image, method, size=3):
    """NaN-aware mean or median filter with nandb's "more than half NaN stays NaN" rule.

    Parameters
    ----------
    image : ndarray (y, x)
    method : {"mean", "median"}
    size : int
        Window side (3 for nandb's 3x3).

    Returns
    -------
    ndarray (y, x), float64
        NaN where more than half of the (in-image) neighbourhood is not finite,
        else the mean or median of the neighbourhood's finite values.
    """
    if method not in FILTERS:
        raise ValueError(f"unknown filter {method!r}; use one of {', '.join(FILTERS)} (or none)")
    values, inside = neighbourhood_stack(image, size)
    finite = np.isfinite(values)
    values = np.where(finite, values, np.nan)
    in_image = inside.sum(axis=0)
    missing = in_image - finite.sum(axis=0)
    out = np.full(values.shape[1:], np.nan)
    defined = (missing * 2 <= in_image) & (finite.sum(axis=0) > 0)
    if method == "mean":
        sums = np.where(finite, values, 0.0).sum(axis=0)
        out[defined] = sums[defined] / finite.sum(axis=0)[defined]
    else:
        out[defined] = np.nanmedian(values[:, defined], axis=0)
    return out


def filter_maps(maps, kept, method, names=FILTERED_MAPS):
    """The maps with those named in ``names`` smoothed by :func:`nan_filter` (``method``), the
    pixels outside ``kept`` left NaN (the filter would fill them from their neighbours).

    ``method`` ``"none"`` returns the maps unchanged. Returns a new dict; the maps not named
    are the same arrays.
    """
    maps = dict(maps)
    if method != "none":
        for name in names:
            maps[name] = np.where(kept, nan_filter(maps[name], method), np.nan)
    return maps
