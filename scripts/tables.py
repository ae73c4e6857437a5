"""Rule tables: the per-pixel and per-cell CSVs (brightflow.steps.tables)."""

from brightflow.io import run
from brightflow.steps import tables

run(
    tables.cell_tables,
    snakemake.log,
    maps=snakemake.input.maps,
    labels=snakemake.input.labels,
    seg=snakemake.input.seg,
    samples=snakemake.input.samples,
    model=snakemake.input.model,
    pixels=snakemake.output.pixels,
    cells=snakemake.output.cells,
    detector=snakemake.params.detector,
    gamma=snakemake.params.gamma,
    monomer_brightness=snakemake.params.monomer_brightness,
    min_frames=snakemake.params.min_frames,
    low_signal_sigmas=snakemake.params.low_signal_sigmas,
)
