"""The variance a detrending smoother takes with it, exactly: the residual degrees of freedom.

A smoothing correction replaces each pixel's series ``x`` (``T`` frames) by
``x' = m + G (I - S) x``, with ``S`` the smoother (brightflow.detrend.smoothing), ``G = diag(g)``
the per-frame gains and ``m`` the pixel mean. N&B needs the variance of ``x`` about its trend. For
frame-to-frame fluctuations that are independent between frames (shot noise, and the number
fluctuations of molecules that move between frames: N&B's own premise, Digman et al. 2008), with a
variance ``v_t`` that follows the intensity and gains that bring it to the mean level
(``g_t^2 v_t = v``), the sum of squares of ``x'`` about its mean has the expectation

    E[ sum_t (x'_t - mean x')^2 ] = v * D,    D = tr( (I - J/T) A A^T ),   A = G (I - S) G^-1,

where ``J/T`` takes the mean. This is the trace identity of a quadratic form of a linear smoother's
residuals (Hastie & Tibshirani 1990, *Generalized Additive Models*, Chapman & Hall, section 3.5;
Buja, Hastie & Tibshirani 1989, *Ann Stat* 17:453): ``D`` is the *residual degrees of freedom*.
Without smoothing (``S = 0``) ``D = T - 1``, the familiar ``1 / (T - 1)``; a polynomial of degree
``d`` with ``G = I`` gives ``D = T - d - 1``. The *effective degrees of freedom* of the smoother are
``(T - 1) - D``: the share of the white variance the trend takes with it. Dividing the sum of
squares by ``D`` instead of ``T - 1`` makes the variance, and so ``B``, ``epsilon`` and ``n``,
unbiased for every smoother and parameter (brightflow's ``bleach_correction.dof_correction``).

``D`` is computed without forming ``A``:

    ||A_W||_F^2 = sum_{t in W} [ 1 - 2 S_tt + g_t^2 ((S o S) g^-2)_t ]
    (A_W^T 1)_u = 1_W(u) - (S^T (g 1_W))_u / g_u
    D_W = ||A_W||_F^2 - ||A_W^T 1||^2 / |W|

for the frames ``W`` a variance is taken over (the whole recording, or a window of the N&B time
series), from ``diag(S)``, ``S^T h`` and ``(S o S) h``, which each smoother gives in O(T).
:func:`dense_residual_dof` forms ``A`` itself (O(T^2)): the reference the tests compare with, and
the way two channels' different smoothers are combined for cross-correlated N&B
(:func:`cross_residual_dof`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["cross_residual_dof", "dense_residual_dof", "residual_dof"]

#: Columns of ``A`` formed at a time by the dense computations (memory ``T x`` this many floats).
DENSE_BLOCK_COLUMNS = 256


def _windows(frames, windows):
    return [(0, int(frames))] if windows is None else [(int(start), int(stop)) for start, stop in windows]


def residual_dof(smoother, gains, windows=None):
    """Residual degrees of freedom ``D_W`` of a smoothing correction, per window of frames.

    Parameters
    ----------
    smoother : brightflow.detrend.smoothing smoother
        ``S`` (gives ``diagonal()``, ``transpose(h)``, ``squared(h)``).
    gains : ndarray, shape (t,)
        The per-frame gains ``g`` (all 1 for none).
    windows : sequence of (start, stop), optional
        The frames each variance is taken over; default the whole recording.

    Returns
    -------
    ndarray of float64, shape (windows,)
        ``E[sum of squares about the window mean] / v`` (module docstring): ``T - 1`` without smoothing.
    """
    gains = np.asarray(gains, dtype=np.float64)
    rows = 1.0 - 2.0 * smoother.diagonal() + gains**2 * smoother.squared(1.0 / gains**2)
    out = []
    for start, stop in _windows(gains.size, windows):
        inside = np.zeros(gains.size)
        inside[start:stop] = 1.0
        columns = inside - smoother.transpose(gains * inside) / gains
        out.append(rows[start:stop].sum() - (columns**2).sum() / (stop - start))
    return np.asarray(out)


def _residual_columns(apply, gains, start, stop):
    """Columns ``start .. stop - 1`` of ``A = G (I - S) G^-1`` (``apply``: ``S`` along axis 0; None: S = 0)."""
    frames = gains.size
    identity = np.zeros((frames, stop - start))
    identity[np.arange(start, stop), np.arange(stop - start)] = 1.0
    residual = identity if apply is None else identity - apply(identity)
    return gains[:, None] * residual / gains[None, start:stop]


def _dense(applies, gains_pair, windows):
    """``tr((I_W - J_W/|W|) A1_W A2_W^T)`` per window, forming ``A1`` and ``A2`` a block of columns at a time."""
    gains1, gains2 = (np.asarray(gains, dtype=np.float64) for gains in gains_pair)
    frames = gains1.size
    bounds = _windows(frames, windows)
    products = np.zeros(len(bounds))
    column_products = np.zeros(len(bounds))
    for start in range(0, frames, DENSE_BLOCK_COLUMNS):
        stop = min(start + DENSE_BLOCK_COLUMNS, frames)
        first = _residual_columns(applies[0], gains1, start, stop)
        second = (
            first
            if applies[1] is applies[0] and gains2 is gains1
            else _residual_columns(applies[1], gains2, start, stop)
        )
        for index, (low, high) in enumerate(bounds):
            products[index] += np.einsum("tu,tu->", first[low:high], second[low:high])
            column_products[index] += first[low:high].sum(axis=0) @ second[low:high].sum(axis=0)
    sizes = np.array([high - low for low, high in bounds], dtype=np.float64)
    return products - column_products / sizes


def dense_residual_dof(apply, gains, windows=None):
    """:func:`residual_dof` from ``A`` itself, O(T^2) (``apply``: ``S x`` along axis 0; None: no smoothing)."""
    gains = np.asarray(gains, dtype=np.float64)
    return _dense((apply, apply), (gains, gains), windows)


def cross_residual_dof(apply1, gains1, apply2, gains2, windows=None):
    """Residual degrees of freedom of a covariance between two channels detrended separately.

    ``E[sum_t (x'_t - mean)(y'_t - mean)] = c D`` with ``D = tr((I - J/T) A1 A2^T)`` for
    cross-fluctuations that are independent between frames, with a covariance brought to a constant
    ``c`` by the two channels' gains (module docstring). ``apply1``/``apply2``: each channel's
    ``S x`` along axis 0, or None (no smoothing). Equal to :func:`residual_dof` when both are the same.
    """
    return _dense((apply1, apply2), (gains1, gains2), windows)
