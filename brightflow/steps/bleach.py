"""Rule bleach_correction: fit the correction model on the cell pixels and draw it.

The model (JSON: method, the chosen parameter and how it was chosen, the traces) and Robin
Hood's swap plan (.npy; empty for the other methods) are applied by the N&B steps while they
stream the stack (brightflow.detrend.corrected_blocks); no corrected stack is written.
"""

from __future__ import annotations

import logging

from .. import detrend, figures, io

log = logging.getLogger("brightflow")


def bleach_correction(stack, labels, model, swaps, figure, method, parameter="auto", seed=1, channel=None,
                      axes=None):
    """Fit the bleach correction of a (channel of a) stack on its cell pixels.

    Parameters
    ----------
    stack, labels : str
        The recording and the analysis mask (``analysis_labels.tif``).
    model, swaps, figure : str
        The model (JSON), Robin Hood's swap plan (.npy) and ``Bleach_correction.png``.
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
    if not cells.any():
        log.warning("no cell pixels: the trace and the correction use the whole image")
    try:
        fitted, plan = detrend.fit_to_stack(frames, cells, method, parameter, seed, channel)
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
