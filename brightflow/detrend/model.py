"""The correction model: fitted on the per-frame mean of the cell pixels, applied while streaming.

A correction is described by a small *model*, a JSON-serialisable dict made by
:func:`fit_correction` from the per-frame mean of the cell pixels. The N&B step applies it while
streaming the stack (:func:`frame_scale` inside the moment sums for the per-frame methods,
:func:`correct_tile` on tiles of pixel rows across all frames for the others); no corrected
stack is ever written.
"""

from __future__ import annotations

import numpy as np

from .. import compiled, parallel
from .auto import auto_parameter
from .robinhood import robinhood_apply
from .smoothing import SMOOTHING_METHODS, _detrend_smoothed_in_place, smooth

__all__ = [
    "METHODS",
    "SERIES_BLOCK_VALUES",
    "TILE_METHODS",
    "cell_trace",
    "correct_frames",
    "correct_series",
    "correct_tile",
    "corrected_trace",
    "fit_correction",
    "frame_scale",
    "row_sums",
]

METHODS = ("none", "linear", "boxcar", "exponential", "polynomial", "robinhood")
#: Methods the N&B rule applies on tiles of pixel rows across all frames.
TILE_METHODS = SMOOTHING_METHODS + ("robinhood",)
#: Values (frames x pixels) that :func:`correct_series` smooths and corrects at a time (8 MiB of
#: float64): a block that stays in the CPU cache through the dozen passes, and several blocks
#: per tile of rows for the threads.
SERIES_BLOCK_VALUES = 2**20


# --- traces -------------------------------------------------------------------------------------


def _cells(mask, shape):
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != tuple(shape):
        raise ValueError(f"the cell mask has shape {mask.shape} but the frames are {tuple(shape)}")
    return mask if mask.any() else np.ones(mask.shape, dtype=bool)


def cell_trace(frames, mask):
    """Mean intensity of the pixels where ``mask`` is true, per frame.

    Parameters
    ----------
    frames : ndarray, shape (t, y, x)
    mask : ndarray of bool, shape (y, x)
        Cell pixels. An empty mask uses every pixel.
    """
    frames = np.asarray(frames)
    cells = _cells(mask, frames.shape[1:])
    return frames[:, cells].mean(axis=1, dtype=np.float64)


def row_sums(frames, mask):
    """Sum of the cell pixels of each pixel row in each frame, shape ``(t, y)``.

    Integer stacks give int64 sums (exact), others float64. An empty mask uses
    every pixel. The per-frame mean of the cell pixels is
    ``row_sums(...).sum(axis=1) / mask.sum()``. Only the cell pixels are read
    and converted (rows without cells sum to 0).
    """
    frames = np.asarray(frames)
    cells = _cells(mask, frames.shape[1:])
    if compiled.in_use() and np.issubdtype(frames.dtype, np.integer) and frames.dtype != np.uint64:
        return compiled.integer_row_sums(frames, cells)  # one pass, the same exact sums
    dtype = np.int64 if np.issubdtype(frames.dtype, np.integer) else np.float64
    sums = np.zeros((frames.shape[0], cells.shape[0]), dtype=dtype)
    per_row = cells.sum(axis=1)
    rows = np.flatnonzero(per_row)
    if rows.size and frames.shape[0]:
        values = frames[:, cells]  # (t, cell pixels), in row-major order: row by row
        starts = np.concatenate([[0], np.cumsum(per_row[rows])[:-1]])
        sums[:, rows] = np.add.reduceat(values, starts, axis=1, dtype=dtype)
    return sums


# --- the model ----------------------------------------------------------------------------------


