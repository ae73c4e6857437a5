"""Quality flags: what makes a cell's numbers doubtful, said beside them.

N&B turns the mean and variance of each pixel's counts into brightness and number (Digman et al.
2008, Biophys J 94:2320). Some recordings break its assumptions without any error: a detector
at its maximum clips the fluctuations (B falls, to -1 in the extreme), negative values cannot be
photon counts, a "cell" no brighter than the background holds no molecules to measure, NaN or
Inf samples make a pixel's moments meaningless, and few frames make every variance imprecise.
The per-cell tables carry a ``Warnings`` column of short codes for these (empty when all is
well); the thresholds come from the shot noise of the data.

Codes (:data:`CODES`):

``saturated (k px)``
    k of the cell's pixels have at least one sample at the saturation level (the dtype's maximum
    for integer data, or ``quality.saturation_level``).
``negative values (k px)``
    k of the cell's pixels have at least one sample below 0: not photon counts (data that were
    background-subtracted, or a signed camera format), so the shot-noise relation N&B rests on
    does not hold.
``non-finite samples (k)``
    k NaN or Inf samples in the cell's pixels; those pixels are left out of every value.
``low signal``
    the cell's mean intensity exceeds the background's (the median pixel outside every cell) by
    less than ``quality.low_signal_sigmas`` times the shot noise of one background pixel's mean
    over the recording, ``sqrt((S (I_bg - o) + v0) / T)`` (Dalal et al. 2008, Microsc Res Tech
    71:69, for an analog detector's S, o, v0; S = 1, o = v0 = 0 for photon counting): its pixels
    are not individually distinguishable from background noise, as in a field of pure noise that a
    threshold cut into "cells".
``few frames (T)``
    fewer than ``quality.min_frames`` frames: the relative standard error of each pixel's variance
    is about ``sqrt(2 / (T - 1))`` (20% at T = 50), and B and n inherit it.
``not photon counts (B x)``
    the cell's apparent brightness (ratio of means, over the S factor of ``nb.detector``) is above
    :data:`MAX_APPARENT_BRIGHTNESS`: a brightness of more than 99 photons per molecule per frame,
    far beyond any fluorophore of N&B practice (epsilon of about 0.1 to 10). The counts are most
    likely an analog detector's, not photons: describe it with ``nb.detector`` (offset, S factor,
    readout variance; Dalal et al. 2008), or epsilon and n mean nothing.
``bleaching left (x SE)``
    the automatic bleach correction's most severe setting still leaves a bleaching trend that adds
    x standard errors of the cells' mean B (brightflow.detrend.auto: the tolerance is 0.1): the
    brightness may be high. A sudden change in the recording, or values far above photon counts.
``no cells``
    the experiment has no cell (the folder table keeps a row for it).
"""

from __future__ import annotations

import numpy as np

from . import compiled
from .nb import DetectorModel

__all__ = [
    "SATURATED",
    "NEGATIVE",
    "NON_FINITE",
    "LOW_SIGNAL",
    "FEW_FRAMES",
    "BLEACHING_LEFT",
    "NOT_PHOTON_COUNTS",
    "MAX_APPARENT_BRIGHTNESS",
    "NO_CELLS",
    "CODES",
    "MIN_FRAMES",
    "LOW_SIGNAL_SIGMAS",
    "saturation_level",
    "SampleCounts",
    "cell_warnings",
    "code_of",
]

SATURATED = "saturated"
NEGATIVE = "negative values"
NON_FINITE = "non-finite samples"
LOW_SIGNAL = "low signal"
FEW_FRAMES = "few frames"
BLEACHING_LEFT = "bleaching left"
NOT_PHOTON_COUNTS = "not photon counts"
NO_CELLS = "no cells"
CODES = (SATURATED, NEGATIVE, NON_FINITE, LOW_SIGNAL, FEW_FRAMES, NOT_PHOTON_COUNTS, BLEACHING_LEFT, NO_CELLS)

#: Fewest frames without the ``few frames`` flag: the variance's relative standard error is
#: sqrt(2 / (T - 1)), 20% at 50 frames.
MIN_FRAMES = 50
#: ``low signal`` below this many standard deviations of a background pixel's mean.
LOW_SIGNAL_SIGMAS = 3.0
#: ``not photon counts`` above this apparent brightness over the S factor (epsilon above 99 photons per
#: molecule per frame).
MAX_APPARENT_BRIGHTNESS = 100.0


def saturation_level(dtype, configured=None):
    """The value at which the detector saturates: ``configured`` if given, else the integer dtype's
    maximum (255 for uint8, 65535 for uint16...), else None (floating-point data have none)."""
    if configured is not None:
        return float(configured)
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        return float(np.iinfo(dtype).max)
    return None


