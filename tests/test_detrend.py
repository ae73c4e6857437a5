"""Bleach correction (brightflow.detrend) against ground truth (Nolan et al. 2017), the streaming API,
and bleach correction in the workflow: outputs, recorded choices and what reruns."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from helpers import REPO, SHARED_DATA, jobs_run, write_config, write_stack

from brightflow import compiled, detrend, nb, simulate

NB_CORRECT_METHODS = ("boxcar", "exponential", "polynomial", "robinhood")


def _correct(stack, cells, method, parameter="auto", seed=1, tile_rows=None, dof_correction=True):
    """Fit and apply a correction as the workflow does (trace on the cells, tiles of rows)."""
    trace = detrend.cell_trace(stack, cells)
    sums = detrend.row_sums(stack, cells)
    model = detrend.fit_correction(trace, method, parameter, seed, int(cells.sum()), dof_correction)
    plan, _ = model.correction.plan(model, sums, seed)
    height = stack.shape[1]
    step = tile_rows or height
    tiles = [slice(start, min(start + step, height)) for start in range(0, height, step)]
    if model.correction.tiles:
        out = np.concatenate([model.correct_tile(stack[:, rows], rows, cells, plan) for rows in tiles], axis=1)
    else:
        out = model.correct_frames(stack)
    return model, out


def _mean_b(stack, cells, model=None):
    """Mean over the cell pixels of B, with the variance made unbiased after ``model``'s correction."""
    mean, variance = nb.pixel_mean_variance(stack)
    if model is not None:
        variance = variance * model.variance_scale()[0]
    return float(np.nanmean((variance / mean)[cells]))


@pytest.fixture(scope="module")
def immobile_bleached():
    """True B = 1 everywhere, 40% exponential bleach over 200 frames."""
    rng = np.random.default_rng(20170701)
    survival = simulate.exponential_bleach(200, 0.4)
    stack = simulate.immobile_stack(np.full((24, 24), 12.0), 200, rng, survival=survival)
    return stack, np.ones((24, 24), dtype=bool)


def test_uncorrected_bleach_inflates_brightness(immobile_bleached):
    stack, cells = immobile_bleached
    assert _mean_b(stack, cells) > 1.1


@pytest.mark.parametrize("method", NB_CORRECT_METHODS)
def test_auto_detrending_of_immobile_bleached_gives_b_1(immobile_bleached, method):
    stack, cells = immobile_bleached
    model, corrected = _correct(stack, cells, method)
    assert model.method == method
    assert model.parameter_source.startswith("auto")
    assert model.parameter > 0
    assert abs(_mean_b(corrected, cells, model) - 1.0) < 0.03


def test_linear_correction_is_biased(immobile_bleached):
    """Documented expectation: the replaced app's linear rescaling does NOT give B = 1
    (scaling a frame by c scales its variance by c^2; Nolan et al. 2017)."""
    stack, cells = immobile_bleached
    _, corrected = _correct(stack, cells, "linear")
    assert _mean_b(corrected, cells) - 1.0 > 0.1


def _mobile_brightness(method, epsilon, bleach):
    rng = np.random.default_rng(int(epsilon * 100))
    frames = 300
    survival = simulate.exponential_bleach(frames, bleach)
    number = np.full((20, 20), 12.0 / epsilon)
    stack = simulate.mobile_stack(number, epsilon, frames, rng, survival=survival)
    cells = np.ones(number.shape, dtype=bool)
    model, corrected = _correct(stack, cells, method)
    mean, variance = nb.pixel_mean_variance(corrected)
    return float(np.nanmean(nb.brightness(mean, variance * model.variance_scale()[0])))


@pytest.mark.parametrize("method", ["boxcar", "exponential", "polynomial"])
@pytest.mark.parametrize("epsilon", [1.0, 2.0, 4.0])
def test_mobile_bleached_brightness_recovered(method, epsilon):
    """40% bleach: the smoothing methods with auto recover epsilon within 5%."""
    assert _mobile_brightness(method, epsilon, 0.4) == pytest.approx(epsilon, rel=0.05)


@pytest.mark.parametrize("epsilon", [1.0, 2.0, 4.0])
def test_robinhood_mobile_brightness(epsilon):
    """Robin Hood recovers epsilon within 5% for a 10% bleach; at 40% it is low by more
    than 5% (documented size-bias of choosing pixels in proportion to their counts)."""
    assert _mobile_brightness("robinhood", epsilon, 0.1) == pytest.approx(epsilon, rel=0.05)
    strong = _mobile_brightness("robinhood", epsilon, 0.4)
    assert 0.8 * epsilon < strong < 0.95 * epsilon


# --- definitions ---------------------------------------------------------------------------------


def test_boxcar_is_a_truncated_renormalised_moving_average():
    rng = np.random.default_rng(1)
    series = rng.normal(size=(40, 3))
    half_width = 5
    expected = np.array([series[max(0, t - half_width) : t + half_width + 1].mean(axis=0) for t in range(40)])
    np.testing.assert_allclose(detrend.smooth(series, "boxcar", half_width), expected)


@pytest.mark.parametrize(
    "frames, half_width", [(40, 5), (40, 19), (40, 20), (40, 21), (40, 39), (40, 77), (7, 11), (3, 1), (4, 1)]
)
def test_boxcar_running_sum_equals_the_cumulative_formula(frames, half_width):
    series = np.random.default_rng(frames).poisson(9.0, size=(frames, 4, 5)).astype(np.float64)
    cumulative = np.concatenate([np.zeros((1, 4, 5)), np.cumsum(series, axis=0)])
    h = min(half_width, 2 * frames - 3)
    index = np.arange(frames)
    low, high = np.maximum(index - h, 0), np.minimum(index + h + 1, frames)
    expected = (cumulative[high] - cumulative[low]) / (high - low)[:, None, None]
    np.testing.assert_array_equal(detrend.smooth(series, "boxcar", half_width), expected)


def test_frame_scale_equals_correct_frames(immobile_bleached):
    stack, cells = immobile_bleached
    trace = detrend.cell_trace(stack, cells)
    for method in ("linear", "none"):
        model = detrend.fit_correction(trace, method)
        for start, stop in [(0, 200), (13, 77), (150, 200)]:
            scale = model.frame_scale(start, stop)
            factors = np.ones(stop - start) if scale is None else scale
            np.testing.assert_array_equal(
                stack[start:stop] * factors[:, None, None], model.correct_frames(stack[start:stop], start)
            )
    assert detrend.fit_correction(trace, "none").frame_scale(0, 200) is None
    with pytest.raises(ValueError, match="outside it"):
        detrend.fit_correction(trace, "linear").frame_scale(150, 201)
    with pytest.raises(ValueError, match="use correct_tile"):
        detrend.fit_correction(trace, "boxcar", 5).frame_scale(0, 10)


