"""Per-cell tables and figure helpers."""

import numpy as np
import pandas as pd
import pytest

from brightflow import figures, nb, simulate, stats
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
    density = stats.point_density(x, y, bins=4)
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


def _cells_and_noise():
    """A map whose cell pixels span 1..15 in a background of wild noise (-50..100), as n does."""
    rng = np.random.default_rng(1)
    values = rng.uniform(-50, 100, size=(40, 40))
    cells = np.zeros((40, 40), bool)
    cells[10:30, 10:30] = True
    values[cells] = rng.uniform(1, 15, size=cells.sum())
    return values, cells


def test_map_preview_takes_its_colour_range_from_the_cells_and_veils_the_background():
    values, cells = _cells_and_noise()
    figure = figures.map_preview(values, "Number n", figures.MAP_LABELS["number"], cells)
    ax = figure.axes[0]
    low, high = ax.images[0].norm.vmin, ax.images[0].norm.vmax
    assert 1 <= low < 2 and 14 < high <= 15  # the cells' 1st-99th percentile, not the noise's
    veil = ax.images[1].get_array()
    assert veil.shape == (40, 40, 4)
    assert (veil[~cells, 3] == figures.BACKGROUND_VEIL).all() and (veil[cells, 3] == 0).all()
    assert figure.axes[1].get_ylabel() == figures.MAP_LABELS["number"]  # the colour bar says what and in what unit
    # without cells (or with an empty mask) the whole map sets the range, nothing is veiled
    plain = figures.map_preview(values, "Number n", cells=np.zeros_like(cells)).axes[0]
    assert plain.images[0].norm.vmin < -40 and len(plain.images) == 1


def test_every_map_has_a_title_and_a_labelled_unit():
    for name in MAP_NAMES + ("cross_variance", "cross_brightness", "cross_number"):
        assert figures.MAP_TITLES[name] and figures.MAP_LABELS[name]


def test_brightness_intensity_plot_draws_the_immobile_reference_in_range():
    rng = np.random.default_rng(2)
    intensity, brightness = rng.uniform(5, 10, 500), rng.uniform(2, 6, 500)  # all far above B = 1
    ax = figures.brightness_intensity_figure(intensity, brightness).axes[0]
    (line,) = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert tuple(line.get_ydata()) == (1.0, 1.0)
    assert ax.get_ylim()[0] < 1.0 < ax.get_ylim()[1]
    assert "B = 1" in ax.get_title()
    # an analog detector: immobile molecules have B = S
    ax = figures.brightness_intensity_figure(intensity, brightness, reference=2.5).axes[0]
    assert tuple([line for line in ax.lines if line.get_linestyle() == "--"][0].get_ydata()) == (2.5, 2.5)


def test_bleach_correction_legend_sits_below_the_traces():
    from brightflow import detrend

    trace = np.linspace(10, 6, 200) + np.random.default_rng(3).normal(0, 0.2, 200)
    model = detrend.fit_correction(trace, "boxcar", 20)
    labels = model.figure_labels()
    assert labels["title"] == "Bleach correction: boxcar (l = 20 (set))"
    assert "residual degrees of freedom" in labels["note"]
    figure = figures.bleach_correction_figure(trace, trace - model.trend + 8, model.trend, labels)
    figure.canvas.draw()
    ax = figure.axes[0]
    legend_box = ax.get_legend().get_window_extent()
    axes_box = ax.get_window_extent()
    assert legend_box.y1 < axes_box.y0  # wholly below the plotting area: it covers no trace
    (note,) = figure.texts
    assert note.get_window_extent().y1 < legend_box.y0  # the note below the legend, on the figure
    assert "residual degrees of freedom" in note.get_text()


def test_bleach_figure_says_when_the_method_asked_for_was_not_applied():
    from brightflow import detrend

    flat = np.full(100, 6.0)
    model = detrend.fit_correction(flat, "boxcar", "auto", cell_pixels=40_000, dof_correction=False)
    labels = model.figure_labels()
    assert labels["title"] == "Bleach correction: none (boxcar requested, not applied)"
    assert labels["note"].startswith("boxcar not applied: no detrending needed")
    assert labels["corrected"] == "after (no correction: as before)"


