"""Thresholds as ImageJ's Auto Threshold defines them (brightflow's convention) and as nandb computes them
(the "nandb" convention), nandb's NaN-aware map filters, and both in the workflow (nb.threshold, nb.filter)."""

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
    # nandb's border rule (src/ImageFilters.cc): outside the image the nearest border pixel is
    # repeated, so the corner's window is 0 four times, 1 and 5 twice, 6 once
    assert mean[0, 0] == pytest.approx((4 * 0 + 2 * 1 + 2 * 5 + 6) / 9)
    assert median[0, 0] == 1.0  # sorted 0 0 0 0 1 1 5 5 6


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
    # (0, 0): the window repeats the border (0, 0) x4, (0, 1) x2, (1, 0) x2 and holds (1, 1) once,
    # the one NaN: 1 of 9 -> defined
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


# --- the "nandb" convention: autothresholdr on the integer frame sums -------------------------------
#
# nandb 2.1.1 thresholds with autothresholdr::mean_stack_thresh(img, method, ignore_na = TRUE)
# (nandb R/brightness.R, R/number.R): autothresholdr 1.4.3 (R/stack_thresh.R, R/thresh.R) sums each
# pixel over the frames, makes a histogram with one bin per integer from the smallest to the largest
# sum, runs its C++ port of ImageJ's method (src/AutoThreshold.cpp) to get an index t, and reports
# (t + smallest sum) / frames; pixels whose mean is >= that are kept. R is not installed here, so the
# expected numbers below come from the plain-loop references that follow (written from the C++
# functions' steps, independently of brightflow's vectorised code) and from hand computation on
# small histograms. brightflow's implementation also gives autothresholdr's own published test
# values (eg.tif: Huang 5, Triangle 3, Otsu 13, Otsu ignoring black 22, Li 7, Yen an error; its
# 100x100 50.tif: mean of the Otsu-kept pixels 24.09), checked by hand outside this suite since
# those images are not in ../shared/data.


def _autothresholdr_huang(h):
    """autothresholdr's Huang: class means from first..t and t+1..last, first least fuzziness."""
    size = len(h)
    occupied = [g for g in range(size) if h[g]]
    first, last = occupied[0], occupied[-1]
    term = 1.0 / (last - first)
    mu_0, mu_1 = [0.0] * size, [0.0] * size
    total = count = 0
    for g in range(first, size):
        total, count = total + g * h[g], count + h[g]
        mu_0[g] = total / count
    total = count = 0
    for g in range(last, 0, -1):
        total, count = total + g * h[g], count + h[g]
        mu_1[g - 1] = total / count
    best, best_t = math.inf, -1
    for t in range(size):
        entropy = 0.0
        for g in occupied:
            mu = 1.0 / (1.0 + term * abs(g - (mu_0[t] if g <= t else mu_1[t])))
            if not (mu < 1e-06 or mu > 0.999999):
                entropy += h[g] * (-mu * math.log(mu) - (1.0 - mu) * math.log(1.0 - mu))
        if entropy < best:
            best, best_t = entropy, t
    return best_t


def _autothresholdr_otsu(h):
    """autothresholdr's Otsu (Celebi's): every split, first maximum of the between-class variance."""
    share = 1.0 / sum(h)
    histo = [share * c for c in h]
    cumulative, moments = [histo[0]], [0.0]  # running sums, in bin order
    for g in range(1, len(h)):
        cumulative.append(cumulative[-1] + histo[g])
        moments.append(moments[-1] + g * histo[g])
    best, best_t = 0.0, None
    for g in range(len(h)):
        with np.errstate(all="ignore"):  # C doubles: x / 0 is Inf, 0 / 0 NaN (never kept)
            between = np.float64(moments[-1] * cumulative[g] - moments[g])
            between = between * (between / np.float64(cumulative[g] * (1.0 - cumulative[g])))
        if best < between:
            best, best_t = between, g
    return best_t