def fit_correction(trace, method="none", parameter="auto", seed=1, cell_pixels=None):
    """Make the correction model for a per-frame mean intensity trace of the cell pixels.

    Parameters
    ----------
    trace : ndarray, shape (t,)
        Mean intensity of the cell pixels in each frame.
    method : str
        One of :data:`METHODS`.
    parameter : 'auto' or number
        boxcar half-width l (frames), exponential tau (frames), polynomial
        degree, Robin Hood number of swaps; ``auto`` finds it with
        :func:`auto_parameter`. Unused by ``none`` and ``linear``.
    seed : int
        Seed of every random step (simulations, swaps).
    cell_pixels : int, optional
        Number of cell pixels the trace is the mean of (needed by ``auto``).

    Returns
    -------
    dict
        ``method`` (the method applied: ``none`` when ``auto`` finds no
        detrending is needed), ``method_requested``, ``parameter``,
        ``parameter_source``, ``seed``, ``frames``, ``cell_pixels``, ``trace``,
        ``trend`` (the trend of the cell-pixel mean), ``auto`` (how the
        parameter was found) and, for ``none``/``linear``, ``frame_factors``.
    """
    trace = np.asarray(trace, dtype=np.float64)
    if trace.ndim != 1 or trace.size < 3:
        raise ValueError(f"the intensity trace needs at least 3 frames, got shape {trace.shape}")
    if method not in METHODS:
        raise ValueError(f"unknown bleach correction method {method!r}; use one of {METHODS}")
    frames = trace.size
    cell_pixels = int(cell_pixels) if cell_pixels else 1
    model = {
        "method": method,
        "method_requested": method,
        "parameter": None,
        "parameter_source": "not used by this method",
        "seed": int(seed),
        "frames": int(frames),
        "cell_pixels": cell_pixels,
        "auto": None,
        "trace": trace.tolist(),
    }
    frame_index = np.arange(frames, dtype=np.float64)
    if method == "linear":
        slope, intercept = np.polyfit(frame_index, trace, 1)
        trend = intercept + slope * frame_index
        if np.any(trend <= 0):
            raise ValueError(
                "the linear bleach fit reaches zero or below within the recording; "
                "the linear correction cannot be applied (choose another method)"
            )
        model.update(trend=trend.tolist(), frame_factors=(trend[0] / trend).tolist())
        return model
    if method in TILE_METHODS:
        if parameter == "auto":
            chosen, info = auto_parameter(trace, method, cell_pixels, seed)
            model["auto"] = info
            if chosen is None:
                model.update(method="none", parameter_source="auto: " + info["note"])
                return _none_model(model, trace)
            model["parameter"] = chosen
            model["parameter_source"] = (
                f"auto: simulated immobile image ({info['simulated_pixels']} pixels, seed {seed}) "
                "with the cell-pixel mean trace reaches mean B = 1 here (Nolan et al. 2017)"
            )
        else:
            value = float(parameter)
            if not value > 0:
                raise ValueError(f"bleach_correction.parameter must be 'auto' or a number > 0, got {parameter!r}")
            if method in ("boxcar", "polynomial", "robinhood"):
                if value != int(value):
                    raise ValueError(f"the {method} parameter must be a whole number, got {parameter!r}")
                value = int(value)
            if method == "polynomial" and value >= frames:
                raise ValueError(f"polynomial degree {value} needs more than {value} frames; the stack has {frames}")
            model["parameter"] = value
            model["parameter_source"] = "set in the configuration (bleach_correction.parameter)"
        if method in SMOOTHING_METHODS:
            model["trend"] = smooth(trace, method, model["parameter"]).tolist()
        else:
            model["trend"] = None
        return model
    return _none_model(model, trace)


def _none_model(model, trace):
    model.update(trend=np.full(trace.size, trace.mean()).tolist(), frame_factors=np.ones(trace.size).tolist())
    return model


def correct_frames(model, frames, start=0):
    """Apply a per-frame model (``none``, ``linear``) to frames ``start .. start + len(frames)``.

    Returns float64 frames: ``frames * frame_scale(model, start, stop)[:, None, None]``.
    """
    frames = np.asarray(frames, dtype=np.float64)
    scale = frame_scale(model, start, start + frames.shape[0])
    return frames.copy() if scale is None else frames * scale[:, None, None]


def frame_scale(model, start=0, stop=None):
    """The factors by which a per-frame model (``none``, ``linear``) multiplies frames ``start .. stop - 1``.

    ``None`` for ``none`` (frames as recorded). :func:`correct_frames` is
    ``frames * frame_scale(model, start, stop)[:, None, None]``; the N&B rule passes
    the factors to brightflow.nb.StreamingMoments.update instead of making a
    corrected float64 copy of the frames.

    Returns
    -------
    ndarray of float64, shape (stop - start,), or None
    """
    if model["method"] in TILE_METHODS:
        raise ValueError(f"the {model['method']} correction works on whole time series: use correct_tile")
    frames = len(model["frame_factors"])
    stop = frames if stop is None else stop
    if not 0 <= start <= stop <= frames:
        raise ValueError(
            f"the correction model covers {frames} frames; frames {start}..{stop - 1} are outside it"
        )
    if model["method"] == "none":
        return None
    return np.asarray(model["frame_factors"][start:stop], dtype=np.float64)


