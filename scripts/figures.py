"""Rule figures: a preview PNG per map and the brightness-intensity plot (brightflow.steps.figures)."""

from brightflow.io import run
from brightflow.steps import figures

run(
    figures.map_figures,
    snakemake.log,
    maps=snakemake.input.maps,
    labels=snakemake.input.labels,
    image=snakemake.input.image,
    model=snakemake.input.model,
    corrected_trace=snakemake.input.corrected_trace,
    previews=snakemake.output.previews,
    scatter=snakemake.output.scatter,
    bleach=snakemake.output.bleach,
    detector=snakemake.params.detector,
)
