"""Rule projection: the mean over frames of the stack, the image that is segmented."""

from __future__ import annotations

import logging

import numpy as np

from .. import io
from ..blocks import frame_chunks

log = logging.getLogger("brightflow")


def mean_projection(stack, output, channel=None, axes=None):
    """Write the mean of every frame (float32 TIFF with the recording's calibration).

    Parameters
    ----------
    stack : str
        The recording (read in chunks of frames).
    output : str
        The projection TIFF.
    channel : int, optional
        The channel (from 1) of a multi-channel stack: the segmentation channel.
    axes : str, optional
        ``input.axes``, for stacks whose file does not name its axes.
    """
    frames = io.open_channel(stack, channel, axes)
    total = np.zeros(frames.shape[1:], dtype=np.float64)
    for start, stop in frame_chunks(frames.shape[0], frames.shape[1:]):
        total += np.asarray(frames[start:stop]).sum(axis=0, dtype=np.float64)
    projection = (total / frames.shape[0]).astype(np.float32)
    io.write_image(output, projection, frames.calibration)
    log.info("%s: %d frames of %d x %d, %s", stack, *frames.shape, frames.dtype)
