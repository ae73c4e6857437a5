"""Thresholds as ImageJ's Auto Threshold defines them, nandb's NaN-aware map filters, and both in the workflow
(nb.threshold, nb.filter)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import tifffile
from helpers import SHARED_DATA, jobs_run, write_config, write_stack
from skimage import filters as skfilters

from brightflow import filters, nb, simulate, threshold


def _spikes(bins_and_counts, size=256):
    counts = np.zeros(size, dtype=np.int64)
    for index, count in bins_and_counts:
        counts[index] = count
    return counts


# --- hand-built histograms whose answer is known ----------------------------------------------------


def test_two_spikes_give_imagej_answers():
    # 100 pixels in bin 50, 100 in bin 200.
    counts = _spikes([(50, 100), (200, 100)])
    # Mean: floor((50 + 200) / 2).
    assert threshold.mean_bin(counts) == 125
    # Otsu: every split 50..199 separates the spikes equally well; ImageJ keeps the last.
    assert threshold.otsu_bin(counts) == 199
    # Huang: for a split between the spikes each class is one spike at its own mean, so every
    # membership is 1 and the fuzziness is 0; the first such split is bin 50.
    assert threshold.huang_bin(counts) == 50
    # Triangle: the first maximum (bin 50) has its longer side to the right, so the histogram is
    # flipped; the line from the empty bin after 200 to the peak is farthest from the empty bins
    # just before the peak: bin 51 (flipped 204), one bin back: 52.
    assert threshold.triangle_bin(counts) == 52


def test_triangle_on_a_peak_with_a_long_right_tail():
    # peak 1000 at bin 10, a straight tail down to 0 at bin 110 would lie on the line: a tail
    # that sags below the line (a convex decay) has its farthest point where it bends most.
    counts = np.zeros(256, dtype=np.int64)
    counts[10] = 1000
    counts[11:111] = 10  # a flat low tail
    # right side is longer: flipped, low = 255 - 111 = 144, peak = 245; the farthest point of the
    # tail below the line from (144, 0) to (245, 1000) is the tail's end next to the peak
    # (flipped bin 244, original bin 11); one bin back from the split (flipped 243) is bin 12.
    assert threshold.triangle_bin(counts) == 12


def test_otsu_matches_scikit_image_without_ties():
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(60, 12, 4000), rng.normal(170, 20, 2500)])
    counts, _ = np.histogram(np.clip(values, 0, 255), bins=256, range=(0, 256))
    expected = skfilters.threshold_otsu(hist=(counts, np.arange(256.0)))
    assert threshold.otsu_bin(counts) == int(expected)


def test_threshold_value_convention_on_a_two_level_image():
    image = np.array([[0.0, 0.0, 255.0, 255.0]])
    # 256 bins over [0, 255]: value 0 in bin 0, 255 in bin 255; Mean picks bin floor(127.5) = 127,
    # and pixels from the lower edge of bin 128 up are kept.
    assert threshold.auto_threshold(image, "mean") == pytest.approx(128 * 255 / 256)
    kept = threshold.threshold_mask(image, threshold.auto_threshold(image, "mean"))
    assert kept.tolist() == [[False, False, True, True]]


def test_resolve_threshold_settings():
    image = np.arange(16.0).reshape(4, 4)
    assert threshold.resolve_threshold(image, None) is None
    assert threshold.resolve_threshold(image, "none") is None
    assert threshold.resolve_threshold(image, 7) == 7.0
    assert threshold.threshold_mask(image, 7.0).sum() == 9
    with pytest.raises(ValueError, match="unknown threshold method"):
        threshold.resolve_threshold(image, "bogus")
    maps = threshold.apply_threshold({"brightness": image}, threshold.threshold_mask(image, 7.0))
    assert np.isnan(maps["brightness"][0, :]).all() and maps["brightness"][3, 3] == 15


def test_constant_image_keeps_every_pixel():
    image = np.full((3, 3), 4.0)
    for method in threshold.METHODS:
        assert threshold.threshold_mask(image, threshold.auto_threshold(image, method)).all()


# --- Huang and Triangle on real data, against the published definitions written out here -----------


def _huang_reference(h):
    """Huang & Wang 1995 with Shannon's entropy, written as plain loops over the definition."""
    occupied = [g for g in range(len(h)) if h[g] > 0]
    first, last = occupied[0], occupied[-1]
    C = last - first
    best, best_t = math.inf, None
    for t in range(len(h)):
        n0 = sum(h[: t + 1])
        n1 = sum(h[t + 1 :])
        m0 = sum(g * h[g] for g in range(t + 1)) / n0 if n0 else 0.0
        m1 = sum(g * h[g] for g in range(t + 1, len(h))) / n1 if n1 else 0.0
        fuzziness = 0.0
        for g in range(len(h)):
            if h[g] == 0:
                continue
            mu = 1.0 / (1.0 + abs(g - (m0 if g <= t else m1)) / C)
            if 1e-6 <= mu <= 0.999999:
                fuzziness += h[g] * (-mu * math.log(mu) - (1 - mu) * math.log(1 - mu))
        if fuzziness < best:
            best, best_t = fuzziness, t
    return best_t


