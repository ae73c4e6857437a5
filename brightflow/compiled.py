"""Loops compiled with numba where numpy would pass over the data many times: the same results.

The boxcar detrending, and the per-frame row sums and doubtful-sample counts of integer stacks
that the bleach step takes in its one read of the recording.

:func:`boxcar_detrend` gives, value for value, what brightflow.detrend.smoothing gives for the
boxcar trend ``s`` (Nolan et al. 2017, Bioinformatics 33:3508) with either correction: the per-frame
gains ``x' = m + g_t (x - s)`` (``detrend_with_gains``) or detrendr's ``x' = m + (x - s) sqrt(m / s)``
(``detrend_smoothed``). The running sum, the window sums and means, the factors and the corrected
values are the same IEEE operations in the same order, so the results are bit for bit equal (a test
compares them on integer and real data, NaN and zero included).
The numpy path makes about a dozen passes over each block of values through float64 temporaries;
the compiled loop makes one pass to sum and one to correct, a few dozen pixels at a time, with
the running sums in the CPU cache.

:func:`integer_row_sums` and :func:`count_integer_samples` give exactly what
brightflow.detrend.row_sums and brightflow.quality.SampleCounts.update give with numpy (integer
sums and counts are exact in any order), in one pass over each chunk of frames instead of a
gather, a conversion to int64 and a reduction.

Loading numba and the cached machine code costs a process about 0.4 s (numba's import and its
first call), which the loops repay only on a large recording. The steps that stream a recording
ask :func:`use_for` with its size (from :data:`WORTHWHILE_VALUES` values on: yes) and pass the answer
down as an argument (``compiled=``) to the functions that have a compiled loop; nothing here keeps a
process-wide state. The results are the same either way. The machine code is cached next to this
file (or, where that folder cannot be written, in numba's per-user cache), so that only the first
run on a machine compiles it.
"""

from __future__ import annotations

import logging
import os

import numpy as np

log = logging.getLogger("brightflow")

__all__ = [
    "WORTHWHILE_VALUES",
    "boxcar_detrend",
    "count_integer_samples",
    "integer_row_sums",
    "use_for",
]

#: Values (frames x pixels) of a recording from which the compiled loops are used. Measured on 2
#: cores (benchmarks/README.md): the numpy boxcar correction costs about 6 ns more per value, the
#: row sums and sample counts about 1.5 ns, against about 0.4 s to load numba once per process.
WORTHWHILE_VALUES = 2**27
#: The environment variable that chooses when the compiled loops run, and its values.
MODE_VARIABLE = "BRIGHTFLOW_COMPILED_LOOPS"
MODES = ("auto", "always", "never")

#: Pixels whose running sums the compiled loop keeps at a time (frames x this many float64 values).
PIXELS_AT_A_TIME = 64

_KERNELS = {}


