"""Smoothing of each pixel's time series into a trend, and the N&B-correct detrending by it.

The three smoothing methods of Nolan et al. 2017 (Bioinformatics 33:3508; detrendr):
a moving average over ``2l + 1`` frames (``boxcar``), an exponentially weighted average with
time constant ``tau`` (``exponential``), a least-squares polynomial of a given degree
(``polynomial``). Each pixel's series ``x`` is corrected by its trend ``s`` to
``x' = m + (x - s) sqrt(m / s)`` (``m`` the pixel mean): the mean is kept and the fluctuations
are rescaled to the Poisson level of the mean, so shot noise keeps ``B = 1``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["EXPONENTIAL_CUTOFF", "SMOOTHING_METHODS", "detrend_smoothed", "exponential_half_width", "smooth"]

#: Methods that smooth each pixel's time series (need every frame of a pixel at once).
SMOOTHING_METHODS = ("boxcar", "exponential", "polynomial")
#: Exponential filter weights below this fraction of the largest are dropped (detrendr's cutoff).
EXPONENTIAL_CUTOFF = 0.05


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
