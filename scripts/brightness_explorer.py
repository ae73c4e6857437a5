"""Rule brightness_explorer: the interactive brightness-intensity page (brightflow.steps.explorer)."""

from brightflow.io import run
from brightflow.steps import explorer

run(
    explorer.explorer_page,
    snakemake.log,
    maps=snakemake.input.maps,
    labels=snakemake.input.labels,
    image=snakemake.input.image,
    cells=snakemake.input.cells,
    output=snakemake.output.page,
    unit=snakemake.wildcards.unit,
    detector=snakemake.params.detector,
)
