"""The correction model: fitted on the per-frame mean of the cell pixels, applied while streaming.

A correction is described by a frozen :class:`CorrectionModel`, made by :func:`fit_correction` from
the per-frame mean of the cell pixels and saved as JSON (``bleach_correction.json``). The N&B steps
apply it while streaming the stack (:meth:`CorrectionModel.frame_scale` inside the moment sums for
the per-frame methods, :meth:`CorrectionModel.correct_tile` on tiles of pixel rows across all frames
for the others) and make the variance after it unbiased (:meth:`CorrectionModel.variance_scale`); no
corrected stack is ever written. What differs between methods is asked of the method's class
(brightflow.detrend.methods).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .methods import METHODS, correction_named

__all__ = ["CorrectionModel", "cell_trace", "fit_correction", "row_sums"]


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


def row_sums(frames, mask, compiled=False):
    """Sum of the cell pixels of each pixel row in each frame, shape ``(t, y)``.

    Integer stacks give int64 sums (exact), others float64. An empty mask uses
    every pixel. The per-frame mean of the cell pixels is
    ``row_sums(...).sum(axis=1) / mask.sum()``. Only the cell pixels are read
    and converted (rows without cells sum to 0). ``compiled``: use brightflow.compiled's
    loop for integer frames (the same exact sums in one pass).
    """
    frames = np.asarray(frames)
    cells = _cells(mask, frames.shape[1:])
    if compiled and np.issubdtype(frames.dtype, np.integer) and frames.dtype != np.uint64:
        from .. import compiled as loops

        return loops.integer_row_sums(frames, cells)
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


def _array(values):
    return None if values is None else np.asarray(values, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class CorrectionModel:
    """A fitted bleach correction (JSON: :meth:`to_json`, :meth:`from_json`).

    Attributes
    ----------
    method : str
        The method applied (``none`` when the requested one was replaced, :attr:`replaced` says why).
    method_requested : str
        ``bleach_correction.method``.
    parameter : int, float or None
        The method's parameter (:attr:`correction`'s ``parameter_name``).
    parameter_source : str
        How the parameter was chosen (``auto: ...`` or set in the configuration).
    seed : int
        ``bleach_correction.seed``.
    frames, cell_pixels : int
        The recording's frames and the cell pixels the trace is the mean of.
    trace : ndarray
        The cells' mean intensity per frame.
    trend : ndarray or None
        Its trend (None for Robin Hood, which fits none).
    frame_factors : ndarray or None
        Per-frame factors (``none``, ``linear``).
    dof_correction : bool
        ``bleach_correction.dof_correction``: the smoothing methods scale the fluctuations with the
        cells' trend and divide the variance by its residual degrees of freedom (unbiased); False:
        detrendr's per-pixel rescaling, variance as computed.
    degrees_of_freedom : dict or None
        ``residual`` (D), ``effective`` (T - 1 - D) and ``variance_scale`` ((T - 1) / D) of the
        smoother applied (brightflow.detrend.dof), when ``dof_correction``.
    auto : dict or None
        How the automatic parameter was found.
    replaced : str or None
        Why the requested method was replaced by ``none``; None when it was applied.
    swaps : dict or None
        Robin Hood's plan summary (``swaps_done``, ``max_swaps``).
    applied_to : str
        Which pixels the correction changes.
    """

    method: str
    method_requested: str
    parameter: int | float | None
    parameter_source: str
    seed: int
    frames: int
    cell_pixels: int
    trace: np.ndarray = field(repr=False)
    trend: np.ndarray | None = field(default=None, repr=False)
    frame_factors: np.ndarray | None = field(default=None, repr=False)
    dof_correction: bool = True
    degrees_of_freedom: dict | None = None
    auto: dict | None = field(default=None, repr=False)
    replaced: str | None = None
    swaps: dict | None = None
    applied_to: str = "every pixel"

    @property
    def correction(self):
        """The method's class instance (brightflow.detrend.methods): everything that differs between methods."""
        return correction_named(self.method)

    def gains(self):
        """Per-frame gains ``g_t = sqrt(<c> / c_t)`` of the cells' trend ``c`` (the unbiased smoothing
        corrections scale each frame's fluctuations by them); None without a trend."""
        if self.trend is None:
            return None
        return np.sqrt(self.trace.mean() / self.trend)

    def leftover_standard_errors(self):
        """How many standard errors of the cells' mean B the bleaching left by this correction adds, when
        the automatic parameter could not bring it within its tolerance (brightflow.detrend.auto); None
        when it did, or the parameter was not chosen by that criterion."""
        if not self.auto or self.auto.get("tolerance_met", True):
            return None
        return float(self.auto["leftover_standard_errors"])

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    # --- applying (asked of the method) ----------------------------------------------------------

    def frame_scale(self, start=0, stop=None):
        """The factors by which a per-frame model multiplies frames ``start .. stop - 1`` (None: as recorded).

        brightflow.nb.StreamingMoments.update applies them inside the moment sums instead of making a
        corrected float64 copy of the frames.
        """
        if self.correction.tiles:
            raise ValueError(f"the {self.method} correction works on whole time series: use correct_tile")
        stop = self.frames if stop is None else stop
        if not 0 <= start <= stop <= self.frames:
            raise ValueError(
                f"the correction model covers {self.frames} frames; frames {start}..{stop - 1} are outside it"
            )
        return self.correction.frame_scale(self, start, stop)

    def correct_frames(self, frames, start=0):
        """A per-frame model applied to frames ``start .. start + len(frames)``: float64 frames."""
        frames = np.asarray(frames, dtype=np.float64)
        scale = self.frame_scale(start, start + frames.shape[0])
        return frames.copy() if scale is None else frames * scale[:, None, None]

    def correct_tile(self, tile, rows, cells=None, plan=None, compiled=False):
        """Correct a tile of pixel rows across all frames, ``tile = stack[:, rows, :]``.

        Parameters
        ----------
        tile : ndarray, shape (t, r, x)
        rows : slice
            The rows of the tile.
        cells : ndarray of bool, shape (y, x), optional
            The whole cell mask (Robin Hood).
        plan : ndarray, shape (y, 2, t), optional
            The swap plan (Robin Hood).
        compiled : bool
            Use brightflow.compiled's loop where the method has one (the same values).

        Returns
        -------
        ndarray, shape (t, r, x)
            float64 (int64 for Robin Hood).
        """
        tile = np.asarray(tile)
        if tile.shape[0] != self.frames:
            raise ValueError(f"the tile has {tile.shape[0]} frames, the model {self.frames}")
        return self.correction.correct(self, tile, rows, cells, plan, compiled)

    def variance_scale(self, windows=None):
        """Factors that make the variance over the whole recording (default) or over each window
        ``(start, stop)`` of frames unbiased after this correction (brightflow.detrend.dof)."""
        return self.correction.variance_scale(self, windows)

    def corrected_trace(self):
        """The cells' mean per frame after a per-frame correction (``none``, ``linear``)."""
        return self.trace * (np.ones(self.frames) if self.frame_factors is None else self.frame_factors)

    def figure_labels(self):
        """The bleach figure's ``title``, ``trend`` and ``corrected`` legend labels and ``note``
        (brightflow.figures.bleach_correction_figure)."""
        correction = self.correction
        notes = []
        if self.replaced is not None:
            title = f"Bleach correction: none ({self.method_requested} requested, not applied)"
            notes.append(f"{self.method_requested} not applied: {self.replaced}.")
        else:
            title = f"Bleach correction: {self.method} ({self.describe_parameter()})"
        if self.degrees_of_freedom and abs(self.degrees_of_freedom["variance_scale"] - 1) < 1e-9:
            # the least severe setting (a window over the whole recording): the values are unchanged
            notes.append(
                f"No trend beyond the noise: the smoothing spans the whole recording, so the values are unchanged "
                f"and the variance is divided by {self.frames - 1} (frames - 1), as without correction."
            )
        elif self.degrees_of_freedom:
            notes.append(
                f"The variance is divided by its {self.degrees_of_freedom['residual']:.4g} residual degrees of freedom "
                f"instead of {self.frames - 1} (x {self.degrees_of_freedom['variance_scale']:.4g}), so the fluctuations "
                "the smoother removed with the trend do not lower B."
            )
        return {
            "title": title,
            "trend": correction.trend_label(),
            "corrected": correction.corrected_label(),
            "note": " ".join(notes),
        }

    def describe_parameter(self):
        """The parameter in words, e.g. ``"l = 12 (auto)"``, or why the requested method was not applied."""
        if self.replaced is not None:
            return f"{self.method_requested} not applied: {self.replaced}"
        return self.correction.describe_parameter(self)

    # --- JSON ------------------------------------------------------------------------------------

    def to_json(self):
        """A JSON-serialisable dict (``bleach_correction.json``); Robin Hood's plan summary at the top level."""
        data = {}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if isinstance(value, np.ndarray):
                value = value.tolist()
            data[item.name] = value
        swaps = data.pop("swaps") or {}
        data.update(swaps)
        return data

    @classmethod
    def from_json(cls, data):
        """The model of a :meth:`to_json` dict (ValueError for a method brightflow does not know)."""
        data = dict(data)
        correction_named(data["method"])
        known = {item.name for item in dataclasses.fields(cls)}
        swaps = {key: data.pop(key) for key in ("swaps_done", "max_swaps") if key in data}
        values = {key: value for key, value in data.items() if key in known}
        values["swaps"] = swaps or None
        for key in ("trace", "trend", "frame_factors"):
            values[key] = _array(values.get(key))
        return cls(**values)


