"""Automatic intensity thresholds on the per-pixel mean: ImageJ's Auto Threshold, in brightflow's
convention (the default) or exactly as nandb computes them.

N&B is meaningless in pixels with little signal (background, out-of-cell
regions): the variance there is shot noise of a few photons and the number
``n`` diverges. nandb (Nolan et al. 2017, Bioinformatics 33:3508) therefore
thresholds the recording with ImageJ's automatic methods (ported to R by
autothresholdr) and sets the excluded pixels to NA. brightflow thresholds the
intensity map (the per-pixel mean of the corrected frames) and sets the excluded
pixels to NaN in every map. Two conventions say which histogram the method sees
and what value it reports (``convention=``, :data:`CONVENTIONS`):

``"brightflow"`` (default): ImageJ's rule for a 32-bit image, e.g. the average Z
projection in Fiji.

1. the finite values of the mean image are binned into 256 equal bins spanning
   ``[min, max]`` (the last bin includes ``max``);
2. the method picks a bin ``t`` on that histogram, as ImageJ's
   ``AutoThresholder`` (ij/process/AutoThresholder.java) does (background: bins
   ``0..t``; foreground: bins ``t+1..255``, i.e. a dark background);
3. the threshold value is the lower edge of bin ``t + 1``,
   ``min + (t + 1) (max - min) / 256``: pixels whose mean is below it are
   excluded. (ImageJ's display maps bin ``t + 1`` to
   ``min + (t + 1) (max - min) / 255``: at most one bin width different.)

The resolution (256 bins) does not depend on the number of frames, the result on how the
frames were scaled, and every method is cheap for any data (analog, bleach-corrected,
16-bit with thousands of frames).

``"nandb"``: what nandb 2.1.1 computes, followed in its source (R/brightness.R,
R/number.R: ``autothresholdr::mean_stack_thresh(img, method, ignore_na = TRUE)``
before detrending) and in autothresholdr 1.4.3 (R/stack_thresh.R
``mean_stack_thresh``, R/thresh.R ``auto_thresh``, src/AutoThreshold.cpp):

1. the thresholded image is the per-pixel *sum* of the frames (integer counts;
   autothresholdr refuses non-integer images). Here it is
   ``round(intensity * frames)``, so ``frames`` must be given. If the largest sum
   exceeds ``2**31 - 1`` every sum is multiplied by ``(2**31 - 1) / max`` and
   rounded (R's ``round``, halves to even), as autothresholdr does;
2. the histogram has one bin per integer from the smallest to the largest sum
   (``factor(x, levels = seq(min, max))``): 1708 bins for nandb's ``50.tif``;
3. the method (autothresholdr's C++ port of ImageJ's methods, whose details differ
   from ImageJ's 256-bin ones, see :data:`NANDB_METHODS`) picks an index ``t``; the
   threshold is ``(t + min) / (scale * frames)`` in mean counts per frame, and a
   pixel is kept where its mean ``sum / frames`` is ``>=`` the threshold. So the
   value is the lower edge of the first *kept* integer sum, not of the bin after ``t``;
4. a constant image, and a method whose ``t + min`` is negative ("failed to find
   threshold" in R), are errors.

nandb's own test (tests/testthat/test-brightness.R, ``brightness_timeseries_folder(...,
thresh = "tri")``) expects ``thresh=Triangle=0.68`` for ``50.tif``: Triangle picks index
34 of the 1708-bin histogram of frame sums (smallest sum 0), 34 / 50 frames = 0.68. The
``"brightflow"`` convention gives 0.934 on the same image (bin 6 of 256 over the mean's range).
The ``"nandb"`` convention reproduces nandb exactly when the intensity map is the raw mean
(no bleach correction: nandb thresholds before it detrends); after a correction the frame
sums are those of the corrected frames, rounded.

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
  ``threshold_otsu`` keeps the first and so differs on ties. autothresholdr ports
  an older variant (Celebi's: first maximum, every bin examined).
- ``yen``: Yen, J.-C., Chang, F.-J. & Chang, S. (1995). A new criterion for
  automatic multilevel thresholding. *IEEE Trans Image Process* 4(3),
  370-378. scikit-image's ``threshold_yen`` on the 256-bin histogram.
  autothresholdr's port never finds a threshold (see :func:`nandb_yen_index`).
- ``li``: Li, C. H. & Tam, P. K. S. (1998). An iterative algorithm for minimum
  cross entropy thresholding. *Pattern Recognit Lett* 18(8), 771-776.
  scikit-image's ``threshold_li`` on the pixel values themselves (ImageJ
  iterates on the 256 bins: the two may differ by about one bin width);
  autothresholdr iterates on its integer bins.
- ``mean``: Glasbey, C. A. (1993). An analysis of histogram-based thresholding
  algorithms. *CVGIP: Graphical Models and Image Processing* 55, 532-537.
  ImageJ's definition: ``t = floor(mean bin index)``.

The implementations of the ``"nandb"`` convention are brightflow's own, written from
the behaviour of those sources (autothresholdr is GPL-3: none of its code is copied).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

# scikit-image is imported by the two methods that use it: the N&B maps import this module, and most
# runs use no automatic threshold

__all__ = [
    "BINS",
    "CONVENTIONS",
    "DEFAULT_CONVENTION",
    "METHODS",
    "NANDB_METHODS",
    "apply_threshold",
    "auto_threshold",
    "check_convention",
    "check_setting",
    "exclude_and_filter",
    "frame_sum_histogram",
    "histogram_threshold_bin",
    "huang_bin",
    "mean_bin",
    "mean_histogram",
    "nandb_huang_index",
    "nandb_li_index",
    "nandb_mean_index",
    "nandb_otsu_index",
    "nandb_threshold",
    "nandb_yen_index",
    "otsu_bin",
    "resolve_threshold",
    "restore_nandb_infinities",
    "threshold_and_filter",
    "threshold_mask",
    "triangle_bin",
    "yen_bin",
]

#: Number of histogram bins of ImageJ's AutoThresholder.
BINS = 256

#: The automatic methods ``nb.threshold`` accepts.
METHODS = ("huang", "triangle", "otsu", "yen", "li", "mean")

#: ``"brightflow"``: ImageJ's 256-bin histogram of the mean image, excluded pixels stay NaN after
#: the filter, a zero denominator is NaN. ``"nandb"``: nandb's numbers (integer frame sums,
#: autothresholdr's methods, excluded pixels filled by the filter, ``x / 0`` is Inf).
CONVENTIONS = ("brightflow", "nandb")
#: The convention of brightflow's maps (see the module docstring and filters.py for why).
DEFAULT_CONVENTION = "brightflow"

#: autothresholdr refuses sums above R's integer range; it scales them down into it.
_R_INTEGER_MAX = 2**31 - 1
#: Largest integer histogram the ``"nandb"`` convention builds (8 bytes a bin).
MAX_NANDB_BINS = 2**26


def check_convention(convention):
    """``convention`` as a lower-case name of :data:`CONVENTIONS`, else ValueError."""
    name = str(convention).lower()
    if name not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; use one of {', '.join(CONVENTIONS)}")
    return name


def check_setting(setting, convention):
    """Refuse, before any data is read, an ``nb.threshold`` that ``convention`` cannot compute: nandb's
    Yen (autothresholdr's port never finds a threshold). ValueError saying what to use instead."""
    if check_convention(convention) == "nandb" and str(setting).lower() == "yen":
        raise ValueError(
            "nb.threshold yen with nb.convention nandb: autothresholdr's Yen never finds a threshold (nandb fails "
            "the same way); use nb.convention brightflow for ImageJ's Yen, or another method"
        )


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

    A line joins the histogram's peak (its first maximum) to the empty bin just beyond the
    last occupied bin on the peak's longer side; the threshold is the bin of greatest
    distance below that line, moved one bin away from the peak side (ImageJ: ``split - 1``
    on the side examined). ImageJ (ij/process/AutoThresholder.java, 256 bins) and
    autothresholdr (src/AutoThreshold.cpp, ``Triangle``, one bin per integer) run the same
    steps on histograms of any length; the arithmetic here is theirs (the line's normal
    scaled by ``sqrt(nx^2 + ny^2)``), so it serves both conventions.
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
    norm = math.sqrt(nx * nx + ny * ny)
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
        variance = np.where(denominator != 0, (below / total * intensity - below_intensity) ** 2 / denominator, 0.0)
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


# --- the "nandb" convention: autothresholdr on the integer frame sums ---------------------------------
#
# Each function takes autothresholdr's histogram (one bin per integer, from the smallest value) and
# returns the index its C++ function returns (src/AutoThreshold.cpp of autothresholdr 1.4.3), with
# the same failure values (-1, or INT_MIN for Otsu) that auto_thresh() turns into "failed to find
# threshold". Sums are exact (int64) where the C++ uses 32-bit ints that would overflow on large
# histograms; sequential floating-point sums keep the C++ order.


def _integer_histogram(counts):
    data = np.asarray(counts)
    if data.ndim != 1 or data.size < 2:
        raise ValueError(f"a histogram must be 1D with at least 2 bins, got shape {data.shape}")
    if not np.array_equal(data, np.round(data)) or (data < 0).any() or data.sum() <= 0:
        raise ValueError("an integer histogram needs non-negative integer counts and at least one pixel")
    return data.astype(np.int64)


def nandb_huang_index(counts):
    """autothresholdr's ``Huang`` (Celebi's port, as ImageJ's): the first split of least fuzziness.

    The class means are ``mu_0[t]`` (bins ``first..t``) and ``mu_1[t]`` (bins ``t+1..last``),
    each 0 where its class is empty; a bin's membership is ``1 / (1 + |g - mu| / (last - first))``
    written as autothresholdr does, ``1 / (1 + term |g - mu|)`` with ``term = 1 / (last - first)``,
    and memberships below 1e-6 or above 0.999999 are skipped. The entropy of a split is summed
    bin by bin in increasing order. A split inside a run of empty bins has the fuzziness of the
    split at the run's start, so only that split and each occupied bin are evaluated (the C++
    evaluates every bin and keeps the first minimum: the same index).
    """
    data = _integer_histogram(counts)
    size = data.size
    occupied = np.flatnonzero(data)
    first, last = int(occupied[0]), int(occupied[-1])
    with np.errstate(divide="ignore"):
        term = np.float64(1.0) / np.float64(last - first)
    g = np.arange(size, dtype=np.int64)
    mu_0 = np.zeros(size)
    mu_0[first:] = np.cumsum(g[first:] * data[first:]) / np.cumsum(data[first:])
    mu_1 = np.zeros(size)
    if last > 0:
        top_down = np.arange(last, 0, -1)  # bins last .. 1: mu_1[g - 1] is the mean of bins g .. last
        mu_1[top_down - 1] = np.cumsum(g[top_down] * data[top_down]) / np.cumsum(data[top_down])
    candidates = np.union1d([0], occupied)
    weights = data[occupied].astype(np.float64)
    positions = occupied.astype(np.float64)
    entropies = np.empty(candidates.size)
    chunk = max(1, 2**22 // max(occupied.size, 1))
    for start in range(0, candidates.size, chunk):
        splits = candidates[start : start + chunk]
        class_mean = np.where(occupied[None, :] <= splits[:, None], mu_0[splits][:, None], mu_1[splits][:, None])
        with np.errstate(invalid="ignore", divide="ignore"):
            mu = 1.0 / (1.0 + term * np.abs(positions[None, :] - class_mean))
            skipped = (mu < 1e-06) | (mu > 0.999999)
            safe = np.where(skipped, 0.5, mu)
            terms = weights[None, :] * (-safe * np.log(safe) - (1.0 - safe) * np.log(1.0 - safe))
        terms = np.where(skipped, 0.0, terms)
        entropies[start : start + chunk] = np.cumsum(terms, axis=1)[:, -1]  # sequential, in bin order
    if np.isnan(entropies).all():
        return -1
    return int(candidates[np.nanargmin(entropies)])  # first minimum


def nandb_otsu_index(counts):
    """autothresholdr's ``Otsu`` (Celebi's variant, not ImageJ's current one).

    With the normalised histogram ``p = h / N``, its running sum ``c`` and running first moment
    ``m`` (``m[0] = 0``), the between-class variance of a split after ``k`` is
    ``b = (m[-1] c[k] - m[k])``, squared as ``b * (b / (c[k] (1 - c[k])))``; every ``k`` is
    examined and the first maximum above 0 kept. No positive value gives INT_MIN (R: "failed to
    find threshold"). ImageJ examines ``k = 1 .. L - 2`` and keeps the last maximum
    (:func:`otsu_bin`): the two differ on ties.
    """
    data = _integer_histogram(counts)
    histo = (1.0 / float(data.sum())) * data
    cumulative = np.cumsum(histo)
    moment = np.cumsum(np.arange(data.size) * histo)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        between = moment[-1] * cumulative - moment
        between = between * (between / (cumulative * (1.0 - cumulative)))
    if not (between > 0).any():
        return -(2**31)
    return int(np.nanargmax(between))  # first maximum


def _c_log(x):
    return -math.inf if x == 0 else math.log(x)


def nandb_li_index(counts, max_iterations=10_000):
    """autothresholdr's ``Li`` (ImageJ's iterative minimum cross entropy, Li & Tam 1998).

    From the mean bin index, repeat: ``t = (int)(x + 0.5)``; the means ``mb``, ``mo`` of bins
    ``<= t`` and ``> t`` (0 for an empty class); ``x' = (mb - mo) / (ln mb - ln mo)`` rounded half
    away from zero; until ``|x' - x| <= 0.5``. Returns the last ``t``.
    """
    data = _integer_histogram(counts)
    g = np.arange(data.size, dtype=np.int64)
    weighted = np.cumsum(g * data)
    number = np.cumsum(data)
    new_threshold = float(weighted[-1]) / float(number[-1])
    for _ in range(max_iterations):
        old_threshold = new_threshold
        split = int(old_threshold + 0.5)
        last_back = min(split, data.size - 1)
        back_n = int(number[last_back]) if split >= 0 else 0
        back_sum = int(weighted[last_back]) if split >= 0 else 0
        obj_n, obj_sum = int(number[-1]) - back_n, int(weighted[-1]) - back_sum
        mean_back = 0.0 if back_n == 0 else back_sum / back_n
        mean_obj = 0.0 if obj_n == 0 else obj_sum / obj_n
        with np.errstate(invalid="ignore", divide="ignore"):
            temp = float(np.float64(mean_back - mean_obj) / np.float64(_c_log(mean_back) - _c_log(mean_obj)))
        if not math.isfinite(temp):
            raise ValueError("Li's iteration reached an undefined value")
        new_threshold = float(math.trunc(temp - 0.5) if temp < -2.220446049250313e-16 else math.trunc(temp + 0.5))
        if abs(new_threshold - old_threshold) <= 0.5:
            return split
    raise ValueError(f"Li's iteration did not converge in {max_iterations} steps")


def nandb_mean_index(counts):
    """autothresholdr's ``Mean``: ``sum(g h(g)) // sum(h)`` in integers (C ``long`` division)."""
    data = _integer_histogram(counts)
    return int((np.arange(data.size, dtype=np.int64) * data).sum()) // int(data.sum())


def nandb_yen_index(counts):
    """autothresholdr's ``Yen``: always -1, i.e. R's "'Yen' method failed to find threshold".

    ImageJ's Yen (ij/process/AutoThresholder.java) keeps the first split whose criterion
    ``-ln(P1sq P2sq) + 2 ln(P1 (1 - P1))`` exceeds the running maximum, which starts at
    ``Double.MIN_VALUE`` (the smallest positive double). autothresholdr's port starts it at
    ``std::numeric_limits<double>::max()`` instead, which no finite criterion exceeds, so its Yen
    returns -1 on every histogram; its own test expects the error (tests/testthat/
    test-auto-thresh-methods.R, "Yen works"). The criterion is computed here as the C++ does and
    compared with that starting value, so the result is the port's.
    """
    data = _integer_histogram(counts)
    histo = data / float(data.sum())
    p1 = np.cumsum(histo)
    p1_sq = np.cumsum(histo * histo)
    p2_sq = np.zeros(data.size)
    p2_sq[:-1] = np.cumsum((histo * histo)[:0:-1])[::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        product = p1_sq * p2_sq
        spread = p1 * (1.0 - p1)
        criterion = -1.0 * np.where(product > 0, np.log(np.where(product > 0, product, 1.0)), 0.0) + 2 * np.where(
            spread > 0, np.log(np.where(spread > 0, spread, 1.0)), 0.0
        )
    above = np.flatnonzero(criterion > np.finfo(np.float64).max)
    return int(above[0]) if above.size else -1


#: autothresholdr's functions for brightflow's method names, and the names R reports.
NANDB_METHODS = {
    "huang": (nandb_huang_index, "Huang"),
    "triangle": (triangle_bin, "Triangle"),
    "otsu": (nandb_otsu_index, "Otsu"),
    "yen": (nandb_yen_index, "Yen"),
    "li": (nandb_li_index, "Li"),
    "mean": (nandb_mean_index, "Mean"),
}


def _check_frames(frames):
    if frames is None:
        raise ValueError("the nandb convention thresholds the frame sums: pass the number of frames (frames=)")
    if isinstance(frames, bool) or not isinstance(frames, numbers.Integral) or frames < 1:
        raise ValueError(f"frames must be a positive integer, got {frames!r}")
    return int(frames)


def _frame_sums(mean_image, frames):
    """``round(mean * frames)``: the integer frame sums (NaN stays NaN)."""
    return np.rint(np.asarray(mean_image, dtype=np.float64) * frames)


def frame_sum_histogram(mean_image, frames):
    """autothresholdr's histogram of the per-pixel frame sums (``mean_stack_thresh``, ``auto_thresh``).

    Parameters
    ----------
    mean_image : ndarray (y, x)
        Mean counts per frame; NaN pixels are left out (``ignore_na = TRUE``).
    frames : int
        The number of frames the mean is over.

    Returns
    -------
    counts : ndarray of int64
        One bin per integer from the smallest to the largest (scaled) sum.
    low : int
        The smallest (scaled) sum: bin ``i`` holds the sum ``low + i``.
    scale : float
        1, or ``(2**31 - 1) / max`` when the largest sum exceeds R's integer range (the sums were
        multiplied by it and rounded).
    """
    frames = _check_frames(frames)
    sums = _frame_sums(mean_image, frames)
    sums = sums[np.isfinite(sums)]
    if sums.size == 0:
        raise ValueError("no finite pixel value to threshold")
    if sums.min() < 0:
        raise ValueError("the nandb convention needs non-negative counts (autothresholdr refuses negative values)")
    scale = 1.0
    highest = float(sums.max())
    if highest > _R_INTEGER_MAX:
        scale = _R_INTEGER_MAX / highest
        sums = np.rint(sums * scale)
    low, high = int(sums.min()), int(sums.max())
    if high - low + 1 > MAX_NANDB_BINS:
        raise ValueError(
            f"the frame sums span {high - low + 1} integers, more than the {MAX_NANDB_BINS} bins the nandb "
            "convention builds; use convention 'brightflow' (256 bins)"
        )
    return np.bincount((sums - low).astype(np.int64), minlength=high - low + 1), low, scale


def nandb_threshold(mean_image, method, frames):
    """The threshold nandb reports for ``method``, in mean counts per frame (see the module docstring).

    ``(t + low) / (scale * frames)``, ``t`` the index autothresholdr's method picks on
    :func:`frame_sum_histogram`. Raises ValueError where nandb stops with an error: a constant
    image ("Cannot threshold an array with only one unique value") or a method that fails
    (``t + low < 0``: "'Yen' method failed to find threshold").
    """
    method = str(method).lower()
    if method not in NANDB_METHODS:
        raise ValueError(f"unknown threshold method {method!r}; use one of {', '.join(METHODS)}")
    function, name = NANDB_METHODS[method]
    frames = _check_frames(frames)
    counts, low, scale = frame_sum_histogram(mean_image, frames)
    if counts.size < 2:
        raise ValueError(
            f"every pixel has the same frame sum ({low}): nandb (autothresholdr) cannot threshold a constant image"
        )
    index = function(counts)
    if index + low < 0:
        reason = (
            " (autothresholdr's Yen starts its search at the largest double and never finds one; ImageJ's starts "
            "at the smallest: use convention 'brightflow' for Yen)"
            if method == "yen"
            else ""
        )
        raise ValueError(f"'{name}' method failed to find threshold{reason}")
    return (index + low) / (scale * frames)


# --- both conventions ---------------------------------------------------------------------------------


def auto_threshold(mean_image, method, *, convention=DEFAULT_CONVENTION, frames=None):
    """The intensity threshold that ImageJ's method ``method`` gives on the mean image.

    Parameters
    ----------
    mean_image : ndarray (y, x)
        The per-pixel mean (frame sum / frames). NaN pixels are ignored.
    method : str
        One of :data:`METHODS`.
    convention : {"brightflow", "nandb"}
        ``"brightflow"``: ImageJ's 256-bin histogram of the mean image; ``"nandb"``:
        autothresholdr on the integer frame sums, as nandb (see the module docstring).
    frames : int, optional
        The number of frames of the mean; needed by ``"nandb"``.

    Returns
    -------
    float
        Pixels whose mean is below this value are excluded.
    """
    method = str(method).lower()
    if method not in METHODS:
        raise ValueError(f"unknown threshold method {method!r}; use one of {', '.join(METHODS)}")
    if check_convention(convention) == "nandb":
        return nandb_threshold(mean_image, method, frames)
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


def resolve_threshold(mean_image, setting, *, convention=DEFAULT_CONVENTION, frames=None):
    """The threshold of the ``nb.threshold`` setting: ``None`` for none, else a float.

    ``setting`` is ``None``/``"none"``, a number (an intensity in the mean
    image's units: mean counts per frame), or a method name of :data:`METHODS`
    (computed by :func:`auto_threshold` in ``convention``; ``"nandb"`` needs ``frames``).
    """
    check_convention(convention)
    if setting is None or (isinstance(setting, str) and setting.lower() == "none"):
        return None
    if isinstance(setting, numbers.Real) and not isinstance(setting, bool):
        if not np.isfinite(setting):
            raise ValueError(f"a numeric threshold must be finite, got {setting!r}")
        return float(setting)
    return auto_threshold(mean_image, setting, convention=convention, frames=frames)


def threshold_mask(mean_image, threshold, *, convention=DEFAULT_CONVENTION, frames=None):
    """True where a pixel is kept: a finite mean ``>= threshold`` (all finite pixels if ``None``).

    With ``convention="nandb"`` and ``frames``, the mean compared is nandb's, the integer frame
    sum over the frames (``round(mean * frames) / frames``), so a pixel whose sum equals the
    threshold's is kept whatever the rounding of the mean (autothresholdr: ``mean_stack >= thresh``).
    """
    mean_image = np.asarray(mean_image, dtype=np.float64)
    if check_convention(convention) == "nandb" and frames is not None:
        frames = _check_frames(frames)
        mean_image = _frame_sums(mean_image, frames) / frames
    kept = np.isfinite(mean_image)
    if threshold is not None:
        kept &= mean_image >= threshold
    return kept


def apply_threshold(maps, kept):
    """Copies of the maps with NaN wherever ``kept`` is False."""
    kept = np.asarray(kept, dtype=bool)
    return {name: np.where(kept, np.asarray(values, dtype=np.float64), np.nan) for name, values in maps.items()}


def restore_nandb_infinities(maps, detector=None):
    """The maps with R's value where brightflow put NaN for a zero denominator (nandb's convention).

    brightflow.nb gives NaN wherever a denominator is exactly 0; R (nandb R/brightness.R,
    R/number.R) divides: ``x / 0`` is ``Inf`` or ``-Inf`` by the sign of ``x``, and only
    ``0 / 0`` is NaN. A zero denominator is recognised as a NaN in a ratio map at a pixel whose
    ``intensity`` and ``variance`` are finite (excluded pixels have NaN intensity); the
    numerators are those of brightflow.nb: ``variance - v0`` for ``apparent_brightness``
    (and ``brightness = B / S - 1``, Inf stays Inf), ``(intensity - o)^2`` for
    ``apparent_number`` and ``number``. Maps without ``intensity`` and ``variance`` (the cross
    maps) are returned unchanged.

    Parameters
    ----------
    maps : dict of name -> ndarray
    detector : brightflow.nb.DetectorModel or dict, optional
        ``nb.detector`` (offset, s_factor, readout_variance); default photon counting.
    """
    from .nb import DetectorModel

    maps = dict(maps)
    if "intensity" not in maps or "variance" not in maps:
        return maps
    if detector is None:
        detector = DetectorModel()
    elif isinstance(detector, dict):
        detector = DetectorModel(**detector)
    mean = np.asarray(maps["intensity"], dtype=np.float64)
    variance = np.asarray(maps["variance"], dtype=np.float64)
    defined = np.isfinite(mean) & np.isfinite(variance)
    numerators = {
        "apparent_brightness": variance - detector.readout_variance,
        "brightness": variance - detector.readout_variance,
        "apparent_number": (mean - detector.offset) ** 2,
        "number": (mean - detector.offset) ** 2,
    }
    for name, numerator in numerators.items():
        if name not in maps:
            continue
        values = np.asarray(maps[name], dtype=np.float64)
        zero_denominator = np.isnan(values) & defined
        if zero_denominator.any():
            with np.errstate(divide="ignore", invalid="ignore"):
                r_value = numerator / 0.0  # IEEE, as R: +-Inf, NaN for 0 / 0
            maps[name] = np.where(zero_denominator, r_value, values)
    return maps


def exclude_and_filter(maps, kept, filter_method="none", names=None, *, convention=DEFAULT_CONVENTION, detector=None):
    """The maps as brightflow reports them: NaN outside ``kept`` (the pixels ``nb.threshold`` keeps),
    then ``nb.filter`` (nandb's NaN-aware 3x3 mean or median; Nolan et al. 2017, Bioinformatics
    33:3508; brightflow.filters.filter_maps) on the named maps.

    Parameters
    ----------
    maps : dict of name -> ndarray
    kept : ndarray of bool
    filter_method : {'none', 'mean', 'median'}
    names : sequence of str, optional
        The maps to filter (default brightflow.filters.FILTERED_MAPS: brightness and number).
    convention : {"brightflow", "nandb"}
        ``"brightflow"``: excluded pixels stay NaN after the filter, a zero denominator stays
        NaN. ``"nandb"``: as nandb, a zero denominator becomes R's ``+-Inf``
        (:func:`restore_nandb_infinities`), which the filter counts as a value, and the filter
        fills excluded pixels whose 3x3 neighbourhood is at most half NaN.
    detector : brightflow.nb.DetectorModel or dict, optional
        For ``"nandb"``'s infinities (the numerators' offset and readout variance).
    """
    from . import filters

    convention = check_convention(convention)
    maps = apply_threshold(maps, kept)
    if convention == "nandb":
        maps = restore_nandb_infinities(maps, detector)
    return filters.filter_maps(maps, kept, filter_method, *(() if names is None else (names,)), convention=convention)


def threshold_and_filter(
    maps, setting, filter_method="none", *, convention=DEFAULT_CONVENTION, frames=None, detector=None
):
    """Apply ``nb.threshold`` then ``nb.filter`` to the six maps of a stack.

    The threshold is computed on the intensity map (the per-pixel mean of the corrected frames)
    by :func:`resolve_threshold` in ``convention``; pixels below it are NaN in every map, so they
    are left out of every per-cell value. Then :func:`exclude_and_filter`.

    Parameters
    ----------
    maps : dict
        The six maps of brightflow.nb.MAP_NAMES.
    setting : None, "none", a number or a method of :data:`METHODS`
    filter_method : {'none', 'mean', 'median'}
    convention : {"brightflow", "nandb"}
        See the module docstring and :func:`exclude_and_filter`.
    frames : int, optional
        The frames the intensity map is the mean of (``"nandb"`` thresholds their sums).
    detector : brightflow.nb.DetectorModel or dict, optional
        ``nb.detector``, for ``"nandb"``'s infinities.

    Returns
    -------
    maps : dict
    record : dict
        What ``nb_threshold.json`` records: the setting, the value used, the pixels kept, the
        filter and the convention (and, for ``"nandb"``, the frames).

    Raises
    ------
    ValueError
        The setting cannot be applied to this intensity map.
    """
    from . import filters

    convention = check_convention(convention)
    value = resolve_threshold(maps["intensity"], setting, convention=convention, frames=frames)
    kept = threshold_mask(maps["intensity"], value, convention=convention, frames=frames)
    if value is not None:
        maps = apply_threshold(maps, kept)
    if convention == "nandb":
        maps = restore_nandb_infinities(maps, detector)
    maps = filters.filter_maps(maps, kept, filter_method, convention=convention)
    record = {
        "setting": setting,
        "value": value,
        "units": "mean counts per frame (the intensity map)",
        "pixels_kept": int(kept.sum()),
        "pixels": int(kept.size),
        "filter": filter_method,
        "convention": convention,
    }
    if convention == "nandb":
        record["frames"] = frames
    return maps, record
