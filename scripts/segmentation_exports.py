"""Rule segmentation_exports: the (possibly GUI-corrected) mask as a label TIFF, cellpose's
ImageJ outline text (pixel centres, cellpose's format) and an ImageJ ROI set traced along pixel
edges (each ROI holds exactly the cell's pixels in ImageJ), so Fiji opens the cells."""

from brightflow import segment

import stackio


def main(snakemake):
    labels = stackio.read_seg_masks(snakemake.input.seg)
    # the projection carries the recording's pixel size
    stackio.write_labels(snakemake.output.labels, labels, stackio.read_calibration(snakemake.input.image))
    outlines = segment.outline_polygons(labels)
    with open(snakemake.output.outlines, "w") as handle:
        handle.write(segment.outlines_text(outlines.values()))
    stackio.write_imagej_rois(snakemake.output.rois, segment.pixel_edge_polygons(labels))
    stackio.log.info("%d cell(s) exported from %s", len(outlines), snakemake.input.seg)


stackio.run(main, snakemake)  # noqa: F821
