"""Rule demo_ground_truth: the demo's ground truth keyed by the tables' Cell ID (brightflow.steps.demo)."""

from brightflow.io import run
from brightflow.steps import demo

run(
    demo.ground_truth,
    snakemake.log,
    truth_cells=snakemake.input.truth_cells,
    truth_labels=snakemake.input.truth_labels,
    segmentations=snakemake.input.segmentations,
    output=snakemake.output.truth,
)
