"""Rule bleach_correction: fit the correction model on the cell pixels, and count doubtful samples.

The model (JSON: method, the chosen parameter and how it was chosen, the traces) and Robin
Hood's swap plan (.npy; empty for the other methods) are applied by the N&B steps while they
stream the stack (brightflow.detrend.corrected_blocks); no corrected stack is written.
"""

from __future__ import annotations

import logging

import numpy as np

from .. import compiled, detrend, io, quality
from ..blocks import frame_chunks

log = logging.getLogger("brightflow")


def _fit(stack, frames, cells, method, parameter, seed, channel, dof_correction, loops, observe=None):
    try:
        return detrend.fit_to_stack(
            frames, cells, method, parameter, seed, channel, observe, dof_correction, compiled=loops
        )
    except ValueError as error:
        raise io.InputError(f"{stack}: bleach correction {method}: {error}") from error


def bleach_correction(
    stack,
    labels,
    model,
    swaps,
    samples,
    method,
    parameter,
    seed,
    dof_correction,
    channel=None,
    axes=None,
    saturation_level=None,
):
    """Fit the bleach correction of a (channel of a) stack on its cell pixels, and count its doubtful samples.

    One pass over the frames makes both for integer data (the common case: detector counts); data in
    floating point are counted first, because pixels with NaN or Inf samples are left out of the fit.
    The corrected trace and ``Bleach_correction.png`` come later, from the N&B step's pass over the
    corrected stack and the figures step.

    Parameters
    ----------
    stack, labels : str
        The recording and the analysis mask (``analysis_labels.tif``).
    model, swaps : str
        The model (JSON) and Robin Hood's swap plan (.npy).
    samples : str
        ``sample_quality.npy``: per pixel, the samples at the saturation level, below 0 and not finite
        (brightflow.quality.SampleCounts), for the N&B maps (pixels with NaN or Inf samples are left
        out) and the per-cell warnings.
    method, parameter, seed, dof_correction
        ``bleach_correction.method``, ``.parameter``, ``.seed``, ``.dof_correction``
        (brightflow.detrend.fit_to_stack).
    channel : int, optional
        The channel (from 1) of a multi-channel stack.
    axes : str, optional
        ``input.axes``.
    saturation_level : float, optional
        ``quality.saturation_level``; the integer dtype's maximum when not given.
    """
    frames = io.open_channel(stack, channel, axes)
    cells = io.read_image(labels) > 0
    if cells.shape != frames.shape[1:]:
        raise io.InputError(
            f"{labels}: mask shape {cells.shape} differs from the frames {frames.shape[1:]} of {stack}; rerun "
            "segmentation."
        )
    loops = compiled.use_for(np.prod(frames.shape, dtype=np.int64))
    counter = quality.SampleCounts(frames.shape[1:], quality.saturation_level(frames.dtype, saturation_level), loops)
    if not cells.any():
        # nothing to measure: the maps (previews) are made of the frames as recorded
        log.warning("no cell pixels: no bleach correction (method none); the experiment has no values")
        method, cells = "none", np.ones_like(cells)
    if np.issubdtype(frames.dtype, np.floating):
        for start, stop in frame_chunks(frames.shape[0], frames.shape[1:]):
            counter.update(frames[start:stop])
        usable = counter.non_finite == 0  # pixels with a NaN or Inf sample: out of the fit and every value
        if not usable.any():
            raise io.InputError(
                f"{stack}: every pixel has NaN or Inf samples ({int(counter.non_finite.sum())} of them): there is "
                "nothing to measure. Export the recording again from the microscope's raw data."
            )
        if not usable.all():
            log.warning(
                "%d pixel(s) with NaN or Inf samples (%d samples) are left out",
                int((~usable).sum()),
                int(counter.non_finite.sum()),
            )
        if not (cells & usable).any():
            log.warning("every cell pixel has NaN or Inf samples: no bleach correction (method none)")
            method, cells = "none", usable
        fitted, plan = _fit(stack, frames, cells & usable, method, parameter, seed, channel, dof_correction, loops)
    else:
        fitted, plan = _fit(
            stack, frames, cells, method, parameter, seed, channel, dof_correction, loops, observe=counter.update
        )
    if fitted.replaced is not None:
        log.warning("bleach correction: %s requested, none applied: %s", fitted.method_requested, fitted.replaced)
    else:
        log.info("bleach correction: %s, %s (%s)", fitted.method, fitted.describe_parameter(), fitted.parameter_source)
    if fitted.leftover_standard_errors() is not None:
        log.warning("automatic parameter: %s", fitted.auto["note"])
    elif fitted.auto and fitted.auto.get("note") and fitted.replaced is None:
        log.info("automatic parameter: %s", fitted.auto["note"])
    if fitted.degrees_of_freedom:
        log.info(
            "the variance is divided by %.6g residual degrees of freedom instead of %d (x %.6g)",
            fitted.degrees_of_freedom["residual"],
            fitted.frames - 1,
            fitted.degrees_of_freedom["variance_scale"],
        )
    io.write_npy(samples, counter.array())
    io.write_json(model, fitted.to_json())
    io.write_npy(swaps, plan)
