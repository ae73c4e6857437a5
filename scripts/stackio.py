"""File input and output for the rule scripts (the brightflow package does no file I/O).

Every reading function turns a bad file into :class:`InputError` with a message
that names the file, says what is wrong and what to do. :func:`run` wraps a rule
script so that such an error ends the job with that message (in the job's log
and on stderr) instead of a traceback.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np
import tifffile

log = logging.getLogger("brightflow")


class InputError(Exception):
    """A user's input file or setting cannot be used; the message says why and what to do."""


def run(main, snakemake):
    """Run ``main(snakemake)`` with logging to the rule's log file and clear errors."""
    handlers = [logging.StreamHandler(sys.stderr)]
    if snakemake.log:
        Path(snakemake.log[0]).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(snakemake.log[0], mode="w"))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", handlers=handlers, force=True)
    try:
        main(snakemake)
    except InputError as error:
        log.error("brightflow: %s", error)
        sys.exit(1)


# --- stacks -------------------------------------------------------------------------------------


def open_stack(path):
    """Open a (t, y, x) time series for reading without converting it.

    Returns a memory map when the TIFF's pixel data is stored contiguously and
    uncompressed (frames are then read from disk as they are used), else the
    stack read in its own dtype (never float64).

    Raises
    ------
    InputError
        The file is missing, not a readable TIFF, or not a (t, y, x) stack.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found. Check input_dir or the sample sheet's 'path' column.")
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape, axes, dtype = tuple(series.shape), series.axes, series.dtype
    except Exception as error:  # tifffile raises several types for damaged files
        raise InputError(
            f"{path}: cannot be read as a TIFF ({type(error).__name__}: {error}). "
            "Export the recording as a TIFF stack (t, y, x) and run again."
        ) from error
    check_stack_shape(path, shape, axes, dtype)
    try:
        stack = tifffile.memmap(path, mode="r")
        if stack.shape != shape:
            raise ValueError("memory map shape differs from the series shape")
    except Exception:
        try:
            stack = tifffile.imread(path)
        except Exception as error:
            raise InputError(f"{path}: the pixel data cannot be decoded ({error}).") from error
    return stack.reshape(shape)


def stack_axes(path, shape, metadata_axes, configured_axes=None):
    """The axes of a stack of 4 or more dimensions (brightflow.axes.resolve_axes), as InputError.

    ``configured_axes`` (``input.axes``) applies only to stacks with as many dimensions as it
    has letters, so one setting serves a folder that also holds plain (t, y, x) stacks.
    """
    from brightflow import axes

    if configured_axes and len(configured_axes) != len(shape):
        configured_axes = None
    try:
        return axes.resolve_axes(shape, metadata_axes, configured_axes)
    except axes.AxesError as error:
        raise InputError(f"{path}: {error}.") from error


def open_channel(path, channel=None, configured_axes=None):
    """One channel of a stack as a (t, y, x) array (a view of the memory map when there is one).

    Parameters
    ----------
    path : str
    channel : int or None
        The channel, counted from 1 as ImageJ does; ``None`` for a single-channel stack.
    configured_axes : str or None
        ``input.axes`` (e.g. ``"TYXS"``), for files whose metadata does not name the axes.

    A (t, y, x) stack is opened by :func:`open_stack`; a stack of 4 or more dimensions
    (ImageJ hyperstack ``TCYX``, OME ``TCYX``, channels as samples ``TYXS``) gets its axes
    from the metadata or ``configured_axes`` (:func:`stack_axes`) and is brought to
    ``(t, c, y, x)`` by brightflow.axes.to_tcyx.
    """
    from brightflow import axes

    path = Path(path)
    if not path.is_file():
        return open_stack(path)  # its clear message
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape, metadata_axes, dtype = tuple(series.shape), series.axes, series.dtype
    except Exception:
        return open_stack(path)  # its clear message
    if len(shape) < 4:
        if channel not in (None, 1):
            raise InputError(f"{path}: is a single-channel stack {shape}; it has no channel {channel}.")
        return open_stack(path)
    found = stack_axes(path, shape, metadata_axes, configured_axes)
    try:
        stack = tifffile.memmap(path, mode="r")
        if stack.shape != shape:
            raise ValueError("memory map shape differs from the series shape")
    except Exception:
        try:
            stack = tifffile.imread(path)
        except Exception as error:
            raise InputError(f"{path}: the pixel data cannot be decoded ({error}).") from error
    tcyx = axes.to_tcyx(stack.reshape(shape), found)
    count = tcyx.shape[1]
    index = 1 if channel is None and count == 1 else channel
    if index is None or not 1 <= index <= count:
        raise InputError(
            f"{path}: has {count} channel(s) (axes {found!r}); channel {channel} does not exist. "
            "Check input.channels, segmentation.channel and nb.cross_channels (channels count from 1)."
        )
    frames = tcyx[:, index - 1]
    check_stack_shape(path, frames.shape, "TYX", dtype)
    return frames


def open_input_stack(snakemake):
    """The rule's input stack, or its channel ``params.channel`` (see :func:`open_channel`)."""
    params = snakemake.params
    channel = params.get("channel") if hasattr(params, "get") else None
    configured = params.get("axes") if hasattr(params, "get") else None
    return open_channel(snakemake.input.stack, channel, configured)


