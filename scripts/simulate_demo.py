"""Rule simulate_demo: write the demo stacks, their ground-truth cells and a ground-truth table."""

import pandas as pd

import stackio
from brightflow.simulate import DEMO_EXPERIMENTS, demo_experiment


def main(snakemake):
    rows = []
    names = [name for name in DEMO_EXPERIMENTS]
    for index, (name, stack_path, labels_path) in enumerate(
        zip(names, snakemake.output.stacks, snakemake.output.truth_labels)
    ):
        if not stack_path.endswith(f"/{name}.tif"):
            raise RuntimeError(f"demo experiment order differs between the workflow and the package: {stack_path}")
        stack, labels = demo_experiment(DEMO_EXPERIMENTS[name], seed=index + 1)
        stackio.write_tiff(stack_path, stack, imagej=True, metadata={"axes": "TYX"})
        stackio.write_tiff(labels_path, labels)
        for cell, (epsilon, n) in enumerate(DEMO_EXPERIMENTS[name], start=1):
            rows.append({"Experiment": name, "Truth cell": cell, "Brightness": epsilon, "Number": n})
        stackio.log.info("simulated %s: %s frames of %s x %s", name, *stack.shape)
    pd.DataFrame(rows).to_csv(snakemake.output.truth, index=False)


stackio.run(main, snakemake)  # noqa: F821 (snakemake is injected by the script directive)
