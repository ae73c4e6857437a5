"""The N&B equations against simulated ground truth (Digman 2008; Dalal 2008)."""

import os

import numpy as np
import pytest

from brightflow import nb, simulate


@pytest.mark.parametrize("epsilon, n", [(1.0, 5.0), (2.0, 3.0), (0.5, 10.0), (4.0, 1.0), (8.0, 0.5)])
def test_photon_counting_recovers_brightness_and_number(epsilon, n):
    rng = np.random.default_rng(42)
    stack = simulate.mobile_stack(np.full((48, 48), n), epsilon, 500, rng)
    mean, variance = nb.pixel_mean_variance(stack)
    maps = nb.number_and_brightness(mean, variance)
    assert np.nanmean(maps["brightness"]) == pytest.approx(epsilon, rel=0.03)
    # the pixel-wise n is a ratio of noisy estimates: compare its median, and the n of the means
    assert np.nanmedian(maps["number"]) == pytest.approx(n, rel=0.04)
    assert mean.mean() ** 2 / (variance.mean() - mean.mean()) == pytest.approx(n, rel=0.03)
    assert np.nanmean(maps["apparent_brightness"]) == pytest.approx(1 + epsilon, rel=0.02)
    assert np.nanmedian(maps["apparent_number"]) == pytest.approx(n * epsilon / (1 + epsilon), rel=0.04)
    assert np.allclose(maps["intensity"], mean) and np.allclose(maps["variance"], variance)


def test_immobile_signal_has_brightness_zero():
    rng = np.random.default_rng(1)
    stack = simulate.immobile_stack(np.full((40, 40), 20.0), 400, rng)
    maps = nb.number_and_brightness(*nb.pixel_mean_variance(stack))
    assert np.nanmean(maps["apparent_brightness"]) == pytest.approx(1.0, abs=0.02)
    assert np.nanmean(maps["brightness"]) == pytest.approx(0.0, abs=0.02)


@pytest.mark.parametrize(
    "offset, s_factor, readout_variance", [(100.0, 3.0, 25.0), (1000.0, 10.0, 0.0), (0.0, 0.5, 4.0)]
)
def test_analog_detector_model_recovers_photon_brightness(offset, s_factor, readout_variance):
    epsilon, n = 2.0, 4.0
    rng = np.random.default_rng(7)
    photons = simulate.mobile_stack(np.full((48, 48), n), epsilon, 500, rng)
    signal = simulate.analog_detector(photons, offset, s_factor, readout_variance, rng)
    detector = nb.DetectorModel(offset=offset, s_factor=s_factor, readout_variance=readout_variance)
    maps = nb.number_and_brightness(*nb.pixel_mean_variance(signal), detector)
    assert np.nanmean(maps["brightness"]) == pytest.approx(epsilon, rel=0.04)
    assert np.nanmedian(maps["number"]) == pytest.approx(n, rel=0.05)
    assert np.nanmean(maps["apparent_brightness"]) == pytest.approx(s_factor * (1 + epsilon), rel=0.03)
    # ignoring the detector model gives a wrong answer: the test can fail
    naive = nb.number_and_brightness(*nb.pixel_mean_variance(signal))
    assert abs(np.nanmean(naive["brightness"]) - epsilon) > 0.1


def test_streaming_moments_match_numpy_in_chunks_and_tiles():
    rng = np.random.default_rng(3)
    stack = rng.poisson(7.0, size=(97, 12, 10)).astype(np.uint16)
    by_frames = nb.StreamingMoments(stack.shape[1:])
    for start in range(0, 97, 10):
        by_frames.update(stack[start : start + 10])
    by_rows = nb.StreamingMoments(stack.shape[1:])
    for row in range(0, 12, 5):
        by_rows.update(stack[:, row : row + 5], rows=slice(row, row + 5))
    for moments in (by_frames, by_rows):
        assert np.allclose(moments.mean(), stack.mean(axis=0))
        assert np.allclose(moments.variance(ddof=1), stack.var(axis=0, ddof=1))
        assert np.allclose(moments.variance(ddof=0), stack.var(axis=0, ddof=0))
        assert (moments.count == 97).all()


