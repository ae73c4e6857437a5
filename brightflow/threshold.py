"""Automatic intensity thresholds on the per-pixel mean, as ImageJ's Auto Threshold defines them.

N&B is meaningless in pixels with little signal (background, out-of-cell
regions): the variance there is shot noise of a few photons and the number
``n`` diverges. nandb (Nolan et al. 2017, Bioinformatics 33:3101) therefore
thresholds the mean image with ImageJ's automatic methods and sets the
excluded pixels to NaN. brightflow does the same on the per-pixel mean
(frame sum divided by the number of frames).

How a threshold is computed (ImageJ's convention for a 32-bit image, e.g. the
average Z projection in Fiji):

1. the finite values of the mean image are binned into 256 equal bins spanning
   ``[min, max]`` (the last bin includes ``max``);
2. the method picks a bin ``t`` on that histogram, as ImageJ's
   ``AutoThresholder`` does (background: bins ``0..t``; foreground: bins
   ``t+1..255``, i.e. a dark background);
3. the threshold value is the lower edge of bin ``t + 1``,
   ``min + (t + 1) (max - min) / 256``: pixels whose mean is below it are
   excluded. (ImageJ's display maps bin ``t + 1`` to
   ``min + (t + 1) (max - min) / 255``: at most one bin width different.)

Methods and their papers:

- ``huang``: Huang, L.-K. & Wang, M.-J. J. (1995). Image thresholding by
  minimizing the measures of fuzziness. *Pattern Recognition* 28(1), 41-51.
  Shannon's entropy of the fuzzy membership, as in ImageJ (not in
  scikit-image; implemented here).
- ``triangle``: Zack, G. W., Rogers, W. E. & Latt, S. A. (1977). Automatic
  measurement of sister chromatid exchange frequency. *J Histochem Cytochem*
  25(7), 741-753, with ImageJ's three refinements (line from the empty bin
  next to the last occupied one, the longer side of the peak, result moved one
  bin towards the peak). scikit-image's ``threshold_triangle`` lacks these
  refinements and gives a different bin, so it is implemented here.
- ``otsu``: Otsu, N. (1979). A threshold selection method from gray-level
  histograms. *IEEE Trans Syst Man Cybern* 9(1), 62-66. Implemented here
  with ImageJ's tie rule (the last of equal maxima); scikit-image's
  ``threshold_otsu`` keeps the first and so differs on ties.
- ``yen``: Yen, J.-C., Chang, F.-J. & Chang, S. (1995). A new criterion for
  automatic multilevel thresholding. *IEEE Trans Image Process* 4(3),
  370-378. scikit-image's ``threshold_yen`` on the 256-bin histogram.
- ``li``: Li, C. H. & Tam, P. K. S. (1998). An iterative algorithm for minimum
  cross entropy thresholding. *Pattern Recognit Lett* 18(8), 771-776.
  scikit-image's ``threshold_li`` on the pixel values themselves (ImageJ
  iterates on the 256 bins: the two may differ by about one bin width).
- ``mean``: Glasbey, C. A. (1993). An analysis of histogram-based thresholding
  algorithms. *CVGIP: Graphical Models and Image Processing* 55, 532-537.
  ImageJ's definition: ``t = floor(mean bin index)``.
"""

from __future__ import annotations

import numbers

import numpy as np

# scikit-image is imported by the two methods that use it: the N&B maps import this module, and most
# runs use no automatic threshold

__all__ = [
    "BINS",
    "METHODS",
    "apply_threshold",
    "auto_threshold",
    "exclude_and_filter",
    "histogram_threshold_bin",
    "huang_bin",
    "mean_bin",
    "mean_histogram",
    "otsu_bin",
    "resolve_threshold",
    "threshold_and_filter",
    "threshold_mask",
    "triangle_bin",
    "yen_bin",
]

#: Number of histogram bins of ImageJ's AutoThresholder.
BINS = 256

#: The automatic methods ``nb.threshold`` accepts.
METHODS = ("huang", "triangle", "otsu", "yen", "li", "mean")


