"""Rules simulate_demo and demo_ground_truth: the demo recordings, and their known ground truth keyed
by the tables' Cell ID."""

from __future__ import annotations

import logging

import pandas as pd

from .. import io, segment
from ..simulate import DEMO_EXPERIMENTS, demo_experiment

log = logging.getLogger("brightflow")


def simulate_demo(stacks, truth_labels, truth):
    """Simulate :data:`brightflow.simulate.DEMO_EXPERIMENTS` (one stack each, seeded 1, 2, 3).

    Parameters
    ----------
    stacks, truth_labels : sequence of str
        Where each experiment's stack and its true cells go, in the order of DEMO_EXPERIMENTS.
    truth : str
        The simulated cells (CSV: Experiment, Truth cell, Brightness, Number), numbered as in the truth
        labels; rule demo_ground_truth keys them by the tables' Cell ID.
    """
    if len(stacks) != len(DEMO_EXPERIMENTS) or len(truth_labels) != len(DEMO_EXPERIMENTS):
        raise ValueError(f"the demo has {len(DEMO_EXPERIMENTS)} experiments: give a stack and labels path for each")
    rows = []
    for index, (name, stack_path, labels_path) in enumerate(zip(DEMO_EXPERIMENTS, stacks, truth_labels, strict=False)):
        stack, labels = demo_experiment(DEMO_EXPERIMENTS[name], seed=index + 1)
        io.write_stack(stack_path, stack)
        io.write_labels(labels_path, labels)
        for cell, (epsilon, n) in enumerate(DEMO_EXPERIMENTS[name], start=1):
            rows.append({"Experiment": name, "Truth cell": cell, "Brightness": epsilon, "Number": n})
        log.info("simulated %s: %s frames of %s x %s", name, *stack.shape)
    pd.DataFrame(rows).to_csv(truth, index=False)


def ground_truth(truth_cells, truth_labels, segmentations, output):
    """The demo's ground truth keyed by the tables' ``Cell ID``: ``ground_truth.csv``.

    Each segmented cell is matched to the true cell holding most of its pixels
    (brightflow.segment.truth_of_cells), so that the truth and the results join on
    ``Experiment`` and ``Cell ID``.

    Parameters
    ----------
    truth_cells : str
        simulate_demo's table of simulated cells.
    truth_labels, segmentations : sequence of str
        Each demo experiment's true cells and its ``segmentation_labels.tif``, in the order of
        DEMO_EXPERIMENTS.
    output : str
        ``ground_truth.csv``: Experiment, Cell ID, True brightness, True number, Truth cell, Overlap (the
        share of the segmented cell's pixels in its true cell).
    """
    simulated = pd.read_csv(truth_cells).set_index(["Experiment", "Truth cell"])
    rows = []
    for name, truth_path, labels_path in zip(DEMO_EXPERIMENTS, truth_labels, segmentations, strict=True):
        for cell, (true_cell, share) in segment.truth_of_cells(
            io.read_image(labels_path), io.read_image(truth_path)
        ).items():
            known = (name, true_cell) in simulated.index
            rows.append(
                {
                    "Experiment": name,
                    "Cell ID": cell,
                    "True brightness": simulated.loc[(name, true_cell), "Brightness"] if known else float("nan"),
                    "True number": simulated.loc[(name, true_cell), "Number"] if known else float("nan"),
                    "Truth cell": true_cell,
                    "Overlap": round(share, 4),
                }
            )
            if share < 0.9:
                log.warning("%s: cell %d overlaps its true cell %d by %.0f%% only", name, cell, true_cell, 100 * share)
    pd.DataFrame(
        rows, columns=["Experiment", "Cell ID", "True brightness", "True number", "Truth cell", "Overlap"]
    ).to_csv(output, index=False)
