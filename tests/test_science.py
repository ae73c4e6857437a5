"""Cross-correlated N&B, time series, per-cell estimators, oligomeric state and stack axes,
each on simulated data with known ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA

from brightflow import axes, cross, figures, nb, simulate, stats, timeseries

# --- cross-correlated N&B ----------------------------------------------------------------------------


def _two_channels(fraction, rng, total=10.0, e1=1.0, e2=2.0, frames=200, shape=(40, 40)):
    """Channel 1 sees A and the complexes AB, channel 2 sees B and AB; ``fraction`` of each
    channel's molecules are complexes. All mobile: a fresh Poisson number in every frame."""
    complexes = rng.poisson(fraction * total, size=(frames,) + shape)
    only_a = rng.poisson((1 - fraction) * total, size=(frames,) + shape)
    only_b = rng.poisson((1 - fraction) * total, size=(frames,) + shape)
    k1 = rng.poisson(e1 * (complexes + only_a))
    k2 = rng.poisson(e2 * (complexes + only_b))
    return k1, k2


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.5, 1.0])
def test_cross_brightness_is_proportional_to_the_fraction_of_complexes(fraction):
    rng = np.random.default_rng(int(fraction * 100) + 7)
    k1, k2 = _two_channels(fraction, rng)
    moments = cross.StreamingCrossMoments(k1.shape[1:])
    for start in range(0, k1.shape[0], 64):  # streamed in chunks
        moments.update(k1[start : start + 64], k2[start : start + 64])
    maps = cross.cross_maps(moments.first.mean(), moments.second.mean(), moments.covariance(ddof=1))
    expected = fraction * np.sqrt(1.0 * 2.0)  # B_cc = f sqrt(e1 e2)
    measured = np.nanmean(maps["cross_brightness"])
    if fraction == 0:
        assert abs(measured) < 0.02 * np.sqrt(2.0)  # below 2% of the B_cc of full complexes
    else:
        assert measured == pytest.approx(expected, rel=0.03)
        # cross number: n1 n2 / n_c = total / f, from the image-wide means (ratio of means)
        n_cc = np.mean(moments.first.mean()) * np.mean(moments.second.mean()) / np.mean(moments.covariance())
        assert n_cc == pytest.approx(10.0 / fraction, rel=0.05)


def test_cross_variance_normalisation_follows_ddof():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(30, 4, 5))
    b = a + rng.normal(size=(30, 4, 5))
    products = ((a - a.mean(0)) * (b - b.mean(0))).sum(0)
    assert np.allclose(cross.cross_variance(a, b, ddof=1), products / 29)
    assert np.allclose(cross.cross_variance(a, b, ddof=0), products / 30)
    # a channel with itself: its variance
    assert np.allclose(cross.cross_variance(a, a, ddof=1), a.var(axis=0, ddof=1))


def test_cross_brightness_with_analog_offsets():
    rng = np.random.default_rng(4)
    k1, k2 = _two_channels(0.5, rng, frames=100, shape=(20, 20))
    plain = cross.cross_maps(k1.mean(0), k2.mean(0), cross.cross_variance(k1, k2))
    shifted1, shifted2 = k1 + 100.0, k2 + 250.0
    detector1, detector2 = nb.DetectorModel(offset=100.0), nb.DetectorModel(offset=250.0)
    offset = cross.cross_maps(shifted1.mean(0), shifted2.mean(0), cross.cross_variance(shifted1, shifted2),
                              detector1, detector2)
    assert np.allclose(offset["cross_brightness"], plain["cross_brightness"])
    assert np.allclose(offset["cross_number"], plain["cross_number"])


# --- time series -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frames", "per_set", "overlap", "count"),
    [(100, 25, 0, 4), (105, 25, 0, 4), (100, 20, 10, 9), (100, 20, 19, 81), (20, 5, 4, 16), (10, 20, 0, 0)],
)
def test_window_count(frames, per_set, overlap, count):
    bounds = timeseries.window_bounds(frames, per_set, overlap)
    assert len(bounds) == count
    assert all(stop - start == per_set for start, stop in bounds)
    assert all(b[0] - a[0] == per_set - overlap for a, b in zip(bounds, bounds[1:]))


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


# --- per-cell estimators, gamma, oligomeric state ----------------------------------------------------


