"""Rule segmentation: label the cells of the projection; write a cellpose-format _seg.npy."""

import os

from brightflow import segment

import stackio


def main(snakemake):
    image = stackio.read_image(snakemake.input.image)
    method = snakemake.params.method
    if method == "threshold":
        options = snakemake.params.threshold
        labels = segment.threshold_segmentation(
            image,
            smoothing_sigma=options.get("smoothing_sigma", 1.0),
            threshold_method=options.get("method", "otsu"),
            min_cell_area=options.get("min_cell_area", 100),
            min_peak_distance=options.get("min_peak_distance", 10),
        )
    elif method == "existing":
        labels = stackio.read_label_file(snakemake.input.mask)
        if labels.shape != image.shape:
            raise stackio.InputError(
                f"{snakemake.input.mask}: mask shape {labels.shape} differs from the stack's frame "
                f"shape {image.shape}: the mask must be drawn on this experiment's frames."
            )
    else:
        raise stackio.InputError(
            f"segmentation.method {method!r} is not available yet; use 'threshold' or 'existing'."
        )
    # the GUI resolves the image path relative to the seg file's folder when it is not absolute
    image_name = os.path.abspath(snakemake.input.image)
    seg = segment.seg_npy_dict(image, labels, image_name, method)
    stackio.write_seg_npy(snakemake.output[0], seg)
    count = int(seg["masks"].max())
    if count == 0:
        stackio.log.warning("%s: no cell found; the tables will be empty", snakemake.input.image)
    stackio.log.info("%s: %d cell(s) by %s", snakemake.output[0], count, method)


stackio.run(main, snakemake)  # noqa: F821