def test_bleach_figure_says_when_the_correction_changes_nothing():
    """An unbleached recording gets a window over the whole recording (the least severe setting): the note
    says the values are unchanged rather than quoting a division by T - 1 "instead of" T - 1."""
    from brightflow import detrend

    trace = 20 + np.random.default_rng(4).normal(0, 0.05, 400)
    model = detrend.fit_correction(trace, "boxcar", 399)
    note = model.figure_labels()["note"]
    assert note.startswith("No trend beyond the noise") and "divided by 399 (frames - 1)" in note, note
    assert "instead of" not in note


def test_cell_ids_are_outlined_to_read_on_any_background():
    from matplotlib import patheffects

    labels = np.zeros((30, 30), int)
    labels[5:15, 5:15] = 1
    labels[18:28, 18:28] = 2
    ax = figures.cellmask_figure(np.where(labels > 0, 1000.0, 0.0), labels).axes[0]
    ids = [text for text in ax.texts if text.get_text() in ("1", "2")]
    assert len(ids) == 2
    for text in ids:
        assert text.get_color() == "white"
        (stroke,) = text.get_path_effects()
        assert isinstance(stroke, patheffects.withStroke)


def test_cell_outlines_follow_each_cell_with_its_holes_and_separate_parts():
    """The drawn outlines are the 0.5 iso-lines of each cell's mask (scikit-image's marching squares
    gives the same points) around every part and hole, and the ID sits at the centroid."""
    from skimage import measure

    labels = np.zeros((60, 80), int)
    labels[30:50, 40:70] = 7
    labels[35:40, 50:55] = 0  # a hole
    labels[52:55, 2:4] = 7  # a separate part
    labels[1, 1] = labels[2, 2] = 7  # parts touching at a corner only
    labels[5:20, 5:30] = 3
    cells = figures._cell_outlines(labels)
    assert [label for label, _, _ in cells] == [3, 7]
    for label, outlines, centroid in cells:
        (region,) = [r for r in measure.regionprops(labels) if r.label == label]
        expected = [
            c + np.array(region.bbox[:2]) - 1 for c in measure.find_contours(np.pad(region.image, 1).astype(float), 0.5)
        ]
        assert len(outlines) == len(expected)
        points = {tuple(p) for p in np.round(np.concatenate(outlines), 6)}
        assert points == {tuple(p) for p in np.round(np.concatenate(expected), 6)}
        np.testing.assert_allclose(centroid, region.centroid)
    assert figures._cell_outlines(np.zeros((4, 4), int)) == []


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


# --- quality flags ----------------------------------------------------------------------------------


def test_sample_counts_find_saturated_negative_and_non_finite_samples():
    from brightflow import quality

    frames = np.full((5, 2, 3), 10.0)
    frames[0, 0, 0] = 255
    frames[1:3, 0, 1] = -1
    frames[4, 1, 2] = np.nan
    frames[3, 1, 2] = np.inf
    counts = quality.SampleCounts((2, 3), quality.saturation_level(np.uint8))
    counts.update(frames[:2])
    counts.update(frames[2:])
    saturated, negative, non_finite = counts.array()
    assert saturated.tolist() == [[1, 0, 0], [0, 0, 0]]
    assert negative.tolist() == [[0, 2, 0], [0, 0, 0]]
    assert non_finite.tolist() == [[0, 0, 0], [0, 0, 2]]
    assert quality.saturation_level(np.uint16) == 65535 and quality.saturation_level(np.float32) is None
    assert quality.saturation_level(np.uint16, 4095) == 4095