def _autothresholdr_li(h):
    """autothresholdr's Li: iterate t = (int)(x + 0.5), x' = (mb - mo) / (ln mb - ln mo) rounded."""
    n = sum(h)
    new = sum(g * c for g, c in enumerate(h)) / n
    while True:
        old = new
        t = int(old + 0.5)
        nb_, sb = sum(h[: t + 1]), sum(g * h[g] for g in range(t + 1))
        no, so = n - nb_, sum(g * h[g] for g in range(len(h))) - sb
        mb, mo = (sb / nb_ if nb_ else 0.0), (so / no if no else 0.0)
        temp = (mb - mo) / (math.log(mb) - math.log(mo))
        new = float(int(temp - 0.5) if temp < -2.220446049250313e-16 else int(temp + 0.5))
        if abs(new - old) <= 0.5:
            return t


def _yen_criterion_search(h, start):
    """ImageJ's Yen criterion, keeping the first split that beats a running maximum from ``start``."""
    share = [c / sum(h) for c in h]
    best, best_t = start, -1
    for t in range(len(h)):
        p1 = sum(share[: t + 1])
        p1_sq = sum(p * p for p in share[: t + 1])
        p2_sq = sum(p * p for p in share[t + 1 :])
        crit = -(math.log(p1_sq * p2_sq) if p1_sq * p2_sq > 0 else 0.0) + 2 * (
            math.log(p1 * (1 - p1)) if p1 * (1 - p1) > 0 else 0.0
        )
        if crit > best:
            best, best_t = crit, t
    return best_t


@pytest.fixture(scope="module")
def sums_of_50():
    path = SHARED_DATA / "50.tif"
    if not path.is_file():
        pytest.skip("../shared/data/50.tif is not beside this checkout")
    return tifffile.imread(path).astype(np.int64).sum(axis=0)


def test_nandb_triangle_of_50_tif_is_nandbs_068(mean_of_50, sums_of_50):
    # nandb's tests/testthat/test-brightness.R ("brightness_timeseries works"):
    # brightness_timeseries_folder(def = "b", thresh = "tri", frames_per_set = 20) on 50.tif writes
    # "..._thresh=Triangle=0.68_filt=NA.tif": the whole stack's Triangle threshold is 0.68.
    assert threshold.auto_threshold(mean_of_50, "triangle", convention="nandb", frames=50) == 0.68
    counts, low, scale = threshold.frame_sum_histogram(mean_of_50, 50)
    # one bin per integer frame sum 0 .. 1707 (a dark pixel sums to 0 over the 50 frames)
    assert (low, scale, counts.size) == (0, 1.0, 1708)
    np.testing.assert_array_equal(counts, np.bincount(sums_of_50.ravel()))
    assert _triangle_reference(counts.tolist()) == 34  # 34 / 50 frames = 0.68
    # kept: the pixels whose sum is >= 34 (mean >= 0.68), a sum of exactly 34 included
    kept = threshold.threshold_mask(mean_of_50, 0.68, convention="nandb", frames=50)
    np.testing.assert_array_equal(kept, sums_of_50 >= 34)
    assert (sums_of_50 == 34).any() and kept[sums_of_50 == 34].all()
    # brightflow's own convention (ImageJ on the 256-bin histogram of the 32-bit mean, range 0 .. 34.14)
    # picks bin 6: the lower edge of bin 7, 7 * 34.14 / 256 = 0.9335 (the 0.93 the user measured)
    assert threshold.auto_threshold(mean_of_50, "triangle") == pytest.approx(7 * 34.14 / 256)


