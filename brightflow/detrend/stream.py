"""A recording, bleach-corrected block by block: the one way every step reads corrected values.

:func:`corrected_blocks` yields the corrected values of a stack in blocks that fit a memory
budget, for any correction model: chunks of frames for the per-frame corrections (``none``,
``linear``), tiles of pixel rows across every frame for the per-pixel ones (the smoothing
methods and Robin Hood, which need each pixel's whole time series). The N&B maps, the
cross-correlation, the time series and the bleach trace all read the recording through it.

:func:`fit_to_stack` fits the correction model of a stack: the per-frame mean of the cell
pixels, the method's automatic parameter (Nolan et al. 2017, Bioinformatics 33:3508), Robin
Hood's swap plan, and the corrected trace.

A "stack" here is anything indexed like a ``(t, y, x)`` array that returns arrays: a NumPy
array, or a brightflow.io.Stack, which reads only the block asked for from its file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import compiled as loops
from ..blocks import frame_chunks, row_tiles
from .auto import SevereTrendError
from .dof import cross_residual_dof
from .methods import correction_named
from .model import fit_correction, row_sums

__all__ = [
    "Block",
    "CorrectedTrace",
    "channel_seed",
    "corrected_blocks",
    "cross_variance_scale",
    "fit_to_stack",
]

#: Memory for one chunk of frames converted to float64 (the per-frame corrections).
FRAME_BUDGET_BYTES = 64 * 2**20
#: Memory for one tile of rows across all frames and its float64 working copies.
TILE_BUDGET_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Block:
    """Part of a stack and its corrected values.

    Attributes
    ----------
    frames : slice
        The frames the block covers.
    rows : slice
        The pixel rows it covers (``slice(None)``: every row).
    values : ndarray, shape (frames, rows, x)
        The corrected values, or, when :attr:`scale` is not None, the values as recorded (in the
        stack's dtype) that the factors correct: moment sums apply them as they accumulate
        (brightflow.nb.StreamingMoments.update), so no corrected float64 copy is made.
    scale : ndarray of float64, shape (frames,), or None
        Per-frame factors still to apply to :attr:`values`.
    """

    frames: slice
    rows: slice
    values: np.ndarray
    scale: np.ndarray | None = None

    def corrected(self):
        """The corrected values (float64 where a scale is applied)."""
        if self.scale is None:
            return self.values
        return self.values * self.scale[:, None, None]


def corrected_blocks(
    stack,
    model,
    cells=None,
    plan=None,
    tiles=None,
    copies=6,
    frame_budget=FRAME_BUDGET_BYTES,
    tile_budget=TILE_BUDGET_BYTES,
    compiled=None,
):
    """Yield the stack's values corrected by ``model``, one :class:`Block` at a time.

    Parameters
    ----------
    stack : array_like, shape (t, y, x)
        Indexed as ``stack[a:b]`` (frames) and ``stack[:, rows, :]`` (tiles); a brightflow.io.Stack
        reads only those values from its file.
    model : CorrectionModel
        The correction model (:func:`~brightflow.detrend.fit_correction`, :func:`fit_to_stack`).
    cells : ndarray of bool, shape (y, x), optional
        The cell mask (Robin Hood works on the cell pixels only).
    plan : ndarray, shape (y, 2, t), optional
        Robin Hood's swap plan.
    tiles : bool, optional
        Read tiles of rows even for a per-frame model (to stream two channels side by side when
        the other one needs tiles). By default, tiles exactly when the method needs them.
    copies : int
        float64 working copies of a tile the consumer makes (sizes the tiles).
    frame_budget, tile_budget : int
        Bytes for one chunk of frames (float64) and for one tile with its copies.
    compiled : bool, optional
        Use brightflow.compiled's loops (the same values); by default as
        ``brightflow.compiled.use_for`` decides for the stack's size.

    Yields
    ------
    Block
        Chunks of frames with their per-frame factors (:attr:`Block.scale`), or tiles of rows
        holding corrected values. Every pixel and frame is in exactly one block; the values do
        not depend on the block sizes.
    """
    frames = int(stack.shape[0])
    if frames != model.frames:
        raise ValueError(f"the stack has {frames} frames, the correction model {model.frames}")
    if compiled is None:
        compiled = loops.use_for(np.prod(stack.shape, dtype=np.int64))
    correction = model.correction
    tiled = correction.tiles if tiles is None else (tiles or correction.tiles)
    if not tiled:
        for start, stop in frame_chunks(frames, stack.shape[1:], frame_budget):
            yield Block(slice(start, stop), slice(None), stack[start:stop], model.frame_scale(start, stop))
        return
    if correction.swap_plan and (cells is None or plan is None):
        raise ValueError("Robin Hood needs the cell mask and the swap plan")
    for rows in row_tiles(frames, stack.shape[1:], tile_budget, copies=copies):
        yield Block(slice(0, frames), rows, model.correct_tile(stack[:, rows, :], rows, cells, plan, compiled))


def _row_sums(stack, cells, observe=None, compiled=False, sample=None):
    """Per-frame sums of the cell pixels of every pixel row, ``(t, rows)``, read in chunks of frames;
    ``observe(chunk)`` sees every chunk read (to count doubtful samples in the same pass); ``sample``
    (rows, columns): also those pixels' series, ``(t, n)`` float64."""
    sums, series = [], []
    for start, stop in frame_chunks(stack.shape[0], stack.shape[1:], FRAME_BUDGET_BYTES):
        chunk = stack[start:stop]
        if observe is not None:
            observe(chunk)
        sums.append(row_sums(chunk, cells, compiled))
        if sample is not None:
            series.append(np.asarray(chunk[:, sample[0], sample[1]], dtype=np.float64))
    return np.concatenate(sums), (np.concatenate(series) if sample is not None else None)


#: Separate random stream of the sample of cell pixels (see brightflow.detrend.robinhood and auto).
_STREAM_SAMPLE = 15


def _sample_pixels(cells, frames, seed):
    """A seeded sample of cell pixels (rows, columns), as many as detrendr's simulations take
    (brightflow.detrend.auto.auto_sample_pixels), for the automatic parameter's tolerance."""
    from .auto import auto_sample_pixels

    indices = np.flatnonzero(cells)
    count = auto_sample_pixels(indices.size, frames)
    chosen = np.sort(np.random.default_rng([int(seed), _STREAM_SAMPLE]).choice(indices, count, replace=False))
    return np.unravel_index(chosen, cells.shape)


class CorrectedTrace:
    """The per-frame mean of the corrected cell pixels, from the blocks that :func:`corrected_blocks` yields.

    For a per-frame model (``none``, ``linear``) it is the fitted trace times the frame factors
    (:meth:`~brightflow.detrend.CorrectionModel.corrected_trace`: the fit's cells are these cells). For the others
    it is summed from the corrected tiles the N&B step reads anyway, so the smoothing is done once
    per pixel, not once for the trace and once for the maps.

    Parameters
    ----------
    model : CorrectionModel
        The correction model.
    cells : ndarray of bool, shape (y, x)
        The cell pixels the model was fitted on.
    """

    def __init__(self, model, cells):
        self.model = model
        self.cells = np.asarray(cells, dtype=bool)
        self.total = np.zeros(int(model.frames))

    def update(self, block):
        """Add a tile's corrected cell pixels (chunks of frames of a per-frame model add nothing)."""
        if not self.model.correction.tiles:
            return
        inside = self.cells[block.rows].ravel()
        if inside.any():
            values = np.asarray(block.values)
            values = values.reshape(values.shape[0], -1)
            # one pass over the tile, no copy of its cell pixels (about 0.1 s per GB); einsum, not the
            # BLAS product, whose idle threads would spin against the correction threads
            self.total[block.frames] += np.einsum("tp,p->t", values, inside.astype(values.dtype))

    def mean(self):
        """The per-frame mean over the cell pixels (NaN without cell pixels)."""
        if not self.model.correction.tiles:
            return np.asarray(self.model.corrected_trace(), dtype=np.float64)
        count = int(self.cells.sum())
        return self.total / count if count else np.full(self.total.shape, np.nan)


def channel_seed(seed, channel=None):
    """The seed of a channel's random steps: ``seed + channel - 1`` (channels count from 1), so that the
    channels of a multi-channel stack never share random swaps (the same draws in two channels would
    move counts of the same pixels in the same frames and add a spurious cross-variance to
    cross-correlated N&B); ``seed`` for a single-channel stack (``channel`` None)."""
    return int(seed) + (int(channel) - 1 if channel else 0)


def fit_to_stack(stack, cells, method, parameter, seed, channel=None, observe=None, dof_correction=True, compiled=None):
    """Fit the bleach-correction model of a stack on its cell pixels.

    Parameters
    ----------
    stack : array_like, shape (t, y, x)
    cells : ndarray of bool, shape (y, x)
        The cell pixels (an empty mask takes the whole image).
    method : str
        One of brightflow.detrend.METHODS.
    parameter : 'auto' or number
    seed : int
        ``bleach_correction.seed``: the seed of every random step (Robin Hood's swaps and simulations).
    channel : int, optional
        The channel (from 1) of a multi-channel stack: its random steps use :func:`channel_seed`.
    observe : callable, optional
        Called with every chunk of frames as it is read (one pass serves the fit and, e.g., the
        counts of doubtful samples).
    dof_correction : bool
        ``bleach_correction.dof_correction`` (brightflow.detrend.CorrectionModel).
    compiled : bool, optional
        Use brightflow.compiled's loops (the same values); by default as ``use_for`` decides.

    Returns
    -------
    model : CorrectionModel
        The corrected trace comes from the stack as it is read corrected (:class:`CorrectedTrace`).
    plan : ndarray of int32, shape (y, 2, t)
        Robin Hood's swap plan; empty, shape (0, 2, t), for the other methods.

    Raises
    ------
    ValueError
        The stack does not suit the method (Robin Hood needs integer counts >= 0) or the model
        cannot be fitted; the message says why and what to use instead.
    """
    correction = correction_named(method)
    cells = np.asarray(cells, dtype=bool)
    if not cells.any():
        cells = np.ones(cells.shape, dtype=bool)
    seed = channel_seed(seed, channel)
    if correction.integer_counts and not np.issubdtype(np.dtype(stack.dtype), np.integer):
        raise ValueError(
            f"{method} detrending moves whole photon counts and needs an integer stack, but its pixels "
            f"are {stack.dtype}. Set bleach_correction.method to boxcar, exponential or polynomial."
        )
    if compiled is None:
        compiled = loops.use_for(np.prod(stack.shape, dtype=np.int64))
    sampled = _sample_pixels(cells, stack.shape[0], seed) if parameter == "auto" and dof_correction else None
    sums, sample = _row_sums(stack, cells, observe, compiled, sampled)
    if correction.integer_counts and (sums < 0).any():
        raise ValueError(
            f"has negative pixel values; {method} detrending needs counts >= 0. Use boxcar, exponential or polynomial."
        )
    cell_pixels = int(cells.sum())
    trace = sums.sum(axis=1) / cell_pixels
    if correction.detrends and not (trace > 0).all():
        frame = int(np.argmin(trace))
        raise ValueError(
            f"the cells' mean intensity falls to {trace[frame]:.4g} counts per frame (frame {frame}), at or below 0: "
            "detrending, and N&B itself, need positive photon counts. Values at or below 0 come from signed or "
            "background-subtracted data: analyse the raw recording, or set bleach_correction.method: none (the "
            "per-cell Warnings then say 'negative values')."
        )
    try:
        model = fit_correction(trace, method, parameter, seed, cell_pixels, dof_correction, compiled, sample)
    except SevereTrendError as error:
        raise ValueError(
            f"{error}. The cells' mean is {trace.mean():.4g} counts per frame; far above photon counts the bleaching "
            "trend outweighs the shot noise that the automatic parameter compares it with. If these are not photon "
            "counts, describe the detector (nb.detector: offset, s_factor, readout_variance; Dalal et al. 2008), or "
            "set bleach_correction.parameter to a number, or use bleach_correction.method: polynomial or none."
        ) from error
    plan, summary = model.correction.plan(model, sums, seed)
    if summary is not None:
        model = model.replace(swaps=summary)
    return model, plan


def cross_variance_scale(first, second, windows=None):
    """Factors that make the covariance of two channels, each corrected by its own model, unbiased
    over the whole recording (default) or each window ``(start, stop)`` of frames: ``(W - 1) / D_W``
    with ``D_W`` the residual degrees of freedom of the pair (brightflow.detrend.dof.cross_residual_dof).

    All 1 when either channel's correction takes its variance as computed (``linear``, Robin Hood,
    ``dof_correction: false``): the covariance is then treated as the variances are.
    """
    operators = first.correction.residual_operator(first), second.correction.residual_operator(second)
    count = 1 if windows is None else len(windows)
    if operators[0] is None or operators[1] is None:
        return np.ones(count)
    (apply1, gains1), (apply2, gains2) = operators
    if apply1 is None and apply2 is None:
        return np.ones(count)
    residual = cross_residual_dof(apply1, gains1, apply2, gains2, windows)
    bounds = [(0, first.frames)] if windows is None else windows
    sizes = np.array([stop - start for start, stop in bounds], dtype=np.float64)
    return (sizes - 1) / residual
