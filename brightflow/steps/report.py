"""Rules figures, tables and settings: the previews, the per-pixel and per-cell tables, and the
record of every setting used."""

from __future__ import annotations

import logging
import os
import platform
from datetime import UTC, datetime
from importlib import metadata

import numpy as np

from .. import __version__, io, nb, quality
from ..nb import MAP_NAMES

# matplotlib (figures), pandas (tables), scikit-image (masks) and Bokeh (explorer) are imported by the
# step that uses them: each rule pays only for its own

log = logging.getLogger("brightflow")

__all__ = ["cell_tables", "explorer_page", "map_figures", "settings_record"]

#: The packages whose versions settings.json records.
PACKAGES = ("numpy", "scipy", "scikit-image", "tifffile", "pandas", "matplotlib", "snakemake", "cellpose", "torch")


def _read_maps(paths):
    """The six maps from their .npy files, given in the order of brightflow.nb.MAP_NAMES."""
    return {name: io.read_npy(path) for name, path in zip(MAP_NAMES, paths, strict=True)}


def map_figures(maps, labels, image, model, corrected_trace, previews, scatter, bleach, detector=None):
    """A preview PNG per map (brightflow.figures.map_preview), the brightness-intensity plot and the
    bleach-correction figure: every figure of a unit, in one process.

    Parameters
    ----------
    maps, previews : sequence of str
        The maps' .npy files and their PNGs, in the order of brightflow.nb.MAP_NAMES.
    labels : str
        The analysis mask: the cell pixels set each map's colour range and the plot's points.
    image : str
        The projection, which carries the recording's pixel size (axes and scale bars).
    model, corrected_trace : str
        The bleach-correction model (its trace, trend and parameter) and the corrected trace the N&B
        step summed (``bleach_corrected_trace.json``).
    scatter, bleach : str
        ``brightness_x_intensity.png`` and ``Bleach_correction.png``.
    detector : dict
        ``nb.detector``: the reference line of immobile molecules is at B = s_factor.
    """
    from .. import detrend, figures

    values = _read_maps(maps)
    cells = io.read_image(labels) > 0
    calibration = io.read_calibration(image)
    for name, path in zip(MAP_NAMES, previews, strict=True):
        preview = figures.map_preview(values[name], figures.MAP_TITLES[name], figures.MAP_LABELS[name], cells,
                                      calibration)
        io.save_figure(preview, path)
    reference = nb.DetectorModel(**(detector or {})).s_factor
    drawing = figures.brightness_intensity_figure(values["intensity"][cells], values["apparent_brightness"][cells],
                                                  reference=reference)
    io.save_figure(drawing, scatter)
    fitted = detrend.CorrectionModel.from_json(io.read_json(model))
    drawing = figures.bleach_correction_figure(
        fitted.trace, io.read_json(corrected_trace)["corrected_trace"], fitted.trend, fitted.figure_labels(),
        calibration.frame_interval,
    )
    io.save_figure(drawing, bleach)


def cell_tables(maps, labels, seg, pixels, cells, samples, model, detector=None, gamma=1.0, monomer_brightness=None,
                min_frames=quality.MIN_FRAMES, low_signal_sigmas=quality.LOW_SIGNAL_SIGMAS):
    """The per-pixel table of the cell pixels and the per-cell table (brightflow.stats.cell_table).

    The per-cell CSV keeps the replaced app's columns first (pixel means of each map) and adds the
    ratio-of-means estimators, medians and SDs after them, and last ``Warnings``
    (brightflow.quality.cell_warnings: saturated, negative values, non-finite samples, low signal,
    few frames; empty when all is well). Every segmented cell gets a row, also one that erosion
    removed (``Pixels`` 0, empty values). A numeric ``monomer_brightness`` adds the oligomeric state.

    Parameters
    ----------
    samples, model : str
        ``sample_quality.npy`` and the bleach-correction model (its ``frames``).
    min_frames, low_signal_sigmas
        ``quality.min_frames``, ``quality.low_signal_sigmas``.
    """
    from .. import stats

    values = _read_maps(maps)
    analysed = io.read_image(labels)
    segmented = io.read_seg_masks(seg)
    cell_ids = np.unique(segmented[segmented > 0])
    detector_model = nb.DetectorModel(**(detector or {}))
    stats.cell_pixel_table(values, analysed).to_csv(pixels, index=False)
    table = stats.cell_table(values, analysed, cell_ids, detector_model, gamma)
    if monomer_brightness is not None:
        table = stats.add_oligomeric_state(table, monomer_brightness)
    frames = io.read_json(model)["frames"]
    warnings = quality.cell_warnings(analysed, segmented, cell_ids, io.read_npy(samples), values["intensity"], frames,
                                     detector_model, min_frames, low_signal_sigmas)
    table["Warnings"] = [warnings[int(cell)] for cell in table["Cell ID"]]
    for cell, text in warnings.items():
        if text:
            log.warning("cell %d: %s", cell, text)
    if not len(table):
        log.warning("%s: no cell: the table is empty (the folder table keeps a 'no cells' row)", seg)
    table.to_csv(cells, index=False)


