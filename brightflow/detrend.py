"""Bleach correction (detrending) of a time series before N&B.

A correction is described by a small *model*, a JSON-serialisable dict made by
:func:`fit_correction` from the data, and applied block by block by
:func:`correct_frames` while the N&B step streams the stack, so no corrected
copy of the stack is ever written.

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
    al. 2017, Bioinformatics 33:3268, doi:10.1093/bioinformatics/btx434). It is
    kept to reproduce the replaced app's numbers.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "METHODS",
    "cell_trace",
    "fit_correction",
    "correct_frames",
    "corrected_trace",
]

METHODS = ("none", "linear")


def cell_trace(frames, mask):
    """Mean intensity of the pixels where ``mask`` is true, per frame.

    Parameters
    ----------
    frames : ndarray, shape (t, y, x)
    mask : ndarray of bool, shape (y, x)
        Cell pixels. An empty mask uses every pixel.
    """
    frames = np.asarray(frames)
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        mask = np.ones(mask.shape, dtype=bool)
    return frames[:, mask].mean(axis=1, dtype=np.float64)


def fit_correction(trace, method="none", parameter="auto"):
    """Make the correction model for a per-frame mean intensity trace.

    Parameters
    ----------
    trace : ndarray, shape (t,)
        Mean intensity of the cell pixels in each frame.
    method : str
        One of :data:`METHODS`.
    parameter : 'auto' or float
        The method's parameter (unused by ``none`` and ``linear``).

    Returns
    -------
    dict
        ``method``, ``parameter``, ``parameter_source``, ``trace``, ``trend``
        (the fitted trend per frame) and, for per-frame methods, ``frame_factors``.
    """
    trace = np.asarray(trace, dtype=np.float64)
    if trace.ndim != 1 or trace.size < 2:
        raise ValueError(f"the intensity trace needs at least 2 frames, got shape {trace.shape}")
    if method not in METHODS:
        raise ValueError(f"unknown bleach correction method {method!r}; use one of {METHODS}")
    frame_index = np.arange(trace.size, dtype=np.float64)
    if method == "none":
        trend = np.full(trace.size, trace.mean())
        factors = np.ones(trace.size)
    else:
        slope, intercept = np.polyfit(frame_index, trace, 1)
        trend = intercept + slope * frame_index
        if np.any(trend <= 0):
            raise ValueError(
                "the linear bleach fit reaches zero or below within the recording; "
                "the linear correction cannot be applied (choose another method)"
            )
        factors = trend[0] / trend
    return {
        "method": method,
        "parameter": None,
        "parameter_source": "not used by this method",
        "frames": int(trace.size),
        "trace": trace.tolist(),
        "trend": trend.tolist(),
        "frame_factors": factors.tolist(),
    }


def correct_frames(model, frames, start=0):
    """Apply a per-frame correction model to frames ``start .. start + len(frames)``.

    Returns float64 frames.
    """
    frames = np.asarray(frames, dtype=np.float64)
    factors = np.asarray(model["frame_factors"], dtype=np.float64)[start : start + frames.shape[0]]
    if factors.size != frames.shape[0]:
        raise ValueError(
            f"the correction model covers {len(model['frame_factors'])} frames; "
            f"frames {start}..{start + frames.shape[0] - 1} are outside it"
        )
    return frames * factors[:, None, None]


def corrected_trace(model):
    """The cell-pixel mean per frame after correction (for the figure)."""
    return np.asarray(model["trace"]) * np.asarray(model["frame_factors"])
