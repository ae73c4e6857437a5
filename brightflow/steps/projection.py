"""Rule projection: the mean over frames of the stack, the image that is segmented."""

from __future__ import annotations

import logging

import numpy as np

from .. import io
from ..blocks import frame_chunks

log = logging.getLogger("brightflow")


def mean_projection(stack, output, channel=None, axes=None):
    """Write the mean of every frame (float32 TIFF with the recording's calibration).

    A pixel's NaN or Inf samples are left out of its mean (NaN when it has no finite sample). A frame
    with no finite pixel at all (a frame lost in acquisition or export) fails the experiment, naming
    the frame: its NaN would otherwise reach every pixel's variance.

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
    count = frames.shape[0]
    floating = np.issubdtype(frames.dtype, np.floating)
    if floating:  # NaN or Inf samples are left out of their pixel's mean, so they do not spread in segmentation
        count = np.zeros(frames.shape[1:], dtype=np.int64)
    lost = []
    for start, stop in frame_chunks(frames.shape[0], frames.shape[1:]):
        values = np.asarray(frames[start:stop])
        if floating:
            finite = np.isfinite(values)
            total += np.where(finite, values, 0).sum(axis=0, dtype=np.float64)
            count += finite.sum(axis=0)
            lost += [start + int(index) for index in np.flatnonzero(~finite.any(axis=(1, 2)))]
        else:
            total += values.sum(axis=0, dtype=np.float64)
    if lost and len(lost) < frames.shape[0]:
        listing = ", ".join(str(frame + 1) for frame in lost[:20]) + (" ..." if len(lost) > 20 else "")
        raise io.InputError(
            f"{stack}: frame(s) {listing} (counting from 1, of {frames.shape[0]}) are NaN or Inf in every pixel: "
            "frames lost in acquisition or export. Export the recording again, or remove those frames (Fiji: "
            "Image > Stacks > Tools > Slice Remover) if they are not part of the time series."
        )
    with np.errstate(invalid="ignore", divide="ignore"):
        projection = (total / count).astype(np.float32)
    io.write_image(output, projection, frames.calibration)
    log.info("%s: %d frames of %d x %d, %s", stack, *frames.shape, frames.dtype)
