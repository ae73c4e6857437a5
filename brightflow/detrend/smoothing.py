"""Smoothing of each pixel's time series into a trend, and the detrending by it.

The three smoothers of Nolan et al. 2017 (Bioinformatics 33:3508; detrendr): a moving average
over ``2l + 1`` frames (``boxcar``), an exponentially weighted average with time constant ``tau``
(``exponential``), a least-squares polynomial of a given degree (``polynomial``). Each is a linear
operator ``S`` on a series of ``T`` frames: the trend is ``s = S x``.

Two ways to correct a series ``x`` by its trend ``s`` (``m`` the series mean):

- :func:`detrend_with_gains`, brightflow's default: ``x' = m + g_t (x - s)`` with per-frame gains
  ``g_t = sqrt(<c> / c_t)`` from the smooth trend ``c`` of the cells' mean intensity. The residual
  ``x - s`` is a linear function of ``x``, so its expected variance is known exactly
  (brightflow.detrend.dof), and the gains come from a trend averaged over every cell pixel, so
  they add no noise of their own.
- :func:`detrend_smoothed`, detrendr's: ``x' = m + (x - s) sqrt(m / s)`` with the pixel's own trend;
  it loses part of the variance to the smoother (``bleach_correction.dof_correction: false``).

The smoother classes (:class:`BoxcarSmoother`, :class:`ExponentialSmoother`,
:class:`PolynomialSmoother`) hold ``S`` for one frame count and parameter and give, besides
``S x``, what the exact residual degrees of freedom need: ``diag(S)``, ``S^T h`` and
``(S o S) h`` (the elementwise square of ``S`` applied to ``h``), each in O(T) (O(T d^2) for the
polynomial), never the T x T matrix.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "EXPONENTIAL_CUTOFF",
    "BoxcarSmoother",
    "ExponentialSmoother",
    "PolynomialSmoother",
    "SMOOTHERS",
    "detrend_smoothed",
    "detrend_with_gains",
    "exponential_half_width",
    "smooth",
]

#: Exponential filter weights below this fraction of the largest are dropped (detrendr's cutoff).
EXPONENTIAL_CUTOFF = 0.05


def exponential_half_width(tau, frames):
    """Half-width ``l = min(floor(-tau ln 0.05), 2T - 3)`` of the exponential filter (detrendr)."""
    return int(min(np.floor(-tau * np.log(EXPONENTIAL_CUTOFF)), 2 * frames - 3))


def _window_sums(values, half_width):
    """``sum of values[u]`` over ``|u - t| <= l``, ``0 <= u < T``, for each ``t`` (1-D)."""
    frames = values.shape[0]
    running = np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])
    index = np.arange(frames)
    return running[np.minimum(index + half_width + 1, frames)] - running[np.maximum(index - half_width, 0)]


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
        np.subtract(
            running[2 * h + 1 : h + ends_inside], running[: ends_inside - h - 1], out=window[h + 1 : ends_inside]
        )
    tail = max(h + 1, ends_inside)
    if tail < frames:
        np.subtract(running[-1], running[tail - h - 1 : frames - h - 1], out=window[tail:])
    del running
    window /= _boxcar_widths(frames, half_width).reshape((-1,) + (1,) * (series.ndim - 1))
    return window


def _boxcar_widths(frames, half_width):
    """Frames in the truncated window of each frame, ``min(t + l + 1, T) - max(t - l, 0)``."""
    index = np.arange(frames)
    return np.minimum(index + half_width + 1, frames) - np.maximum(index - half_width, 0)


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


def _symmetric_exponential(values, decay, half_width):
    """``sum_{|i| <= l} decay^|i| x[t + i]`` (frames outside the series count as 0), along axis 0."""
    forward = _one_sided_exponential(values, decay, half_width)
    backward = _one_sided_exponential(values[::-1], decay, half_width)[::-1]
    return forward + backward - values


def _exponential(series, tau):
    frames = series.shape[0]
    half_width = exponential_half_width(tau, frames)
    if half_width < 1:
        return series.copy()
    decay = np.exp(-1.0 / tau)
    weights = _symmetric_exponential(np.ones(frames), decay, half_width).reshape((-1,) + (1,) * (series.ndim - 1))
    return _symmetric_exponential(series, decay, half_width) / weights


def _legendre_basis(frames, degree):
    """Orthonormal basis (QR of a Legendre Vandermonde matrix on time scaled to [-1, 1]), ``(T, d + 1)``."""
    from numpy.polynomial import legendre

    basis, _ = np.linalg.qr(legendre.legvander(np.linspace(-1.0, 1.0, frames), degree))
    return basis


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
    if method not in SMOOTHERS:
        raise ValueError(f"{method!r} is not a smoothing method; use one of {', '.join(SMOOTHERS)}")
    return SMOOTHERS[method](series.shape[0], parameter).apply(series)


# --- the smoothers as linear operators ----------------------------------------------------------


class _Smoother:
    """The smoothing matrix ``S`` (``T x T``) of one method, frame count and parameter.

    ``apply`` is ``S x`` along axis 0 (what :func:`smooth` computes); ``diagonal``, ``transpose``
    and ``squared`` give ``diag(S)``, ``S^T h`` and ``(S o S) h`` of a 1-D ``h`` for the exact
    residual degrees of freedom (brightflow.detrend.dof).
    """

    def __init__(self, frames, parameter):
        self.frames = int(frames)
        self.parameter = parameter

    def matrix(self):
        """``S`` itself (``T x T``; for tests and small ``T``): column ``u`` is ``S e_u``."""
        return self.apply(np.eye(self.frames))


class BoxcarSmoother(_Smoother):
    """Moving average: ``S_tu = 1 / w_t`` for ``|t - u| <= l`` inside the series (``w_t`` frames)."""

    def __init__(self, frames, half_width):
        if int(half_width) < 1:
            raise ValueError(f"the boxcar half-width must be at least 1 frame, got {half_width}")
        super().__init__(frames, int(half_width))
        self.half_width = int(min(self.parameter, 2 * self.frames - 3))
        self.widths = _boxcar_widths(self.frames, self.half_width).astype(np.float64)

    def apply(self, series):
        return _boxcar(np.asarray(series, dtype=np.float64), self.parameter)

    def diagonal(self):
        return 1.0 / self.widths

    def transpose(self, values):
        return _window_sums(np.asarray(values, dtype=np.float64) / self.widths, self.half_width)

    def squared(self, values):
        return _window_sums(np.asarray(values, dtype=np.float64), self.half_width) / self.widths**2


class ExponentialSmoother(_Smoother):
    """Exponential weights: ``S_tu = exp(-|t - u| / tau) / W_t`` for ``|t - u| <= l`` (``W_t`` their sum).

    With ``l < 1`` (``tau`` below about a third of a frame) the trend is the series itself; such a
    smoother has no residual to measure, and brightflow's corrections refuse it.
    """

    def __init__(self, frames, tau):
        if not tau > 0:
            raise ValueError(f"the exponential time constant tau must be > 0, got {tau}")
        super().__init__(frames, float(tau))
        self.half_width = exponential_half_width(self.parameter, self.frames)
        self.decay = np.exp(-1.0 / self.parameter)
        self.weights = _symmetric_exponential(np.ones(self.frames), self.decay, max(self.half_width, 0))

    def apply(self, series):
        return _exponential(np.asarray(series, dtype=np.float64), self.parameter)

    def diagonal(self):
        return 1.0 / self.weights

    def transpose(self, values):
        return _symmetric_exponential(np.asarray(values, dtype=np.float64) / self.weights, self.decay, self.half_width)

    def squared(self, values):
        return (
            _symmetric_exponential(np.asarray(values, dtype=np.float64), self.decay**2, self.half_width)
            / self.weights**2
        )


class PolynomialSmoother(_Smoother):
    """Least-squares polynomial: ``S = Q Q^T``, ``Q`` an orthonormal basis of polynomials of the degree."""

    def __init__(self, frames, degree):
        if int(degree) != degree or degree < 1:
            raise ValueError(f"the polynomial degree must be a whole number >= 1, got {degree}")
        super().__init__(frames, int(degree))
        if self.parameter >= self.frames:
            raise ValueError(f"a polynomial of degree {degree} needs more than {degree} frames, got {frames}")
        self._basis = None

    @property
    def basis(self):
        if self._basis is None:
            self._basis = _legendre_basis(self.frames, self.parameter)
        return self._basis

    def apply(self, series):
        series = np.asarray(series, dtype=np.float64)
        flat = series.reshape(series.shape[0], -1)
        return (self.basis @ (self.basis.T @ flat)).reshape(series.shape)

    def diagonal(self):
        return (self.basis**2).sum(axis=1)

    def transpose(self, values):
        return self.basis @ (self.basis.T @ np.asarray(values, dtype=np.float64))

    def squared(self, values):
        weighted = self.basis.T @ (np.asarray(values, dtype=np.float64)[:, None] * self.basis)
        return np.einsum("ti,ij,tj->t", self.basis, weighted, self.basis)


#: The smoother of each smoothing method, by its configuration name.
SMOOTHERS = {"boxcar": BoxcarSmoother, "exponential": ExponentialSmoother, "polynomial": PolynomialSmoother}


# --- detrending by a trend ----------------------------------------------------------------------


def detrend_smoothed(series, smoothed):
    """detrendr's correction of each time series by its own trend: ``x' = m + (x - s) sqrt(m / s)``.

    ``m`` is the series mean along axis 0 and ``s`` the trend, clipped at 0
    from below; where ``m / s`` is not finite the factor is 1 (Nolan et al.
    2017; detrendr's ``img_detrend_smoothed``). The mean of each series is kept
    and its fluctuations are rescaled to the Poisson level of the mean. The
    smoother takes part of the white variance with it (brightflow.detrend.dof),
    and the noisy per-pixel ``s`` in the factor biases it further; brightflow
    uses this only with ``bleach_correction.dof_correction: false``.

    The result is **not rounded**: float64 values, negatives kept (see the
    package docstring, "Rounding").
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


def detrend_with_gains(series, smoothed, gains):
    """Correct each time series by its trend with per-frame gains: ``x' = m + g_t (x - s)``.

    Parameters
    ----------
    series : array_like, shape (t, ...)
    smoothed : array_like, shape (t, ...)
        Each series' trend ``s`` (:func:`smooth`).
    gains : array_like, shape (t,)
        ``g_t = sqrt(<c> / c_t)`` from the trend ``c`` of the cells' mean intensity
        (brightflow.detrend.CorrectionModel.gains): the fluctuations of frame ``t`` are brought to
        the level of the mean intensity, as shot noise and number fluctuations scale with the
        intensity (Nolan et al. 2017), with a factor that is the same for every pixel and carries
        no noise of its own.

    Returns
    -------
    ndarray of float64
        Not rounded; the mean ``m`` of each series is kept.
    """
    series = np.array(series, dtype=np.float64)
    trend = np.array(smoothed, dtype=np.float64)
    return _detrend_with_gains_in_place(series, trend, np.asarray(gains, dtype=np.float64))


def _detrend_with_gains_in_place(series, trend, gains):
    """:func:`detrend_with_gains` written over ``series`` (float64): ``(x - s) * g + m``, in that order
    (brightflow.compiled's loop does the same operations in the same order)."""
    mean = series.mean(axis=0)
    series -= trend
    series *= gains.reshape((-1,) + (1,) * (series.ndim - 1))
    series += mean
    return series
