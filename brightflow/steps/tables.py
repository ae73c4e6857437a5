"""Rules tables and settings: the per-pixel and per-cell tables, and the record of every setting used."""

from __future__ import annotations

import logging
import os
import platform
from datetime import UTC, datetime
from importlib import metadata

import numpy as np

from .. import __version__, detrend, io, nb, quality
from ..nb import MAP_NAMES

# pandas (tables) and scikit-image (masks) are imported by the calls that use them

log = logging.getLogger("brightflow")

__all__ = ["cell_tables", "settings_record"]

#: The packages whose versions settings.json records.
PACKAGES = (
    "numpy",
    "scipy",
    "scikit-image",
    "tifffile",
    "pandas",
    "matplotlib",
    "snakemake",
    "cellpose",
    "torch",
    "pylibCZIrw",
    "zarr",
)


def cell_tables(
    maps, labels, seg, pixels, cells, samples, model, detector, gamma, monomer_brightness, min_frames, low_signal_sigmas
):
    """The per-pixel table of the cell pixels and the per-cell table (brightflow.stats.cell_table).

    The per-cell CSV keeps the replaced app's columns first (pixel means of each map) and adds the
    ratio-of-means estimators, medians and SDs after them, and last ``Warnings``
    (brightflow.quality.cell_warnings: saturated, negative values, non-finite samples, low signal,
    few frames; empty when all is well). Every segmented cell gets a row, also one that erosion
    removed (``Pixels`` 0, empty values). A numeric ``monomer_brightness`` adds the oligomeric state.

    Parameters
    ----------
    samples, model : str
        ``sample_quality.npy`` and the bleach-correction model (its frames, and the bleaching it left).
    min_frames, low_signal_sigmas
        ``quality.min_frames``, ``quality.low_signal_sigmas``.
    """
    from .. import stats

    values = io.read_maps(maps, MAP_NAMES)
    analysed = io.read_image(labels)
    segmented = io.read_seg_masks(seg)
    cell_ids = np.unique(segmented[segmented > 0])
    detector_model = nb.DetectorModel(**detector)
    stats.cell_pixel_table(values, analysed).to_csv(pixels, index=False)
    table = stats.cell_table(values, analysed, cell_ids, detector_model, gamma)
    if monomer_brightness is not None:
        table = stats.add_oligomeric_state(table, monomer_brightness)
    fitted = detrend.CorrectionModel.from_json(io.read_json(model))
    warnings = quality.cell_warnings(
        analysed,
        segmented,
        cell_ids,
        io.read_npy(samples),
        values["intensity"],
        fitted.frames,
        detector_model,
        min_frames,
        low_signal_sigmas,
        fitted.leftover_standard_errors(),
        values["variance"],
    )
    table["Warnings"] = [warnings[int(cell)] for cell in table["Cell ID"]]
    for cell, text in warnings.items():
        if text:
            log.warning("cell %d: %s", cell, text)
    if any(quality.NOT_PHOTON_COUNTS in text for text in warnings.values()):
        log.warning(
            "%s: far above photon counts: if the detector is analog, describe it with nb.detector (offset, "
            "s_factor, readout_variance; Dalal et al. 2008), or epsilon and n mean nothing",
            seg,
        )
    if not len(table):
        log.warning("%s: no cell: the table is empty (the folder table keeps a 'no cells' row)", seg)
    table.to_csv(cells, index=False)


def _version(package):
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def settings_record(
    stack, model, seg, seg_record, threshold_record, output, config, sample, channel=None, axes=None, input_sha256=None
):
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
            # the series (from 0) of a file with several (OME-TIFF images, CZI scenes); null for a file with one
            "series": io.sources.series_of(stack),
            # the channel's name in the file's metadata (OME, CZI, OME-Zarr); null when it names none
            "channel_name": frames.channel_name,
            "size_bytes": io.recording_bytes(stack),
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
        "bleach_correction_used": {
            key: fitted.get(key)
            for key in (
                "method",
                "method_requested",
                "parameter",
                "parameter_source",
                "replaced",
                "dof_correction",
                "degrees_of_freedom",
            )
        },
        "nb_threshold_used": io.read_json(threshold_record),
        "versions": {"brightflow": __version__, "python": platform.python_version()}
        | {package: _version(package) for package in PACKAGES}
        # the cellpose that segmented (cellpose 4 runs from its own overlay, not this environment)
        | ({"cellpose": record["cellpose_version"]} if record.get("cellpose_version") else {}),
        "platform": platform.platform(),
        "written": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    io.write_json(output, settings)
