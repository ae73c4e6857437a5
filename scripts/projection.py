"""Rule projection: the mean over frames of the stack (brightflow.steps.projection)."""

from brightflow.io import run, source
from brightflow.steps import projection

run(
    projection.mean_projection,
    snakemake.log,
    stack=source(snakemake.params.source),
    output=snakemake.output.image,
    channel=snakemake.params.channel,
    axes=snakemake.params.axes,
)