def check_stack_shape(path, shape, axes, dtype):
    """Raise :class:`InputError` unless ``shape`` is a (t, y, x) stack of real numbers."""
    if len(shape) == 2:
        raise InputError(
            f"{path}: is a single 2D image {shape}, not a time series. N&B needs a stack of "
            "frames (t, y, x): export all frames of the recording into one multi-page TIFF."
        )
    if len(shape) != 3:
        raise InputError(
            f"{path}: has {len(shape)} dimensions {shape} (axes {axes!r}); brightflow reads "
            "single-channel stacks (t, y, x). Split channels or z into separate files."
        )
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise InputError(f"{path}: pixel type {dtype} is not a real number type.")
    if shape[0] < 3:
        raise InputError(f"{path}: has only {shape[0]} frame(s); N&B needs a time series of many frames.")


def frame_chunks(frame_count, frame_shape, budget_bytes=64 * 2**20):
    """Frame ranges ``(start, stop)`` whose float64 copy fits ``budget_bytes``."""
    per_frame = int(np.prod(frame_shape)) * 8
    step = max(1, budget_bytes // max(per_frame, 1))
    return [(start, min(start + step, frame_count)) for start in range(0, frame_count, step)]


def row_tiles(frame_count, frame_shape, budget_bytes=256 * 2**20, copies=6):
    """Row ranges ``slice(start, stop)`` for reading tiles ``stack[:, rows, :]`` across all frames.

    A tile holds ``rows x width x frames`` values; ``copies`` float64 working
    copies of it (the correction's temporaries) fit ``budget_bytes``. At least
    one row per tile, so a very long recording of wide frames can exceed the
    budget by one row's worth.
    """
    height, width = int(frame_shape[0]), int(frame_shape[1])
    per_row = max(int(frame_count) * width * 8 * copies, 1)
    step = max(1, min(height, budget_bytes // per_row))
    return [slice(start, min(start + step, height)) for start in range(0, height, step)]


def read_correction_model(path, frames, stack_path):
    """The bleach-correction model (JSON) of a stack of ``frames`` frames, checked to fit it."""
    model = read_json(path)
    if model["frames"] != frames:
        raise InputError(
            f"{path} covers {model['frames']} frames but {stack_path} has {frames}: "
            "the stack changed; rerun the workflow."
        )
    return model


def read_swap_plan(path, shape):
    """Robin Hood's swap plan (.npy, memory-mapped), checked to fit a stack of ``shape`` (t, y, x)."""
    plan = read_npy(path, mmap=True)
    if plan.shape != (shape[1], 2, shape[0]):
        raise InputError(
            f"{path}: swap plan of shape {plan.shape} does not fit the stack {tuple(shape)}; rerun the workflow."
        )
    return plan


def corrected_tiles(snakemake, stack, model, copies=6):
    """Yield ``(rows, corrected)``: tiles of pixel rows across all frames, bleach-corrected.

    For the detrending methods that need each pixel's whole time series
    (brightflow.detrend.TILE_METHODS). Robin Hood reads the rule's ``labels`` and
    ``swaps`` inputs. Tiles are sized by :func:`row_tiles` (``copies`` float64
    working copies per tile).
    """
    from brightflow import detrend

    cells = plan = None
    if model["method"] == "robinhood":
        cells = read_image(snakemake.input.labels) > 0
        plan = read_swap_plan(snakemake.input.swaps, stack.shape)
    for rows in row_tiles(stack.shape[0], stack.shape[1:], copies=copies):
        try:
            yield rows, detrend.correct_tile(model, stack[:, rows, :], rows, cells, plan)
        except ValueError as error:
            raise InputError(f"{snakemake.input.stack}: {error}") from error


def sha256(path, block=2**22):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


# --- images, masks and maps ---------------------------------------------------------------------


def write_tiff(path, array, **kwargs):
    tifffile.imwrite(path, array, **kwargs)


def read_image(path):
    return tifffile.imread(path)


def write_map(stem, values):
    """Write one N&B map as ``stem.npy`` (float64) and ``stem.tif`` (float32, opens in Fiji)."""
    values = np.asarray(values, dtype=np.float64)
    np.save(f"{stem}.npy", values)
    tifffile.imwrite(f"{stem}.tif", values.astype(np.float32), imagej=True, metadata={"axes": "YX"})


def write_map_series(path, values):
    """Write maps with a leading window axis ``(windows, y, x)`` as one multi-page float32 TIFF
    (ImageJ axes ``TYX``: Fiji opens it as a time series, one frame per window)."""
    values = np.asarray(values, dtype=np.float32)
    tifffile.imwrite(path, values, imagej=True, metadata={"axes": "TYX"})


def read_seg_npy(path):
    """Load a cellpose ``_seg.npy`` file as a dict."""
    try:
        seg = np.load(path, allow_pickle=True).item()
    except Exception as error:
        raise InputError(f"{path}: cannot be read as a cellpose _seg.npy file ({error}).") from error
    if not isinstance(seg, dict) or "masks" not in seg:
        raise InputError(f"{path}: is not a cellpose _seg.npy file (no 'masks' entry).")
    return seg


def read_seg_masks(path):
    """The label image (uint16, cells 1..n) of a cellpose ``_seg.npy`` file; errors name the file."""
    from brightflow import segment

    try:
        return segment.masks_from_seg_dict(read_seg_npy(path))
    except ValueError as error:
        raise InputError(f"{path}: {error}") from error


def write_seg_npy(path, seg):
    np.save(path, seg, allow_pickle=True)


def read_label_file(path):
    """A user's label mask: a label TIFF or a cellpose ``_seg.npy``. Returns the raw labels."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: mask file not found. Check the sample sheet's 'mask' column.")
    if path.name.endswith(".npy"):
        labels = np.asarray(read_seg_npy(path)["masks"])
    else:
        try:
            labels = tifffile.imread(path)
        except Exception as error:
            raise InputError(f"{path}: cannot be read as a label TIFF ({error}).") from error
    labels = np.squeeze(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(
            f"{path}: a mask must be a 2D integer label image (0 = background), got shape "
            f"{labels.shape} of type {labels.dtype}."
        )
    return labels


def write_npy(path, array):
    np.save(path, np.asarray(array))


def read_npy(path, mmap=False):
    """Load an .npy array (as a read-only memory map when ``mmap``)."""
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except Exception as error:
        raise InputError(f"{path}: cannot be read as a NumPy .npy array ({error}); rerun the workflow.") from error


def write_imagej_rois(path, outlines):
    """Write an ImageJ ROI set (.zip, opens in Fiji's ROI Manager) with the ``roifile`` package.

    ``outlines`` maps each cell's label to its outline as (x, y) pixel
    coordinates; each ROI is a polygon named ``cell_<label>`` (the ``Cell ID``
    of the tables). A cell without an outline (4 border pixels or fewer) is
    left out, as cellpose does.
    """
    from roifile import ImagejRoi, roiwrite

    rois = []
    for label, points in outlines.items():
        if len(points) == 0:
            continue
        roi = ImagejRoi.frompoints(np.asarray(points))
        roi.name = f"cell_{int(label)}"
        rois.append(roi)
    Path(path).unlink(missing_ok=True)  # roiwrite appends to an existing zip
    if rois:
        roiwrite(path, rois)
    else:
        import zipfile

        zipfile.ZipFile(path, "w").close()  # an empty ROI set


# --- small text files ---------------------------------------------------------------------------


def write_json(path, data):
    with open(path, "w") as handle:
        json.dump(data, handle, indent=2, default=_json_default)
        handle.write("\n")


def read_json(path):
    with open(path) as handle:
        return json.load(handle)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def save_figure(figure, path, dpi=None):
    figure.savefig(path, dpi=dpi or figure.dpi)


def relative_to(path, start):
    return os.path.relpath(path, start)
