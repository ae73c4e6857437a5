"""Rule aggregate: the folder table and figure of every experiment (brightflow.steps.aggregate)."""

from brightflow.io import run
from brightflow.steps import aggregate

run(
    aggregate.aggregate,
    snakemake.log,
    cells=snakemake.input.cells,
    experiments=snakemake.params.experiments,
    table=snakemake.output.table,
    figure=snakemake.output.figure,
    channels=snakemake.params.channels,
    monomer_brightness=snakemake.params.monomer_brightness,
    detector=snakemake.params.detector,
)
