"""Issue 7 in the workflow, part 2: nb.threshold and nb.filter, the N&B time series, and the
sample sheet's reference column."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tifffile
from conftest import jobs_run, run_workflow, write_config, write_stack

from brightflow import filters, nb, simulate, threshold

pytestmark = pytest.mark.workflow

MAPS = ("intensity", "variance", "apparent_brightness", "apparent_number", "brightness", "number")
NO_CORRECTION = {"method": "none"}


def _base(stacks, **nb_settings):
    """Config of the threshold tests: the true cells as the mask, no bleach correction."""
    return dict(
        input_dir=str(stacks), samples=str(stacks / "samples.tsv"), bleach_correction=NO_CORRECTION,
        segmentation={"method": "existing"}, nb=nb_settings,
    )


def _maps(folder):
    return {name: np.load(folder / f"{name}.npy") for name in MAPS}


@pytest.fixture(scope="module")
def dim_and_bright(tmp_path_factory):
    """One stack with a dim cell (epsilon 1, n 4: 4 counts per frame) and a bright one (4, 4: 16),
    analysed once without threshold (the reference maps)."""
    workdir = tmp_path_factory.mktemp("threshold")
    stacks = workdir / "stacks"
    stacks.mkdir()
    stack, truth = simulate.demo_experiment([(1.0, 4.0), (4.0, 4.0)], seed=5, shape=(64, 64), frames=60)
    write_stack(stacks / "cells.tif", stack)
    tifffile.imwrite(stacks / "cells_labels.tif", truth)
    (stacks / "samples.tsv").write_text("experiment\tpath\tmask\ncells\tcells.tif\tcells_labels.tif\n")
    config = write_config(workdir / "plain.yaml", **_base(stacks))
    run_workflow(workdir, "--configfile", config)
    folder = workdir / "results" / "cells"
    record = json.loads((folder / "nb_threshold.json").read_text())
    assert record["setting"] == "none" and record["value"] is None
    assert record["pixels_kept"] == record["pixels"] == 64 * 64
    raw = _maps(folder)
    assert np.isfinite(raw["intensity"]).all()
    return workdir, stacks, raw, truth


def test_a_numeric_threshold_removes_dim_pixels_from_maps_and_cells(dim_and_bright):
    workdir, stacks, raw, truth = dim_and_bright
    config = write_config(workdir / "numeric.yaml", **_base(stacks, threshold=9.0))
    ran = jobs_run(run_workflow(workdir, "--configfile", config))
    assert "segmentation" not in ran and "bleach_correction" not in ran and ran.get("nb_maps") == 1
    folder = workdir / "results" / "cells"
    kept = raw["intensity"] >= 9.0
    maps = _maps(folder)
    for name in MAPS:
        assert np.isnan(maps[name][~kept]).all(), name
        np.testing.assert_array_equal(maps[name][kept], raw[name][kept])
    record = json.loads((folder / "nb_threshold.json").read_text())
    assert record["setting"] == 9.0 and record["value"] == 9.0 and record["pixels_kept"] == int(kept.sum())
    settings = json.loads((folder / "settings.json").read_text())
    assert settings["nb_threshold_used"]["value"] == 9.0
    # the dim cell (4 counts per frame) lies wholly below the threshold: no value survives
    cells = pd.read_csv(folder / "average_values_in_roi.csv").set_index("Cell ID")
    labels = tifffile.imread(folder / "analysis_labels.tif")
    np.testing.assert_array_equal(labels, truth)
    dim, bright = 1, 2
    assert cells.loc[dim, ["Intensity", "Brightness", "Brightness (ratio of means)"]].isna().all()
    # the bright cell keeps exactly its pixels at or above the threshold
    pixels = (labels == bright) & kept
    assert 0 < pixels.sum() <= (labels == bright).sum()
    assert cells.loc[bright, "Pixels analysed"] == pixels.sum() and cells.loc[dim, "Pixels analysed"] == 0
    assert cells.loc[bright, "Pixels"] == (labels == bright).sum()
    assert cells.loc[bright, "Intensity"] == pytest.approx(raw["intensity"][pixels].mean())
    assert cells.loc[bright, "Brightness (ratio of means)"] == pytest.approx(
        nb.brightness(raw["intensity"][pixels].mean(), raw["variance"][pixels].mean())
    )
    assert cells.loc[bright, "Brightness (ratio of means)"] == pytest.approx(4.0, rel=0.15)


def test_an_automatic_threshold_and_a_median_filter(dim_and_bright):
    workdir, stacks, raw, _ = dim_and_bright
    config = write_config(workdir / "otsu.yaml", **_base(stacks, threshold="otsu", filter="median", timeseries={"frames_per_set": 30}))
    run_workflow(workdir, "--configfile", config)
    folder = workdir / "results" / "cells"
    expected = threshold.auto_threshold(raw["intensity"], "otsu")
    record = json.loads((folder / "nb_threshold.json").read_text())
    assert record["setting"] == "otsu" and record["filter"] == "median"
    assert record["value"] == pytest.approx(expected)
    kept = raw["intensity"] >= expected
    assert 0 < record["pixels_kept"] == kept.sum() < kept.size
    maps = _maps(folder)
    # intensity and variance are thresholded, not filtered
    for name in ("intensity", "variance"):
        np.testing.assert_array_equal(np.isnan(maps[name]), ~kept)
        np.testing.assert_array_equal(maps[name][kept], raw[name][kept])
    # brightness and number: nandb's 3x3 median of the thresholded map, excluded pixels stay NaN
    for name in ("apparent_brightness", "apparent_number", "brightness", "number"):
        thresholded = np.where(kept, raw[name], np.nan)
        expected_map = np.where(kept, filters.nan_filter(thresholded, "median"), np.nan)
        np.testing.assert_allclose(maps[name], expected_map, equal_nan=True)
        assert not np.allclose(maps[name][kept], raw[name][kept])  # the filter did something
    # a pixel at a cell's border with more than half of its 3x3 neighbourhood excluded is NaN
    neighbours = np.lib.stride_tricks.sliding_window_view(np.pad(kept, 1), (3, 3)).sum(axis=(2, 3))
    lonely = kept & (neighbours < 5)
    assert np.isnan(maps["brightness"][lonely]).all()
    # the time series' windows exclude the same pixels and are filtered the same way
    pages = tifffile.imread(folder / "timeseries" / "brightness.tif")
    assert pages.shape == (2, 64, 64)
    assert np.isnan(pages[:, ~kept]).all() and np.isfinite(pages[:, kept & ~lonely]).all()


def test_a_bad_threshold_setting_is_a_start_up_error(dim_and_bright):
    workdir, stacks, _, _ = dim_and_bright
    config = write_config(workdir / "bad.yaml", **_base(stacks, threshold="isodata"))
    result = run_workflow(workdir, "--dry-run", "--configfile", config, check=False)
    assert result.returncode != 0
    assert "threshold" in result.stdout + result.stderr


# --- time series -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stationary(tmp_path_factory):
    """A stationary recording (no bleaching) of two cells, (epsilon, n) = (2, 6) and (4, 3), 60 frames."""
    workdir = tmp_path_factory.mktemp("timeseries")
    stacks = workdir / "stacks"
    stacks.mkdir()
    stack, truth = simulate.demo_experiment([(2.0, 6.0), (4.0, 3.0)], seed=11, shape=(64, 64), frames=60)
    write_stack(stacks / "still.tif", stack)
    tifffile.imwrite(stacks / "still_labels.tif", truth)
    (stacks / "samples.tsv").write_text("experiment\tpath\tmask\nstill\tstill.tif\tstill_labels.tif\n")
    return workdir, stacks, stack


def _timeseries_config(workdir, stacks, name, bleach, **timeseries):
    return write_config(
        workdir / name, input_dir=str(stacks), samples=str(stacks / "samples.tsv"), bleach_correction=bleach,
        segmentation={"method": "existing"}, nb={"timeseries": timeseries} if timeseries else {},
    )


def test_time_series_is_off_by_default_and_not_in_the_dag(stationary):
    workdir, stacks, _ = stationary
    config = _timeseries_config(workdir, stacks, "off.yaml", NO_CORRECTION)
    result = run_workflow(workdir, "--dry-run", "--configfile", config)
    ran = jobs_run(result)
    assert ran.get("nb_maps") == 1 and "nb_timeseries" not in ran, ran
    assert "nb_timeseries" not in run_workflow(workdir, "--list-rules", "--configfile", config).stdout


def test_consecutive_windows_agree_with_the_whole_stack(stationary):
    workdir, stacks, _ = stationary
    # boxcar is a detrending method: the frames are corrected in row tiles across all frames
    config = _timeseries_config(
        workdir, stacks, "consecutive.yaml", {"method": "boxcar", "parameter": 10}, frames_per_set=20
    )
    ran = jobs_run(run_workflow(workdir, "--configfile", config))
    assert ran.get("nb_timeseries") == 1, ran
    folder = workdir / "results" / "still"
    with tifffile.TiffFile(folder / "timeseries" / "brightness.tif") as tif:
        assert tif.series[0].axes == "TYX" and tif.series[0].shape == (3, 64, 64)
    whole = pd.read_csv(folder / "average_values_in_roi.csv").set_index("Cell ID")
    windows = pd.read_csv(folder / "timeseries_values_in_roi.csv")
    assert list(windows.columns[:4]) == ["Window", "First frame", "Last frame", "Cell ID"]
    assert windows[["Window", "First frame", "Last frame"]].drop_duplicates().values.tolist() == [
        [0, 0, 19], [1, 20, 39], [2, 40, 59]
    ]
    for cell, rows in windows.groupby("Cell ID"):
        # three consecutive windows cover every frame: their mean intensities average to the stack's
        assert rows["Intensity"].mean() == pytest.approx(whole.loc[cell, "Intensity"], rel=1e-9)
        for column in ("Brightness (ratio of means)", "Number (ratio of means)"):
            assert rows[column].to_numpy() == pytest.approx(np.full(3, whole.loc[cell, column]), rel=0.12), column
    truth = {1: 2.0, 2: 4.0}
    for cell, rows in windows.groupby("Cell ID"):
        assert rows["Brightness (ratio of means)"].to_numpy() == pytest.approx(np.full(3, truth[cell]), rel=0.15)
    assert (folder / "Brightness_timeseries.png").stat().st_size > 10_000


def test_overlapping_windows_count_and_values(stationary):
    workdir, stacks, stack = stationary
    config = _timeseries_config(workdir, stacks, "overlap.yaml", NO_CORRECTION, frames_per_set=20, overlap=15)
    run_workflow(workdir, "--configfile", config)
    folder = workdir / "results" / "still"
    # floor((60 - 20) / (20 - 15)) + 1 = 9 windows, starting every 5 frames
    number = tifffile.imread(folder / "timeseries" / "number.tif")
    brightness = tifffile.imread(folder / "timeseries" / "brightness.tif")
    assert number.shape == brightness.shape == (9, 64, 64)
    windows = pd.read_csv(folder / "timeseries_values_in_roi.csv")
    assert sorted(windows["First frame"].unique()) == list(range(0, 45, 5))
    # without bleach correction, each page is the N&B of its frames
    for index, start in enumerate(range(0, 45, 5)):
        frames = stack[start : start + 20].astype(np.float64)
        expected = nb.brightness(frames.mean(axis=0), frames.var(axis=0, ddof=1))
        np.testing.assert_allclose(brightness[index], expected.astype(np.float32), rtol=1e-5, atol=1e-6, equal_nan=True)


def test_an_overlap_as_long_as_the_window_is_a_start_up_error(stationary):
    workdir, stacks, _ = stationary
    config = _timeseries_config(workdir, stacks, "bad_overlap.yaml", NO_CORRECTION, frames_per_set=10, overlap=10)
    result = run_workflow(workdir, "--dry-run", "--configfile", config, check=False)
    assert result.returncode != 0
    assert "nb.timeseries.overlap is 10 but frames_per_set is 10" in result.stdout + result.stderr


# --- the sample sheet's reference column -----------------------------------------------------------


def _sheet(stacks, marks):
    lines = ["experiment\tpath\tmask\treference"]
    for name, mark in marks.items():
        lines.append(f"{name}\t{name}.tif\t{name}_labels.tif\t{mark}")
    (stacks / "samples.tsv").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def sheet_reference(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("reference_column")
    stacks = workdir / "stacks"
    stacks.mkdir()
    for seed, (name, cells) in enumerate({"mono": [(1.0, 8.0), (1.0, 6.0)], "tetra": [(4.0, 3.0)]}.items()):
        stack, truth = simulate.demo_experiment(cells, seed=60 + seed, shape=(64, 64), frames=60)
        write_stack(stacks / f"{name}.tif", stack)
        tifffile.imwrite(stacks / f"{name}_labels.tif", truth)
    _sheet(stacks, {"mono": "yes", "tetra": ""})
    config = write_config(
        workdir / "config.yaml", input_dir=str(stacks), samples=str(stacks / "samples.tsv"),
        bleach_correction=NO_CORRECTION, segmentation={"method": "existing"},
    )
    run_workflow(workdir, "--configfile", config)
    return workdir, stacks, config


def test_the_reference_column_names_the_monomer_reference(sheet_reference):
    workdir, _, _ = sheet_reference
    folder = pd.read_csv(workdir / "results" / "Folder_average_values_in_roi.csv")
    mono = pd.read_csv(workdir / "results" / "mono" / "average_values_in_roi.csv")
    monomer = float(np.median(mono["Brightness (ratio of means)"]))
    assert folder["Monomer brightness"].unique().tolist() == pytest.approx([monomer])
    assert folder["Monomer reference cells"].unique().tolist() == [2]
    tetra = folder[folder.Experiment == "tetra"]["Oligomeric state"].to_numpy()
    assert tetra == pytest.approx([4.0], rel=0.15)


def test_moving_the_reference_mark_reruns_only_the_aggregate(sheet_reference):
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


@pytest.mark.parametrize(
    "marks, monomer, message",
    [
        ({"mono": "true", "tetra": "1"}, None, "the 'reference' column marks 2 experiments (mono, tetra)"),
        ({"mono": "true", "tetra": ""}, "tetra", "nb.monomer_brightness is 'tetra' but the sample sheet"),
        ({"mono": "true", "tetra": ""}, 0.9, "nb.monomer_brightness is 0.9 but the sample sheet"),
        ({"mono": "maybe", "tetra": ""}, None, "the 'reference' column of experiment 'mono' is 'maybe'"),
    ],
)
def test_conflicting_reference_settings_are_start_up_errors(sheet_reference, tmp_path, marks, monomer, message):
    workdir, stacks, _ = sheet_reference
    sheet_folder = tmp_path / "sheet"
    sheet_folder.mkdir()
    _sheet(sheet_folder, marks)
    # the sheet's relative paths point into sheet_folder: link the stacks and masks there
    for path in stacks.glob("*.tif"):
        (sheet_folder / path.name).symlink_to(path)
    config = write_config(
        tmp_path / "config.yaml", input_dir=str(stacks), samples=str(sheet_folder / "samples.tsv"),
        bleach_correction=NO_CORRECTION, segmentation={"method": "existing"},
        nb={"monomer_brightness": monomer},
    )
    result = run_workflow(workdir, "--dry-run", "--configfile", config, check=False)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