def test_streaming_moments_with_per_frame_scale_match_numpy_on_scaled_data():
    rng = np.random.default_rng(4)
    stack = rng.poisson(30.0, size=(203, 37, 700)).astype(np.uint16)  # several working blocks
    scale = np.linspace(1.0, 1.4, 203)
    scaled = stack * scale[:, None, None]
    moments = nb.StreamingMoments(stack.shape[1:])
    for start in range(0, 203, 64):
        moments.update(stack[start : start + 64], scale=scale[start : start + 64])
    np.testing.assert_allclose(moments.mean(), scaled.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(moments.variance(ddof=1), scaled.var(axis=0, ddof=1), rtol=1e-11)
    by_rows = nb.StreamingMoments(stack.shape[1:])
    for row in range(0, 37, 10):
        by_rows.update(stack[:, row : row + 10], rows=slice(row, row + 10), scale=scale)
    np.testing.assert_allclose(by_rows.variance(ddof=0), scaled.var(axis=0, ddof=0), rtol=1e-11)
    with pytest.raises(ValueError, match="scale has 3 factors for 64 frames"):
        moments.update(stack[:64], scale=scale[:3])


def test_streaming_moments_do_not_depend_on_the_number_of_threads():
    stack = np.random.default_rng(6).poisson(12.0, size=(70, 301, 257)).astype(np.uint16)
    scale = np.linspace(1.0, 1.2, 70)
    results = []
    for threads in (1, 2, 3):
        moments = nb.StreamingMoments(stack.shape[1:])
        moments.threads = threads
        moments.update(stack, scale=scale)
        results.append((moments.mean(), moments.variance()))
    for mean, variance in results[1:]:
        np.testing.assert_array_equal(mean, results[0][0])
        np.testing.assert_array_equal(variance, results[0][1])


def test_a_jobs_thread_limit_bounds_the_threads():
    from brightflow import parallel

    try:
        parallel.set_thread_limit(1)
        assert parallel.available_cpus() == 1
        assert nb.StreamingMoments((4, 4)).threads == 1
        parallel.set_thread_limit(None)
        expected = min(2, len(os.sched_getaffinity(0)))
        assert parallel.available_cpus() == expected
        assert parallel.available_cpus(limit=1) == 1
    finally:
        parallel.set_thread_limit(None)


def test_streaming_moments_are_stable_with_a_large_offset():
    rng = np.random.default_rng(5)
    stack = 1e9 + rng.normal(0, 1.0, size=(1000, 4, 4))
    moments = nb.StreamingMoments((4, 4))
    for start in range(0, 1000, 64):
        moments.update(stack[start : start + 64])
    exact = (stack - 1e9).var(axis=0, ddof=1)
    assert np.allclose(moments.variance(), exact, rtol=1e-6)


def test_undefined_pixels_are_nan_and_negative_number_is_kept():
    mean = np.array([[0.0, 5.0, 5.0, 5.0]])
    variance = np.array([[0.0, 0.0, 5.0, 4.0]])
    maps = nb.number_and_brightness(mean, variance)
    # zero mean: B undefined; zero variance: N undefined; variance == mean: n undefined
    assert np.isnan(maps["apparent_brightness"][0, 0])
    assert np.isnan(maps["apparent_number"][0, 1])
    assert np.isnan(maps["number"][0, 2])
    # variance below the shot-noise level: n negative, not clipped
    assert maps["number"][0, 3] == pytest.approx(25.0 / (4.0 - 5.0))
    assert maps["brightness"][0, 3] == pytest.approx(4.0 / 5.0 - 1.0)
    assert not np.isinf(np.concatenate([m.ravel() for m in maps.values()])).any()


def test_variance_ddof_zero_reproduces_numpy_var():
    stack = np.random.default_rng(0).poisson(3.0, size=(20, 5, 5))
    _, unbiased = nb.pixel_mean_variance(stack, ddof=1)
    _, biased = nb.pixel_mean_variance(stack, ddof=0)
    assert np.allclose(biased, np.var(stack, axis=0))
    assert np.allclose(unbiased, biased * 20 / 19)


@pytest.mark.parametrize("kwargs", [{"s_factor": 0}, {"s_factor": -1}, {"readout_variance": -1}, {"offset": np.nan}])
def test_detector_model_rejects_impossible_values(kwargs):
    with pytest.raises(ValueError):
        nb.DetectorModel(**kwargs)


def test_pixel_mean_variance_rejects_non_stacks():
    with pytest.raises(ValueError, match="3D"):
        nb.pixel_mean_variance(np.zeros((5, 5)))


def test_ratio_of_means_forms_are_the_equations():
    """The explorer's page evaluates nb.ratio_of_means_forms instead of a copy of the equations: the forms
    give the functions' values for any detector (photon counting and analog)."""
    rng = np.random.default_rng(4)
    mean, variance = rng.uniform(1.0, 50.0, 200), rng.uniform(1.0, 200.0, 200)
    for detector in (nb.DetectorModel(), nb.DetectorModel(offset=3.0, s_factor=2.5, readout_variance=4.0)):
        forms = nb.ratio_of_means_forms(detector)

        def evaluate(form):
            top, bottom = (c[0] + c[1] * mean + c[2] * variance + c[3] * mean**2 for c in form)
            return top / bottom

        np.testing.assert_allclose(
            evaluate(forms["apparent_brightness"]), nb.apparent_brightness(mean, variance, detector), rtol=1e-12
        )
        np.testing.assert_allclose(evaluate(forms["brightness"]), nb.brightness(mean, variance, detector), rtol=1e-9)
        np.testing.assert_allclose(evaluate(forms["number"]), nb.number(mean, variance, detector), rtol=1e-12)
