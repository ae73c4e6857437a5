"""Per-cell tables and figure helpers."""

import numpy as np
import pandas as pd
import pytest

from brightflow import figures, stats
from brightflow.nb import MAP_NAMES


def _maps(shape, value):
    return {name: np.full(shape, value, dtype=float) for name in MAP_NAMES}


def test_cell_averages_are_nan_aware_means_and_keep_eroded_cells():
    labels = np.array([[1, 1, 0, 2], [1, 1, 0, 2]])
    maps = _maps(labels.shape, 0.0)
    maps["brightness"] = np.array([[1.0, 3.0, 9.0, 2.0], [np.nan, 5.0, 9.0, 4.0]])
    table = stats.cell_averages(maps, labels, cell_ids=[1, 2, 3])
    assert list(table.columns) == ["Cell ID", "Pixels"] + list(stats.MAP_COLUMNS.values())
    assert table["Cell ID"].tolist() == [1, 2, 3]
    assert table["Pixels"].tolist() == [4, 2, 0]
    assert table.loc[0, "Brightness"] == pytest.approx(3.0)  # (1 + 3 + 5) / 3, NaN skipped
    assert table.loc[1, "Brightness"] == pytest.approx(3.0)
    assert np.isnan(table.loc[2, "Brightness"])  # eroded away: a row with NaN, not missing


def test_cell_pixel_table_lists_every_cell_pixel():
    labels = np.array([[0, 2], [1, 1]])
    maps = _maps(labels.shape, 0.0)
    maps["intensity"] = np.array([[9.0, 8.0], [7.0, 6.0]])
    table = stats.cell_pixel_table(maps, labels)
    assert list(table.columns) == ["Cell ID", "y", "x", "Intensity", "Apparent brightness", "Brightness"]
    assert table[["Cell ID", "y", "x", "Intensity"]].values.tolist() == [[1, 1, 0, 7.0], [1, 1, 1, 6.0], [2, 0, 1, 8.0]]


def test_folder_table_sorts_by_experiment_then_cell():
    a = pd.DataFrame({"Cell ID": [2, 1], "Brightness": [0.2, 0.1]})
    b = pd.DataFrame({"Cell ID": [1], "Brightness": [0.3]})
    folder = stats.folder_table({"zeta": a, "alpha": b})
    assert list(folder.columns) == ["Experiment", "Cell ID", "Brightness"]
    assert folder[["Experiment", "Cell ID"]].values.tolist() == [["alpha", 1], ["zeta", 1], ["zeta", 2]]


def test_point_density_counts_points_per_histogram_bin():
    x = np.array([0.0, 0.01, 0.02, 10.0])
    y = np.array([0.0, 0.01, 0.02, 10.0])
    density = figures.point_density(x, y, bins=4)
    assert density.tolist() == [3, 3, 3, 1]


def test_robust_limits_ignore_hot_pixels_and_nan():
    values = np.concatenate([np.linspace(0, 1, 1000), [1e6, np.nan]])
    low, high = figures.robust_limits(values)
    assert low == pytest.approx(0.01, abs=0.01) and high < 2


def test_map_preview_draws_nan_pixels_in_the_nan_colour():
    values = np.ones((20, 20))
    values[5, 5] = np.nan
    figure = figures.map_preview(values, "test")
    image = figure.axes[0].images[0]
    rgba = image.cmap(image.norm(np.ma.masked_invalid(values)))
    assert tuple(np.round(rgba[5, 5, :3], 2)) == (1.0, 0.0, 1.0)
    assert tuple(np.round(rgba[0, 0, :3], 2)) != (1.0, 0.0, 1.0)