def explorer_page(maps, labels, image, cells, output, unit, detector=None):
    """``brightness_explorer.html``: the interactive brightness-intensity page (brightflow.explorer).

    Parameters
    ----------
    maps : sequence of str
        The maps' .npy files, in the order of brightflow.nb.MAP_NAMES.
    labels, image : str
        The analysis mask and the projection (whose calibration gives the image's axes).
    cells : str
        ``average_values_in_roi.csv``: each cell's ratio-of-means brightness and number for the page's
        list of cells (cells without a value are left out of the list).
    unit : str
        The experiment (or ``experiment/ch<c>``): the page's title and the download's file name.
    """
    import pandas as pd

    from .. import explorer, stats

    columns = (stats.BRIGHTNESS, "Number (ratio of means)")  # what the page's list of cells shows
    table = pd.read_csv(cells).dropna(subset=list(columns))
    cell_values = {int(row["Cell ID"]): tuple(float(row[column]) for column in columns) for _, row in table.iterrows()}
    page = explorer.explorer_html(
        _read_maps(maps),
        io.read_image(labels),
        calibration=io.read_calibration(image),
        detector=nb.DetectorModel(**(detector or {})),
        title=unit,
        file_name=f"brightness_selection_{unit.replace('/', '_')}.csv",
        cell_values=cell_values,
    )
    io.write_text(output, page)


def _version(package):
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def settings_record(stack, model, seg, seg_record, threshold_record, output, config, sample, channel=None,
                    axes=None, input_sha256=None):
    """``settings.json``: every parameter used, the software versions and the input's identity.

    Parameters
    ----------
    stack : str
        The recording (its size, checksum, shape, type and calibration are recorded).
    model, seg_record, threshold_record : str
        The bleach-correction model, ``segmentation.json`` and ``nb_threshold.json``.
    seg : str
        The ``_seg.npy`` as it is now: its checksum against the record says whether the masks were
        edited after segmentation (the cellpose GUI rewrites the file without brightflow's keys).
    config : dict
        The configuration to record.
    sample : dict
        The experiment's row of the sample table (experiment, path, mask).
    input_sha256 : str, optional
        The stack's SHA-256 as the workflow computed it (once per content, brightflow.io.content_digest);
        computed here when not given.
    """
    from .. import segment

    frames = io.open_channel(stack, channel, axes)
    fitted = io.read_json(model)
    record = io.read_json(seg_record)
    masks = io.read_seg_masks(seg)
    edited = segment.masks_checksum(masks) != record.get("masks_sha256")
    settings = {
        "experiment": sample["experiment"],
        # the channel analysed (from 1) of a multi-channel stack; null for a single-channel stack
        "channel": channel,
        "input": {
            "path": os.path.abspath(stack),
            "size_bytes": os.path.getsize(stack),
            "sha256": input_sha256 or io.sha256(stack),
            "shape_tyx": list(frames.shape),
            "dtype": str(frames.dtype),
            "mask": sample.get("mask"),
            # pixel size and frame interval from the file's ImageJ or OME metadata (written into every
            # output TIFF); "pixel" / "frame" when the file has none
            "calibration": frames.calibration.record(),
        },
        "parameters": config,
        "segmentation_used": {key: value for key, value in record.items() if key not in ("masks_sha256", "cells")}
        | {
            "cells_segmented": record.get("cells"),
            "cells": int(masks.max()),
            "edited_after_segmentation": edited,
        },
        "bleach_correction_used": {key: fitted.get(key) for key in (
            "method", "method_requested", "parameter", "parameter_source", "replaced", "dof_correction",
            "degrees_of_freedom")},
        "nb_threshold_used": io.read_json(threshold_record),
        "versions": {"brightflow": __version__, "python": platform.python_version()}
        | {package: _version(package) for package in PACKAGES}
        # the cellpose that segmented (cellpose 4 runs from its own overlay, not this environment)
        | ({"cellpose": record["cellpose_version"]} if record.get("cellpose_version") else {}),
        "platform": platform.platform(),
        "written": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    io.write_json(output, settings)