def mean_histogram(image, bins=BINS):
    """The ``bins``-bin histogram of the finite values of ``image`` over ``[min, max]``.

    Returns
    -------
    counts : ndarray of int64, shape (bins,)
    low : float
        The smallest finite value (the lower edge of bin 0).
    width : float
        The bin width, ``(max - min) / bins`` (0 when the image is constant).
    """
    values = np.asarray(image, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("no finite pixel value to threshold")
    low, high = float(values.min()), float(values.max())
    if high == low:
        counts = np.zeros(bins, dtype=np.int64)
        counts[0] = values.size
        return counts, low, 0.0
    counts, _ = np.histogram(values, bins=bins, range=(low, high))
    return counts.astype(np.int64), low, (high - low) / bins


def _check_histogram(counts):
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size < 2:
        raise ValueError(f"a histogram must be 1D with at least 2 bins, got shape {counts.shape}")
    if (counts < 0).any() or counts.sum() <= 0:
        raise ValueError("a histogram needs non-negative counts and at least one pixel")
    return counts


def huang_bin(counts):
    """Huang & Wang (1995) fuzzy threshold: the bin that minimises the fuzziness.

    For a split after bin ``t``, each bin ``g`` belongs to its class (bins
    ``<= t`` or ``> t``) with membership ``mu(g) = 1 / (1 + |g - m| / C)``,
    ``m`` the mean bin index of its class and ``C = last - first`` (the span
    of occupied bins). The fuzziness is Shannon's entropy
    ``sum_g h(g) S(mu(g))``, ``S(u) = -u ln u - (1 - u) ln(1 - u)``; as in
    ImageJ, memberships within 1e-6 of 0 or 1 contribute nothing. The first
    ``t`` of minimal fuzziness is returned.
    """
    h = _check_histogram(counts)
    size = h.size
    occupied = np.flatnonzero(h)
    first, last = occupied[0], occupied[-1]
    if first == last:
        return int(first)
    span = float(last - first)
    g = np.arange(size, dtype=np.float64)
    below_count = np.cumsum(h)
    below_sum = np.cumsum(h * g)
    above_count = h.sum() - below_count
    above_sum = (h * g).sum() - below_sum
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_below = below_sum / below_count  # class means for a split after bin t
        mean_above = above_sum / above_count
    t = np.arange(size)[:, None]
    class_mean = np.where(g[None, :] <= t, mean_below[:, None], mean_above[:, None])
    with np.errstate(invalid="ignore"):
        mu = 1.0 / (1.0 + np.abs(g[None, :] - class_mean) / span)
        counted = (mu >= 1e-6) & (mu <= 0.999999) & (h[None, :] > 0)
        mu_safe = np.where(counted, mu, 0.5)
        entropy = -mu_safe * np.log(mu_safe) - (1.0 - mu_safe) * np.log(1.0 - mu_safe)
    fuzziness = np.where(counted, h[None, :] * entropy, 0.0).sum(axis=1)
    return int(np.argmin(fuzziness))  # first minimum


def triangle_bin(counts):
    """Zack et al. (1977) triangle threshold, with ImageJ's refinements.

    A line joins the histogram's peak to the empty bin just beyond the last
    occupied bin on the peak's longer side; the threshold is the bin of
    greatest distance below that line, moved one bin away from the peak side
    (ImageJ: ``split - 1`` on the side examined).
    """
    h = _check_histogram(counts)
    size = h.size
    occupied = np.flatnonzero(h)
    low = max(int(occupied[0]) - 1, 0)
    high = min(int(occupied[-1]) + 1, size - 1)
    peak = int(np.argmax(h))  # first maximum
    inverted = (peak - low) < (high - peak)
    if inverted:
        h = h[::-1]
        low, peak = size - 1 - high, size - 1 - peak
    if low == peak:
        return int(size - 1 - low if inverted else low)
    nx, ny = h[peak], float(low - peak)
    norm = np.hypot(nx, ny)
    nx, ny = nx / norm, ny / norm
    offset = nx * low + ny * h[low]
    candidates = np.arange(low + 1, peak + 1)
    distance = nx * candidates + ny * h[candidates] - offset
    split = low
    if distance.size and distance.max() > 0:
        split = int(candidates[np.argmax(distance)])  # first maximum
    split -= 1
    return int(size - 1 - split if inverted else split)


def mean_bin(counts):
    """Glasbey (1993) mean threshold as ImageJ defines it: ``floor(mean bin index)``."""
    h = _check_histogram(counts)
    return int(np.floor((h * np.arange(h.size)).sum() / h.sum()))


def otsu_bin(counts):
    """Otsu (1979): the split of maximal between-class variance, as ImageJ computes it.

    The between-class variance of a split after bin ``k`` is proportional to
    ``(N1 / N * S - S1)^2 / (N1 (N - N1))`` (``N1``, ``S1``: count and
    intensity sum of bins ``<= k``; ``N``, ``S``: of all bins). ImageJ
    examines ``k = 1 .. bins - 2`` and keeps the last maximum; scikit-image's
    ``threshold_otsu`` maximises the same quantity but keeps the first, which
    differs only on ties (e.g. two isolated peaks, where every split between
    them is equally good).
    """
    h = _check_histogram(counts)
    g = np.arange(h.size, dtype=np.float64)
    total, intensity = h.sum(), (h * g).sum()
    below = np.cumsum(h)[1:-1]
    below_intensity = np.cumsum(h * g)[1:-1]
    denominator = below * (total - below)
    with np.errstate(invalid="ignore", divide="ignore"):
        variance = np.where(
            denominator != 0, (below / total * intensity - below_intensity) ** 2 / denominator, 0.0
        )
    return int(1 + np.flatnonzero(variance == variance.max())[-1])


def yen_bin(counts):
    """Yen et al. (1995) maximum correlation criterion (scikit-image)."""
    h = _check_histogram(counts)
    from skimage import filters as skimage_filters

    return int(round(skimage_filters.threshold_yen(hist=(h, np.arange(h.size, dtype=np.float64)))))


_HISTOGRAM_METHODS = {
    "huang": huang_bin,
    "triangle": triangle_bin,
    "otsu": otsu_bin,
    "yen": yen_bin,
    "mean": mean_bin,
}


def histogram_threshold_bin(counts, method):
    """The bin ``t`` (background: bins ``<= t``) that ``method`` picks on a histogram."""
    if method not in _HISTOGRAM_METHODS:
        raise ValueError(f"unknown histogram threshold method {method!r}; use one of {sorted(_HISTOGRAM_METHODS)}")
    return _HISTOGRAM_METHODS[method](counts)


def auto_threshold(mean_image, method):
    """The intensity threshold that ImageJ's method ``method`` gives on the mean image.

    Parameters
    ----------
    mean_image : ndarray (y, x)
        The per-pixel mean (frame sum / frames). NaN pixels are ignored.
    method : str
        One of :data:`METHODS`.

    Returns
    -------
    float
        Pixels whose mean is below this value are excluded (see the module
        docstring for the bin-to-value convention).
    """
    method = str(method).lower()
    if method not in METHODS:
        raise ValueError(f"unknown threshold method {method!r}; use one of {', '.join(METHODS)}")
    values = np.asarray(mean_image, dtype=np.float64)
    if method == "li":
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            raise ValueError("no finite pixel value to threshold")
        if finite.min() == finite.max():
            return float(finite.min())
        from skimage import filters as skimage_filters

        return float(skimage_filters.threshold_li(finite))
    counts, low, width = mean_histogram(values)
    if width == 0:
        return low
    return low + (histogram_threshold_bin(counts, method) + 1) * width


def resolve_threshold(mean_image, setting):
    """The threshold of the ``nb.threshold`` setting: ``None`` for none, else a float.

    ``setting`` is ``None``/``"none"``, a number (an intensity in the mean
    image's units: mean counts per frame), or a method name of :data:`METHODS`.
    """
    if setting is None or (isinstance(setting, str) and setting.lower() == "none"):
        return None
    if isinstance(setting, numbers.Real) and not isinstance(setting, bool):
        if not np.isfinite(setting):
            raise ValueError(f"a numeric threshold must be finite, got {setting!r}")
        return float(setting)
    return auto_threshold(mean_image, setting)


def threshold_mask(mean_image, threshold):
    """True where a pixel is kept: a finite mean ``>= threshold`` (all finite pixels if ``None``)."""
    mean_image = np.asarray(mean_image, dtype=np.float64)
    kept = np.isfinite(mean_image)
    if threshold is not None:
        kept &= mean_image >= threshold
    return kept


def apply_threshold(maps, kept):
    """Copies of the maps with NaN wherever ``kept`` is False."""
    kept = np.asarray(kept, dtype=bool)
    return {name: np.where(kept, np.asarray(values, dtype=np.float64), np.nan) for name, values in maps.items()}


def exclude_and_filter(maps, kept, filter_method="none", names=None):
    """The maps as brightflow reports them: NaN outside ``kept`` (the pixels ``nb.threshold`` keeps),
    then ``nb.filter`` (nandb's NaN-aware 3x3 mean or median; Nolan et al. 2017, Bioinformatics
    33:3508; brightflow.filters.filter_maps) on the named maps, excluded pixels staying NaN.

    Parameters
    ----------
    maps : dict of name -> ndarray
    kept : ndarray of bool
    filter_method : {'none', 'mean', 'median'}
    names : sequence of str, optional
        The maps to filter (default brightflow.filters.FILTERED_MAPS: brightness and number).
    """
    from . import filters

    maps = apply_threshold(maps, kept)
    return filters.filter_maps(maps, kept, filter_method, *(() if names is None else (names,)))


def threshold_and_filter(maps, setting, filter_method="none"):
    """Apply ``nb.threshold`` then ``nb.filter`` to the six maps of a stack.

    The threshold is computed on the intensity map (the per-pixel mean of the corrected frames)
    as ImageJ's AutoThresholder defines the method (:func:`resolve_threshold`); pixels below it
    are NaN in every map, so they are left out of every per-cell value.

    Returns
    -------
    maps : dict
    record : dict
        What ``nb_threshold.json`` records: the setting, the value used, the pixels kept.

    Raises
    ------
    ValueError
        The setting cannot be applied to this intensity map.
    """
    from . import filters

    value = resolve_threshold(maps["intensity"], setting)
    kept = threshold_mask(maps["intensity"], value)
    if value is not None:
        maps = apply_threshold(maps, kept)
    maps = filters.filter_maps(maps, kept, filter_method)
    record = {
        "setting": setting,
        "value": value,
        "units": "mean counts per frame (the intensity map)",
        "pixels_kept": int(kept.sum()),
        "pixels": int(kept.size),
        "filter": filter_method,
    }
    return maps, record