@pytest.mark.parametrize("dof_correction", [True, False])
def test_in_place_tile_correction_equals_the_formula(immobile_bleached, dof_correction):
    stack, cells = immobile_bleached
    model = detrend.fit_correction(detrend.cell_trace(stack, cells), "boxcar", 7, dof_correction=dof_correction)
    series = stack.astype(np.float64)
    trend = detrend.smooth(series, "boxcar", 7)
    if dof_correction:
        gains = np.sqrt(model.trace.mean() / detrend.smooth(model.trace, "boxcar", 7))
        expected = detrend.detrend_with_gains(series, trend, gains)
        np.testing.assert_allclose(expected, series.mean(axis=0) + gains[:, None, None] * (series - trend), rtol=1e-12)
    else:
        expected = detrend.detrend_smoothed(series, trend)
    np.testing.assert_array_equal(model.correct_tile(stack[:, 3:9], slice(3, 9)), expected[:, 3:9])
    np.testing.assert_array_equal(series, stack)  # the corrections leave their inputs alone


def test_compiled_loops_are_used_from_a_size_on_or_as_the_environment_says(monkeypatch):
    monkeypatch.delenv(compiled.MODE_VARIABLE, raising=False)
    assert not compiled.use_for(compiled.WORTHWHILE_VALUES - 1)
    assert compiled.use_for(compiled.WORTHWHILE_VALUES)
    monkeypatch.setenv(compiled.MODE_VARIABLE, "never")
    assert not compiled.use_for(10 * compiled.WORTHWHILE_VALUES)
    monkeypatch.setenv(compiled.MODE_VARIABLE, "Always")
    assert compiled.use_for(5)
    monkeypatch.setenv(compiled.MODE_VARIABLE, "auto")
    assert not compiled.use_for(5)  # a decision, not a state: a small recording after a large one
    monkeypatch.setenv(compiled.MODE_VARIABLE, "fast")
    with pytest.raises(ValueError, match="BRIGHTFLOW_COMPILED_LOOPS is 'fast'; use one of auto, always, never"):
        compiled.use_for(5)


def test_compiled_loops_fall_back_to_compiling_in_the_process_when_numba_cannot_cache(monkeypatch, caplog):
    # a read-only installation without a writable per-user cache: numba refuses cache=True
    import numba

    real_njit = numba.njit

    def njit_without_cache(*args, **options):
        if options.get("cache"):
            raise RuntimeError("cannot cache function 'kernel': no locator available for file 'compiled.py'")
        return real_njit(*args, **options)

    monkeypatch.setattr(numba, "njit", njit_without_cache)
    monkeypatch.setattr(compiled, "_KERNELS", {})
    series = _awkward_series(np.uint16, 30, 5, seed=2).astype(np.float64)
    with caplog.at_level("WARNING", logger="brightflow"):
        corrected = compiled.boxcar_detrend(series, 4)
    _same_bits(corrected, detrend.detrend_smoothed(series, detrend.smooth(series, "boxcar", 4)))
    assert "numba cannot cache boxcar_detrend_kernel" in caplog.text


