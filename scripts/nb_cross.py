"""Rule nb_cross: cross-correlated N&B of two channels (brightflow.steps.maps)."""

from brightflow.io import run, source
from brightflow.steps import maps

run(
    maps.nb_cross,
    snakemake.log,
    snakemake.threads,
    stack=source(snakemake.params.source),
    models=snakemake.input.models,
    swaps=snakemake.input.swaps,
    intensities=snakemake.input.intensities,
    labels=snakemake.input.labels,
    seg=snakemake.input.seg,
    npy=snakemake.output.npy,
    tif=snakemake.output.tif,
    png=snakemake.output.png,
    table=snakemake.output.table,
    channels=snakemake.params.channels,
    variance_ddof=snakemake.params.variance_ddof,
    detector=snakemake.params.detector,
    filter_method=snakemake.params.filter,
    convention=snakemake.params.convention,
    axes=snakemake.params.axes,
)
