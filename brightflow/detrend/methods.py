"""The bleach-correction methods: one class each, owning everything that differs between methods.

A method class says how its correction is fitted on the cells' mean intensity per frame, how it is
applied (per-frame factors inside the moment sums, or each pixel's whole time series on tiles of
rows), its parameter's name and range, whether it needs Robin Hood's swap plan, and the factor that
makes the variance after it unbiased (brightflow.detrend.dof). :data:`METHODS` maps the names used in
the configuration (``bleach_correction.method``) to the classes; it is the one list of methods, and
the configuration schema is tested against it. No code outside these classes compares a method's
name: it asks the method.

Methods (Nolan et al. 2017, Bioinformatics 33:3508; the R package detrendr):

``none``
    Frames as recorded.
``linear``
    The replaced app's per-frame rescaling ``fit(0) / fit(t)``: biased for N&B (kept to reproduce
    the replaced app).
``boxcar``, ``exponential``, ``polynomial``
    Each pixel's series ``x`` is smoothed into a trend ``s = S x`` and corrected to
    ``x' = m + g_t (x - s)``, ``g_t = sqrt(<c> / c_t)`` from the trend ``c`` of the cells' mean, with
    the variance divided by the residual degrees of freedom of ``S`` (the default,
    ``dof_correction``); or detrendr's ``x' = m + (x - s) sqrt(m / s)`` without it.
``robinhood``
    Counts moved between frames within each pixel (Nolan et al. 2018); its known bias is
    documented (brightflow.detrend.robinhood) and it is not the default.
"""

from __future__ import annotations

import numpy as np

from . import auto, dof
from .robinhood import robinhood_apply, robinhood_plan
from .smoothing import (
    BoxcarSmoother,
    ExponentialSmoother,
    PolynomialSmoother,
    _detrend_smoothed_in_place,
    _detrend_with_gains_in_place,
    exponential_half_width,
)

__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "BoxcarCorrection",
    "Correction",
    "ExponentialCorrection",
    "LinearRescale",
    "NoCorrection",
    "PolynomialCorrection",
    "RobinHood",
    "SmoothingCorrection",
    "correction_named",
]

#: Values (frames x pixels) that a smoothing correction smooths and corrects at a time (8 MiB of
#: float64): a block that stays in the CPU cache through the dozen passes, and several blocks per
#: tile of rows for the threads.
SERIES_BLOCK_VALUES = 2**20


def _flat_trend(trace):
    return np.full(trace.size, trace.mean())


class Correction:
    """A bleach-correction method (the base: what every method answers).

    Class attributes
    ----------------
    name : str
        The name in the configuration.
    parameter_name : str or None
        The parameter's symbol in titles and logs (``l``, ``tau``, ``degree``, ``swaps``).
    tiles : bool
        True when each pixel is corrected from its whole time series (tiles of rows across every
        frame); False for per-frame factors (chunks of frames).
    swap_plan : bool
        True when the correction needs Robin Hood's swap plan and the cell mask.
    integer_counts : bool
        True when the stack must hold whole counts >= 0.
    detrends : bool
        True when the cells' mean intensity must stay above 0 (a trend to divide by).
    applied_to : str
        Which pixels the correction changes, in words.
    caveat : str
        What a user should know before quoting its numbers ('' when nothing).
    """

    name = None
    parameter_name = None
    tiles = False
    swap_plan = False
    integer_counts = False
    detrends = False
    applied_to = "every pixel"
    caveat = ""

    # --- fitting ---------------------------------------------------------------------------------

    def fit(self, trace, parameter, seed, cell_pixels, dof_correction, compiled=False, sample=None):
        """The method's part of the model: a dict of :class:`~brightflow.detrend.CorrectionModel` fields.

        ``sample``: the full series ``(t, n)`` of a seeded sample of cell pixels, for the automatic
        parameter's tolerance (brightflow.detrend.auto.leftover_parameter). ``replaced`` (a reason) in the
        dict means this method was not applied and ``none`` was.
        """
        return {
            "parameter": None,
            "parameter_source": "not used by this method",
            "trend": _flat_trend(trace),
            "frame_factors": np.ones(trace.size),
        }

    def check_parameter(self, value, frames):
        """The configured parameter as the method uses it; ValueError naming the range if it is outside.
        ``frames`` None: the checks that need no recording (the configuration, before any is read)."""
        return None

    def plan(self, model, sums, seed):
        """Robin Hood's swap plan ``(y, 2, t)`` and its summary; an empty plan for every other method."""
        return np.zeros((0, 2, model.frames), dtype=np.int32), None

    # --- applying --------------------------------------------------------------------------------

    def frame_scale(self, model, start, stop):
        """Per-frame factors of frames ``start .. stop - 1`` (None: frames as recorded)."""
        return None

    def correct(self, model, tile, rows, cells=None, plan=None, compiled=False):
        """The corrected values of a tile ``(t, r, x)`` of pixel rows across every frame."""
        scale = self.frame_scale(model, 0, tile.shape[0])
        tile = np.asarray(tile, dtype=np.float64)
        return tile.copy() if scale is None else tile * scale[:, None, None]

    # --- the variance after it -------------------------------------------------------------------

    def residual_operator(self, model):
        """``(apply, gains)`` of the residual ``G (I - S) G^-1`` whose degrees of freedom the variance is
        divided by (``apply``: ``S`` along axis 0, None for no smoothing); None when this correction's
        variance is taken as computed (brightflow.detrend.cross_variance_scale)."""
        return None

    def variance_scale(self, model, windows=None):
        """Factors ``(W - 1) / D_W`` that make the variance over each window of frames unbiased
        (brightflow.detrend.dof); all 1 where no smoother takes variance with it."""
        count = 1 if windows is None else len(windows)
        return np.ones(count)

    # --- words -----------------------------------------------------------------------------------

    def describe_parameter(self, model):
        """The parameter in words, e.g. ``"l = 12 (auto)"``."""
        if model.parameter is None:
            return "no parameter"
        value = model.parameter
        value = f"{value:.4g}" if isinstance(value, float) else str(value)
        source = "auto" if model.parameter_source.startswith("auto") else "set"
        return f"{self.parameter_name} = {value} ({source})"

    def trend_label(self):
        return f"trend ({self.name})"

    def corrected_label(self):
        return "after correction"