def _same_bits(actual, expected):
    """Equal bit for bit (the sign of zero included), NaN where the other is NaN."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype == np.float64 and actual.shape == expected.shape
    nan = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(actual), nan)
    np.testing.assert_array_equal(actual[~nan].view(np.uint64), expected[~nan].view(np.uint64))


def _awkward_series(dtype, frames, pixels, seed):
    """Bleached counts in ``dtype``, with the values that take the special branches of the
    correction: a dark pixel (trend 0, m / s not finite), negative values (trend clipped at 0),
    NaN and Inf samples."""
    rng = np.random.default_rng(seed)
    level = 30.0 * np.exp(-np.arange(frames) / (frames / 2))[:, None] * rng.uniform(0.5, 2.0, pixels)
    series = rng.poisson(level).astype(np.float64)
    series[:, 0] = 0.0
    if np.issubdtype(np.dtype(dtype), np.signedinteger) or np.issubdtype(np.dtype(dtype), np.floating):
        series[:, 1] = -rng.poisson(4.0, frames)
        series[frames // 2 :, 2] -= 40.0
    if np.issubdtype(np.dtype(dtype), np.floating):
        series = series * 1.37 + rng.normal(0.0, 0.5, series.shape)
        series[frames // 3, 3] = np.nan
        series[1, 4] = np.inf
    return series.astype(dtype)


@pytest.mark.parametrize("gains", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("frames, half_width", [(3, 1), (40, 1), (40, 5), (40, 39), (40, 77), (301, 50)])
def test_compiled_boxcar_gives_the_numpy_values_bit_for_bit(dtype, frames, half_width, gains):
    # the compiled loop is the same arithmetic in the same order as smooth + detrend_with_gains (or
    # detrendr's detrend_smoothed): not close, equal, for integer and real data, the special values and
    # any number of pixels (130: two blocks of 64 and a remainder)
    series = _awkward_series(dtype, frames, 130, seed=frames + half_width)
    as_float = series.astype(np.float64)
    trace = 30.0 * np.exp(-np.arange(frames) / frames) + np.random.default_rng(frames).normal(0.0, 0.3, frames)
    model = detrend.fit_correction(trace, "boxcar", half_width, dof_correction=gains)
    factors = model.gains() if gains else None
    with np.errstate(invalid="ignore"):  # Inf - Inf in the running sums of the real data
        trend = detrend.smooth(as_float, "boxcar", half_width)
        expected = (
            detrend.detrend_with_gains(as_float, trend, factors) if gains else detrend.detrend_smoothed(as_float, trend)
        )
        _same_bits(compiled.boxcar_detrend(series, half_width, gains=factors), expected)
        # a share of the columns, as each thread of the tile correction does: the others are left alone
        out = np.full(series.shape, -7.0)
        compiled.boxcar_detrend(series, half_width, out=out, columns=slice(3, 70), gains=factors)
        _same_bits(out[:, 3:70], expected[:, 3:70])
        assert (out[:, :3] == -7.0).all() and (out[:, 70:] == -7.0).all()
        # and through the tile correction the N&B step applies, on a (t, rows, x) tile, either way
        tile = series.reshape(frames, 10, 13)
        for loops in (True, False):
            _same_bits(model.correct_tile(tile, slice(0, 10), compiled=loops).reshape(frames, -1), expected)


def test_compiled_boxcar_checks_its_arguments():
    series = np.ones((10, 4), dtype=np.uint16)
    with pytest.raises(ValueError, match="at least 1 frame"):
        compiled.boxcar_detrend(series, 0)
    with pytest.raises(ValueError, match="2D"):
        compiled.boxcar_detrend(series[None], 3)
    with pytest.raises(ValueError, match="C-contiguous float64"):
        compiled.boxcar_detrend(series, 3, out=np.empty((10, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="step 1"):
        compiled.boxcar_detrend(series, 3, columns=slice(0, 4, 2))
    with pytest.raises(ValueError, match="one value per frame"):
        compiled.boxcar_detrend(series, 3, gains=np.ones(9))
    with pytest.raises(ValueError, match="at least 2 frames"):
        compiled.boxcar_detrend(series[:1], 3)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int32, np.int64])
def test_compiled_row_sums_and_sample_counts_are_exact(dtype):
    # the bleach step's one read: the cells' sums of every row and frame (the fit's trace, Robin
    # Hood's plan) and the doubtful-sample counts, against plain numpy on the same frames
    from brightflow import quality

    info = np.iinfo(dtype)
    rng = np.random.default_rng(3)
    frames = rng.integers(max(info.min, -1000), min(info.max, 70000) + 1, size=(9, 17, 70)).astype(dtype)
    frames[0, 0, :5] = info.max  # saturated samples
    cells = rng.random((17, 70)) < 0.4
    cells[5] = False  # a row without cells sums to 0
    expected = (frames.astype(np.int64) * cells).sum(axis=2)
    for loops in (True, False):
        sums = detrend.row_sums(frames, cells, compiled=loops)
        assert sums.dtype == np.int64
        np.testing.assert_array_equal(sums, expected)
    np.testing.assert_array_equal(compiled.integer_row_sums(frames, cells), expected)
    for saturation, loops in ((None, True), (250.5, True), (float(info.max), True), (250.5, False)):
        counts = quality.SampleCounts((17, 70), saturation, compiled=loops)
        counts.update(frames[:4])
        counts.update(frames[4:])
        expected_saturated = (frames >= saturation).sum(axis=0) if saturation is not None else 0
        np.testing.assert_array_equal(counts.saturated, expected_saturated)
        np.testing.assert_array_equal(counts.negative, (frames < 0).sum(axis=0))
        np.testing.assert_array_equal(counts.non_finite, 0)
    with pytest.raises(ValueError, match="integer frames"):
        compiled.integer_row_sums(frames.astype(np.float32), cells)


def test_exponential_filter_weights_and_half_width():
    assert detrend.exponential_half_width(10.0, 100) == int(np.floor(-10.0 * np.log(0.05)))
    assert detrend.exponential_half_width(1000.0, 50) == 2 * 50 - 3
    rng = np.random.default_rng(2)
    series = rng.normal(size=(60, 2))
    tau = 4.0
    half_width = detrend.exponential_half_width(tau, 60)
    expected = []
    for t in range(60):
        index = np.arange(max(0, t - half_width), min(60, t + half_width + 1))
        weights = np.exp(-np.abs(index - t) / tau)
        expected.append((weights[:, None] * series[index]).sum(axis=0) / weights.sum())
    np.testing.assert_allclose(detrend.smooth(series, "exponential", tau), np.array(expected), rtol=1e-9)


def test_polynomial_fit_stays_exact_at_high_degree():
    """A Legendre basis on scaled time keeps a degree-12 fit exact over 500 frames,
    where a raw Vandermonde matrix in frame numbers would be hopelessly ill-conditioned."""
    frames = 500
    time = np.arange(frames, dtype=float)
    coefficients = np.random.default_rng(3).normal(size=13)
    truth = np.polynomial.legendre.legval(np.linspace(-1, 1, frames), coefficients) + 50
    series = np.stack([truth, 2 * truth], axis=1)
    np.testing.assert_allclose(detrend.smooth(series, "polynomial", 12), series, rtol=1e-9)
    line = 3.0 + 0.5 * time
    np.testing.assert_allclose(detrend.smooth(line[:, None], "polynomial", 1)[:, 0], line, rtol=1e-12)


def test_correction_formula_keeps_mean_and_clips_trend():
    series = np.array([[4.0], [6.0], [5.0], [9.0]])
    trend = np.array([[2.0], [4.0], [-1.0], [8.0]])
    mean = series.mean()
    expected = [
        mean + (4 - 2) * np.sqrt(mean / 2),
        mean + (6 - 4) * np.sqrt(mean / 4),
        mean + (5 - 0) * 1.0,  # trend clipped to 0: factor sqrt(m/0) is not finite -> 1
        mean + (9 - 8) * np.sqrt(mean / 8),
    ]
    np.testing.assert_allclose(detrend.detrend_smoothed(series, trend)[:, 0], expected)


def test_smoothing_corrections_are_not_rounded(immobile_bleached):
    """brightflow keeps the corrected values real (no stochastic rounding), so B is not
    raised by rounding noise; detrendr's rounding is available and does raise it."""
    stack, cells = immobile_bleached
    model, corrected = _correct(stack, cells, "boxcar")
    assert corrected.dtype == np.float64
    assert np.any(corrected != np.round(corrected))
    # the formula keeps the pixel means on average (each pixel's only approximately)
    assert corrected.mean() == pytest.approx(stack.mean(), rel=0.005)
    # At 2 counts per frame detrendr's rounding adds about 1/(6*2) to B; no rounding does not.
    rng = np.random.default_rng(7)
    dim = simulate.immobile_stack(np.full((24, 24), 2.0), 200, rng, survival=simulate.exponential_bleach(200, 0.4))
    model, corrected = _correct(dim, cells, "boxcar")
    rounded = detrend.stochastic_round(corrected, np.random.default_rng(1))
    assert rounded.dtype == np.int64 and rounded.min() >= 0
    assert abs(_mean_b(corrected, cells) - 1.0) < 0.03
    assert _mean_b(rounded, cells) - _mean_b(corrected, cells) > 0.04


