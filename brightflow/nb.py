"""Number and brightness (N&B) per pixel.

The moment analysis of Digman et al. 2008 turns the temporal mean and variance of
each pixel of a fluorescence time series into the brightness and number of the
mobile molecules in that pixel:

- Digman, M. A., Dalal, R., Horwitz, A. F. & Gratton, E. (2008). Mapping the number
  of molecules and brightness in the laser scanning microscope. *Biophysical
  Journal* 94(6), 2320-2332. doi:10.1529/biophysj.107.114645
- Dalal, R. B., Digman, M. A., Horwitz, A. F., Vetri, V. & Gratton, E. (2008).
  Determination of particle number and brightness using a laser scanning
  confocal microscope operating in the analog mode. *Microscopy Research and
  Technique* 71(1), 69-81. doi:10.1002/jemt.20526

For an analog detector with offset ``o``, S factor ``S`` and readout variance
``v0`` (Dalal 2008), with ``<k>`` the pixel mean and ``s2`` its variance::

    B       = (s2 - v0) / (<k> - o)                 apparent brightness
    N       = (<k> - o)^2 / (s2 - v0)               apparent number
    epsilon = B / S - 1                             brightness (photons per molecule per frame)
    n       = (<k> - o)^2 / (s2 - v0 - S (<k> - o)) number of molecules

With ``o = 0``, ``S = 1`` and ``v0 = 0`` (photon counting) these are the equations
of Digman 2008. A pixel whose denominator is exactly zero gets NaN; no value is
clipped, so a negative ``n`` (variance below the shot-noise level, i.e. noise)
stays negative and is visible to the user.

All functions here are pure: arrays in, arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import parallel

__all__ = [
    "MAP_NAMES",
    "DetectorModel",
    "StreamingMoments",
    "apparent_brightness",
    "apparent_number",
    "brightness",
    "number",
    "number_and_brightness",
    "brightness_unit",
    "pixel_mean_variance",
    "ratio_of_means_forms",
]

#: Names of the six per-pixel maps, in the order of the replaced app's outputs.
MAP_NAMES = (
    "intensity",
    "variance",
    "apparent_brightness",
    "apparent_number",
    "brightness",
    "number",
)


@dataclass(frozen=True)
class DetectorModel:
    """Analog detector model of Dalal et al. 2008.

    Parameters
    ----------
    offset : float
        Detector offset ``o``: the mean signal with no light.
    s_factor : float
        S factor ``S``: signal units per detected photon (1 for photon counting).
    readout_variance : float
        Readout variance ``v0``: the variance of the signal with no light.

    The defaults (0, 1, 0) describe an ideal photon-counting detector
    (Digman et al. 2008).
    """

    offset: float = 0.0
    s_factor: float = 1.0
    readout_variance: float = 0.0

    def __post_init__(self):
        if not np.isfinite(self.s_factor) or self.s_factor <= 0:
            raise ValueError(f"detector s_factor must be a positive number, got {self.s_factor!r}")
        if not np.isfinite(self.offset):
            raise ValueError(f"detector offset must be a finite number, got {self.offset!r}")
        if not np.isfinite(self.readout_variance) or self.readout_variance < 0:
            raise ValueError(f"detector readout_variance must be a number >= 0, got {self.readout_variance!r}")


def brightness_unit(detector=None):
    """The unit of the brightness epsilon (and of the cross brightness): ``"photons per molecule per
    frame"`` when ``detector`` describes an analog detector (its S factor, offset or readout variance
    differ from photon counting: epsilon = B / S - 1 converts counts to photons, Dalal et al. 2008),
    else ``"counts per molecule per frame"`` (the detector's counts: photons only if it counts photons,
    which brightflow cannot tell from the data). The one home of this wording for every figure and
    caption."""
    detector = DetectorModel() if detector is None else detector
    if isinstance(detector, dict):
        detector = DetectorModel(**detector)
    if detector == DetectorModel():
        return "counts per molecule per frame"
    return "photons per molecule per frame"


def _divide(numerator, denominator):
    """Elementwise ``numerator / denominator`` with NaN where the denominator is 0."""
    numerator, denominator = np.broadcast_arrays(
        np.asarray(numerator, dtype=np.float64), np.asarray(denominator, dtype=np.float64)
    )
    out = np.full(numerator.shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


class StreamingMoments:
    """Per-pixel mean and variance accumulated over chunks of frames.

    Memory does not grow with the number of frames: the accumulators are three
    float64 arrays of the image shape plus a count. Sums are taken around a
    per-pixel shift (the first frame a pixel receives), which keeps the
    textbook sum-of-squares formula numerically stable (the "shifted data"
    algorithm; Chan, Golub & LeVeque 1983). Frames of any real dtype are
    converted to float64 a small block at a time, optionally multiplied by
    per-frame factors (a per-frame bleach correction), and the blocks of pixel
    rows are summed by up to two threads (bit for bit the same result with any
    number of threads; other chunkings of the frames change only the rounding).

    Parameters
    ----------
    shape : tuple of int
        The image shape ``(y, x)``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> stack = rng.poisson(5.0, size=(50, 4, 4))
    >>> moments = StreamingMoments((4, 4))
    >>> for start in range(0, 50, 8):
    ...     moments.update(stack[start:start + 8])
    >>> np.allclose(moments.variance(ddof=1), stack.var(axis=0, ddof=1))
    True
    """

    def __init__(self, shape):
        self.shape = tuple(shape)
        self._shift = np.zeros(self.shape)
        self._sum = np.zeros(self.shape)
        self._sum_squares = np.zeros(self.shape)
        self._count = np.zeros(self.shape, dtype=np.int64)
        #: Threads :meth:`update` uses (the CPUs this process may run on, at most 2); the sums
        #: are the same with any number.
        self.threads = parallel.available_cpus()

    #: Values (frames x pixels) converted to float64 at a time: a working block of 1 MiB that
    #: stays in the CPU cache while it is scaled, centred, summed and squared.
    BLOCK_VALUES = 2**17
    #: Frames per working block (the rest of the block is rows).
    BLOCK_FRAMES = 16

    def update(self, frames, rows=slice(None), scale=None):
        """Add frames ``(t, y, x)`` for the pixel rows ``rows`` (default: all rows).

        Parameters
        ----------
        frames : array_like, shape (t, y, x)
            Any real dtype (e.g. the stack's uint16); converted to float64 one small
            block at a time, never as a whole float64 copy.
        rows : slice
            The pixel rows the frames cover.
        scale : array_like, shape (t,), optional
            Per-frame factors multiplied into the frames before they are added
            (a per-frame bleach correction, brightflow.detrend.CorrectionModel.frame_scale).
        """
        frames = np.asarray(frames)
        if frames.ndim != 3:
            raise ValueError(f"frames must be 3D (t, y, x), got shape {frames.shape}")
        count = self._count[rows]
        if frames.shape[1:] != count.shape:
            raise ValueError(f"frames of shape {frames.shape[1:]} do not fit rows {rows} of image {self.shape}")
        if scale is not None:
            scale = np.asarray(scale, dtype=np.float64).reshape(-1)
            if scale.shape != frames.shape[:1]:
                raise ValueError(f"scale has {scale.size} factors for {frames.shape[0]} frames")
        if frames.shape[0] == 0:
            return
        shift, sums, sums_squares = self._shift[rows], self._sum[rows], self._sum_squares[rows]
        first = count == 0
        if first.any():
            first_frame = frames[0].astype(np.float64)
            if scale is not None:
                first_frame *= scale[0]
            shift[first] = first_frame[first]
        total, height, width = frames.shape
        # blocks of whole rows (and as many frames as fit), so that each block's float64 copy
        # is small; the sums are the same float64 sums in another order
        block_frames = min(total, self.BLOCK_FRAMES)
        block_rows = max(1, min(height, self.BLOCK_VALUES // max(block_frames * width, 1)))
        bands = _row_bands(height, block_rows, self.threads if total * height * width >= 2**20 else 1)

        def accumulate(band):
            buffer = np.empty((block_frames, block_rows, width))
            for row in range(band.start, band.stop, block_rows):
                row_stop = min(row + block_rows, band.stop)
                shift_rows = shift[row:row_stop]
                sums_rows, squares_rows = sums[row:row_stop], sums_squares[row:row_stop]
                for start in range(0, total, block_frames):
                    stop = min(start + block_frames, total)
                    values = buffer[: stop - start, : row_stop - row]
                    block = frames[start:stop, row:row_stop]
                    if scale is None:
                        np.subtract(block, shift_rows, out=values)
                    else:
                        np.multiply(block, scale[start:stop, None, None], out=values)
                        values -= shift_rows
                    sums_rows += values.sum(axis=0)
                    squares_rows += np.einsum("tyx,tyx->yx", values, values)

        # bands of rows accumulate in parallel, each into its own rows: the result does not
        # depend on the number of threads
        parallel.thread_map(accumulate, bands, len(bands))
        if not isinstance(rows, slice):
            # fancy-indexed rows give copies: write the accumulators back
            self._shift[rows], self._sum[rows], self._sum_squares[rows] = shift, sums, sums_squares
        self._count[rows] += total

    @property
    def count(self):
        """Number of frames each pixel received."""
        return self._count.copy()

    def mean(self):
        """Per-pixel mean over all frames received."""
        return self._shift + _divide(self._sum, self._count)

    def variance(self, ddof=1):
        """Per-pixel variance, ``sum((x - mean)^2) / (count - ddof)``."""
        centred_sum_squares = self._sum_squares - _divide(self._sum**2, self._count)
        # rounding can leave a tiny negative value for a constant pixel
        centred_sum_squares = np.maximum(centred_sum_squares, 0.0)
        return _divide(centred_sum_squares, self._count - ddof)


def _row_bands(height, block_rows, workers):
    """``workers`` slices of rows (whole blocks each) covering ``0 .. height``."""
    blocks = -(-height // block_rows)
    workers = max(1, min(workers, blocks))
    edges = [min(height, (blocks * index // workers) * block_rows) for index in range(workers + 1)]
    edges[-1] = height
    return [slice(low, high) for low, high in zip(edges[:-1], edges[1:], strict=False) if high > low]


def pixel_mean_variance(stack, ddof=1):
    """Per-pixel temporal mean and variance of a stack ``(t, y, x)``.

    Parameters
    ----------
    stack : array_like, shape (t, y, x)
        The time series. Any real dtype; computed in float64.
    ddof : int
        Delta degrees of freedom of the variance: 1 (unbiased, the default) or 0
        (the replaced app's ``np.var``).

    Returns
    -------
    mean, variance : ndarray, shape (y, x), float64
    """
    stack = np.asarray(stack)
    if stack.ndim != 3:
        raise ValueError(f"stack must be 3D (t, y, x), got shape {stack.shape}")
    if stack.shape[0] <= ddof:
        raise ValueError(f"need more than {ddof} frame(s) for a variance, got {stack.shape[0]}")
    moments = StreamingMoments(stack.shape[1:])
    moments.update(stack)
    return moments.mean(), moments.variance(ddof)


def apparent_brightness(mean, variance, detector=DetectorModel()):
    """Apparent brightness ``B = (s2 - v0) / (<k> - o)``.

    Digman et al. 2008, eq. 5, with the analog-detector offset and readout
    variance of Dalal et al. 2008. For immobile molecules or pure shot noise
    ``B = S`` (1 for photon counting).
    """
    return _divide(np.asarray(variance) - detector.readout_variance, np.asarray(mean) - detector.offset)


def apparent_number(mean, variance, detector=DetectorModel()):
    """Apparent number ``N = (<k> - o)^2 / (s2 - v0)`` (Digman 2008, eq. 4; Dalal 2008)."""
    signal = np.asarray(mean, dtype=np.float64) - detector.offset
    return _divide(signal**2, np.asarray(variance) - detector.readout_variance)


def brightness(mean, variance, detector=DetectorModel()):
    """Molecular brightness ``epsilon = B / S - 1`` in photons per molecule per frame.

    Digman et al. 2008 (``epsilon = B - 1`` for photon counting, eq. 7); Dalal
    et al. 2008 for the S factor of analog detectors.
    """
    return apparent_brightness(mean, variance, detector) / detector.s_factor - 1.0


def number(mean, variance, detector=DetectorModel()):
    """Number of molecules ``n = (<k> - o)^2 / (s2 - v0 - S (<k> - o))``.

    Digman et al. 2008 (``n = <k>^2 / (s2 - <k>)``, eq. 8); Dalal et al. 2008
    for offset, S factor and readout variance. Negative values (variance below
    the shot-noise level) are kept: they are noise, not an error.
    """
    signal = np.asarray(mean, dtype=np.float64) - detector.offset
    excess_variance = np.asarray(variance) - detector.readout_variance - detector.s_factor * signal
    return _divide(signal**2, excess_variance)


def ratio_of_means_forms(detector=DetectorModel()):
    """B, epsilon and n as ratios of polynomials in the mean intensity ``k`` and mean variance ``v``.

    The equations above (Digman et al. 2008; Dalal et al. 2008), written as the coefficients of
    ``(1, k, v, k^2)`` of a numerator and a denominator, so that another program (the brightness
    explorer's page, in JavaScript) evaluates them without a copy of the equations::

        apparent_brightness = (v - v0) / (k - o)
        brightness          = (v - v0 - S (k - o)) / (S (k - o))        = B / S - 1
        number              = (k - o)^2 / (v - v0 - S (k - o))

    Returns
    -------
    dict
        ``{name: [numerator, denominator]}``, each a list of 4 floats, for ``apparent_brightness``,
        ``brightness`` and ``number``.
    """
    o, s, v0 = float(detector.offset), float(detector.s_factor), float(detector.readout_variance)
    excess = [-v0 + s * o, -s, 1.0, 0.0]  # v - v0 - S (k - o)
    return {
        "apparent_brightness": [[-v0, 0.0, 1.0, 0.0], [-o, 1.0, 0.0, 0.0]],
        "brightness": [excess, [-s * o, s, 0.0, 0.0]],
        "number": [[o * o, -2.0 * o, 0.0, 1.0], excess],
    }


def number_and_brightness(mean, variance, detector=DetectorModel()):
    """All six N&B maps from the per-pixel mean and variance.

    Returns
    -------
    dict
        ``{name: float64 array}`` for every name in :data:`MAP_NAMES`.
    """
    mean = np.asarray(mean, dtype=np.float64)
    variance = np.asarray(variance, dtype=np.float64)
    return {
        "intensity": mean,
        "variance": variance,
        "apparent_brightness": apparent_brightness(mean, variance, detector),
        "apparent_number": apparent_number(mean, variance, detector),
        "brightness": brightness(mean, variance, detector),
        "number": number(mean, variance, detector),
    }
