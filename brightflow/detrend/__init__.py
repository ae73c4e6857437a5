"""Bleach correction (detrending) of a time series before N&B.

Photobleaching adds a slow trend to every pixel. Left in, it inflates the
temporal variance and so the apparent brightness ``B``. The methods here follow
Nolan et al. 2017 and the R package detrendr by the same authors:

    Nolan, R., Alvarez, L. A. J., Elegheert, J., Iliopoulou, M., Jakobsdottir,
    G. M., Rodriguez-Munoz, M., Aricescu, A. R. & Padilla-Parra, S. (2017).
    nandb -- number and brightness in R with a novel automatic detrending
    algorithm. *Bioinformatics* 33(21), 3508-3510. doi:10.1093/bioinformatics/btx434

A correction is described by a frozen :class:`CorrectionModel` (saved as JSON) made by
:func:`fit_correction` from the per-frame mean of the cell pixels. The N&B step applies it while
streaming the stack, and divides the variance by what the correction leaves of it
(:meth:`CorrectionModel.variance_scale`); no corrected stack is ever written.

Methods
-------
One class per method (:mod:`~brightflow.detrend.methods`; :data:`METHODS` by configuration name):

``none``
    Frames are used as recorded.
``linear``
    The replaced app's method: a straight line is fitted to the mean intensity
    of the cell pixels per frame and frame ``t`` is multiplied by
    ``fit(0) / fit(t)``. This is **biased** for N&B: scaling a frame by ``c``
    scales its mean by ``c`` but its variance by ``c^2``, so for pure shot noise
    the apparent brightness becomes about ``mean(c)`` instead of 1 (Nolan et
    al. 2017). It is kept only to reproduce the replaced app's numbers.
``boxcar`` (the default), ``exponential``, ``polynomial``
    Each pixel's time series ``x`` is smoothed into a trend ``s = S x`` (see
    :func:`smooth`) and corrected to ``x' = m + g_t (x - s)``, ``m`` the pixel
    mean and ``g_t = sqrt(<c> / c_t)`` from the trend ``c`` of the cells' mean
    intensity, and the variance is divided by the smoother's residual degrees of
    freedom instead of ``T - 1`` (:mod:`~brightflow.detrend.dof`; Hastie &
    Tibshirani 1990, section 3.5; Buja, Hastie & Tibshirani 1989). Shot noise
    then gives ``B = 1`` and mobile molecules their ``epsilon`` for every method
    and parameter. ``bleach_correction.dof_correction: false`` gives detrendr's
    ``x' = m + (x - s) sqrt(m / s)`` with the variance as computed, which is low by
    the share of the variance the smoother takes (4% for a boxcar of l = 10 over
    100 frames, 7% for exponential tau = 10).
``robinhood``
    Counts are moved from frames brighter than the mean to frames dimmer than
    it, each count staying in its pixel (Nolan et al. 2018; detrendr's
    ``img_detrend_robinhood``). Pixel sums and integer counts are preserved
    exactly. It works on the cell pixels (``mask > 0``, or every pixel when
    the mask is empty); the other pixels are left as recorded.

    Known bias (measured, see docs/bleach_correction.md, "Robin Hood"): choosing the pixel in
    proportion to its count in the giving frame picks upward fluctuations
    preferentially (size-biased choice: ``E[x | chosen] = m + B``), so each
    swap removes about ``2 epsilon`` more variance from a mobile pixel than
    from an immobile one, which the immobile calibration does not undo.
    Brightness ``epsilon`` comes out low by about twice the fraction of counts
    moved: about 3% for a 10% bleach, 7-9% for 20%, 8-12% for 40%. Robin Hood is
    not a linear smoother, no correction of this loss is derived here, and it is
    not the default.

Rounding
--------
detrendr rounds the smoothing corrections stochastically to integers (floor
plus a Bernoulli draw on the fraction). brightflow does **not**: the corrected
values stay real numbers (float64), negative values included, because they are
only fed to the moment calculation and never written as an image. Stochastic
rounding adds a variance ``p (1 - p)`` per value (about 1/6 count^2 on average),
which biases ``B`` upward by about ``1 / (6 <k>)`` -- 0.03 at 5 counts per
frame. :func:`stochastic_round` implements detrendr's rounding for comparison;
the workflow does not use it.

Modules
-------
:mod:`~brightflow.detrend.methods`
    the method classes and :data:`METHODS`;
:mod:`~brightflow.detrend.model`
    the correction model (:class:`CorrectionModel`, :func:`fit_correction`) and the per-frame
    traces it is fitted on;
:mod:`~brightflow.detrend.smoothing`
    boxcar, exponential and polynomial smoothers and the corrections by their trends;
:mod:`~brightflow.detrend.dof`
    the residual degrees of freedom of a smoothing correction (the unbiased variance);
:mod:`~brightflow.detrend.robinhood`
    Robin Hood's swap plan and its application tile by tile;
:mod:`~brightflow.detrend.auto`
    the automatic parameter;
:mod:`~brightflow.detrend.simulation`
    immobile simulations and their mean brightness;
:mod:`~brightflow.detrend.stream`
    a stack fitted (:func:`fit_to_stack`) and read corrected block by block
    (:func:`corrected_blocks`), for any method: the one way the steps read corrected values.

The public names of all of them are available here, ``brightflow.detrend.<name>``.
"""

