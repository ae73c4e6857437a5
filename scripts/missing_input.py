"""Rule missing_input: fail with the missing file's path and where it was named (brightflow.steps.inputs)."""

from brightflow.io import run
from brightflow.steps import inputs

run(
    inputs.report_missing,
    snakemake.log,
    path=snakemake.params.missing["path"],
    origin=snakemake.params.missing["origin"],
    kind=snakemake.wildcards.kind,
)
