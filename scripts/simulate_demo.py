"""Rule simulate_demo: the demo recordings with known ground truth (brightflow.steps.demo)."""

from brightflow.io import run
from brightflow.steps import demo

run(
    demo.simulate_demo,
    snakemake.log,
    stacks=snakemake.output.stacks,
    truth_labels=snakemake.output.truth_labels,
    truth=snakemake.output.truth,
)
