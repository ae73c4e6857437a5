"""Rule bleach_correction: the bleach-correction model of the cell pixels (brightflow.steps.bleach)."""

from brightflow.io import run, source
from brightflow.steps import bleach

run(
    bleach.bleach_correction,
    snakemake.log,
    snakemake.threads,
    stack=source(snakemake.params.source),
    labels=snakemake.input.labels,
    model=snakemake.output.model,
    swaps=snakemake.output.swaps,
    samples=snakemake.output.samples,
    method=snakemake.params.method,
    parameter=snakemake.params.parameter,
    seed=snakemake.params.seed,
    dof_correction=snakemake.params.dof_correction,
    channel=snakemake.params.channel,
    axes=snakemake.params.axes,
    saturation_level=snakemake.params.saturation_level,
)
