"""Rules segmentation, segmentation_exports and analysis_mask: the cell masks of an experiment.

segmentation labels the cells of the projection and writes them in cellpose's ``_seg.npy``
layout (the cellpose GUI opens and corrects it) with a record of how they were made;
segmentation_exports turns the (possibly corrected) masks into a label TIFF, cellpose's outline
text and an ImageJ ROI set; analysis_mask erodes them (``segmentation.erode_pixels``) into the
mask the values are taken from, and draws both.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from .. import io, segment

log = logging.getLogger("brightflow")

__all__ = ["analysis_mask", "export_masks", "segment_cells"]


def _threshold(image, threshold, **_):
    labels = segment.threshold_segmentation(
        image,
        smoothing_sigma=threshold["smoothing_sigma"],
        threshold_method=threshold["method"],
        min_cell_area=threshold["min_cell_area"],
        min_peak_distance=threshold["min_peak_distance"],
    )
    return labels, {}


def _existing(image, mask, **_):
    labels = io.read_label_file(mask)
    if labels.shape != image.shape:
        raise io.InputError(
            f"{mask}: mask shape {labels.shape} differs from the stack's frame shape {image.shape}: the mask "
            "must be drawn on this experiment's frames."
        )
    return labels, {"mask_file": os.path.abspath(mask)}


def _cellpose(image, image_path, seg_path, cellpose, threads, **_):
    """Run cellpose in its generation's environment (brightflow.cellpose_worker), which writes the
    _seg.npy with cellpose's own writer; the _seg.npy's contents, the device and the record."""
    from .. import cellpose_models, cellpose_worker

    spec = cellpose_models.ModelSpec.from_record(cellpose)
    try:
        answer = cellpose_worker.run(
            image,
            image_path,
            spec,
            diameter=cellpose["diameter"],
            flow_threshold=cellpose["flow_threshold"],
            cellprob_threshold=cellpose["cellprob_threshold"],
            gpu=cellpose["gpu"],
            precision=cellpose["precision"],
            threads=threads,
            overlay=cellpose["overlay"],
        )
    except (cellpose_models.ModelNotFoundError, cellpose_models.WrongModelError, cellpose_worker.WorkerError) as error:
        raise io.InputError(str(error)) from error
    ran = answer["cellpose"]
    if ran["version"] != cellpose["cellpose_version"]:
        raise io.InputError(
            f"the workflow was started with cellpose {cellpose['cellpose_version']} for this model, but the job ran "
            f"cellpose {ran['version']} ({ran['file']}): the environment changed during the run. Run snakemake again."
        )
    for package, path in answer["modules"].items():
        log.info("cellpose %d job: %s from %s", spec.generation, package, path)
    if os.path.abspath(answer["seg"]) != os.path.abspath(seg_path):
        raise RuntimeError(f"cellpose wrote {answer['seg']}, expected {seg_path}")
    record = {
        "model": cellpose["model"],
        "model_file": spec.weights,
        "generation": spec.generation,
        "cellpose_version": ran["version"],
        "precision": answer["precision"],
        "diameter": answer["diameter"],
        "diameter_source": answer["diameter_source"],
        "flow_threshold": cellpose["flow_threshold"],
        "cellprob_threshold": cellpose["cellprob_threshold"],
        "gpu_setting": cellpose["gpu"],
        "precision_setting": cellpose["precision"],
        "tiles": answer["tiles"],
        "batch_size": answer["batch_size"],
    }
    log.info("cellpose %d job: %s seconds (load, eval, total)", spec.generation, answer["seconds"])
    seg = io.read_seg_npy(seg_path)
    # cellpose 3's writer stores the diameter it ran at as 'diameter' only, cellpose 4's writes NaN;
    # cellpose 3's GUI shows 'est_diam' in its diameter box (and runs models at it): the diameter
    # the masks were made at, for both (30 for cellpose 4 without rescaling)
    seg["est_diam"] = seg["diameter"] = float(answer["diameter"])
    return seg, answer["device"], record


def _image_name(image):
    """The image's name as the ``_seg.npy`` records it: ``<experiment folder>/<file>``, the same in every
    output folder (so results are byte-identical wherever they are written). The cellpose GUI opens it
    relative to its working directory when it is found there (started in the output folder), else
    the file of that name beside the ``_seg.npy``: the right projection either way."""
    image = Path(image)
    return f"{image.parent.name}/{image.name}"


#: segmentation.method -> how it labels the cells (a label image and its record).
_LABELLERS = {"threshold": _threshold, "existing": _existing}


def segment_cells(image, seg, record, method, mask=None, threshold=None, cellpose=None, threads=1):
    """Label the cells of the projection; write the ``_seg.npy`` and ``segmentation.json``.

    Parameters
    ----------
    image : str
        The projection (``segmentation_image.tif``).
    seg : str
        The ``_seg.npy`` to write, beside ``image`` (the cellpose GUI finds it from the image).
    record : str
        ``segmentation.json``: method, device, cell count, a checksum of the masks and the
        method's settings. The settings step compares the checksum with the ``_seg.npy`` to tell
        whether the masks were edited after segmentation (the GUI drops brightflow's own keys).
    method : {'threshold', 'cellpose', 'existing'}
    mask : str, optional
        The experiment's own masks (``existing``): a label TIFF or a cellpose ``_seg.npy``.
    threshold, cellpose : dict, optional
        The method's settings (``segmentation.threshold``, the cellpose keys).
    threads : int
        The job's threads (cellpose's torch threads).
    """
    projection = io.read_image(image)
    device = "cpu"
    if method == "cellpose":
        data, device, details = _cellpose(projection, image, seg, cellpose, threads)
    elif method in _LABELLERS:
        labels, details = _LABELLERS[method](projection, mask=mask, threshold=threshold)
        data = segment.seg_npy_dict(projection, labels, _image_name(image), method)
    else:
        raise io.InputError(f"segmentation.method {method!r} is unknown; use 'threshold', 'cellpose' or 'existing'.")
    data["filename"] = _image_name(image)
    # brightflow's own keys (the GUI ignores them, and drops them when it saves)
    data["brightflow_method"] = method
    data["brightflow_device"] = device
    io.write_seg_npy(seg, data)
    masks = segment.masks_from_seg_dict(data)
    count = int(masks.max())
    io.write_json(
        record,
        {"method": method, "device": device, "cells": count, "masks_sha256": segment.masks_checksum(masks)} | details,
    )
    if count == 0:
        log.warning("%s: no cell found; the tables will be empty", image)
    log.info("%s: %d cell(s) by %s on %s", seg, count, method, device)


def export_masks(seg, image, labels, outlines, rois):
    """The (possibly GUI-corrected) masks as a label TIFF, cellpose's outline text and an ImageJ ROI set.

    Parameters
    ----------
    seg : str
        The ``_seg.npy``.
    image : str
        The projection, whose calibration the label TIFF carries.
    labels, outlines, rois : str
        The label TIFF, cellpose's ImageJ outline text (pixel centres, cellpose's format) and the
        ROI set traced along pixel edges (each ROI holds exactly the cell's pixels in ImageJ).
    """
    masks = io.read_seg_masks(seg)
    io.write_labels(labels, masks, io.read_calibration(image))
    polygons = segment.outline_polygons(masks)
    with open(outlines, "w") as handle:
        handle.write(segment.outlines_text(polygons.values()))
    io.write_imagej_rois(rois, segment.pixel_edge_polygons(masks))
    log.info("%d cell(s) exported from %s", len(polygons), seg)


def analysis_mask(seg, image, labels, cellmask, eroded, erode_pixels=0):
    """The mask the values are taken from (eroded by ``erode_pixels``) and the two mask figures.

    A cell that erosion removes keeps its row in the tables (0 pixels) and a warning here.
    """
    from .. import figures  # matplotlib: only this step of the three draws

    masks = io.read_seg_masks(seg)
    projection = io.read_image(image)
    if masks.shape != projection.shape:
        raise io.InputError(
            f"{seg}: masks of shape {masks.shape} do not fit the projection {projection.shape}; re-segment "
            "(delete the file) or fix it in the cellpose GUI."
        )
    smaller = segment.erode_labels(masks, erode_pixels)
    lost = sorted(set(np.unique(masks[masks > 0])) - set(np.unique(smaller[smaller > 0])))
    for cell in lost:
        log.warning("cell %d eroded away by erode_pixels=%d: it is reported with 0 pixels", cell, erode_pixels)
    calibration = io.read_calibration(image)
    io.write_labels(labels, smaller, calibration)
    io.save_figure(figures.cellmask_figure(projection, masks, calibration=calibration), cellmask)
    io.save_figure(figures.eroded_mask_figure(projection, masks, smaller, erode_pixels, calibration), eroded)