from .auto import (
    AUTO_MAX_PIXELS,
    AUTO_MAX_SWAPS,
    AUTO_MAX_VALUES,
    LEFTOVER_STANDARD_ERRORS,
    auto_parameter,
    auto_sample_pixels,
    leftover_brightness,
    leftover_parameter,
    trace_noise_variance,
)
from .dof import cross_residual_dof, dense_residual_dof, residual_dof
from .methods import DEFAULT_METHOD, METHODS, correction_named
from .model import CorrectionModel, cell_trace, fit_correction, row_sums
from .robinhood import robinhood_apply, robinhood_corrected_sums, robinhood_frame_budget, robinhood_plan
from .simulation import brightness_standard_error, mean_brightness, simulate_immobile, stochastic_round
from .smoothing import (
    EXPONENTIAL_CUTOFF,
    SMOOTHERS,
    BoxcarSmoother,
    ExponentialSmoother,
    PolynomialSmoother,
    detrend_smoothed,
    detrend_with_gains,
    exponential_half_width,
    smooth,
)
from .stream import Block, CorrectedTrace, channel_seed, corrected_blocks, cross_variance_scale, fit_to_stack

__all__ = [
    "AUTO_MAX_PIXELS",
    "AUTO_MAX_SWAPS",
    "AUTO_MAX_VALUES",
    "DEFAULT_METHOD",
    "EXPONENTIAL_CUTOFF",
    "LEFTOVER_STANDARD_ERRORS",
    "METHODS",
    "SMOOTHERS",
    "Block",
    "BoxcarSmoother",
    "CorrectedTrace",
    "CorrectionModel",
    "ExponentialSmoother",
    "PolynomialSmoother",
    "auto_parameter",
    "auto_sample_pixels",
    "brightness_standard_error",
    "cell_trace",
    "channel_seed",
    "correction_named",
    "corrected_blocks",
    "cross_residual_dof",
    "cross_variance_scale",
    "dense_residual_dof",
    "detrend_smoothed",
    "detrend_with_gains",
    "exponential_half_width",
    "fit_correction",
    "fit_to_stack",
    "leftover_brightness",
    "leftover_parameter",
    "mean_brightness",
    "residual_dof",
    "robinhood_apply",
    "robinhood_corrected_sums",
    "robinhood_frame_budget",
    "robinhood_plan",
    "row_sums",
    "simulate_immobile",
    "smooth",
    "stochastic_round",
    "trace_noise_variance",
]
