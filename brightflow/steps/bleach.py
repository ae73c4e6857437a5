"""Rule bleach_correction: fit the correction model on the cell pixels and draw it.

The model (JSON: method, the chosen parameter and how it was chosen, the traces) and Robin
Hood's swap plan (.npy; empty for the other methods) are applied by the N&B steps while they
stream the stack (brightflow.detrend.corrected_blocks); no corrected stack is written.
"""

from __future__ import annotations

import logging


from .. import detrend, figures, io, quality
from ..blocks import frame_chunks

log = logging.getLogger("brightflow")


def _sample_counts(frames, saturation):
    """brightflow.quality.SampleCounts of every frame of the stack, read in chunks of frames."""
    counts = quality.SampleCounts(frames.shape[1:], quality.saturation_level(frames.dtype, saturation))
    for start, stop in frame_chunks(frames.shape[0], frames.shape[1:]):
        counts.update(frames[start:stop])
    return counts.array()


def bleach_correction(stack, labels, model, swaps, figure, samples, method, parameter="auto", seed=1,
                      channel=None, axes=None, saturation_level=None):
    """Fit the bleach correction of a (channel of a) stack on its cell pixels, and count its doubtful samples.

    Parameters
    ----------
    stack, labels : str
        The recording and the analysis mask (``analysis_labels.tif``).
    model, swaps, figure : str
        The model (JSON), Robin Hood's swap plan (.npy) and ``Bleach_correction.png``.
    samples : str
        ``sample_quality.npy``: per pixel, the samples at the saturation level, below 0 and not finite
        (brightflow.quality.SampleCounts), for the N&B maps (pixels with NaN or Inf samples are left
        out) and the per-cell warnings.
    saturation_level : float, optional
        ``quality.saturation_level``; the integer dtype's maximum when not given.
    method, parameter, seed
        ``bleach_correction.method``, ``.parameter``, ``.seed`` (brightflow.detrend.fit_to_stack).
    channel : int, optional
        The channel (from 1) of a multi-channel stack.
    axes : str, optional
        ``input.axes``.
    """
    frames = io.open_channel(stack, channel, axes)
    cells = io.read_image(labels) > 0
    if cells.shape != frames.shape[1:]:
        raise io.InputError(
            f"{labels}: mask shape {cells.shape} differs from the frames {frames.shape[1:]} of {stack}; rerun "
            "segmentation."
        )
    counts = _sample_counts(frames, saturation_level)
    io.write_npy(samples, counts)
    usable = counts[2] == 0  # pixels with a NaN or Inf sample are left out of the fit and of every value
    if not usable.any():
        raise io.InputError(
            f"{stack}: every pixel has NaN or Inf samples ({int(counts[2].sum())} of them): there is nothing to "
            "measure. Export the recording again from the microscope's raw data."
        )
    if (~usable).any():
        log.warning("%d pixel(s) with NaN or Inf samples (%d samples) are left out", int((~usable).sum()),
                    int(counts[2].sum()))
    fit_cells = cells & usable
    if not fit_cells.any():
        # nothing to measure: the maps (previews) are made of the frames as recorded
        log.warning("no cell pixels: no bleach correction (method none); the experiment has no values")
        fit_cells, method = usable, "none"
    try:
        fitted, plan = detrend.fit_to_stack(frames, fit_cells, method, parameter, seed, channel)
    except ValueError as error:
        raise io.InputError(f"{stack}: bleach correction {method}: {error}") from error
    log.info("bleach correction: %s, parameter %s (%s)", fitted["method"], fitted["parameter"],
             fitted["parameter_source"])
    io.write_json(model, fitted)
    io.write_npy(swaps, plan)
    drawing = figures.bleach_correction_figure(
        fitted["trace"], fitted["corrected_trace"], fitted["trend"], fitted["method"],
        detrend.describe_parameter(fitted), frames.calibration.frame_interval,
    )
    io.save_figure(drawing, figure)