def _triangle_reference(h):
    """Zack et al. 1977 with ImageJ's refinements, written as plain loops."""
    h = list(h)
    size = len(h)
    left = next(i for i in range(size) if h[i] > 0)
    right = next(i for i in range(size - 1, -1, -1) if h[i] > 0)
    left, right = max(left - 1, 0), min(right + 1, size - 1)
    peak = h.index(max(h))
    flip = (peak - left) < (right - peak)
    if flip:
        h = h[::-1]
        left, peak = size - 1 - right, size - 1 - peak
    # perpendicular distance (signed) of (i, h[i]) from the line through (left, h[left]) and (peak, h[peak])
    dx, dy = peak - left, h[peak] - h[left]
    best, split = 0.0, left
    for i in range(left + 1, peak + 1):
        distance = (dy * (i - left) - dx * (h[i] - h[left])) / math.hypot(dx, dy)
        if distance > best:
            best, split = distance, i
    split -= 1
    return size - 1 - split if flip else split


@pytest.fixture(scope="module")
def mean_of_50():
    path = SHARED_DATA / "50.tif"
    if not path.is_file():
        pytest.skip("../shared/data/50.tif is not beside this checkout")
    import tifffile

    return tifffile.imread(path).astype(np.float64).mean(axis=0)


def test_huang_on_real_data_matches_the_published_definition(mean_of_50):
    counts, low, width = threshold.mean_histogram(mean_of_50)
    expected_bin = _huang_reference(counts.tolist())
    assert threshold.huang_bin(counts) == expected_bin
    assert threshold.auto_threshold(mean_of_50, "huang") == pytest.approx(low + (expected_bin + 1) * width)
    kept = threshold.threshold_mask(mean_of_50, threshold.auto_threshold(mean_of_50, "huang"))
    assert 0.2 < kept.mean() < 0.9  # the cell edge is kept, the dark background is not


def test_triangle_on_real_data_matches_the_published_definition(mean_of_50):
    counts, low, width = threshold.mean_histogram(mean_of_50)
    expected_bin = _triangle_reference(counts.tolist())
    assert threshold.triangle_bin(counts) == expected_bin
    # scikit-image's triangle lacks ImageJ's refinements and picks another bin here: that is
    # why brightflow implements it.
    skimage_bin = int((skfilters.threshold_triangle(mean_of_50) - low) // width)
    assert skimage_bin != expected_bin


# --- NaN-aware filters -------------------------------------------------------------------------------


def test_mean_and_median_filters_on_a_finite_map():
    image = np.arange(25.0).reshape(5, 5)
    mean = filters.nan_filter(image, "mean")
    median = filters.nan_filter(image, "median")
    assert mean[2, 2] == pytest.approx(image[1:4, 1:4].mean())
    assert median[2, 2] == pytest.approx(np.median(image[1:4, 1:4]))
    # a corner sees its 2x2 in-image neighbourhood
    assert mean[0, 0] == pytest.approx(image[:2, :2].mean())


def test_more_than_half_nan_stays_nan():
    image = np.ones((5, 5))
    image[1:4, 1:3] = np.nan  # rows 1-3, columns 1-2 ...
    # ... except (2, 2): NaN at (1,1), (1,2), (2,1), (3,1), (3,2)
    image[2, 2] = 7.0
    out = filters.nan_filter(image, "mean")
    # (2, 2): neighbours (1..3, 1..3): NaN at columns 1-2 except (2, 2): 5 NaN of 9 -> NaN
    assert np.isnan(out[2, 2])
    # (2, 3): neighbours columns 2-4: NaN at (1,2) and (3,2): 2 of 9 -> mean of the 7 finite
    assert out[2, 3] == pytest.approx((7.0 + 6 * 1.0) / 7)
    # (0, 0): in-image 2x2 window with one NaN (1, 1): 1 of 4 -> defined
    assert out[0, 0] == pytest.approx(1.0)
    # (2, 1): 3x3 window holds NaN at (1..3, 1..2) minus (2, 2): 5 of 9 -> NaN
    assert np.isnan(out[2, 1])
    median = filters.nan_filter(image, "median")
    assert np.isnan(median[2, 2]) and median[2, 3] == pytest.approx(1.0)


def test_filter_reduces_noise_of_a_noisy_flat_map():
    rng = np.random.default_rng(0)
    image = rng.normal(2.0, 0.5, size=(64, 64))
    for method in filters.FILTERS:
        out = filters.nan_filter(image, method)
        assert out[1:-1, 1:-1].std() < 0.6 * image.std()
        assert out.mean() == pytest.approx(2.0, abs=0.05)
    with pytest.raises(ValueError, match="unknown filter"):
        filters.nan_filter(image, "gaussian")


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
def dim_and_bright(run_workflow, tmp_path_factory):
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


@pytest.mark.workflow
def test_a_numeric_threshold_removes_dim_pixels_from_maps_and_cells(run_workflow, dim_and_bright):
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


@pytest.mark.workflow
def test_an_automatic_threshold_and_a_median_filter(run_workflow, dim_and_bright):
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


@pytest.mark.workflow
def test_a_bad_threshold_setting_is_a_start_up_error(run_workflow, dim_and_bright):
    workdir, stacks, _, _ = dim_and_bright
    config = write_config(workdir / "bad.yaml", **_base(stacks, threshold="isodata"))
    result = run_workflow(workdir, "--dry-run", "--configfile", config, check=False)
    assert result.returncode != 0
    assert "threshold" in result.stdout + result.stderr