def test_ratio_of_means_number_is_unbiased_where_the_pixel_mean_is_biased_high():
    rng = np.random.default_rng(21)
    labels = np.zeros((70, 35), dtype=int)
    labels[3:33, 3:33] = 1
    labels[36:66, 3:33] = 2
    truth = {1: (1.0, 3.0), 2: (1.0, 6.0)}  # cell: (epsilon, n)
    number_map = np.zeros(labels.shape)
    brightness_map = np.zeros(labels.shape)
    for cell, (epsilon, n) in truth.items():
        number_map[labels == cell] = n
        brightness_map[labels == cell] = epsilon
    stack = simulate.mobile_stack(number_map, brightness_map, 100, rng)
    maps = nb.number_and_brightness(*nb.pixel_mean_variance(stack))
    table = stats.cell_table(maps, labels, gamma=0.5).set_index("Cell ID")
    for cell, (epsilon, n) in truth.items():
        row = table.loc[cell]
        assert row["Number"] > 1.05 * n, "the pixel mean of n is biased high (the replaced app's value)"
        assert row["Number (ratio of means)"] == pytest.approx(n, rel=0.03)
        assert row["Brightness (ratio of means)"] == pytest.approx(epsilon, rel=0.03)
        assert row["Number (ratio of means) / gamma"] == pytest.approx(row["Number (ratio of means)"] / 0.5)
        pixels = maps["brightness"][labels == cell]
        assert row["Brightness median"] == pytest.approx(np.median(pixels))
        assert row["Brightness SD"] == pytest.approx(np.std(pixels, ddof=1))
    # the replaced app's columns come first, unchanged
    assert list(table.reset_index().columns[:8]) == ["Cell ID", "Pixels"] + list(stats.MAP_COLUMNS.values())
    expected = stats.cell_averages(maps, labels)
    pd.testing.assert_frame_equal(table.reset_index()[expected.columns], expected)


def test_thresholded_pixels_are_left_out_of_the_per_cell_values():
    labels = np.ones((2, 2), dtype=int)
    maps = {
        "intensity": np.array([[4.0, 4.0], [4.0, np.nan]]),
        "variance": np.array([[8.0, 8.0], [8.0, np.nan]]),
        "brightness": np.array([[1.0, 1.0], [1.0, np.nan]]),
        "number": np.array([[4.0, 4.0], [4.0, np.nan]]),
    }
    row = stats.cell_estimators(maps, labels).iloc[0]
    assert row["Pixels analysed"] == 3
    assert row["Brightness (ratio of means)"] == pytest.approx(1.0)
    assert row["Number (ratio of means)"] == pytest.approx(4.0)
    with pytest.raises(ValueError, match="gamma"):
        stats.cell_estimators(maps, labels, gamma=0)


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


# --- stack axes --------------------------------------------------------------------------------------


def test_axes_from_metadata_configuration_or_shape():
    assert axes.resolve_axes((50, 50, 50), "IYX", None) == "TYX"
    assert axes.resolve_axes((50, 50, 50), "ZYX", None) == "TYX"  # Fiji's default "slices"
    assert axes.resolve_axes((5, 2, 8, 9), "TCYX", None) == "TCYX"
    assert axes.resolve_axes((5, 2, 8, 9), "TCYX", "TCYX") == "TCYX"
    assert axes.resolve_axes((100, 30, 28, 2), "IYXS", "TYXS") == "TYXS"
    assert axes.resolve_axes((5, 1, 2, 8, 9), "TZCYX", None) == "TZCYX"
    with pytest.raises(axes.AxesError, match="set input.axes"):
        axes.resolve_axes((100, 30, 28, 2), "IYXS", None)
    with pytest.raises(axes.AxesError, match="make it agree"):
        axes.resolve_axes((5, 2, 8, 9), "TCYX", "CTYX")
    with pytest.raises(axes.AxesError, match="4 letters"):
        axes.resolve_axes((5, 8, 9), None, "TCYX")
    with pytest.raises(axes.AxesError, match="Z axis"):
        axes.resolve_axes((5, 3, 8, 9), "TZYX", None)
    with pytest.raises(axes.AxesError, match="more than one channel"):
        axes.resolve_axes((5, 2, 8, 9, 3), None, "TCYXS")
    with pytest.raises(axes.AxesError, match="no time axis"):
        axes.resolve_axes((2, 8, 9), None, "CYX")


def test_to_tcyx_puts_every_layout_in_one_order():
    rng = np.random.default_rng(0)
    tcyx = rng.integers(0, 100, size=(6, 2, 4, 5))
    assert np.array_equal(axes.to_tcyx(tcyx, "TCYX"), tcyx)
    assert np.array_equal(axes.to_tcyx(tcyx.transpose(0, 2, 3, 1), "TYXS"), tcyx)
    assert np.array_equal(axes.to_tcyx(tcyx[:, None], "TZCYX"), tcyx)
    single = axes.to_tcyx(tcyx[:, 0], "TYX")
    assert single.shape == (6, 1, 4, 5) and np.array_equal(single[:, 0], tcyx[:, 0])


def test_two_channel_recording_reads_as_tcyx():
    path = SHARED_DATA / "two_ch.tif"
    if not path.is_file():
        pytest.skip("../shared/data/two_ch.tif is not beside this checkout")
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        found = axes.resolve_axes(series.shape, series.axes, "TYXS")
        data = series.asarray()
    stack = axes.to_tcyx(data, found)
    assert stack.shape == (100, 2, 30, 28)
    assert np.array_equal(stack[:, 1], data[..., 1])
    moments = cross.StreamingCrossMoments(stack.shape[2:])
    moments.update(stack[:, 0], stack[:, 1])
    assert np.isfinite(moments.covariance()).all()