def fit_correction(
    trace, method="none", parameter="auto", seed=1, cell_pixels=None, dof_correction=True, compiled=False, sample=None
):
    """Make the correction model for a per-frame mean intensity trace of the cell pixels.

    Parameters
    ----------
    trace : ndarray, shape (t,)
        Mean intensity of the cell pixels in each frame.
    method : str
        One of brightflow.detrend.METHODS.
    parameter : 'auto' or number
        boxcar half-width l (frames), exponential tau (frames), polynomial degree, Robin Hood number of
        swaps; ``auto`` chooses it (brightflow.detrend.auto). Unused by ``none`` and ``linear``.
    seed : int
        Seed of every random step (Robin Hood's swaps and simulations).
    cell_pixels : int, optional
        Number of cell pixels the trace is the mean of (the automatic parameter's standard error).
    dof_correction : bool
        ``bleach_correction.dof_correction`` (:class:`CorrectionModel`).
    compiled : bool
        Use brightflow.compiled's loops where a method has them (the same values).
    sample : ndarray, shape (t, n), optional
        The series of a sample of cell pixels: the automatic parameter's tolerance is 0.1 standard
        errors of their apparent brightness (brightflow.detrend.auto); without it, of B = 1.

    Returns
    -------
    CorrectionModel
    """
    trace = np.asarray(trace, dtype=np.float64)
    if trace.ndim != 1 or trace.size < 3:
        raise ValueError(f"the intensity trace needs at least 3 frames, got shape {trace.shape}")
    correction = correction_named(method)
    cell_pixels = int(cell_pixels) if cell_pixels else 1
    fields = correction.fit(trace, parameter, int(seed), cell_pixels, bool(dof_correction), compiled, sample)
    applied = "none" if fields.get("replaced") else method
    fields.setdefault("applied_to", METHODS[applied].applied_to)
    return CorrectionModel(
        method=applied,
        method_requested=method,
        seed=int(seed),
        frames=int(trace.size),
        cell_pixels=cell_pixels,
        trace=trace,
        dof_correction=bool(dof_correction),
        **{key: (_array(value) if key in ("trend", "frame_factors") else value) for key, value in fields.items()},
    )
