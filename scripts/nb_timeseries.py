"""Rule nb_timeseries: N&B in windows of frames of the bleach-corrected stack (brightflow.steps.maps)."""

from brightflow.io import run, source
from brightflow.steps import maps

run(
    maps.nb_timeseries,
    snakemake.log,
    snakemake.threads,
    stack=source(snakemake.params.source),
    model=snakemake.input.model,
    swaps=snakemake.input.swaps,
    labels=snakemake.input.labels,
    seg=snakemake.input.seg,
    intensity=snakemake.input.intensity,
    maps=snakemake.output.maps,
    cells_table=snakemake.output.cells,
    figure=snakemake.output.figure,
    frames_per_set=snakemake.params.frames_per_set,
    overlap=snakemake.params.overlap,
    variance_ddof=snakemake.params.variance_ddof,
    detector=snakemake.params.detector,
    gamma=snakemake.params.gamma,
    filter_method=snakemake.params.filter,
    convention=snakemake.params.convention,
    channel=snakemake.params.channel,
    axes=snakemake.params.axes,
)
