"""Issue 7 in the workflow, part 2: nb.threshold and nb.filter, the N&B time series, and the
sample sheet's reference column."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tifffile

from brightflow import filters, nb, simulate, threshold
from conftest import jobs_run, run_workflow, write_config, write_stack

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
    assert cells.loc[bright, "Intensity"] == pytest.approx(raw["intensity"][pixels].mean())
    assert cells.loc[bright, "Brightness (ratio of means)"] == pytest.approx(
        nb.brightness(raw["intensity"][pixels].mean(), raw["variance"][pixels].mean())
    )
    assert cells.loc[bright, "Brightness (ratio of means)"] == pytest.approx(4.0, rel=0.15)


def test_an_automatic_threshold_and_a_median_filter(dim_and_bright):
    workdir, stacks, raw, _ = dim_and_bright
    config = write_config(workdir / "otsu.yaml", **_base(stacks, threshold="otsu", filter="median"))
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


def test_a_bad_threshold_setting_is_a_start_up_error(dim_and_bright):
    workdir, stacks, _, _ = dim_and_bright
    config = write_config(workdir / "bad.yaml", **_base(stacks, threshold="isodata"))
    result = run_workflow(workdir, "--dry-run", "--configfile", config, check=False)
    assert result.returncode != 0
    assert "threshold" in result.stdout + result.stderr
