"""Rule projection: the mean over frames of the stack (brightflow.steps.projection)."""

from brightflow.io import run
from brightflow.steps import projection

run(
    projection.mean_projection,
    snakemake.log,
    stack=snakemake.input.stack,
    output=snakemake.output.image,
    channel=snakemake.params.channel,
    axes=snakemake.params.axes,
)
