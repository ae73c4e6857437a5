"""The oligomeric state: per-cell estimators and gamma in the per-cell CSV, the monomer reference (a
number, an experiment, or the sample sheet's reference column) and the folder CSV and figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile
from helpers import CELL_COLUMNS, jobs_run, write_config, write_stack
from matplotlib.image import imread

from brightflow import figures, nb, simulate, stats


def test_oligomeric_state_of_the_demo_is_1_2_4():
    tables = {}
    truth = {}
    for seed, (name, cells) in enumerate(simulate.DEMO_EXPERIMENTS.items()):
        stack, labels = simulate.demo_experiment(cells, seed=100 + seed)
        maps = nb.number_and_brightness(*nb.pixel_mean_variance(stack))
        tables[name] = stats.cell_table(maps, labels)
        truth[name] = {index + 1: epsilon for index, (epsilon, _) in enumerate(cells)}
    monomer = stats.monomer_brightness_from_reference(tables["demo_monomer"])
    assert monomer["cells"] == 4 and monomer["median"] == pytest.approx(1.0, rel=0.05)
    assert 0 <= monomer["mad"] < 0.1
    folder = stats.add_oligomeric_state(stats.folder_table(tables), monomer)
    assert len(folder) == 12
    for row in folder.to_dict("records"):
        expected = truth[row["Experiment"]][row["Cell ID"]]
        assert row["Oligomeric state"] == pytest.approx(expected, rel=0.1), row
    # a numeric monomer brightness
    numeric = stats.add_oligomeric_state(tables["demo_tetramer"], 1.0)
    assert numeric["Oligomeric state"].to_numpy() == pytest.approx(np.full(4, 4.0), rel=0.1)
    assert "Monomer brightness spread (MAD)" not in numeric.columns


def test_monomer_reference_statistics_and_errors():
    table = pd.DataFrame({"Brightness (ratio of means)": [1.0, 1.2, 0.9, np.nan, 5.0]})
    monomer = stats.monomer_brightness_from_reference(table)
    assert monomer == {"median": pytest.approx(1.1), "mad": pytest.approx(1.4826 * 0.15), "cells": 4}
    with pytest.raises(ValueError, match="no cell"):
        stats.monomer_brightness_from_reference(pd.DataFrame({"Brightness (ratio of means)": [np.nan]}))
    with pytest.raises(ValueError, match="<= 0"):
        stats.monomer_brightness_from_reference(pd.DataFrame({"Brightness (ratio of means)": [-0.1, 0.0]}))
    with pytest.raises(ValueError, match="positive"):
        stats.oligomeric_state([1.0], 0.0)


def test_folder_summary_figure_draws_one_point_per_cell():
    experiments = ["a", "a", "b", "b", "b", "c"]
    values = [1.0, 1.1, 2.0, np.nan, 2.2, 4.0]
    fig = figures.folder_brightness_figure(experiments, values, "state", "title", (1, 2, 4))
    ax = fig.axes[0]
    points = sum(len(collection.get_offsets()) for collection in ax.collections)
    assert points == 5
    labels = [tick.get_text() for tick in ax.get_xticklabels()]
    assert labels[1] == "b\n2 cell(s), 1 undefined"


NO_CORRECTION = {"method": "none"}


def _sheet(stacks, marks):
    lines = ["experiment\tpath\tmask\treference"]
    for name, mark in marks.items():
        lines.append(f"{name}\t{name}.tif\t{name}_labels.tif\t{mark}")
    (stacks / "samples.tsv").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def sheet_reference(run_workflow, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("reference_column")
    stacks = workdir / "stacks"
    stacks.mkdir()
    for seed, (name, cells) in enumerate({"mono": [(1.0, 8.0), (1.0, 6.0)], "tetra": [(4.0, 3.0)]}.items()):
        stack, truth = simulate.demo_experiment(cells, seed=60 + seed, shape=(64, 64), frames=60)
        write_stack(stacks / f"{name}.tif", stack)
        tifffile.imwrite(stacks / f"{name}_labels.tif", truth)
    _sheet(stacks, {"mono": "yes", "tetra": ""})
    config = write_config(
        workdir / "config.yaml",
        input_dir=str(stacks),
        samples=str(stacks / "samples.tsv"),
        bleach_correction=NO_CORRECTION,
        segmentation={"method": "existing"},
    )
    run_workflow(workdir, "--configfile", config)
    return workdir, stacks, config


@pytest.mark.workflow
def test_the_reference_column_names_the_monomer_reference(sheet_reference):
    workdir, _, _ = sheet_reference
    folder = pd.read_csv(workdir / "results" / "Folder_average_values_in_roi.csv")
    mono = pd.read_csv(workdir / "results" / "mono" / "average_values_in_roi.csv")
    monomer = float(np.median(mono["Brightness (ratio of means)"]))
    assert folder["Monomer brightness"].unique().tolist() == pytest.approx([monomer])
    assert folder["Monomer reference cells"].unique().tolist() == [2]
    tetra = folder[folder.Experiment == "tetra"]["Oligomeric state"].to_numpy()
    assert tetra == pytest.approx([4.0], rel=0.15)


@pytest.mark.workflow
def test_moving_the_reference_mark_reruns_only_the_aggregate(run_workflow, sheet_reference):
    workdir, stacks, config = sheet_reference
    _sheet(stacks, {"mono": "false", "tetra": "X"})
    try:
        ran = jobs_run(run_workflow(workdir, "--configfile", config))
        assert set(ran) - {"all"} == {"aggregate"}, ran
        folder = pd.read_csv(workdir / "results" / "Folder_average_values_in_roi.csv")
        assert folder["Monomer reference cells"].unique().tolist() == [1]
        assert folder[folder.Experiment == "tetra"]["Oligomeric state"].to_numpy() == pytest.approx([1.0])
    finally:
        _sheet(stacks, {"mono": "yes", "tetra": ""})


@pytest.mark.workflow
@pytest.mark.parametrize(
    "marks, monomer, message",
    [
        ({"mono": "true", "tetra": "1"}, None, "the 'reference' column marks 2 experiments (mono, tetra)"),
        ({"mono": "true", "tetra": ""}, "tetra", "nb.monomer_brightness is 'tetra' but the sample sheet"),
        ({"mono": "true", "tetra": ""}, 0.9, "nb.monomer_brightness is 0.9 but the sample sheet"),
        (
            {"mono": "maybe", "tetra": ""},
            None,
            "samples.tsv, row 2, column 'reference': 'maybe' is neither true nor false",
        ),
    ],
)
def test_conflicting_reference_settings_are_start_up_errors(
    run_workflow, sheet_reference, tmp_path, marks, monomer, message
):
    workdir, stacks, _ = sheet_reference
    sheet_folder = tmp_path / "sheet"
    sheet_folder.mkdir()
    _sheet(sheet_folder, marks)
    # the sheet's relative paths point into sheet_folder: link the stacks and masks there
    for path in stacks.glob("*.tif"):
        (sheet_folder / path.name).symlink_to(path)
    config = write_config(
        tmp_path / "config.yaml",
        input_dir=str(stacks),
        samples=str(sheet_folder / "samples.tsv"),
        bleach_correction=NO_CORRECTION,
        segmentation={"method": "existing"},
        nb={"monomer_brightness": monomer},
    )
    result = run_workflow(workdir, "--dry-run", "--configfile", config, check=False)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr


@pytest.fixture(scope="module")
def reference_run(run_workflow, tmp_path_factory):
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


@pytest.mark.workflow
def test_per_cell_csv_keeps_the_app_columns_and_adds_the_estimators(reference_run):
    workdir, _, _ = reference_run
    table = pd.read_csv(workdir / "results" / "cells" / "average_values_in_roi.csv")
    assert list(table.columns) == CELL_COLUMNS + list(stats.ESTIMATOR_COLUMNS) + ["Warnings"]
    assert table["Number (ratio of means) / gamma"].to_numpy() == pytest.approx(
        2.0 * table["Number (ratio of means)"].to_numpy()
    )
    # true (epsilon, n) of the two cells are (2, 4) and (4, 2)
    assert sorted(table["Brightness (ratio of means)"]) == pytest.approx([2.0, 4.0], rel=0.1)
    assert sorted(table["Number (ratio of means)"]) == pytest.approx([2.0, 4.0], rel=0.1)
    # a reference experiment is resolved by the aggregate alone: no oligomeric state here
    assert "Oligomeric state" not in table.columns


@pytest.mark.workflow
def test_folder_csv_has_the_oligomeric_state_from_the_reference(reference_run):
    workdir, _, _ = reference_run
    folder = pd.read_csv(workdir / "results" / "Folder_average_values_in_roi.csv")
    assert list(folder.columns[:9]) == ["Experiment"] + CELL_COLUMNS
    assert list(folder.columns[-5:]) == [
        "Monomer brightness",
        "Monomer brightness spread (MAD)",
        "Monomer reference cells",
        "Oligomeric state",
        "Warnings",
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


@pytest.mark.workflow
def test_folder_summary_figure_is_written(reference_run):
    workdir, _, _ = reference_run
    image = imread(workdir / "results" / "Folder_brightness_summary.png")
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 300
    assert image[..., :3].std() > 0.05  # not a blank canvas


@pytest.mark.workflow
def test_changing_the_reference_reruns_only_the_aggregate(run_workflow, reference_run):
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


@pytest.mark.workflow
def test_a_numeric_monomer_brightness_reaches_the_per_cell_csv(run_workflow, reference_run):
    workdir, config, _ = reference_run
    numeric = _config(workdir, "numeric.yaml", 1.0)
    result = run_workflow(workdir, "--configfile", numeric)
    ran = jobs_run(result)
    # the numeric value is recorded in settings.json and used by the per-cell tables (which the
    # explorer's list of cells shows)
    assert set(ran) - {"all"} == {"tables", "settings", "aggregate", "brightness_explorer"}, ran
    table = pd.read_csv(workdir / "results" / "cells" / "average_values_in_roi.csv")
    assert table["Oligomeric state"].to_numpy() == pytest.approx(table["Brightness (ratio of means)"].to_numpy())
    folder = pd.read_csv(workdir / "results" / "Folder_average_values_in_roi.csv")
    assert "Monomer brightness spread (MAD)" not in folder.columns
    assert folder["Monomer brightness"].unique().tolist() == [1.0]


@pytest.mark.workflow
def test_an_unknown_reference_is_a_start_up_error(run_workflow, reference_run):
    workdir, config, _ = reference_run
    bad = _config(workdir, "bad.yaml", "egfp_monomer")
    result = run_workflow(workdir, "--dry-run", "--configfile", bad, check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "nb.monomer_brightness is 'egfp_monomer'" in output and "monomer_ref" in output
