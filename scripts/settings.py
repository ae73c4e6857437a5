"""Rule settings: every parameter used, the software versions and the input's identity."""

import os
import platform
import sys
from datetime import datetime, timezone
from importlib import metadata

import brightflow
from brightflow import segment

import stackio

PACKAGES = ("numpy", "scipy", "scikit-image", "tifffile", "pandas", "matplotlib", "snakemake", "cellpose", "torch")


def _version(package):
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def main(snakemake):
    stack = stackio.open_input_stack(snakemake)
    model = stackio.read_json(snakemake.input.model)
    record = stackio.read_json(snakemake.input.seg_record)
    masks = stackio.read_seg_masks(snakemake.input.seg)
    # the cellpose GUI rewrites the _seg.npy without brightflow's keys: the record says how the
    # masks were made, the checksum whether they were edited since
    edited = segment.masks_checksum(masks) != record.get("masks_sha256")
    settings = {
        "experiment": snakemake.params.sample["experiment"],
        # the channel analysed (from 1) of a multi-channel stack; null for a single-channel stack
        "channel": snakemake.params.channel,
        "input": {
            "path": os.path.abspath(snakemake.input.stack),
            "size_bytes": os.path.getsize(snakemake.input.stack),
            "sha256": stackio.sha256(snakemake.input.stack),
            "shape_tyx": list(stack.shape),
            "dtype": str(stack.dtype),
            "mask": snakemake.params.sample.get("mask"),
            # pixel size and frame interval from the file's ImageJ or OME metadata (written into every
            # output TIFF); "pixel" / "frame" when the file has none
            "calibration": stack.calibration.record(),
        },
        "parameters": snakemake.params.config,
        "segmentation_used": {
            key: value for key, value in record.items() if key not in ("masks_sha256", "cells")
        }
        | {
            "cells_segmented": record.get("cells"),
            "cells": int(masks.max()),
            "edited_after_segmentation": edited,
        },
        "bleach_correction_used": {
            key: model.get(key) for key in ("method", "parameter", "parameter_source")
        },
        "nb_threshold_used": stackio.read_json(snakemake.input.threshold),
        "versions": {"brightflow": brightflow.__version__, "python": platform.python_version()}
        | {package: _version(package) for package in PACKAGES},
        "platform": platform.platform(),
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv[:1]),
    }
    stackio.write_json(snakemake.output[0], settings)


stackio.run(main, snakemake)  # noqa: F821
