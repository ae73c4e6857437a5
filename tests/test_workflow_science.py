"""Issue 7 in the workflow: per-cell estimators and gamma in the per-cell CSV, the oligomeric
state from a reference experiment in the folder CSV, and the folder summary figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import jobs_run, run_workflow, write_config, write_stack
from matplotlib.image import imread

from brightflow import simulate, stats

pytestmark = pytest.mark.workflow

CELL_COLUMNS = ["Cell ID", "Pixels", "Intensity", "Variance", "Apparent brightness", "Apparent number",
                "Brightness", "Number"]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("oligomers")
    stacks = workdir / "stacks"
    stacks.mkdir()
    experiments = {"monomer_ref": [(1.0, 6.0), (1.0, 8.0)], "cells": [(2.0, 4.0), (4.0, 2.0)]}
    for seed, (name, cells) in enumerate(experiments.items()):
        stack, _ = simulate.demo_experiment(cells, seed=40 + seed, shape=(64, 64), frames=80)
        write_stack(stacks / f"{name}.tif", stack)
    config = _config(workdir, "config.yaml", "monomer_ref")
    result = run_workflow(workdir, "--configfile", config)
    return workdir, config, result


def _config(workdir, name, monomer_brightness):
    return write_config(
        workdir / name, input_dir=str(workdir / "stacks"), nb={"gamma": 0.5, "monomer_brightness": monomer_brightness}
    )


def test_per_cell_csv_keeps_the_app_columns_and_adds_the_estimators(reference_run):
    workdir, _, _ = reference_run
    table = pd.read_csv(workdir / "results" / "cells" / "average_values_in_roi.csv")
    assert list(table.columns) == CELL_COLUMNS + list(stats.ESTIMATOR_COLUMNS)
    assert table["Number (ratio of means) / gamma"].to_numpy() == pytest.approx(
        2.0 * table["Number (ratio of means)"].to_numpy()
    )
    # true (epsilon, n) of the two cells are (2, 4) and (4, 2)
    assert sorted(table["Brightness (ratio of means)"]) == pytest.approx([2.0, 4.0], rel=0.1)
    assert sorted(table["Number (ratio of means)"]) == pytest.approx([2.0, 4.0], rel=0.1)
    # a reference experiment is resolved by the aggregate alone: no oligomeric state here
    assert "Oligomeric state" not in table.columns


def test_folder_csv_has_the_oligomeric_state_from_the_reference(reference_run):
    workdir, _, _ = reference_run
    folder = pd.read_csv(workdir / "results" / "Folder_average_values_in_roi.csv")
    assert list(folder.columns[:9]) == ["Experiment"] + CELL_COLUMNS
    assert list(folder.columns[-4:]) == [
        "Monomer brightness", "Monomer brightness spread (MAD)", "Monomer reference cells", "Oligomeric state",
    ]
    reference = pd.read_csv(workdir / "results" / "monomer_ref" / "average_values_in_roi.csv")
    monomer = float(np.median(reference["Brightness (ratio of means)"]))
    assert folder["Monomer brightness"].unique().tolist() == pytest.approx([monomer])
    assert folder["Monomer reference cells"].unique().tolist() == [2]
    cells = folder[folder.Experiment == "cells"]
    assert sorted(cells["Oligomeric state"]) == pytest.approx([2.0, 4.0], rel=0.12)
    assert folder[folder.Experiment == "monomer_ref"]["Oligomeric state"].to_numpy() == pytest.approx([1, 1], rel=0.1)
    assert cells["Oligomeric state"].to_numpy() == pytest.approx(
        cells["Brightness (ratio of means)"].to_numpy() / monomer
    )


def test_folder_summary_figure_is_written(reference_run):
    workdir, _, _ = reference_run
    image = imread(workdir / "results" / "Folder_brightness_summary.png")
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 300
    assert image[..., :3].std() > 0.05  # not a blank canvas


def test_changing_the_reference_reruns_only_the_aggregate(reference_run):
    workdir, config, _ = reference_run
    other = _config(workdir, "other.yaml", "cells")
    result = run_workflow(workdir, "--configfile", other)
    ran = jobs_run(result)
    assert set(ran) - {"all"} == {"aggregate"}, ran
    folder = pd.read_csv(workdir / "results" / "Folder_average_values_in_roi.csv")
    assert folder["Monomer reference cells"].unique().tolist() == [2]
    cells = pd.read_csv(workdir / "results" / "cells" / "average_values_in_roi.csv")
    assert folder["Monomer brightness"].iloc[0] == pytest.approx(float(np.median(cells["Brightness (ratio of means)"])))
    # back to the first reference, for the other tests of this module
    run_workflow(workdir, "--configfile", config)


def test_a_numeric_monomer_brightness_reaches_the_per_cell_csv(reference_run):
    workdir, config, _ = reference_run
    numeric = _config(workdir, "numeric.yaml", 1.0)
    result = run_workflow(workdir, "--configfile", numeric)
    ran = jobs_run(result)
    # the numeric value is recorded in settings.json and used by the per-cell tables
    assert set(ran) - {"all"} == {"tables", "settings", "aggregate"}, ran
    table = pd.read_csv(workdir / "results" / "cells" / "average_values_in_roi.csv")
    assert table["Oligomeric state"].to_numpy() == pytest.approx(table["Brightness (ratio of means)"].to_numpy())
    folder = pd.read_csv(workdir / "results" / "Folder_average_values_in_roi.csv")
    assert "Monomer brightness spread (MAD)" not in folder.columns
    assert folder["Monomer brightness"].unique().tolist() == [1.0]


def test_an_unknown_reference_is_a_start_up_error(reference_run):
    workdir, config, _ = reference_run
    bad = _config(workdir, "bad.yaml", "egfp_monomer")
    result = run_workflow(workdir, "--dry-run", "--configfile", bad, check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "nb.monomer_brightness is 'egfp_monomer'" in output and "monomer_ref" in output
