"""Thresholds as ImageJ's Auto Threshold defines them, and nandb's NaN-aware map filters."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import SHARED_DATA
from skimage import filters as skfilters

from brightflow import filters, threshold


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
