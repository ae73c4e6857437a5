"""Rule segmentation: the cells of the projection, as a cellpose _seg.npy (brightflow.steps.segmentation)."""

from brightflow.io import run
from brightflow.steps import segmentation

run(
    segmentation.segment_cells,
    snakemake.log,
    snakemake.threads,
    image=snakemake.input.image,
    mask=snakemake.input.mask or None,
    seg=snakemake.output.seg,
    record=snakemake.output.record,
    method=snakemake.params.method,
    threshold=snakemake.params.threshold,
    cellpose=snakemake.params.cellpose,
    threads=snakemake.threads,
)
