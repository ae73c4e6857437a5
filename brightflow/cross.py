"""Cross-correlated number and brightness (ccN&B) of two channels.

Digman, M. A., Wiseman, P. W., Choi, C., Horwitz, A. R. & Gratton, E. (2009).
Stoichiometry of molecular complexes at adhesions in living cells. *PNAS*
106(7), 2170-2175. doi:10.1073/pnas.0806036106 (the cross-variance and the
cross brightness; also the reference of nandb's ``cc_brightness`` and
``cc_number``: Nolan et al. 2017, *Bioinformatics* 33(21), 3508-3510).

Per pixel, with ``k1``, ``k2`` the two channels' counts over ``T`` frames and
``o1``, ``o2`` their detector offsets::

    cov    = sum_t (k1 - <k1>) (k2 - <k2>) / (T - ddof)      cross-variance
    B_cc   = cov / sqrt((<k1> - o1) (<k2> - o2))              cross brightness
    N_cc   = (<k1> - o1) (<k2> - o2) / cov                    cross number

The covariance uses the same normalisation as the variance of single-channel
N&B (``nb.variance_ddof``): ``1 / (T - 1)`` (unbiased, ``ddof = 1``, the
default) or ``1 / T`` (``ddof = 0``). Shot noise and readout noise of two
detectors are independent, so unlike the variance the covariance needs no
shot-noise or readout correction: ``B_cc`` is 0 for independent species.

For species ``A`` (brightness ``e1`` in channel 1), ``B`` (``e2`` in channel 2)
and complexes ``AB`` (number ``n_c``, brightness ``e1`` and ``e2``), mobile and
Poisson-distributed, ``cov = e1 e2 n_c``; with ``n1``, ``n2`` the total
molecules seen in each channel, ``B_cc = sqrt(e1 e2) n_c / sqrt(n1 n2)``: the
fraction of molecules in complexes times the geometric mean brightness, and
``N_cc = n1 n2 / n_c``.
"""

from __future__ import annotations

import numpy as np

from .nb import DetectorModel, StreamingMoments, _divide

__all__ = [
    "CROSS_MAP_NAMES",
    "StreamingCrossMoments",
    "cross_brightness",
    "cross_maps",
    "cross_number",
    "cross_variance",
]

#: The ccN&B maps, in output order.
CROSS_MAP_NAMES = ("cross_variance", "cross_brightness", "cross_number")


class StreamingCrossMoments:
    """Per-pixel means, variances and the cross-variance of two channels, over chunks of frames.

    Like :class:`brightflow.nb.StreamingMoments` (shifted sums, Chan, Golub &
    LeVeque 1983), memory does not grow with the number of frames.

    Parameters
    ----------
    shape : tuple of int
        The image shape ``(y, x)``.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> a, b = rng.poisson(4.0, size=(2, 30, 3, 3))
    >>> moments = StreamingCrossMoments((3, 3))
    >>> moments.update(a[:10], b[:10]); moments.update(a[10:], b[10:])
    >>> expected = ((a - a.mean(0)) * (b - b.mean(0))).sum(0) / 29
    >>> np.allclose(moments.covariance(ddof=1), expected)
    True
    """

    def __init__(self, shape):
        self.shape = tuple(shape)
        self.first = StreamingMoments(self.shape)
        self.second = StreamingMoments(self.shape)
        self._sum_products = np.zeros(self.shape)

    def update(self, frames1, frames2):
        """Add the same frames ``(t, y, x)`` of both channels."""
        frames1 = np.asarray(frames1, dtype=np.float64)
        frames2 = np.asarray(frames2, dtype=np.float64)
        if frames1.shape != frames2.shape:
            raise ValueError(f"the two channels' frames differ in shape: {frames1.shape} and {frames2.shape}")
        if frames1.ndim != 3 or frames1.shape[1:] != self.shape:
            raise ValueError(f"frames must be (t, {self.shape[0]}, {self.shape[1]}), got {frames1.shape}")
        if frames1.shape[0] == 0:
            return
        self.first.update(frames1)
        self.second.update(frames2)
        # the shifts are set by the first update of each accumulator
        centred1 = frames1 - self.first._shift
        centred2 = frames2 - self.second._shift
        self._sum_products += np.einsum("tyx,tyx->yx", centred1, centred2)

    @property
    def count(self):
        return self.first.count

    def covariance(self, ddof=1):
        """Cross-variance ``sum((k1 - <k1>)(k2 - <k2>)) / (T - ddof)``."""
        count = self.first._count
        centred = self._sum_products - _divide(self.first._sum * self.second._sum, count)
        return _divide(centred, count - ddof)


def cross_variance(stack1, stack2, ddof=1):
    """Per-pixel cross-variance of two stacks ``(t, y, x)`` (see the module docstring)."""
    stack1, stack2 = np.asarray(stack1), np.asarray(stack2)
    if stack1.shape != stack2.shape or stack1.ndim != 3:
        raise ValueError(f"need two (t, y, x) stacks of one shape, got {stack1.shape} and {stack2.shape}")
    if stack1.shape[0] <= ddof:
        raise ValueError(f"need more than {ddof} frame(s) for a covariance, got {stack1.shape[0]}")
    moments = StreamingCrossMoments(stack1.shape[1:])
    moments.update(stack1, stack2)
    return moments.covariance(ddof)


def cross_brightness(mean1, mean2, covariance, detector1=DetectorModel(), detector2=DetectorModel()):
    """Cross brightness ``B_cc = cov / sqrt((<k1> - o1)(<k2> - o2))`` (Digman et al. 2009).

    NaN where the product of the offset-corrected means is not positive.
    """
    product = (np.asarray(mean1, dtype=np.float64) - detector1.offset) * (
        np.asarray(mean2, dtype=np.float64) - detector2.offset
    )
    with np.errstate(invalid="ignore"):
        root = np.where(product > 0, np.sqrt(np.where(product > 0, product, 1.0)), 0.0)
    return _divide(covariance, root)


def cross_number(mean1, mean2, covariance, detector1=DetectorModel(), detector2=DetectorModel()):
    """Cross number ``N_cc = (<k1> - o1)(<k2> - o2) / cov`` (Digman et al. 2009); NaN where cov is 0."""
    product = (np.asarray(mean1, dtype=np.float64) - detector1.offset) * (
        np.asarray(mean2, dtype=np.float64) - detector2.offset
    )
    return _divide(product, covariance)


def cross_maps(mean1, mean2, covariance, detector1=DetectorModel(), detector2=DetectorModel()):
    """The three ccN&B maps ``{name: array}`` for :data:`CROSS_MAP_NAMES`."""
    covariance = np.asarray(covariance, dtype=np.float64)
    return {
        "cross_variance": covariance,
        "cross_brightness": cross_brightness(mean1, mean2, covariance, detector1, detector2),
        "cross_number": cross_number(mean1, mean2, covariance, detector1, detector2),
    }