def test_stochastic_round_is_unbiased_and_clips_negatives():
    values = np.full(200_000, 2.3)
    rounded = detrend.stochastic_round(values, np.random.default_rng(0))
    assert set(np.unique(rounded)) == {2, 3}
    assert rounded.mean() == pytest.approx(2.3, abs=0.01)
    assert detrend.stochastic_round(np.array([-0.5, -3.0]), np.random.default_rng(0)).tolist() == [0, 0]


# --- Robin Hood ----------------------------------------------------------------------------------


def test_robinhood_preserves_pixel_sums_counts_and_is_seeded(immobile_bleached):
    stack, cells = immobile_bleached
    cells = cells.copy()
    cells[:, :3] = False  # swaps only among the cell pixels
    model, first = _correct(stack, cells, "robinhood", parameter=10**7, seed=5)
    assert model.parameter == 10**7
    assert first.dtype == np.int64
    assert first.min() >= 0
    np.testing.assert_array_equal(first.sum(axis=0), stack.sum(axis=0))
    np.testing.assert_array_equal(first[:, ~cells], stack[:, ~cells])
    assert np.count_nonzero(first != stack) > 1000
    before = stack[:, cells].sum(axis=1).std()
    after = first[:, cells].sum(axis=1).std()
    assert after < 0.05 * before
    _, again = _correct(stack, cells, "robinhood", parameter=10**7, seed=5)
    np.testing.assert_array_equal(first, again)
    _, other = _correct(stack, cells, "robinhood", parameter=10**7, seed=6)
    assert np.any(other != first)


def test_robinhood_does_not_depend_on_the_tiling(immobile_bleached):
    stack, cells = immobile_bleached
    _, whole = _correct(stack, cells, "robinhood", parameter=30000, seed=3)
    for rows in (1, 5, 7):
        _, tiled = _correct(stack, cells, "robinhood", parameter=30000, seed=3, tile_rows=rows)
        np.testing.assert_array_equal(tiled, whole)


def test_robinhood_plan_balances_frames_exactly_at_max_swaps(immobile_bleached):
    stack, cells = immobile_bleached
    sums = detrend.row_sums(stack, cells)
    plan, info = detrend.robinhood_plan(sums, 10**12, seed=1)
    assert info["swaps_done"] == info["max_swaps"]
    np.testing.assert_array_equal(plan[:, 0].sum(axis=1), plan[:, 1].sum(axis=1))
    corrected = detrend.robinhood_corrected_sums(sums, plan)
    assert np.abs(corrected - corrected.mean()).max() <= 1.0
    applied = detrend.robinhood_apply(stack, plan, cells, 0, seed=1)
    np.testing.assert_array_equal(applied.sum(axis=(1, 2)), corrected)


def test_robinhood_rejects_non_integer_data():
    with pytest.raises(ValueError, match="integer"):
        detrend.robinhood_plan(np.ones((5, 2)) * 1.5, 3, 1)


def test_model_is_json_and_records_the_choice(immobile_bleached):
    stack, cells = immobile_bleached
    trace = detrend.cell_trace(stack, cells)
    model = detrend.fit_correction(trace, "boxcar", "auto", 1, int(cells.sum()))
    restored = json.loads(json.dumps(model.to_json()))
    assert restored["method"] == "boxcar" and restored["seed"] == 1 and restored["dof_correction"] is True
    assert restored["auto"]["search"] and restored["auto"]["tolerance"] > 0
    assert restored["degrees_of_freedom"]["residual"] < 199
    assert len(restored["trace"]) == len(restored["trend"]) == 200
    again = detrend.CorrectionModel.from_json(restored)
    np.testing.assert_array_equal(again.trace, model.trace)
    np.testing.assert_array_equal(
        again.variance_scale([(0, 50), (20, 200)]), model.variance_scale([(0, 50), (20, 200)])
    )
    assert again.describe_parameter() == model.describe_parameter() == f"l = {model.parameter} (auto)"
    set_model = detrend.fit_correction(trace, "exponential", 25, 1, int(cells.sum()))
    assert set_model.parameter == 25.0 and "configuration" in set_model.parameter_source
    with pytest.raises(ValueError, match="whole number"):
        detrend.fit_correction(trace, "boxcar", 2.5, 1, int(cells.sum()))
    with pytest.raises(ValueError, match="unknown bleach correction method 'smooth'; use one of none, linear"):
        detrend.fit_correction(trace, "smooth")
    with pytest.raises(ValueError, match="at least 4 frames"):
        detrend.fit_correction(trace[:3], "polynomial", 2)
    with pytest.raises(ValueError, match="number >= 1"):
        detrend.fit_correction(trace, "exponential", 0.3)


# --- real data -----------------------------------------------------------------------------------

BLEACHED = SHARED_DATA / "bleached.tif"


