"""Rule simulate_demo: the demo recordings, with known ground truth."""

from __future__ import annotations

import logging

import pandas as pd

from .. import io
from ..simulate import DEMO_EXPERIMENTS, demo_experiment

log = logging.getLogger("brightflow")


def simulate_demo(stacks, truth_labels, truth):
    """Simulate :data:`brightflow.simulate.DEMO_EXPERIMENTS` (one stack each, seeded 1, 2, 3).

    Parameters
    ----------
    stacks, truth_labels : sequence of str
        Where each experiment's stack and its true cells go, in the order of DEMO_EXPERIMENTS.
    truth : str
        The ground-truth table (CSV: experiment, cell, brightness, number).
    """
    if len(stacks) != len(DEMO_EXPERIMENTS) or len(truth_labels) != len(DEMO_EXPERIMENTS):
        raise ValueError(f"the demo has {len(DEMO_EXPERIMENTS)} experiments: give a stack and labels path for each")
    rows = []
    for index, (name, stack_path, labels_path) in enumerate(zip(DEMO_EXPERIMENTS, stacks, truth_labels)):
        stack, labels = demo_experiment(DEMO_EXPERIMENTS[name], seed=index + 1)
        io.write_stack(stack_path, stack)
        io.write_labels(labels_path, labels)
        for cell, (epsilon, n) in enumerate(DEMO_EXPERIMENTS[name], start=1):
            rows.append({"Experiment": name, "Truth cell": cell, "Brightness": epsilon, "Number": n})
        log.info("simulated %s: %s frames of %s x %s", name, *stack.shape)
    pd.DataFrame(rows).to_csv(truth, index=False)
