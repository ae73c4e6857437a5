"""Rule settings: settings.json, the record of every setting used (brightflow.steps.tables)."""

from brightflow.io import run, source
from brightflow.steps import tables

run(
    tables.settings_record,
    snakemake.log,
    stack=source(snakemake.params.source),
    model=snakemake.input.model,
    seg=snakemake.input.seg,
    seg_record=snakemake.input.seg_record,
    threshold_record=snakemake.input.threshold,
    output=snakemake.output.settings,
    config=snakemake.params.config,
    sample=snakemake.params.sample,
    channel=snakemake.params.channel,
    axes=snakemake.params.axes,
    input_sha256=snakemake.params.source["sha256"],
)
