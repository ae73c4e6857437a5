"""N&B over time (nandb's brightness_timeseries; Nolan et al. 2017): windows of frames, their moments,
and the time series in the workflow."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile
from helpers import jobs_run, write_config, write_stack

from brightflow import figures, nb, simulate, stats, timeseries


@pytest.mark.parametrize(
    ("frames", "per_set", "overlap", "count"),
    [(100, 25, 0, 4), (105, 25, 0, 4), (100, 20, 10, 9), (100, 20, 19, 81), (20, 5, 4, 16), (10, 20, 0, 0)],
)
def test_window_count(frames, per_set, overlap, count):
    bounds = timeseries.window_bounds(frames, per_set, overlap)
    assert len(bounds) == count
    assert all(stop - start == per_set for start, stop in bounds)
    assert all(b[0] - a[0] == per_set - overlap for a, b in zip(bounds, bounds[1:], strict=False))


def test_window_settings_are_checked():
    with pytest.raises(ValueError, match="overlap"):
        timeseries.window_bounds(100, 10, 10)
    with pytest.raises(ValueError, match="at least 2"):
        timeseries.window_bounds(100, 1)


def test_windows_agree_with_the_whole_stack_for_a_stationary_simulation():
    rng = np.random.default_rng(11)
    labels = np.zeros((36, 36), dtype=int)
    labels[4:32, 4:32] = 1
    stack = simulate.mobile_stack(np.where(labels > 0, 5.0, 0.0), np.where(labels > 0, 2.0, 0.0), 200, rng)
    whole = nb.number_and_brightness(*nb.pixel_mean_variance(stack))
    whole_cell = stats.cell_table(whole, labels).iloc[0]
    maps, bounds = timeseries.stack_timeseries(stack, frames_per_set=50, overlap=0)
    assert bounds == [(0, 50), (50, 100), (100, 150), (150, 200)]
    assert maps["brightness"].shape == (4, 36, 36)
    # consecutive windows covering every frame: their means average to the whole-stack mean
    assert np.allclose(maps["intensity"].mean(axis=0), whole["intensity"])
    table = stats.cell_timeseries_table(maps, bounds, labels)
    assert table["Window"].tolist() == [0, 1, 2, 3]
    for value in table["Brightness (ratio of means)"]:
        assert value == pytest.approx(whole_cell["Brightness (ratio of means)"], rel=0.05)
    figure = figures.cell_timeseries_figure(table, stats.BRIGHTNESS)
    line = figure.axes[0].get_lines()[0]
    assert line.get_xdata().tolist() == [24.5, 74.5, 124.5, 174.5]
    assert np.allclose(line.get_ydata(), table["Brightness (ratio of means)"])
    per_window = table["Brightness (ratio of means)"].to_numpy()
    assert per_window == pytest.approx(np.full(4, 2.0), rel=0.05)  # the truth, epsilon = 2
    assert table["Number (ratio of means)"].to_numpy() == pytest.approx(np.full(4, 5.0), rel=0.06)


def test_windowed_moments_in_uneven_chunks_equal_direct_computation():
    rng = np.random.default_rng(5)
    stack = rng.poisson(6.0, size=(47, 6, 7)).astype(float)
    bounds = timeseries.window_bounds(47, 12, 5)
    moments = timeseries.WindowedMoments((6, 7), bounds, ddof=1)
    start = 0
    for size in (5, 13, 1, 20, 8):
        moments.update(stack[start : start + size], start)
        start += size
    assert moments.complete
    for index, (first, last) in enumerate(bounds):
        assert np.allclose(moments.means[index], stack[first:last].mean(0))
        assert np.allclose(moments.variances[index], stack[first:last].var(0, ddof=1))
    with pytest.raises(ValueError, match="in order"):
        moments.update(stack[:3], 0)
    # keep=False: each window is handed back once, when the chunk that completes it arrives
    streamed = timeseries.WindowedMoments((6, 7), bounds, ddof=1, keep=False)
    assert not hasattr(streamed, "means")
    handed, start = [], 0
    for size in (5, 13, 1, 20, 8):
        completed = streamed.update(stack[start : start + size], start)
        start += size
        assert all(bounds[index][1] <= start for index, _, _ in completed)
        handed += completed
    assert [index for index, _, _ in handed] == list(range(len(bounds)))
    for index, mean, variance in handed:
        np.testing.assert_array_equal(mean, moments.means[index])
        np.testing.assert_array_equal(variance, moments.variances[index])


NO_CORRECTION = {"method": "none"}


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
        workdir / name,
        input_dir=str(stacks),
        samples=str(stacks / "samples.tsv"),
        bleach_correction=bleach,
        segmentation={"method": "existing"},
        nb={"timeseries": timeseries} if timeseries else {},
    )


@pytest.mark.workflow
def test_time_series_is_off_by_default_and_not_in_the_dag(run_workflow, stationary):
    workdir, stacks, _ = stationary
    config = _timeseries_config(workdir, stacks, "off.yaml", NO_CORRECTION)
    result = run_workflow(workdir, "--dry-run", "--configfile", config)
    ran = jobs_run(result)
    assert ran.get("nb_maps") == 1 and "nb_timeseries" not in ran, ran
    assert "nb_timeseries" not in run_workflow(workdir, "--list-rules", "--configfile", config).stdout


@pytest.mark.workflow
def test_consecutive_windows_agree_with_the_whole_stack(run_workflow, stationary):
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
        [0, 0, 19],
        [1, 20, 39],
        [2, 40, 59],
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


@pytest.mark.workflow
def test_overlapping_windows_count_and_values(run_workflow, stationary):
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


@pytest.mark.workflow
def test_an_overlap_as_long_as_the_window_is_a_start_up_error(run_workflow, stationary):
    workdir, stacks, _ = stationary
    config = _timeseries_config(workdir, stacks, "bad_overlap.yaml", NO_CORRECTION, frames_per_set=10, overlap=10)
    result = run_workflow(workdir, "--dry-run", "--configfile", config, check=False)
    assert result.returncode != 0
    assert "nb.timeseries.overlap is 10 but frames_per_set is 10" in result.stdout + result.stderr