def test_nandb_methods_on_50_tif_match_the_autothresholdr_references(mean_of_50, sums_of_50):
    h = np.bincount(sums_of_50.ravel()).tolist()
    # indices on the 1708-bin histogram of frame sums (smallest sum 0), from the plain-loop references
    expected = {"huang": 262, "otsu": 471, "li": 223, "mean": 522, "triangle": 34}
    assert _autothresholdr_huang(h) == expected["huang"]
    assert _autothresholdr_otsu(h) == expected["otsu"]
    assert _autothresholdr_li(h) == expected["li"]
    assert sum(g * c for g, c in enumerate(h)) // sum(h) == expected["mean"]  # C long division
    assert _triangle_reference(h) == expected["triangle"]
    counts = np.asarray(h)
    assert threshold.nandb_huang_index(counts) == expected["huang"]
    assert threshold.nandb_otsu_index(counts) == expected["otsu"]
    assert threshold.nandb_li_index(counts) == expected["li"]
    assert threshold.nandb_mean_index(counts) == expected["mean"]
    assert threshold.triangle_bin(counts) == expected["triangle"]
    # the values nandb reports, index / 50 frames: Huang 5.24, Otsu 9.42, Li 4.46, Mean 10.44, Triangle 0.68
    for method, index in expected.items():
        value = threshold.auto_threshold(mean_of_50, method, convention="nandb", frames=50)
        assert value == index / 50, method
    # nandb's "brightness works" test: brightness(50.tif, "b", thresh = "Huang", filt = "mean") has a mean
    # (NA removed) of 1.05 within testthat's relative tolerance 0.1
    mean, variance = nb.pixel_mean_variance(tifffile.imread(SHARED_DATA / "50.tif").astype(np.float64), 1)
    maps, record = threshold.threshold_and_filter(
        nb.number_and_brightness(mean, variance), "huang", "mean", convention="nandb", frames=50
    )
    assert record["value"] == 5.24 and record["convention"] == "nandb" and record["frames"] == 50
    assert np.nanmean(maps["apparent_brightness"]) == pytest.approx(1.05, rel=0.1)


def test_nandb_yen_fails_as_autothresholdr_does(mean_of_50, sums_of_50):
    h = np.bincount(sums_of_50.ravel()).tolist()
    # ImageJ's Yen starts its running maximum at Double.MIN_VALUE and finds a split; autothresholdr's
    # port starts it at DBL_MAX, which no criterion exceeds: -1, and R's auto_thresh() stops with
    # "'Yen' method failed to find threshold" when -1 + smallest sum < 0 (here the smallest sum is 0)
    assert _yen_criterion_search(h, 5e-324) > 0
    assert _yen_criterion_search(h, 1.7976931348623157e308) == -1
    assert threshold.nandb_yen_index(np.asarray(h)) == -1
    with pytest.raises(ValueError, match="'Yen' method failed to find threshold"):
        threshold.auto_threshold(mean_of_50, "yen", convention="nandb", frames=50)
    # with a smallest sum of 10, nandb's Yen threshold is (10 - 1) / frames: every pixel is kept
    image = (np.arange(16.0).reshape(4, 4) + 10) / 5
    value = threshold.auto_threshold(image, "yen", convention="nandb", frames=5)
    assert value == 9 / 5 and threshold.threshold_mask(image, value, convention="nandb", frames=5).all()


def test_nandb_methods_on_hand_built_histograms():
    two_spikes = _spikes([(50, 100), (200, 100)])
    # Otsu: every split 50..199 has the same between-class variance (37.5^2 / 0.25);
    # autothresholdr keeps the first (50), ImageJ the last (199)
    assert threshold.nandb_otsu_index(two_spikes) == 50 and threshold.otsu_bin(two_spikes) == 199
    # Li: start at the mean 125; t = 125 splits the spikes: (50 - 200) / (ln 50 - ln 200) = 150 / ln 4
    # = 108.2 -> 108; t = 108 splits them the same way -> 108 again: converged, t = 108
    assert threshold.nandb_li_index(two_spikes) == 108
    # Huang: a split between the spikes leaves each class one spike at its mean (membership 1, no
    # fuzziness); the first such split is 50
    assert threshold.nandb_huang_index(two_spikes) == 50
    # Mean: autothresholdr's own test, Mean(rep(9, 7)) == 3: (9 * (0 + 1 + ... + 6)) // 63
    assert threshold.nandb_mean_index(np.full(7, 9)) == 3
    # a constant image cannot be thresholded by nandb (one bin); brightflow keeps every pixel
    with pytest.raises(ValueError, match="constant"):
        threshold.auto_threshold(np.full((3, 3), 4.0), "otsu", convention="nandb", frames=10)