class SampleCounts:
    """Per-pixel counts of saturated, negative and non-finite samples, over chunks of frames.

    Parameters
    ----------
    shape : tuple of int
        ``(y, x)``.
    saturation : float or None
        :func:`saturation_level`.
    compiled : bool
        Count integer frames with brightflow.compiled's loops (the same counts in one pass).
    """

    def __init__(self, shape, saturation=None, compiled=False):
        self.shape = tuple(shape)
        self.saturation = saturation
        self.compiled = compiled
        self.saturated = np.zeros(self.shape, dtype=np.int64)
        self.negative = np.zeros(self.shape, dtype=np.int64)
        self.non_finite = np.zeros(self.shape, dtype=np.int64)

    def update(self, frames):
        """Add frames ``(t, y, x)`` in any real dtype."""
        frames = np.asarray(frames)
        if self.compiled and np.issubdtype(frames.dtype, np.integer) and frames.dtype != np.uint64:
            # one pass over the frames, the same counts
            compiled.count_integer_samples(frames, self.saturation, self.saturated, self.negative)
            return
        if np.issubdtype(frames.dtype, np.floating):
            finite = np.isfinite(frames)
            self.non_finite += (~finite).sum(axis=0)
            values = np.where(finite, frames, 0)
        else:
            values = frames
        if self.saturation is not None:
            self.saturated += (values >= self.saturation).sum(axis=0)
        if not np.issubdtype(values.dtype, np.unsignedinteger):
            self.negative += (values < 0).sum(axis=0)

    def array(self):
        """``(3, y, x)`` int64: saturated, negative and non-finite samples of each pixel."""
        return np.stack([self.saturated, self.negative, self.non_finite])


def code_of(warning):
    """The code of one warning, without its count: ``"saturated (3 px)"`` -> ``"saturated"``."""
    return warning.split(" (", 1)[0]


def cell_warnings(
    labels,
    segmented,
    cell_ids,
    counts,
    intensity,
    frames,
    detector=DetectorModel(),
    min_frames=MIN_FRAMES,
    low_signal_sigmas=LOW_SIGNAL_SIGMAS,
    bleaching_left=None,
    variance_map=None,
):
    """The ``Warnings`` of each cell: codes joined by ``"; "`` (empty when all is well).

    Parameters
    ----------
    labels : ndarray of int, shape (y, x)
        The analysis mask (the pixels each cell's values come from).
    segmented : ndarray of int, shape (y, x)
        The segmentation (its zero pixels are the background).
    cell_ids : sequence of int
    counts : ndarray, shape (3, y, x)
        :meth:`SampleCounts.array`.
    intensity : ndarray, shape (y, x)
        The intensity map (per-pixel mean of the corrected frames; NaN where undefined).
    frames : int
    detector : brightflow.nb.DetectorModel
    min_frames : int
    low_signal_sigmas : float
    bleaching_left : float, optional
        brightflow.detrend.CorrectionModel.leftover_standard_errors: the bleaching the correction left,
        in standard errors of the cells' mean B (None: within the tolerance).
    variance_map : ndarray, shape (y, x), optional
        The variance map: each cell's ratio-of-means apparent brightness, for ``not photon counts``.

    Returns
    -------
    dict of int -> str
    """
    labels = np.asarray(labels)
    intensity = np.asarray(intensity, dtype=np.float64)
    saturated, negative, non_finite = (np.asarray(part) for part in counts)
    background = (np.asarray(segmented) == 0) & np.isfinite(intensity)
    noise = None
    if background.any():
        level = float(np.median(intensity[background]))
        variance = detector.s_factor * max(level - detector.offset, 0.0) + detector.readout_variance
        noise = (level, np.sqrt(variance / max(int(frames), 1)))
    warnings = {}
    for cell in cell_ids:
        pixels = labels == cell
        found = []
        if (saturated[pixels] > 0).any():
            found.append(f"{SATURATED} ({int((saturated[pixels] > 0).sum())} px)")
        if (negative[pixels] > 0).any():
            found.append(f"{NEGATIVE} ({int((negative[pixels] > 0).sum())} px)")
        if non_finite[pixels].sum():
            found.append(f"{NON_FINITE} ({int(non_finite[pixels].sum())})")
        values = intensity[pixels & np.isfinite(intensity)]
        if noise is not None and values.size and values.mean() - noise[0] < low_signal_sigmas * noise[1]:
            found.append(LOW_SIGNAL)
        if frames < min_frames:
            found.append(f"{FEW_FRAMES} ({int(frames)})")
        if variance_map is not None:
            both = pixels & np.isfinite(intensity) & np.isfinite(variance_map)
            signal = intensity[both].mean() - detector.offset if both.any() else 0.0
            if signal > 0:
                apparent = (variance_map[both].mean() - detector.readout_variance) / signal / detector.s_factor
                if apparent > MAX_APPARENT_BRIGHTNESS:
                    found.append(f"{NOT_PHOTON_COUNTS} (B {apparent:.2g})")
        if bleaching_left is not None:
            found.append(f"{BLEACHING_LEFT} ({bleaching_left:.2g} SE)")
        warnings[int(cell)] = "; ".join(found)
    return warnings
