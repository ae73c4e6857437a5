"""Rule analysis_mask: the label mask analysed (eroded if asked) and the mask figures."""

import numpy as np

from brightflow import figures, segment

import stackio


def main(snakemake):
    labels = stackio.read_seg_masks(snakemake.input.seg)
    projection = stackio.read_image(snakemake.input.image)
    if labels.shape != projection.shape:
        raise stackio.InputError(
            f"{snakemake.input.seg}: masks of shape {labels.shape} do not fit the projection "
            f"{projection.shape}; re-segment (delete the file) or fix it in the cellpose GUI."
        )
    pixels = snakemake.params.erode_pixels
    eroded = segment.erode_labels(labels, pixels)
    lost = sorted(set(np.unique(labels[labels > 0])) - set(np.unique(eroded[eroded > 0])))
    for cell in lost:
        stackio.log.warning("cell %d eroded away by erode_pixels=%d: it is reported with 0 pixels", cell, pixels)
    calibration = stackio.read_calibration(snakemake.input.image)
    stackio.write_labels(snakemake.output.labels, eroded, calibration)
    stackio.save_figure(figures.cellmask_figure(projection, labels, calibration=calibration),
                        snakemake.output.cellmask)
    stackio.save_figure(figures.eroded_mask_figure(projection, labels, eroded, pixels, calibration),
                        snakemake.output.eroded)


stackio.run(main, snakemake)  # noqa: F821
