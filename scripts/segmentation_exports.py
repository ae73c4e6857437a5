"""Rule segmentation_exports: label TIFF, cellpose outlines and ImageJ ROI set of the (possibly
GUI-corrected) masks (brightflow.steps.segmentation)."""

from brightflow.io import run
from brightflow.steps import segmentation

run(
    segmentation.export_masks,
    snakemake.log,
    seg=snakemake.input.seg,
    image=snakemake.input.image,
    labels=snakemake.output.labels,
    outlines=snakemake.output.outlines,
    rois=snakemake.output.rois,
)
