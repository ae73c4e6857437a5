"""Rule nb_maps: the six N&B maps of the bleach-corrected stack (brightflow.steps.maps)."""

from brightflow.io import run, source
from brightflow.steps import maps

run(
    maps.nb_maps,
    snakemake.log,
    snakemake.threads,
    stack=source(snakemake.params.source),
    model=snakemake.input.model,
    swaps=snakemake.input.swaps,
    labels=snakemake.input.labels,
    samples=snakemake.input.samples,
    npy=snakemake.output.npy,
    tif=snakemake.output.tif,
    threshold_record=snakemake.output.threshold,
    corrected_trace=snakemake.output.corrected_trace,
    variance_ddof=snakemake.params.variance_ddof,
    detector=snakemake.params.detector,
    threshold_setting=snakemake.params.threshold,
    filter_method=snakemake.params.filter,
    convention=snakemake.params.convention,
    channel=snakemake.params.channel,
    axes=snakemake.params.axes,
)