class NoCorrection(Correction):
    """Frames as recorded."""

    name = "none"

    def residual_operator(self, model):
        return None, np.ones(model.frames)

    def trend_label(self):
        return "mean (no trend removed)"

    def corrected_label(self):
        return "after (no correction: as before)"


class LinearRescale(Correction):
    """The replaced app's rescaling: frame ``t`` times ``fit(0) / fit(t)`` of a straight line fitted
    to the cells' mean per frame. **Biased** for N&B: a frame scaled by ``c`` has its variance scaled
    by ``c^2`` (Nolan et al. 2017); kept only to reproduce the replaced app."""

    name = "linear"
    caveat = "the replaced app's rescaling, biased: kept only for comparison"

    def fit(self, trace, parameter, seed, cell_pixels, dof_correction, compiled=False, sample=None):
        index = np.arange(trace.size, dtype=np.float64)
        slope, intercept = np.polyfit(index, trace, 1)
        trend = intercept + slope * index
        if np.any(trend <= 0):
            raise ValueError(
                "the linear bleach fit reaches zero or below within the recording; "
                "the linear correction cannot be applied (choose another method)"
            )
        return {
            "parameter": None,
            "parameter_source": "not used by this method",
            "trend": trend,
            "frame_factors": trend[0] / trend,
        }

    def frame_scale(self, model, start, stop):
        return np.asarray(model.frame_factors[start:stop], dtype=np.float64)