def test_nandb_frame_sums_beyond_rs_integer_range_are_scaled():
    # sums 2^31 + 10 and 2^31 + 20 (one frame): scaled by (2^31 - 1) / (2^31 + 20) and rounded,
    # as autothresholdr's mean_stack_thresh does before auto_thresh()
    image = np.array([[2.0**31 + 10, 2.0**31 + 20]])
    counts, low, scale = threshold.frame_sum_histogram(image, 1)
    assert scale == (2**31 - 1) / (2**31 + 20)
    assert low == round((2**31 + 10) * scale) and low + counts.size - 1 == 2**31 - 1
    assert counts.sum() == 2 and counts[0] == counts[-1] == 1
    value = threshold.auto_threshold(image, "mean", convention="nandb", frames=1)
    # Mean: index floor((0 + (size - 1)) / 2), reported in the unscaled units
    assert value == (low + (counts.size - 1) // 2) / scale


def test_conventions_are_checked():
    image = np.arange(16.0).reshape(4, 4)
    with pytest.raises(ValueError, match="unknown convention"):
        threshold.resolve_threshold(image, "otsu", convention="imagej")
    with pytest.raises(ValueError, match="pass the number of frames"):
        threshold.resolve_threshold(image, "otsu", convention="nandb")
    # a number needs no frames: nandb compares the mean with it as given
    assert threshold.resolve_threshold(image, 7, convention="nandb") == 7.0
    with pytest.raises(ValueError, match="unknown convention"):
        filters.nan_filter(image, "mean", convention="R")


# --- nandb's filter: border, excluded pixels, Inf ----------------------------------------------------


def test_the_border_pixel_is_repeated_outside_the_image():
    image = np.arange(25.0).reshape(5, 5)
    # (0, 2): rows -1, 0, 1 -> 0, 0, 1 and columns 1..3: 1 2 3 / 1 2 3 / 6 7 8
    assert filters.nan_filter(image, "mean")[0, 2] == pytest.approx(33 / 9)
    assert filters.nan_filter(image, "median")[0, 2] == 3.0  # 1 1 2 2 3 3 6 7 8
    # a NaN corner counts 4 times in its own window: 4 of 9, defined ...
    corner = np.ones((4, 4))
    corner[0, 0] = np.nan
    assert filters.nan_filter(corner, "mean")[0, 0] == 1.0
    # ... and with its right neighbour NaN too, 4 + 2 = 6 of 9: NaN (the part of the window inside the
    # image, 2 of 4, would have been defined)
    corner[0, 1] = np.nan
    assert np.isnan(filters.nan_filter(corner, "mean")[0, 0])
    assert np.isnan(filters.nan_filter(corner, "median")[0, 0])


def test_the_mean_is_rs_mean():
    # R's mean sums in long double and corrects by the mean residual: mean(rep(0.1, 9)) is 0.1, where the
    # plain double sum / 9 is 0.09999999999999999
    assert sum([0.1] * 9) / 9 != 0.1
    assert filters.nan_filter(np.full((3, 3), 0.1), "mean")[1, 1] == 0.1


def test_excluded_pixels_stay_nan_in_brightflows_convention_and_are_filled_in_nandbs():
    brightness = np.full((5, 5), 2.0)
    brightness[2, 2] = 8.0
    kept = np.ones((5, 5), dtype=bool)
    kept[1, 1] = False  # one excluded pixel: NaN, 1 of 9 in its window
    maps = {"intensity": np.full((5, 5), 10.0), "variance": np.full((5, 5), 30.0), "brightness": brightness}
    ours = threshold.exclude_and_filter(maps, kept, "median", ("brightness",))
    theirs = threshold.exclude_and_filter(maps, kept, "median", ("brightness",), convention="nandb")
    assert np.isnan(ours["brightness"][1, 1])
    assert theirs["brightness"][1, 1] == 2.0  # the median of its 8 finite neighbours (one of them 8.0)
    np.testing.assert_array_equal(ours["brightness"][kept], theirs["brightness"][kept])
    # intensity and variance are never filtered: NaN where excluded in both conventions
    assert np.isnan(theirs["intensity"][1, 1]) and np.isnan(theirs["variance"][1, 1])


def test_zero_denominators_are_inf_in_nandbs_convention():
    # pixel (0, 0): mean 2, variance 0 -> N = 4 / 0; (0, 1): mean 2, variance 2 -> n = 4 / (2 - 2);
    # (0, 2): mean 0, variance 0 -> B = 0 / 0 and N = 0 / 0; (0, 3): a regular pixel
    mean = np.array([[2.0, 2.0, 0.0, 4.0]])
    variance = np.array([[0.0, 2.0, 0.0, 6.0]])
    ours = nb.number_and_brightness(mean, variance)
    assert np.isnan(ours["apparent_number"][0, 0]) and np.isnan(ours["number"][0, 1])
    theirs = threshold.restore_nandb_infinities(ours)
    assert theirs["apparent_number"][0, 0] == np.inf and theirs["number"][0, 1] == np.inf
    # R's 0 / 0 is NaN too
    assert np.isnan(theirs["apparent_brightness"][0, 2]) and np.isnan(theirs["number"][0, 2])
    np.testing.assert_array_equal(theirs["number"][0, 3], ours["number"][0, 3])
    # with an offset: (mean - o) = 0 and variance - v0 < 0 gives B = -Inf, epsilon = -Inf / S - 1 = -Inf
    detector = nb.DetectorModel(offset=2.0, s_factor=2.0, readout_variance=5.0)
    ours = nb.number_and_brightness(np.array([[2.0]]), np.array([[3.0]]), detector)
    theirs = threshold.restore_nandb_infinities(ours, detector)
    assert theirs["apparent_brightness"][0, 0] == theirs["brightness"][0, 0] == -np.inf
    # excluded pixels (NaN intensity) stay NaN
    excluded = threshold.apply_threshold(nb.number_and_brightness(mean, variance), np.zeros((1, 4), dtype=bool))
    assert np.isnan(threshold.restore_nandb_infinities(excluded)["apparent_number"]).all()


def test_nandbs_filter_counts_inf_as_a_value():
    image = np.ones((5, 5))
    window = (slice(1, 4), slice(1, 4))  # the window of (2, 2), inside the image
    values = image[window].ravel()
    values[:5] = np.inf  # 5 Inf, 4 ones
    image[window] = values.reshape(3, 3)
    # nandb: Inf is a value, the median of 1 1 1 1 Inf Inf Inf Inf Inf is Inf; brightflow: Inf is missing,
    # 5 of 9 -> NaN
    assert filters.nan_filter(image, "median", convention="nandb")[2, 2] == np.inf
    assert np.isnan(filters.nan_filter(image, "median")[2, 2])
    # 4 NaN, 1 Inf, 4 ones: median of the 5 values 1 1 1 1 Inf is 1, their mean Inf
    values = np.array([np.nan] * 4 + [np.inf] + [1.0] * 4)
    image[window] = values.reshape(3, 3)
    assert filters.nan_filter(image, "median", convention="nandb")[2, 2] == 1.0
    assert filters.nan_filter(image, "mean", convention="nandb")[2, 2] == np.inf
    # an even count averages the two middle values: 3 NaN and 1 2 3 4 5 Inf -> (3 + 4) / 2
    values = np.array([np.nan] * 3 + [1.0, 2.0, 3.0, 4.0, 5.0, np.inf])
    image[window] = values.reshape(3, 3)
    assert filters.nan_filter(image, "median", convention="nandb")[2, 2] == 3.5
    # brightflow: Inf missing too, 4 of 9: the median of 1 2 3 4 5 is 3
    assert filters.nan_filter(image, "median")[2, 2] == 3.0
    # in nandb's convention a zero-denominator pixel inside a cell is counted by the filter
    mean = np.full((3, 3), 4.0)
    variance = np.full((3, 3), 8.0)
    variance[1, 1] = 0.0  # N = 16 / 0
    maps, _ = threshold.threshold_and_filter(
        nb.number_and_brightness(mean, variance), "none", "median", convention="nandb"
    )
    assert maps["apparent_number"][1, 1] == 2.0  # median of eight 2.0 and one Inf
    maps, _ = threshold.threshold_and_filter(nb.number_and_brightness(mean, variance), "none", "median")
    assert maps["apparent_number"][1, 1] == 2.0 and np.isfinite(maps["apparent_number"]).all()


MAPS = ("intensity", "variance", "apparent_brightness", "apparent_number", "brightness", "number")


NO_CORRECTION = {"method": "none"}


def _base(stacks, **nb_settings):
    """Config of the threshold tests: the true cells as the mask, no bleach correction."""
    return dict(
        input_dir=str(stacks),
        samples=str(stacks / "samples.tsv"),
        bleach_correction=NO_CORRECTION,
        segmentation={"method": "existing"},
        nb=nb_settings,
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
    config = write_config(
        workdir / "otsu.yaml", **_base(stacks, threshold="otsu", filter="median", timeseries={"frames_per_set": 30})
    )
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
    # (nandb's border rule: outside the image the border pixel is repeated)
    neighbours = np.lib.stride_tricks.sliding_window_view(np.pad(kept, 1, mode="edge"), (3, 3)).sum(axis=(2, 3))
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


def test_nandb_convention_in_the_workflow_gives_nandbs_triangle_on_its_own_data(run_workflow, shared_data, tmp_path):
    """nandb's test expects the Triangle threshold of 50.tif to be 0.68 (nandb
    tests/testthat/test-brightness.R): the workflow gives it with nb.convention nandb (nandb thresholds
    before detrending: bleach_correction none), and ImageJ's 0.93 by default."""
    folder = tmp_path / "input"
    folder.mkdir()
    (folder / "50.tif").write_bytes((shared_data / "50.tif").read_bytes())
    values = {}
    for convention in ("nandb", "brightflow"):
        config = write_config(
            tmp_path / f"{convention}.yaml",
            input_dir=str(folder),
            output_dir=f"out_{convention}",
            bleach_correction={"method": "none"},
            nb={"threshold": "triangle", "convention": convention},
        )
        run_workflow(tmp_path, "--configfile", config)
        record = json.loads((tmp_path / f"out_{convention}" / "50" / "nb_threshold.json").read_text())
        values[convention] = record["value"]
        settings = json.loads((tmp_path / f"out_{convention}" / "50" / "settings.json").read_text())
        assert settings["parameters"]["nb"]["convention"] == convention
        # the classical segmentation's defaults keep the edge of this one cell whole (issue 25)
        assert len(pd.read_csv(tmp_path / f"out_{convention}" / "50" / "average_values_in_roi.csv")) == 1
    assert values["nandb"] == pytest.approx(0.68, abs=1e-12)
    assert values["brightflow"] == pytest.approx(0.9335, abs=1e-4)


def test_nandb_yen_is_refused_at_start(run_workflow, dim_and_bright):
    workdir, stacks, _, _ = dim_and_bright
    config = write_config(workdir / "yen.yaml", **_base(stacks, threshold="yen", convention="nandb"))
    result = run_workflow(workdir, "--dry-run", "--configfile", config, check=False)
    assert result.returncode != 0
    assert "nb.threshold yen with nb.convention nandb: autothresholdr's Yen never finds a threshold" in (
        result.stdout + result.stderr
    )
