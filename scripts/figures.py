"""Rule figures: a preview PNG per map and the brightness-intensity plot (brightflow.steps.report)."""

from brightflow.io import run
from brightflow.steps import report

run(
    report.map_figures,
    snakemake.log,
    maps=snakemake.input.maps,
    labels=snakemake.input.labels,
    image=snakemake.input.image,
    previews=snakemake.output.previews,
    scatter=snakemake.output.scatter,
    detector=snakemake.params.detector,
)