class SmoothingCorrection(Correction):
    """A linear smoother per pixel (Nolan et al. 2017), and the unbiased variance after it.

    Subclasses give the smoother (:attr:`smoother`), the parameter's type and lower bound, and the
    candidates of the automatic parameter from the least to the most severe.
    """

    tiles = True
    detrends = True
    smoother = None
    parameter_type = int
    parameter_minimum = 1

    def smoother_for(self, model):
        return self.smoother(model.frames, model.parameter)

    def check_parameter(self, value, frames):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        if not np.isfinite(number) or number < self.parameter_minimum:
            raise ValueError(
                f"the {self.name} {self.parameter_name} must be 'auto' or a number >= {self.parameter_minimum:g}, "
                f"got {value!r}"
            )
        if self.parameter_type is int:
            if number != int(number):
                raise ValueError(f"the {self.name} parameter must be a whole number, got {value!r}")
            number = int(number)
        return number

    def candidates(self, frames):
        """Parameters the automatic choice tries, from the least to the most severe smoothing."""
        raise NotImplementedError

    def detrendr_search(self, brightness, frames, start):
        """detrendr's search for the parameter at which ``brightness(parameter)``, the mean B of the
        detrended immobile simulation (``start`` before detrending), is 1 (brightflow.detrend.auto)."""
        raise NotImplementedError

    def fit(self, trace, parameter, seed, cell_pixels, dof_correction, compiled=False, sample=None):
        fields = {"auto": None}
        if parameter == "auto":
            if dof_correction:
                chosen, info = auto.leftover_parameter(trace, self, cell_pixels, sample)
                source = f"auto: {info['criterion']}"
            else:
                chosen, info = auto.auto_parameter(trace, self, cell_pixels, seed)
                source = (
                    f"auto: simulated immobile image ({info['simulated_pixels']} pixels, seed {seed}) with the "
                    "cell-pixel mean trace reaches mean B = 1 here (Nolan et al. 2017)"
                )
            fields["auto"] = info
            if chosen is None:
                return {
                    **fields,
                    **NoCorrection().fit(trace, None, seed, cell_pixels, dof_correction),
                    "replaced": info["note"],
                }
        else:
            chosen = self.check_parameter(parameter, trace.size)
            source = "set in the configuration (bleach_correction.parameter)"
        smoother = self.smoother(trace.size, chosen)
        trend = smoother.apply(trace)
        fields.update(parameter=chosen, parameter_source=source, trend=trend)
        if dof_correction:
            if not (trend > 0).all():
                frame = int(np.argmin(trend))
                raise ValueError(
                    f"the {self.name} trend of the cells' mean intensity falls to {trend[frame]:.4g} at frame {frame}: "
                    "the fluctuations cannot be scaled to the mean level there. Choose a smaller "
                    f"{self.parameter_name} or another method"
                )
            gains = np.sqrt(trace.mean() / trend)
            residual = float(dof.residual_dof(smoother, gains)[0])
            if not residual > 0:
                raise ValueError(
                    f"{self.name} with {self.parameter_name} = {chosen} leaves no fluctuation to measure over "
                    f"{trace.size} frames (residual degrees of freedom {residual:.3g})"
                )
            fields["degrees_of_freedom"] = {
                "residual": residual,
                "effective": float(trace.size - 1 - residual),
                "variance_scale": float((trace.size - 1) / residual),
            }
        return fields

    def correct(self, model, tile, rows, cells=None, plan=None, compiled=False):
        """Every pixel's series corrected on its own, so any selection of pixels gives those pixels'
        values of the whole-image correction; blocks of :data:`SERIES_BLOCK_VALUES` values, in place,
        on up to two threads (the values do not depend on the blocks or threads)."""
        from .. import parallel

        series = np.asarray(tile)
        frames = series.shape[0]
        flat = series.reshape(frames, -1)
        smoother = self.smoother_for(model)
        gains = model.gains() if model.dof_correction else None
        threads = parallel.available_cpus()
        if compiled and self.compiled_kernel(model) is not None:
            out = self.compiled_kernel(model)(flat, threads)
            return out.reshape(series.shape)
        out = np.empty(flat.shape)
        step = max(1, SERIES_BLOCK_VALUES // max(frames, 1))

        def correct_block(start):
            block = np.array(flat[:, start : start + step], dtype=np.float64)
            trend = smoother.apply(block)
            if gains is None:
                out[:, start : start + step] = _detrend_smoothed_in_place(block, trend)
            else:
                out[:, start : start + step] = _detrend_with_gains_in_place(block, trend, gains)

        parallel.thread_map(correct_block, range(0, flat.shape[1], step), threads)
        return out.reshape(series.shape)

    def compiled_kernel(self, model):
        """A compiled loop giving :meth:`correct`'s values bit for bit (brightflow.compiled), or None."""
        return None

    def residual_operator(self, model):
        if not model.dof_correction:
            return None
        return self.smoother_for(model).apply, model.gains()

    def variance_scale(self, model, windows=None):
        if not model.dof_correction:
            return super().variance_scale(model, windows)
        if windows is None:
            return np.array([model.degrees_of_freedom["variance_scale"]])
        residual = dof.residual_dof(self.smoother_for(model), model.gains(), windows)
        sizes = np.array([stop - start for start, stop in windows], dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(residual > 0, (sizes - 1) / residual, np.nan)


def _geometric(largest, smallest, ratio=2**0.25):
    values = [float(largest)]
    while values[-1] / ratio >= smallest:
        values.append(values[-1] / ratio)
    return values


class BoxcarCorrection(SmoothingCorrection):
    """Moving average over ``2l + 1`` frames (truncated at the ends), the default method."""

    name = "boxcar"
    parameter_name = "l"
    smoother = BoxcarSmoother

    def candidates(self, frames):
        # l >= T - 1 covers the whole recording in every window: the trend is the pixel mean (as none)
        values = sorted({int(round(value)) for value in _geometric(frames - 1, 1)}, reverse=True)
        return [value for value in values if value >= 1]

    def detrendr_search(self, brightness, frames, start):
        return auto.bracket_and_bisect(brightness, min(10, frames - 1), self.name, smallest=1, limit=frames - 1)

    def compiled_kernel(self, model):
        from .. import compiled, parallel

        def run(flat, threads):
            flat = np.ascontiguousarray(flat)
            out = np.empty(flat.shape)
            edges = np.linspace(0, flat.shape[1], threads + 1).astype(int)
            gains = model.gains() if model.dof_correction else None
            parallel.thread_map(
                lambda share: compiled.boxcar_detrend(flat, model.parameter, out=out, columns=share, gains=gains),
                [slice(low, high) for low, high in zip(edges[:-1], edges[1:], strict=False)],
                threads,
            )
            return out

        return run


class ExponentialCorrection(SmoothingCorrection):
    """Exponentially weighted average with time constant ``tau`` (frames)."""

    name = "exponential"
    parameter_name = "tau"
    smoother = ExponentialSmoother
    parameter_type = float
    #: At least one frame: below about a third of a frame the filter keeps only the frame itself.
    parameter_minimum = 1.0

    def candidates(self, frames):
        return _geometric(4.0 * frames, self.parameter_minimum)

    def detrendr_search(self, brightness, frames, start):
        return auto.bracket_and_bisect(brightness, 100.0, self.name, smallest=1e-3, max_doublings=40)

    def check_parameter(self, value, frames):
        tau = super().check_parameter(value, frames)
        if frames is not None and exponential_half_width(tau, frames) < 1:
            raise ValueError(f"the exponential tau {tau:g} keeps only the frame itself over {frames} frames")
        return tau


class PolynomialCorrection(SmoothingCorrection):
    """Least-squares polynomial in time of a given degree."""

    name = "polynomial"
    parameter_name = "degree"
    smoother = PolynomialSmoother
    #: Highest degree the automatic choice tries.
    AUTO_MAX_DEGREE = 50

    def candidates(self, frames):
        return list(range(1, max(1, min(frames - 2, self.AUTO_MAX_DEGREE)) + 1))

    def detrendr_search(self, brightness, frames, start):
        return auto.ascending_search(brightness, start, min(frames - 2, 30))

    def check_parameter(self, value, frames):
        degree = super().check_parameter(value, frames)
        if frames is not None and degree > frames - 2:
            raise ValueError(
                f"polynomial degree {degree} needs at least {degree + 2} frames (one to fit each coefficient and "
                f"one for the variance); the stack has {frames}"
            )
        return degree


class RobinHood(Correction):
    """Counts moved between frames within each cell pixel (Nolan et al. 2018; detrendr's
    ``img_detrend_robinhood``). Its documented bias (brightflow.detrend.robinhood) is not corrected:
    it is not a linear smoother, and no derivation of its loss is at hand."""

    name = "robinhood"
    parameter_name = "swaps"
    tiles = True
    swap_plan = True
    integer_counts = True
    detrends = True
    applied_to = "cell pixels (other pixels as recorded)"
    caveat = "underestimates the brightness of mobile molecules by about twice the fraction of counts moved"

    def check_parameter(self, value, frames):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        if not np.isfinite(number) or number < 1 or number != int(number):
            raise ValueError(f"the robinhood swaps must be 'auto' or a whole number >= 1, got {value!r}")
        return int(number)

    def fit(self, trace, parameter, seed, cell_pixels, dof_correction, compiled=False, sample=None):
        if parameter == "auto":
            chosen, info = auto.auto_parameter(trace, self, cell_pixels, seed)
            if chosen is None:
                return {
                    **NoCorrection().fit(trace, None, seed, cell_pixels, dof_correction),
                    "auto": info,
                    "replaced": info["note"],
                }
            source = (
                f"auto: simulated immobile image ({info['simulated_pixels']} pixels, seed {seed}) with the "
                "cell-pixel mean trace reaches mean B = 1 here (Nolan et al. 2017)"
            )
            return {"parameter": chosen, "parameter_source": source, "auto": info, "trend": None}
        return {
            "parameter": self.check_parameter(parameter, trace.size),
            "parameter_source": "set in the configuration (bleach_correction.parameter)",
            "trend": None,
        }

    def plan(self, model, sums, seed):
        return robinhood_plan(sums, model.parameter, seed)

    def correct(self, model, tile, rows, cells=None, plan=None, compiled=False):
        if cells is None or plan is None:
            raise ValueError("Robin Hood needs the cell mask and the swap plan")
        cells = np.asarray(cells, dtype=bool)
        if not cells.any():
            cells = np.ones(cells.shape, dtype=bool)
        return robinhood_apply(tile, plan[rows], cells[rows], rows.start or 0, model.seed)


#: The methods by configuration name: the one list (the schema's enum is tested against it).
METHODS = {
    method.name: method
    for method in (
        NoCorrection,
        LinearRescale,
        BoxcarCorrection,
        ExponentialCorrection,
        PolynomialCorrection,
        RobinHood,
    )
}
#: The default ``bleach_correction.method``.
DEFAULT_METHOD = "boxcar"


def correction_named(name):
    """The method called ``name`` in the configuration; ValueError listing the methods otherwise."""
    if name not in METHODS:
        raise ValueError(f"unknown bleach correction method {name!r}; use one of {', '.join(METHODS)}")
    return METHODS[name]()