def correct_series(model, series):
    """Apply a smoothing model (boxcar, exponential, polynomial) to time series ``(t, ...)``.

    Every series (trailing index: a pixel) is corrected on its own
    (:func:`detrend_smoothed` of its :func:`smooth` trend), so any selection of
    pixels, e.g. only the cell pixels ``tile[:, cells]``, gives those pixels' values
    of the whole-image correction. Returns a new float64 array; the work is done on
    blocks of :data:`SERIES_BLOCK_VALUES` values, in place.
    """
    if model["method"] not in SMOOTHING_METHODS:
        raise ValueError(f"{model['method']!r} is not a smoothing method; use one of {SMOOTHING_METHODS}")
    series = np.asarray(series)
    frames = series.shape[0]
    if frames != model["frames"]:
        raise ValueError(f"the series have {frames} frames, the model {model['frames']}")
    flat = series.reshape(frames, -1)
    threads = parallel.available_cpus()
    if model["method"] == "boxcar" and compiled.in_use():
        # compiled (brightflow.compiled): the same values in one pass, which keeps its
        # working set in the CPU cache itself; one equal share of the pixels per thread
        flat = np.ascontiguousarray(flat)
        out = np.empty(flat.shape)
        edges = np.linspace(0, flat.shape[1], threads + 1).astype(int)
        parallel.thread_map(
            lambda share: compiled.boxcar_detrend(flat, model["parameter"], out=out, columns=share),
            [slice(low, high) for low, high in zip(edges[:-1], edges[1:])], threads,
        )
        return out.reshape(series.shape)
    out = np.empty(flat.shape)
    # a few pixels' series at a time, so that the dozen passes of smoothing and correction run
    # over a block that stays in the CPU cache; each pixel is corrected on its own, so blocks
    # run on up to two threads without changing any value
    step = max(1, SERIES_BLOCK_VALUES // max(frames, 1))

    def correct(start):
        block = np.array(flat[:, start : start + step], dtype=np.float64)
        out[:, start : start + step] = _detrend_smoothed_in_place(
            block, smooth(block, model["method"], model["parameter"])
        )

    parallel.thread_map(correct, range(0, flat.shape[1], step), threads)
    return out.reshape(series.shape)


def correct_tile(model, tile, rows, cells=None, plan=None):
    """Correct a tile of pixel rows across all frames, ``tile = stack[:, rows, :]``.

    Parameters
    ----------
    model : dict
        From :func:`fit_correction`.
    tile : ndarray, shape (t, r, x)
        Every frame of the rows ``rows``.
    rows : slice
        The rows of the tile (``slice(start, stop)``).
    cells : ndarray of bool, shape (y, x), optional
        The whole cell mask (Robin Hood only).
    plan : ndarray, shape (y, 2, t), optional
        :func:`robinhood_plan`'s plan (Robin Hood only).

    Returns
    -------
    ndarray, shape (t, r, x)
        float64 for the smoothing methods, int64 for Robin Hood.
    """
    tile = np.asarray(tile)
    if tile.shape[0] != model["frames"]:
        raise ValueError(f"the tile has {tile.shape[0]} frames, the model {model['frames']}")
    method = model["method"]
    if method in ("none", "linear"):
        return correct_frames(model, tile, 0)
    if method in SMOOTHING_METHODS:
        return correct_series(model, tile)
    if method == "robinhood":
        if cells is None or plan is None:
            raise ValueError("Robin Hood needs the cell mask and the swap plan")
        return robinhood_apply(tile, plan[rows], _cells(cells, cells.shape)[rows], rows.start or 0, model["seed"])
    raise ValueError(f"unknown bleach correction method {method!r}")


def corrected_trace(model):
    """The cell-pixel mean per frame after a per-frame correction (``none``, ``linear``)."""
    return np.asarray(model["trace"]) * np.asarray(model["frame_factors"])
