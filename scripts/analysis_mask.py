"""Rule analysis_mask: the mask the values are taken from (eroded if asked) and the mask figures
(brightflow.steps.segmentation)."""

from brightflow.io import run
from brightflow.steps import segmentation

run(
    segmentation.analysis_mask,
    snakemake.log,
    seg=snakemake.input.seg,
    image=snakemake.input.image,
    labels=snakemake.output.labels,
    cellmask=snakemake.output.cellmask,
    eroded=snakemake.output.eroded,
    erode_pixels=snakemake.params.erode_pixels,
)