def use_for(values):
    """Whether a recording of ``values`` values (frames x pixels) is large enough to repay loading
    numba (:data:`WORTHWHILE_VALUES`): the answer the caller passes down as ``compiled=``.

    The environment variable ``BRIGHTFLOW_COMPILED_LOOPS`` overrides the size rule: ``always`` or
    ``never`` (``auto``, the default, follows it). The results are the same; only the time differs.
    """
    mode = os.environ.get(MODE_VARIABLE, "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"the environment variable {MODE_VARIABLE} is {mode!r}; use one of {', '.join(MODES)}")
    if mode != "auto":
        return mode == "always"
    return int(values) >= WORTHWHILE_VALUES


def _kernel(name):
    """The numba kernel ``name`` (compiled on first use, then loaded from numba's cache)."""
    if not _KERNELS:
        _KERNELS.update(_compile())
    return _KERNELS[name]


def _jit(function):
    """``function`` compiled by numba, its machine code cached on disk where numba finds a folder it can
    write (else compiled again in each process, which costs a second or two, not a result)."""
    import numba

    # error_model="numpy": a division by zero gives inf or NaN as in numpy, not an exception
    try:
        return numba.njit(nogil=True, cache=True, error_model="numpy")(function)
    except RuntimeError as error:  # numba: "cannot cache function ...: no locator available"
        log.warning("numba cannot cache %s (%s); it is compiled in this process", function.__name__, error)
        return numba.njit(nogil=True, error_model="numpy")(function)


def _compile():
    @_jit
    def boxcar_detrend_kernel(values, half_width, gains, use_gains, out, start, stop):
        frames = values.shape[0]
        block = min(PIXELS_AT_A_TIME, stop - start)
        # running[t + 1] is the sum of frames 0..t (running[0] = 0): the numpy path's running sum
        running = np.zeros((frames + 1, block))
        means = np.empty(block)
        for first in range(start, stop, block):
            count = min(block, stop - first)
            # the running sum of each series and its sum (numpy: in place, frame by frame, the same
            # additions in the same order; the mean sums frame by frame along axis 0, then divides)
            for j in range(count):
                value = np.float64(values[0, first + j])
                running[1, j] = value
                means[j] = value
            for t in range(1, frames):
                for j in range(count):
                    value = np.float64(values[t, first + j])
                    running[t + 1, j] = running[t, j] + value
                    means[j] += value
            for j in range(count):
                means[j] = means[j] / frames
            for t in range(frames):
                # the window [t - l, t + l] truncated at the ends: c[min(t + l, T - 1)] - c[t - l - 1],
                # with c[-1] = 0 (numpy copies c[t + l] there; x - 0 is x exactly)
                after = running[min(t + half_width, frames - 1) + 1]
                before = running[max(t - half_width, 0)]
                width = np.float64(min(t + half_width + 1, frames) - max(t - half_width, 0))
                corrected = out[t, first : first + count]
                recorded = values[t, first : first + count]
                if use_gains:
                    # x' = (x - s) g_t + m (detrend_with_gains: the trend is not clipped)
                    gain = gains[t]
                    for j in range(count):
                        trend = (after[j] - before[j]) / width
                        corrected[j] = (np.float64(recorded[j]) - trend) * gain + means[j]
                    continue
                for j in range(count):
                    trend = (after[j] - before[j]) / width
                    # clipped at 0 from below (a NaN stays NaN, as with np.maximum)
                    trend = 0.0 if trend < 0.0 else trend
                    factor = np.sqrt(means[j] / trend)
                    # 1 where m / s is not finite (written as a select, so that the loop vectorises)
                    factor = factor if np.abs(factor) < np.inf else 1.0
                    corrected[j] = (np.float64(recorded[j]) - trend) * factor + means[j]
        return out

    @_jit
    def row_sums_kernel(frames, cells, sums):
        # cells as 0/1 weights: a product, not a branch, so that the loop over x vectorises
        for t in range(frames.shape[0]):
            for y in range(frames.shape[1]):
                total = np.int64(0)
                for x in range(frames.shape[2]):
                    total += np.int64(frames[t, y, x]) * cells[y, x]
                sums[t, y] = total
        return sums

    @_jit
    def saturated_kernel(frames, saturation, saturated):
        for t in range(frames.shape[0]):
            for y in range(frames.shape[1]):
                for x in range(frames.shape[2]):
                    saturated[y, x] += np.float64(frames[t, y, x]) >= saturation

    @_jit
    def negative_kernel(frames, negative):
        for t in range(frames.shape[0]):
            for y in range(frames.shape[1]):
                for x in range(frames.shape[2]):
                    negative[y, x] += frames[t, y, x] < 0

    return {
        "boxcar_detrend": boxcar_detrend_kernel,
        "row_sums": row_sums_kernel,
        "saturated": saturated_kernel,
        "negative": negative_kernel,
    }


def integer_row_sums(frames, cells):
    """Sum of the cell pixels of each pixel row in each frame, ``(t, y)`` int64, of integer frames.

    Exactly brightflow.detrend.row_sums for an integer stack (int64 sums are exact in any order).

    Parameters
    ----------
    frames : ndarray of int, shape (t, y, x)
    cells : ndarray of bool, shape (y, x)
    """
    frames = np.ascontiguousarray(frames)
    if not np.issubdtype(frames.dtype, np.integer) or frames.dtype == np.uint64:
        raise ValueError(f"integer frames of at most 63 bits expected, got {frames.dtype}")
    sums = np.zeros((frames.shape[0], frames.shape[1]), dtype=np.int64)
    if frames.size:
        _kernel("row_sums")(frames, np.ascontiguousarray(cells, dtype=np.int64), sums)
    return sums


def count_integer_samples(frames, saturation, saturated, negative):
    """Add to ``saturated`` and ``negative`` (``(y, x)`` int64) the samples of integer ``frames``
    ``(t, y, x)`` at or above ``saturation`` (None: not counted) and below 0: exactly
    brightflow.quality.SampleCounts.update's counts."""
    frames = np.ascontiguousarray(frames)
    if not np.issubdtype(frames.dtype, np.integer):
        raise ValueError(f"integer frames expected, got {frames.dtype}")
    if frames.size and saturation is not None:
        _kernel("saturated")(frames, float(saturation), saturated)
    if frames.size and np.issubdtype(frames.dtype, np.signedinteger):
        _kernel("negative")(frames, negative)


def boxcar_detrend(series, half_width, out=None, columns=slice(None), gains=None):
    """Boxcar-detrended time series (Nolan et al. 2017): ``x' = m + g_t (x - s)`` with ``gains``,
    else detrendr's ``x' = m + (x - s) sqrt(m / s)``.

    Parameters
    ----------
    series : ndarray, shape (t, n)
        One time series per column, any real dtype (e.g. a stack's uint16 pixels), at least 2 frames.
    half_width : int
        The boxcar half-width ``l`` (window ``2l + 1`` frames), at least 1; as in
        brightflow.detrend.smooth, at most ``2T - 3`` is used.
    out : ndarray of float64, shape (t, n), C-contiguous, optional
        Where to write the corrected values.
    columns : slice
        The columns (series) to correct, a slice with step 1; the other columns of ``out`` are left
        as they are. Threads can share one ``out`` by correcting different columns.
    gains : ndarray, shape (t,), optional
        Per-frame gains (brightflow.detrend.CorrectionModel.gains).

    Returns
    -------
    ndarray of float64, shape (t, n)
        ``out``: bit for bit the values of brightflow.detrend.smoothing's ``detrend_with_gains(series,
        smooth(series, 'boxcar', l), gains)`` (or ``detrend_smoothed(series, smooth(...))``) in ``columns``.
    """
    series = np.asarray(series)
    if series.ndim != 2:
        raise ValueError(f"series must be 2D (t, n), got shape {series.shape}")
    frames = series.shape[0]
    if frames < 2:
        raise ValueError(f"a boxcar trend needs at least 2 frames, got {frames}")
    half_width = int(half_width)
    if half_width < 1:
        raise ValueError(f"the boxcar half-width must be at least 1 frame, got {half_width}")
    use_gains = gains is not None
    gains = np.ones(frames) if gains is None else np.ascontiguousarray(gains, dtype=np.float64)
    if gains.shape != (frames,):
        raise ValueError(f"gains must have one value per frame ({frames}), got shape {gains.shape}")
    if out is None:
        out = np.empty(series.shape)
    if out.shape != series.shape or out.dtype != np.float64 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous float64 array of shape {series.shape}")
    start, stop, step = columns.indices(series.shape[1])
    if step != 1:
        raise ValueError(f"columns must be a slice with step 1, got {columns}")
    if stop <= start:
        return out
    # contiguous rows, so that the compiled loop reads and writes them with vector instructions
    series = np.ascontiguousarray(series.view(np.uint8) if series.dtype == np.bool_ else series)
    _kernel("boxcar_detrend")(series, int(min(half_width, 2 * frames - 3)), gains, use_gains, out, start, stop)
    return out
