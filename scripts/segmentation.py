"""Rule segmentation: label the cells of the projection; write a cellpose-format _seg.npy.

Also writes segmentation.json, the record of how the masks were made (method, model, device,
diameter, cell count and a checksum of the masks), which the settings rule reads: the cellpose
GUI drops brightflow's own keys when it saves a corrected _seg.npy, the record stays.
"""

import os

from brightflow import segment

import stackio


def _threshold(snakemake, image):
    options = snakemake.params.threshold
    labels = segment.threshold_segmentation(
        image,
        smoothing_sigma=options.get("smoothing_sigma", 1.0),
        threshold_method=options.get("method", "otsu"),
        min_cell_area=options.get("min_cell_area", 100),
        min_peak_distance=options.get("min_peak_distance", 10),
    )
    return labels, {}


def _existing(snakemake, image):
    labels = stackio.read_label_file(snakemake.input.mask)
    if labels.shape != image.shape:
        raise stackio.InputError(
            f"{snakemake.input.mask}: mask shape {labels.shape} differs from the stack's frame "
            f"shape {image.shape}: the mask must be drawn on this experiment's frames."
        )
    return labels, {"mask_file": os.path.abspath(snakemake.input.mask)}


def _cellpose(snakemake, image):
    """Run cellpose and write its _seg.npy with cellpose's own writer; return the record."""
    from brightflow import cellpose_adapter

    options = snakemake.params.cellpose
    try:
        result = cellpose_adapter.segment(
            image,
            options["model"],
            diameter=options["diameter"],
            flow_threshold=options["flow_threshold"],
            cellprob_threshold=options["cellprob_threshold"],
            gpu=options["gpu"],
            threads=snakemake.threads,
        )
    except (cellpose_adapter.ModelNotFoundError, cellpose_adapter.GpuUnavailableError) as error:
        raise stackio.InputError(str(error)) from error
    written = cellpose_adapter.write_seg_npy(image, result, snakemake.input.image)
    if os.path.abspath(written) != os.path.abspath(snakemake.output.seg):
        raise RuntimeError(f"cellpose wrote {written}, expected {snakemake.output.seg}")
    record = {
        "model": options["model"],
        "model_file": result.model.weights,
        "diameter": result.diameter,
        "diameter_source": result.diameter_source,
        "flow_threshold": options["flow_threshold"],
        "cellprob_threshold": options["cellprob_threshold"],
        "gpu_setting": options["gpu"],
    }
    return result, record


def main(snakemake):
    image = stackio.read_image(snakemake.input.image)
    method = snakemake.params.method
    # the GUI resolves the image path relative to the seg file's folder when it is not absolute
    image_name = os.path.abspath(snakemake.input.image)
    device = "cpu"
    if method == "cellpose":
        result, record = _cellpose(snakemake, image)
        device = result.device
        seg = stackio.read_seg_npy(snakemake.output.seg)
        # cellpose's writer stores the diameter it ran at as 'diameter' only; the GUI shows
        # 'est_diam' in its diameter box (and runs models at it): the same diameter
        seg["est_diam"] = seg["diameter"] = float(result.diameter)
    elif method in ("threshold", "existing"):
        labels, record = (_threshold if method == "threshold" else _existing)(snakemake, image)
        seg = segment.seg_npy_dict(image, labels, image_name, method)
    else:
        raise stackio.InputError(
            f"segmentation.method {method!r} is unknown; use 'threshold', 'cellpose' or 'existing'."
        )
    # brightflow's own keys (the GUI ignores them, and drops them when it saves)
    seg["brightflow_method"] = method
    seg["brightflow_device"] = device
    stackio.write_seg_npy(snakemake.output.seg, seg)
    masks = segment.masks_from_seg_dict(seg)
    count = int(masks.max())
    stackio.write_json(
        snakemake.output.record,
        {"method": method, "device": device, "cells": count, "masks_sha256": segment.masks_checksum(masks)}
        | record,
    )
    if count == 0:
        stackio.log.warning("%s: no cell found; the tables will be empty", snakemake.input.image)
    stackio.log.info("%s: %d cell(s) by %s on %s", snakemake.output.seg, count, method, device)


stackio.run(main, snakemake)  # noqa: F821