@pytest.mark.skipif(not BLEACHED.is_file(), reason=f"{BLEACHED} not available")
@pytest.mark.parametrize("method", NB_CORRECT_METHODS)
def test_real_bleached_recording(method):
    """detrendr's bleached.tif (500 x 25 x 30, uint8, raw B about 6.5, not photon counting).

    Smoothing methods remove the global bleach and slow per-pixel drifts (B about 1.2-1.5);
    Robin Hood only evens out the frame sums, which explains about 2 of the 6.5 (B about 4.4,
    the same as with every possible swap done)."""
    stack = tifffile.imread(BLEACHED)
    cells = np.ones(stack.shape[1:], dtype=bool)
    raw = _mean_b(stack, cells)
    assert raw == pytest.approx(6.5, abs=0.1)
    model, corrected = _correct(stack, cells, method)
    assert model.method == method and model.parameter > 0
    assert model.parameter_source.startswith("auto")
    limit = 4.7 if method == "robinhood" else 2.0
    assert _mean_b(corrected, cells, model) < limit


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auto_on_a_trend_free_recording_is_the_least_severe_smoothing(seed):
    """Without bleaching the leftover criterion keeps the least severe smoothing (boxcar: a window over
    the whole recording, the same as no correction); with a real bleach it narrows. Either way the
    method asked for is applied, never silently replaced. detrendr's criterion (dof_correction false)
    replaces it by none when its simulation sees no trend, and says so."""
    rng = np.random.default_rng(seed)
    # the cells' mean of 40,000 pixels of mobile molecules (epsilon 1, 6 counts per frame): the
    # leftover estimate's own noise (about (1 + epsilon) / P sqrt(2 / T) in B) is a tenth of the tolerance
    pixels = 40_000
    trace = rng.poisson(rng.poisson(6.0 * pixels, 100)) / pixels
    least = {"boxcar": 99, "exponential": 400.0, "polynomial": 1}
    for method in ("boxcar", "exponential", "polynomial"):
        model = detrend.fit_correction(trace, method, "auto", cell_pixels=pixels)
        assert model.method == method and model.replaced is None
        assert model.parameter == pytest.approx(least[method]), model.auto["search"]
        assert "no bleaching trend beyond the noise" in model.auto["note"]
        # detrendr's criterion on a flat trace (a decision of its seeded simulations, which can go either way
        # on noise: the reason it is no longer the default)
        detrendr = detrend.fit_correction(np.full(100, 6.0), method, "auto", cell_pixels=pixels, dof_correction=False)
        assert detrendr.method == "none" and detrendr.method_requested == method
        assert detrendr.replaced.startswith("no detrending needed")
        assert detrendr.describe_parameter().startswith(f"{method} not applied: no detrending needed")
    # boxcar with l = T - 1 is no correction (to rounding)
    stack = simulate.mobile_stack(np.full((40, 40), 6.0), 1.0, 100, rng)
    model = detrend.fit_correction(trace, "boxcar", 99, cell_pixels=pixels)
    np.testing.assert_allclose(model.correct_tile(stack[:, :5], slice(0, 5)), stack[:, :5], rtol=0, atol=1e-12)
    assert model.variance_scale()[0] == pytest.approx(1.0, abs=1e-12)
    # a real 40% bleach narrows the window, so that the leftover trend is within the tolerance
    bleached = simulate.mobile_stack(
        np.full((40, 40), 6.0), 1.0, 100, rng, survival=simulate.exponential_bleach(100, 0.4)
    )
    model = detrend.fit_correction(bleached.reshape(100, -1).mean(axis=1), "boxcar", "auto", cell_pixels=1600)
    assert model.method == "boxcar" and 1 <= model.parameter < 30
    assert model.auto["search"][-1]["leftover_B"] <= model.auto["tolerance"] < model.auto["search"][0]["leftover_B"]


# --- the one streaming API: a stack fitted and read corrected block by block ---------------------


@pytest.fixture(scope="module")
def bleached_cells():
    """A 30%-bleached immobile stack (uint16) with cells in part of the frame."""
    rng = np.random.default_rng(5)
    stack = simulate.immobile_stack(np.full((20, 16), 9.0), 120, rng, survival=simulate.exponential_bleach(120, 0.3))
    cells = np.zeros((20, 16), dtype=bool)
    cells[3:17, 2:12] = True
    return stack.astype(np.uint16), cells


def _assembled(stack, blocks):
    """The corrected stack put together from its blocks, checking every value comes exactly once."""
    out = np.full(stack.shape, np.nan)
    seen = np.zeros(stack.shape, dtype=int)
    for block in blocks:
        out[block.frames, block.rows] = block.corrected()
        seen[block.frames, block.rows] += 1
    assert (seen == 1).all()
    return out


@pytest.mark.parametrize("method", list(detrend.METHODS))
def test_corrected_blocks_give_the_whole_stack_correction_for_any_method(bleached_cells, method):
    stack, cells = bleached_cells
    parameter = {"boxcar": 10, "exponential": 12.0, "polynomial": 2, "robinhood": 3000}.get(method, "auto")
    model, plan = detrend.fit_to_stack(stack, cells, method, parameter, seed=3)
    tiled = model.correction.tiles
    if tiled:
        expected = model.correct_tile(stack, slice(0, stack.shape[1]), cells, plan)
    else:
        expected = model.correct_frames(stack)
    # tiny budgets: many chunks of frames, tiles of one or two rows
    small = dict(frame_budget=stack[0].size * 8 * 7, tile_budget=stack.shape[0] * stack.shape[2] * 8 * 6 * 2)
    blocks = list(detrend.corrected_blocks(stack, model, cells, plan, **small))
    assert len(blocks) > 5
    # chunks of frames for the per-frame methods, tiles of rows across every frame for the others
    chunks = all(block.rows == slice(None) for block in blocks)
    assert chunks == (not tiled) == (method in ("none", "linear"))
    np.testing.assert_array_equal(_assembled(stack, blocks), expected)
    # tiles of rows for a per-frame method too (two channels streamed side by side)
    forced = list(detrend.corrected_blocks(stack, model, cells, plan, tiles=True, **small))
    np.testing.assert_allclose(_assembled(stack, forced), expected, rtol=1e-15, atol=0)


@pytest.mark.parametrize("method", ["boxcar", "linear", "robinhood"])
def test_the_corrected_trace_is_summed_from_the_blocks_as_they_stream(bleached_cells, method):
    stack, cells = bleached_cells
    chunks = []
    model, plan = detrend.fit_to_stack(
        stack, cells, method, 3000 if method == "robinhood" else "auto", 1, observe=chunks.append
    )
    # the fit read every frame once, and showed each chunk to the observer
    np.testing.assert_array_equal(np.concatenate(chunks), stack)
    if model.correction.tiles:
        expected = model.correct_tile(stack, slice(0, stack.shape[1]), cells, plan)
    else:
        expected = model.correct_frames(stack)
    trace = detrend.CorrectedTrace(model, cells)
    for block in detrend.corrected_blocks(stack, model, cells, plan, frame_budget=stack[0].size * 8 * 9):
        trace.update(block)
    np.testing.assert_allclose(trace.mean(), expected[:, cells].mean(axis=1), rtol=1e-12)


def test_fit_to_stack_checks_the_stack(bleached_cells):
    stack, cells = bleached_cells
    model, plan = detrend.fit_to_stack(stack, cells, "boxcar", 10, 1)
    assert model.applied_to == "every pixel" and plan.shape == (0, 2, stack.shape[0])
    # Robin Hood: integer counts >= 0 only, with messages that say what to use instead
    with pytest.raises(ValueError, match="needs an integer stack.*boxcar, exponential or polynomial"):
        detrend.fit_to_stack(stack.astype(np.float32), cells, "robinhood", "auto", 1)
    with pytest.raises(ValueError, match="negative pixel values"):
        detrend.fit_to_stack(stack.astype(np.int32) - 50, cells, "robinhood", "auto", 1)
    # each channel draws its own random numbers
    assert detrend.channel_seed(4) == 4 and detrend.channel_seed(4, 1) == 4 and detrend.channel_seed(4, 3) == 6
    first = detrend.fit_to_stack(stack, cells, "robinhood", 3000, seed=4, channel=1)[1]
    second = detrend.fit_to_stack(stack, cells, "robinhood", 3000, seed=4, channel=2)[1]
    assert not np.array_equal(first, second)