def test_cell_warnings_from_the_shot_noise_of_the_background():
    """A cell 3 shot-noise SDs of a background pixel's mean above the background is fine; one at the
    background's level is 'low signal'; per-cell counts of doubtful samples are reported."""
    from brightflow import quality

    labels = np.zeros((20, 20), int)
    labels[2:8, 2:8] = 1
    labels[12:18, 12:18] = 2
    intensity = np.full((20, 20), 4.0)  # background: 4 counts per frame, T = 100: SD of a mean 0.2
    intensity[labels == 1] = 4.0 + 3.5 * 0.2
    intensity[labels == 2] = 4.0 + 1.0 * 0.2
    counts = np.zeros((3, 20, 20), int)
    counts[0, 3, 3] = 2  # saturated
    counts[2, 13, 13] = 5  # NaN samples
    warnings = quality.cell_warnings(labels, labels, [1, 2], counts, intensity, frames=100)
    assert warnings == {1: "saturated (1 px)", 2: "non-finite samples (5); low signal"}
    # an analog detector: S = 4 quadruples the shot-noise variance, so cell 1 is now within 3 SDs
    analog = quality.cell_warnings(labels, labels, [1], counts, intensity, 100, nb.DetectorModel(s_factor=4.0))
    assert "low signal" in analog[1]
    few = quality.cell_warnings(labels, labels, [1], np.zeros_like(counts), intensity, frames=30)
    assert few[1].endswith("few frames (30)")  # (and, with fewer frames, more shot noise: low signal too)


def test_folder_table_keeps_a_row_for_an_experiment_without_cells():
    cells = pd.DataFrame(
        {"Cell ID": [1, 2], "Pixels": [10, 12], "Brightness": [0.5, 0.7], "Warnings": ["", "low signal"]}
    )
    empty = cells.iloc[:0]
    folder = stats.folder_table({"b_empty": empty, "a": cells})
    assert folder["Experiment"].tolist() == ["a", "a", "b_empty"]
    assert folder["Warnings"].tolist() == ["", "low signal", "no cells"]
    assert str(folder["Cell ID"].dtype) == "Int64" and folder["Cell ID"].isna().tolist() == [False, False, True]
    text = folder.to_csv(index=False).splitlines()
    assert text[1] == "a,1,10,0.5," and text[3] == "b_empty,,,,no cells"


def test_folder_figure_marks_flagged_cells_and_names_empty_experiments():
    figure = figures.folder_brightness_figure(
        ["a", "a", "b"], [1.0, 2.0, 3.0], "epsilon", "title", flagged=[False, True, False], empty=["c"]
    )
    ax = figure.axes[0]
    labels = [text.get_text() for text in ax.get_xticklabels()]
    assert labels[-1] == "c\nno cells" and len(labels) == 3
    crosses = [collection for collection in ax.collections if collection.get_label().startswith("cell with a warning")]
    assert len(crosses) == 1 and crosses[0].get_offsets().shape == (1, 2)
    assert crosses[0].get_offsets()[0][1] == 2.0


def test_the_brightness_unit_follows_the_detector():
    """Counts per molecule per frame with the default (photon-counting) detector model, which brightflow
    cannot confirm from the data; photons once nb.detector describes an analog detector (epsilon = B / S - 1,
    Dalal et al. 2008). Every figure takes its wording from nb.brightness_unit."""
    from brightflow import nb

    analog = {"offset": 100.0, "s_factor": 3.2, "readout_variance": 12.0}
    assert (
        nb.brightness_unit()
        == nb.brightness_unit({"offset": 0.0, "s_factor": 1.0, "readout_variance": 0.0})
        == "counts per molecule per frame"
    )
    assert (
        nb.brightness_unit(analog)
        == nb.brightness_unit(nb.DetectorModel(s_factor=2.0))
        == "photons per molecule per frame"
    )
    assert figures.map_label("brightness", analog) == "ε: photons per molecule per frame"
    assert figures.map_label("cross_brightness") == "B_cc: counts per molecule per frame"
    assert figures.map_label("intensity", analog) == figures.MAP_LABELS["intensity"]  # still the detector's counts
