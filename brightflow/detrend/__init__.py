"""Bleach correction (detrending) of a time series before N&B.

Photobleaching adds a slow trend to every pixel. Left in, it inflates the
temporal variance and so the apparent brightness ``B``. The methods here follow
Nolan et al. 2017 and the R package detrendr by the same authors:

    Nolan, R., Alvarez, L. A. J., Elegheert, J., Iliopoulou, M., Jakobsdottir,
    G. M., Rodriguez-Munoz, M., Aricescu, A. R. & Padilla-Parra, S. (2017).
    nandb -- number and brightness in R with a novel automatic detrending
    algorithm. *Bioinformatics* 33(21), 3508-3510. doi:10.1093/bioinformatics/btx434

A correction is described by a small *model*, a JSON-serialisable dict made by
:func:`fit_correction` from the per-frame mean of the cell pixels. The N&B step
applies it while streaming the stack; no corrected stack is ever written.

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
    al. 2017). It is kept only to reproduce the replaced app's numbers.
``boxcar``, ``exponential``, ``polynomial``
    Each pixel's time series ``x`` is smoothed into a trend ``s`` (see
    :func:`smooth`) and corrected to ``x' = m + (x - s) sqrt(m / s)`` with ``m``
    the pixel's mean (:func:`detrend_smoothed`). The pixel mean is kept and the
    fluctuations are rescaled to the Poisson level of the mean, so shot noise
    keeps ``B = 1``. These work per pixel, on every pixel of the image.
``robinhood``
    Counts are moved from frames brighter than the mean to frames dimmer than
    it, each count staying in its pixel (Nolan et al. 2018; detrendr's
    ``img_detrend_robinhood``). Pixel sums and integer counts are preserved
    exactly. It works on the cell pixels (``mask > 0``, or every pixel when
    the mask is empty); the other pixels are left as recorded.

    Known bias (measured, see README.md, "Bleach correction"): choosing the pixel in
    proportion to its count in the giving frame picks upward fluctuations
    preferentially (size-biased choice: ``E[x | chosen] = m + B``), so each
    swap removes about ``2 epsilon`` more variance from a mobile pixel than
    from an immobile one, which the immobile calibration does not undo.
    Brightness ``epsilon`` comes out low by about twice the fraction of counts
    moved: about 3% for a 10% bleach, 7-9% for 20%, 8-12% for 40%. The
    smoothing methods stay within about 2.5% at 40%; ``boxcar`` is therefore
    brightflow's default.

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
:mod:`~brightflow.detrend.model`
    the correction model: fitting (:func:`fit_correction`) and applying it (:func:`frame_scale`,
    :func:`correct_series`, :func:`correct_tile`), and the per-frame traces it is fitted on;
:mod:`~brightflow.detrend.smoothing`
    boxcar, exponential and polynomial trends and the N&B-correct detrending by them;
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

from .auto import AUTO_MAX_PIXELS, AUTO_MAX_SWAPS, AUTO_MAX_VALUES, auto_parameter, auto_sample_pixels
from .model import (
    METHODS,
    SERIES_BLOCK_VALUES,
    TILE_METHODS,
    cell_trace,
    correct_frames,
    correct_series,
    correct_tile,
    corrected_trace,
    fit_correction,
    frame_scale,
    row_sums,
)
from .robinhood import robinhood_apply, robinhood_corrected_sums, robinhood_frame_budget, robinhood_plan
from .simulation import brightness_standard_error, mean_brightness, simulate_immobile, stochastic_round
from .smoothing import EXPONENTIAL_CUTOFF, SMOOTHING_METHODS, detrend_smoothed, exponential_half_width, smooth
from .stream import (
    Block,
    CorrectedTrace,
    channel_seed,
    corrected_blocks,
    describe_parameter,
    fit_to_stack,
    needs_tiles,
)

__all__ = [
    "AUTO_MAX_PIXELS",
    "AUTO_MAX_SWAPS",
    "AUTO_MAX_VALUES",
    "EXPONENTIAL_CUTOFF",
    "METHODS",
    "SERIES_BLOCK_VALUES",
    "SMOOTHING_METHODS",
    "TILE_METHODS",
    "Block",
    "CorrectedTrace",
    "auto_parameter",
    "auto_sample_pixels",
    "brightness_standard_error",
    "cell_trace",
    "channel_seed",
    "correct_frames",
    "correct_series",
    "correct_tile",
    "corrected_blocks",
    "corrected_trace",
    "describe_parameter",
    "detrend_smoothed",
    "exponential_half_width",
    "fit_correction",
    "fit_to_stack",
    "frame_scale",
    "mean_brightness",
    "needs_tiles",
    "robinhood_apply",
    "robinhood_corrected_sums",
    "robinhood_frame_budget",
    "robinhood_plan",
    "row_sums",
    "simulate_immobile",
    "smooth",
    "stochastic_round",
]