def _bleached_experiment(folder):
    """One 48x48, 60-frame recording: a bright disc of immobile signal that bleaches 40%."""
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:48, :48]
    disc = (yy - 24) ** 2 + (xx - 24) ** 2 < 15**2
    mean_map = np.where(disc, 30.0, 1.0)
    stack = simulate.immobile_stack(mean_map, 60, rng, survival=simulate.exponential_bleach(60, 0.4))
    folder.mkdir()
    write_stack(folder / "bleached.tif", stack.astype(np.uint16))
    return disc


def test_bleach_correction_outputs_and_reruns(run_workflow, tmp_path):
    disc = _bleached_experiment(tmp_path / "input")
    base = {"input_dir": str(tmp_path / "input"), "output_dir": "results"}
    config = write_config(tmp_path / "boxcar.yaml", **base, bleach_correction={"method": "boxcar"})
    run_workflow(tmp_path, "--configfile", config)
    folder = tmp_path / "results" / "bleached"
    model = json.loads((folder / "bleach_correction.json").read_text())
    assert model["method"] == "boxcar"
    assert model["parameter_source"].startswith("auto") and model["parameter"] >= 1
    assert model["seed"] == 1
    corrected = json.loads((folder / "bleach_corrected_trace.json").read_text())["corrected_trace"]
    assert len(model["trace"]) == len(corrected) == len(model["trend"]) == 60
    # the correction flattens the cells' bleaching trend, keeping their mean
    assert np.std(corrected) < 0.3 * np.std(model["trace"]) and np.mean(corrected) == pytest.approx(
        np.mean(model["trace"]), rel=0.02
    )
    assert (folder / "Bleach_correction.png").stat().st_size > 0
    brightness = np.load(folder / "apparent_brightness.npy")
    assert abs(np.nanmean(brightness[disc]) - 1.0) < 0.1

    config = write_config(
        tmp_path / "robinhood.yaml", **base, bleach_correction={"method": "robinhood", "parameter": 5000, "seed": 3}
    )
    result = run_workflow(tmp_path, "--configfile", config)
    ran = jobs_run(result)
    for rule in ("bleach_correction", "nb_maps", "figures", "tables", "settings", "aggregate"):
        assert ran.get(rule) == 1, (rule, ran)
    for rule in ("projection", "segmentation", "analysis_mask"):
        assert rule not in ran, (rule, ran)
    model = json.loads((folder / "bleach_correction.json").read_text())
    assert (model["method"], model["parameter"], model["seed"]) == ("robinhood", 5000, 3)
    assert model["swaps_done"] == 5000
    assert "configuration" in model["parameter_source"]
    plan = np.load(folder / "bleach_correction_swaps.npy")
    assert plan.shape == (48, 2, 60) and plan[:, 0].sum() == plan[:, 1].sum() == 5000
    settings = json.loads((folder / "settings.json").read_text())
    assert settings["bleach_correction_used"]["method"] == "robinhood"

    again = run_workflow(tmp_path, "--configfile", config)
    assert jobs_run(again) == {}


# --- the unbiased variance after detrending (brightflow.detrend.dof) ----------------------------

SMOOTHERS_AND_PARAMETERS = [
    ("boxcar", 1),
    ("boxcar", 2),
    ("boxcar", 5),
    ("boxcar", 10**4),
    ("exponential", 0.5),
    ("exponential", 1.0),
    ("exponential", 3.3),
    ("exponential", 1e3),
    ("polynomial", 1),
    ("polynomial", 2),
    ("polynomial", 5),
]


@pytest.mark.parametrize("frames", [3, 4, 7, 50, 101])
def test_residual_dof_closed_forms_equal_the_dense_matrices(frames):
    """D_W = tr((I_W - J_W/|W|) A_W A_W^T), A = G (I - S) G^-1, from diag(S), S^T and (S o S) in O(T),
    against the T x T matrices themselves, for every smoother, edge, parameter, gains and window."""
    rng = np.random.default_rng(frames)
    gains = np.sqrt(1.0 / (1.0 - 0.4 * np.arange(frames) / frames)) * (1.0 + 0.01 * rng.normal(size=frames))
    windows = [(0, frames), (0, min(frames, 5)), (frames // 3, frames)] + ([(10, 30)] if frames > 30 else [])
    checked = 0
    for method, parameter in SMOOTHERS_AND_PARAMETERS:
        if (method == "polynomial" and parameter >= frames - 1) or (
            method == "exponential" and detrend.exponential_half_width(parameter, frames) < 1
        ):
            continue
        smoother = detrend.SMOOTHERS[method](frames, parameter)
        matrix = smoother.matrix()
        np.testing.assert_allclose(matrix @ gains, smoother.apply(gains), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(smoother.diagonal(), np.diag(matrix), rtol=1e-12)
        np.testing.assert_allclose(smoother.transpose(gains), matrix.T @ gains, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(smoother.squared(gains), (matrix**2) @ gains, rtol=1e-10, atol=1e-12)
        residual = gains[:, None] * (np.eye(frames) - matrix) / gains[None, :]
        expected = [
            np.trace((np.eye(stop - start) - 1.0 / (stop - start)) @ residual[start:stop] @ residual[start:stop].T)
            for start, stop in windows
        ]
        np.testing.assert_allclose(detrend.residual_dof(smoother, gains, windows), expected, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(
            detrend.dense_residual_dof(smoother.apply, gains, windows), expected, rtol=1e-10, atol=1e-10
        )
        checked += 1
    assert checked >= 5


def test_residual_dof_of_known_smoothers():
    frames = 60
    ones = np.ones(frames)
    # no smoothing: the usual T - 1; a polynomial of degree d: T - d - 1 (a projection of rank d + 1)
    assert detrend.dense_residual_dof(None, ones)[0] == pytest.approx(frames - 1)
    for degree in (1, 2, 7):
        smoother = detrend.PolynomialSmoother(frames, degree)
        assert detrend.residual_dof(smoother, ones)[0] == pytest.approx(frames - degree - 1)
    # a boxcar window over the whole recording is the pixel mean: nothing more than T - 1 is lost
    assert detrend.residual_dof(detrend.BoxcarSmoother(frames, frames - 1), ones)[0] == pytest.approx(frames - 1)
    # the two channels' covariance: the same as the variance when both corrections are the same
    trace = 20.0 * np.exp(-np.arange(frames) / 80.0)
    boxcar = detrend.fit_correction(trace, "boxcar", 6)
    assert detrend.cross_variance_scale(boxcar, boxcar)[0] == pytest.approx(boxcar.variance_scale()[0], rel=1e-12)
    # and 1 when either takes its variance as computed
    assert detrend.cross_variance_scale(boxcar, detrend.fit_correction(trace, "linear"))[0] == 1.0


def _simulated_cells(frames, pixels, epsilon, bleach, seed):
    """(t, pixels) counts of one large cell: shot noise of 20 counts per frame (epsilon 0), or mobile
    molecules of brightness epsilon and 20 / epsilon molecules per pixel (Digman 2008), bleached."""
    rng = np.random.default_rng(seed)
    survival = simulate.exponential_bleach(frames, bleach)[:, None]
    if epsilon == 0:
        return rng.poisson(20.0 * survival, size=(frames, pixels))
    return rng.poisson(epsilon * rng.poisson(20.0 / epsilon * survival, size=(frames, pixels)))


def _ratio_of_means_epsilon(corrected, scale, batches=20):
    """The cell's ratio-of-means B - 1 (the CSV's ``Brightness (ratio of means)``) and its standard error
    from ``batches`` independent groups of pixels; B itself for shot noise is returned as B - 1 too."""
    mean = corrected.mean(axis=0)
    variance = corrected.var(axis=0, ddof=1) * scale
    groups = [variance[index::batches].mean() / mean[index::batches].mean() - 1.0 for index in range(batches)]
    return float(variance.mean() / mean.mean() - 1.0), float(np.std(groups, ddof=1) / np.sqrt(batches))


def _unbiased_check(frames, pixels, epsilon, bleach, method, parameter, seed, dof_correction=True):
    counts = _simulated_cells(frames, pixels, epsilon, bleach, seed)
    model = detrend.fit_correction(counts.mean(axis=1), method, parameter, 1, pixels, dof_correction)
    corrected = model.correct_tile(counts[:, None, :], slice(0, 1))[:, 0, :]
    return model, _ratio_of_means_epsilon(corrected, model.variance_scale()[0])


@pytest.mark.parametrize(
    "method, parameter",
    [
        ("boxcar", 1),
        ("boxcar", 10),
        ("boxcar", 40),
        ("exponential", 1.0),
        ("exponential", 10.0),
        ("exponential", 60.0),
        ("polynomial", 1),
        ("polynomial", 3),
        ("polynomial", 8),
        ("boxcar", "auto"),
        ("exponential", "auto"),
        ("polynomial", "auto"),
    ],
)
def test_no_smoother_and_no_parameter_biases_brightness(method, parameter):
    """100 frames, 40,000 pixels, no bleaching: shot noise gives B = 1 within 0.5% and mobile molecules
    (epsilon 0.5) their epsilon within 1%, for every method and parameter, however much of the variance
    the smoother takes (up to 60% for exponential tau = 1). Standard errors: 0.07% of B and 0.2% of
    epsilon, asserted below a third of each tolerance."""
    for epsilon, tolerance in ((0.0, 0.005), (0.5, 0.01)):
        model, (estimate, error) = _unbiased_check(100, 40_000, epsilon, 0.0, method, parameter, seed=7)
        truth = epsilon if epsilon else 0.0
        scale = epsilon if epsilon else 1.0  # epsilon relative to itself, B (= 1 + 0) relative to 1
        assert error / scale < tolerance / 3
        assert abs(estimate - truth) / scale < tolerance, (model.describe_parameter(), estimate, error)
        # without the correction of the degrees of freedom the same smoother is biased low
        if model.degrees_of_freedom["effective"] > 2:
            _, (uncorrected, _) = _unbiased_check(100, 40_000, epsilon, 0.0, method, parameter, 7, False)
            assert (uncorrected - truth) / scale < -tolerance


@pytest.mark.parametrize("bleach", [0.1, 0.4])
@pytest.mark.parametrize("method", ["boxcar", "exponential", "polynomial"])
def test_bleached_brightness_with_the_automatic_parameter_is_unbiased(method, bleach):
    """200 frames, 20,000 pixels bleached by 10% or 40%, the automatic parameter: shot noise B within
    0.5% of 1, epsilon 1 within 1% (standard errors 0.07% and 0.2%, asserted below a third of it)."""
    for epsilon, tolerance in ((0.0, 0.005), (1.0, 0.01)):
        model, (estimate, error) = _unbiased_check(200, 20_000, epsilon, bleach, method, "auto", seed=11)
        scale = epsilon if epsilon else 1.0
        assert model.method == method and model.parameter_source.startswith("auto")
        assert error / scale < tolerance / 3
        assert abs(estimate - epsilon) / scale < tolerance, (model.describe_parameter(), estimate, error)


def test_detrendr_numbers_lose_the_smoothers_share_of_the_variance():
    """The cause of the bias (issue 21): with detrendr's correction (dof_correction false) pure shot
    noise keeps only D / (T - 1) of its variance, as the trace identity predicts (within 0.5%; standard
    error 0.1%)."""
    for method, parameter in (("boxcar", 10), ("polynomial", 2), ("exponential", 10.0)):
        model, (estimate, error) = _unbiased_check(100, 20_000, 0.0, 0.0, method, parameter, 3, False)
        assert model.variance_scale()[0] == 1.0 and model.degrees_of_freedom is None
        smoother = detrend.SMOOTHERS[method](100, parameter)
        predicted = detrend.residual_dof(smoother, np.ones(100))[0] / 99
        assert error < 0.0015
        assert 1.0 + estimate == pytest.approx(predicted, abs=0.005)


def test_time_series_windows_are_unbiased_after_detrending():
    """N&B in windows of 20 frames after a boxcar correction of the whole 200-frame recording (40%
    bleach): each window's variance divided by its own residual degrees of freedom gives shot noise
    B = 1 within 1% in every window (standard error 0.3%)."""
    counts = _simulated_cells(200, 20_000, 0.0, 0.4, seed=5)
    model = detrend.fit_correction(counts.mean(axis=1), "boxcar", 4, 1, 20_000)
    corrected = model.correct_tile(counts[:, None, :], slice(0, 1))[:, 0, :]
    windows = [(start, start + 20) for start in range(0, 200, 20)]
    scales = model.variance_scale(windows)
    assert scales.min() > 1.05  # l = 4 takes about a tenth of a 20-frame window's variance
    for (start, stop), scale in zip(windows, scales, strict=True):
        estimate, error = _ratio_of_means_epsilon(corrected[start:stop], scale)
        assert error < 0.004
        assert abs(estimate) < 0.01, (start, estimate, error)


def test_cross_covariance_is_unbiased_after_each_channels_correction():
    """Two channels sharing molecules (Digman et al. 2009): each photon draw independent given the
    molecules, so cov = epsilon1 epsilon2 n. Each channel detrended by its own boxcar: the covariance
    divided by the pair's residual degrees of freedom is within 1.5% of the truth (standard error 0.4%)."""
    rng = np.random.default_rng(9)
    frames, pixels, number = 100, 40_000, 10.0
    molecules = rng.poisson(number, size=(frames, pixels))
    first, second = rng.poisson(2.0 * molecules), rng.poisson(1.0 * molecules)
    models = [
        detrend.fit_correction(channel.mean(axis=1), "boxcar", parameter, 1, pixels)
        for channel, parameter in ((first, 3), (second, 12))
    ]
    corrected = [
        model.correct_tile(channel[:, None, :], slice(0, 1))[:, 0, :]
        for model, channel in zip(models, (first, second), strict=True)
    ]
    centred = [values - values.mean(axis=0) for values in corrected]
    covariance = (centred[0] * centred[1]).sum(axis=0) / (frames - 1) * detrend.cross_variance_scale(*models)[0]
    groups = [covariance[index::20].mean() / (2.0 * number) for index in range(20)]
    assert np.std(groups, ddof=1) / np.sqrt(20) < 0.005
    assert covariance.mean() / (2.0 * number) == pytest.approx(1.0, abs=0.015)
    uncorrected = (centred[0] * centred[1]).sum(axis=0).mean() / (frames - 1) / (2.0 * number)
    assert uncorrected < 0.96


def test_the_method_list_is_the_schemas_and_no_code_compares_a_method_name():
    """One list of methods (brightflow.detrend.METHODS), the schema's enum tested against it, and no
    method name compared outside the method classes (issue 22)."""
    import re

    import yaml

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    bleach = schema["properties"]["bleach_correction"]["properties"]
    assert sorted(bleach["method"]["enum"]) == sorted(detrend.METHODS)
    assert bleach["method"]["default"] == detrend.DEFAULT_METHOD
    names = "|".join(name for name in detrend.METHODS if name != "none")
    comparison = re.compile(
        rf"""(==|!=)\s*["']({names})["']|["']({names})["']\s*(==|!=)|\bin\s*\([^)]*["']({names})["']"""
    )
    offenders = []
    for path in sorted((REPO / "brightflow").rglob("*.py")) + sorted((REPO / "workflow").rglob("*.smk")):
        if path.name == "methods.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            none = re.search(
                r"""(model|fitted|correction)\w*(\.method|\[["']method["']\])\s*(==|!=)\s*["']none""", line
            )
            if comparison.search(line) or none:
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, offenders


def test_bleaching_the_automatic_parameter_cannot_remove_is_reported():
    """A jump in the recording (a focus change) no smoothing removes: the most severe setting is used and
    the model says how much bleaching is left, for the per-cell Warnings ('bleaching left'); an ordinary
    bleach is within the tolerance."""
    rng = np.random.default_rng(8)
    pixels = 10_000
    jump = 20.0 + 6.0 * (np.arange(120) >= 60)
    model = detrend.fit_correction(rng.poisson(jump * pixels) / pixels, "boxcar", "auto", 1, pixels)
    assert model.parameter == 1 and model.auto["tolerance_met"] is False
    assert model.leftover_standard_errors() > detrend.LEFTOVER_STANDARD_ERRORS
    assert "sudden change" in model.auto["note"] and "nb.detector" in model.auto["note"]
    from brightflow import quality

    labels = np.zeros((4, 4), int)
    labels[1:3, 1:3] = 1
    intensity = np.where(labels > 0, 20.0, 1.0)
    warnings = quality.cell_warnings(
        labels, labels, [1], np.zeros((3, 4, 4), int), intensity, 120, bleaching_left=model.leftover_standard_errors()
    )
    assert warnings[1] == f"bleaching left ({model.leftover_standard_errors():.2g} SE)"
    bleached = rng.poisson(20.0 * simulate.exponential_bleach(120, 0.3) * pixels) / pixels
    assert detrend.fit_correction(bleached, "boxcar", "auto", 1, pixels).leftover_standard_errors() is None


def test_the_tolerance_is_on_the_datas_own_scale():
    """The automatic parameter's tolerance is 0.1 standard errors of the cells' B, measured on a sample of
    cell pixels: 1 + epsilon for photon counts; counts far above photons (an analog detector) get theirs, so
    the noise of such data cannot pass for a negligible leftover, nor flag bleaching that is not there."""
    rng = np.random.default_rng(12)
    stack = simulate.mobile_stack(
        np.full((40, 40), 10.0), 1.0, 100, rng, survival=simulate.exponential_bleach(100, 0.3)
    )
    cells = np.ones((40, 40), dtype=bool)
    model, _ = detrend.fit_to_stack(stack, cells, "boxcar", "auto", 1)
    assert model.auto["apparent_brightness_of_cells"] == pytest.approx(2.0, abs=0.1)  # 1 + epsilon
    assert model.auto["tolerance"] == pytest.approx(
        0.1 * model.auto["apparent_brightness_of_cells"] * np.sqrt(2 / (99 * 1600))
    )
    scaled = ((stack * 2e7 + 1e9) * np.linspace(1, 0.6, 100)[:, None, None]).astype(np.uint32)
    model, _ = detrend.fit_to_stack(scaled, cells, "boxcar", "auto", 1)
    assert model.auto["apparent_brightness_of_cells"] > 1e5 and model.leftover_standard_errors() is None
    from brightflow import quality

    labels = np.zeros((4, 4), int)
    labels[1:3, 1:3] = 1
    warnings = quality.cell_warnings(
        labels,
        labels,
        [1],
        np.zeros((3, 4, 4), int),
        np.where(labels, 2e9, 1e3),
        100,
        variance_map=np.where(labels, 4e15, 1e3),
    )
    assert warnings[1] == "not photon counts (B 2e+06)"
