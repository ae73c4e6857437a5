"""Bleach correction (brightflow.detrend) against ground truth (Nolan et al. 2017), the streaming API,
and bleach correction in the workflow: outputs, recorded choices and what reruns."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from helpers import SHARED_DATA, jobs_run, write_config, write_stack

from brightflow import compiled, detrend, nb, simulate

NB_CORRECT_METHODS = ("boxcar", "exponential", "polynomial", "robinhood")


def _correct(stack, cells, method, parameter="auto", seed=1, tile_rows=None):
    """Fit and apply a correction as the workflow does (trace on the cells, tiles of rows)."""
    trace = detrend.cell_trace(stack, cells)
    sums = detrend.row_sums(stack, cells)
    model = detrend.fit_correction(trace, method, parameter, seed, int(cells.sum()))
    plan = None
    if model["method"] == "robinhood":
        plan, _ = detrend.robinhood_plan(sums, model["parameter"], seed)
    height = stack.shape[1]
    step = tile_rows or height
    tiles = [slice(start, min(start + step, height)) for start in range(0, height, step)]
    if model["method"] in detrend.TILE_METHODS:
        out = np.concatenate([detrend.correct_tile(model, stack[:, rows], rows, cells, plan) for rows in tiles], axis=1)
    else:
        out = detrend.correct_frames(model, stack)
    return model, out


def _mean_b(stack, cells):
    mean, variance = nb.pixel_mean_variance(stack)
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
    assert model["method"] == method
    assert model["parameter_source"].startswith("auto")
    assert model["parameter"] > 0
    assert abs(_mean_b(corrected, cells) - 1.0) < 0.03


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
    _, corrected = _correct(stack, cells, method)
    mean, variance = nb.pixel_mean_variance(corrected)
    return float(np.nanmean(nb.brightness(mean, variance)))


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
    expected = np.array(
        [series[max(0, t - half_width) : t + half_width + 1].mean(axis=0) for t in range(40)]
    )
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
            scale = detrend.frame_scale(model, start, stop)
            factors = np.ones(stop - start) if scale is None else scale
            np.testing.assert_array_equal(
                stack[start:stop] * factors[:, None, None], detrend.correct_frames(model, stack[start:stop], start)
            )
    assert detrend.frame_scale(detrend.fit_correction(trace, "none"), 0, 200) is None
    with pytest.raises(ValueError, match="outside it"):
        detrend.frame_scale(detrend.fit_correction(trace, "linear"), 150, 201)
    with pytest.raises(ValueError, match="use correct_tile"):
        detrend.frame_scale(detrend.fit_correction(trace, "boxcar", 5), 0, 10)


def test_in_place_tile_correction_equals_detrend_smoothed(immobile_bleached):
    stack, cells = immobile_bleached
    model = detrend.fit_correction(detrend.cell_trace(stack, cells), "boxcar", 7)
    series = stack.astype(np.float64)
    expected = detrend.detrend_smoothed(series, detrend.smooth(series, "boxcar", 7))
    np.testing.assert_array_equal(detrend.correct_tile(model, stack[:, 3:9], slice(3, 9)), expected[:, 3:9])
    np.testing.assert_array_equal(series, stack)  # detrend_smoothed leaves its inputs alone


@pytest.fixture
def compiled_loops(monkeypatch):
    """The compiled loops in use in this test (brightflow.compiled.use_for), whatever the data's size."""
    monkeypatch.setattr(compiled, "_IN_USE", True)


def test_compiled_loops_are_used_from_a_size_on_or_as_the_environment_says(monkeypatch):
    monkeypatch.setattr(compiled, "_IN_USE", False)
    monkeypatch.delenv(compiled.MODE_VARIABLE, raising=False)
    assert not compiled.use_for(compiled.WORTHWHILE_VALUES - 1) and not compiled.in_use()
    monkeypatch.setenv(compiled.MODE_VARIABLE, "never")
    assert not compiled.use_for(10 * compiled.WORTHWHILE_VALUES)
    monkeypatch.setenv(compiled.MODE_VARIABLE, "auto")
    assert compiled.use_for(compiled.WORTHWHILE_VALUES) and compiled.in_use()
    assert compiled.use_for(5)  # once loaded, the loops stay in use in the process
    monkeypatch.setattr(compiled, "_IN_USE", False)
    monkeypatch.setenv(compiled.MODE_VARIABLE, "Always")
    assert compiled.use_for(5)
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


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("frames, half_width", [(2, 1), (3, 1), (40, 1), (40, 5), (40, 39), (40, 77), (301, 50)])
def test_compiled_boxcar_gives_the_numpy_values_bit_for_bit(compiled_loops, dtype, frames, half_width):
    # the compiled loop is the same arithmetic in the same order as smooth + detrend_smoothed: not
    # close, equal, for integer and real data, the special values and any number of pixels (130:
    # two blocks of 64 and a remainder)
    series = _awkward_series(dtype, frames, 130, seed=frames + half_width)
    as_float = series.astype(np.float64)
    with np.errstate(invalid="ignore"):  # Inf - Inf in the running sums of the real data
        expected = detrend.detrend_smoothed(as_float, detrend.smooth(as_float, "boxcar", half_width))
    _same_bits(compiled.boxcar_detrend(series, half_width), expected)
    # a share of the columns, as each thread of correct_series does: the others are left alone
    out = np.full(series.shape, -7.0)
    compiled.boxcar_detrend(series, half_width, out=out, columns=slice(3, 70))
    _same_bits(out[:, 3:70], expected[:, 3:70])
    assert (out[:, :3] == -7.0).all() and (out[:, 70:] == -7.0).all()
    # and through the tile correction the N&B step applies, on a (t, rows, x) tile
    model = {"method": "boxcar", "parameter": half_width, "frames": frames}
    tile = series.reshape(frames, 10, 13)
    _same_bits(detrend.correct_tile(model, tile, slice(0, 10)).reshape(frames, -1), expected)


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


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int32, np.int64])
def test_compiled_row_sums_and_sample_counts_are_exact(compiled_loops, dtype):
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
    sums = detrend.row_sums(frames, cells)
    assert sums.dtype == np.int64
    np.testing.assert_array_equal(sums, expected)
    np.testing.assert_array_equal(compiled.integer_row_sums(frames, cells), expected)
    for saturation in (None, 250.5, float(info.max)):
        counts = quality.SampleCounts((17, 70), saturation)
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
    assert model["parameter"] == 10**7
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
    import json

    stack, cells = immobile_bleached
    trace = detrend.cell_trace(stack, cells)
    model = detrend.fit_correction(trace, "boxcar", "auto", 1, int(cells.sum()))
    restored = json.loads(json.dumps(model))
    assert restored["method"] == "boxcar" and restored["seed"] == 1
    assert restored["auto"]["simulated_mean_B_before"] > 1
    assert restored["auto"]["search"]
    assert len(restored["trace"]) == len(restored["trend"]) == 200
    set_model = detrend.fit_correction(trace, "exponential", 25, 1, int(cells.sum()))
    assert set_model["parameter"] == 25.0 and "configuration" in set_model["parameter_source"]
    with pytest.raises(ValueError, match="whole number"):
        detrend.fit_correction(trace, "boxcar", 2.5, 1, int(cells.sum()))


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
    assert model["method"] == method and model["parameter"] > 0
    assert model["parameter_source"].startswith("auto")
    limit = 4.7 if method == "robinhood" else 2.0
    assert _mean_b(corrected, cells) < limit


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auto_leaves_a_trend_free_recording_alone(seed):
    """Without bleaching, auto finds no trend beyond noise and applies no correction, so the
    brightness of mobile molecules is not lowered by needless smoothing."""
    rng = np.random.default_rng(seed)
    stack = simulate.mobile_stack(np.full((40, 40), 6.0), 1.0, 100, rng)
    trace = stack.reshape(100, -1).mean(axis=1)
    for method in ("boxcar", "exponential", "polynomial"):
        model = detrend.fit_correction(trace, method, "auto", cell_pixels=1600)
        assert model["method"] == "none", (method, model.get("auto"))
    # a real 40% bleach is still detected
    bleached = simulate.mobile_stack(np.full((40, 40), 6.0), 1.0, 100, rng, survival=simulate.exponential_bleach(100, 0.4))
    model = detrend.fit_correction(bleached.reshape(100, -1).mean(axis=1), "boxcar", "auto", cell_pixels=1600)
    assert model["method"] == "boxcar" and model["parameter"] > 0


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


@pytest.mark.parametrize("method", detrend.METHODS)
def test_corrected_blocks_give_the_whole_stack_correction_for_any_method(bleached_cells, method):
    stack, cells = bleached_cells
    parameter = {"boxcar": 10, "exponential": 12.0, "polynomial": 2, "robinhood": 3000}.get(method, "auto")
    model, plan = detrend.fit_to_stack(stack, cells, method, parameter, seed=3)
    if method in detrend.TILE_METHODS:
        expected = detrend.correct_tile(model, stack, slice(0, stack.shape[1]), cells, plan)
    else:
        expected = detrend.correct_frames(model, stack)
    # tiny budgets: many chunks of frames, tiles of one or two rows
    small = dict(frame_budget=stack[0].size * 8 * 7, tile_budget=stack.shape[0] * stack.shape[2] * 8 * 6 * 2)
    blocks = list(detrend.corrected_blocks(stack, model, cells, plan, **small))
    assert len(blocks) > 5
    # chunks of frames for the per-frame methods, tiles of rows across every frame for the others
    chunks = all(block.rows == slice(None) for block in blocks)
    assert chunks == (method not in detrend.TILE_METHODS)
    np.testing.assert_array_equal(_assembled(stack, blocks), expected)
    # tiles of rows for a per-frame method too (two channels streamed side by side)
    forced = list(detrend.corrected_blocks(stack, model, cells, plan, tiles=True, **small))
    np.testing.assert_allclose(_assembled(stack, forced), expected, rtol=1e-15, atol=0)


@pytest.mark.parametrize("method", ["boxcar", "linear", "robinhood"])
def test_the_corrected_trace_is_summed_from_the_blocks_as_they_stream(bleached_cells, method):
    stack, cells = bleached_cells
    chunks = []
    model, plan = detrend.fit_to_stack(stack, cells, method, 3000 if method == "robinhood" else "auto",
                                       observe=chunks.append)
    # the fit read every frame once, and showed each chunk to the observer
    np.testing.assert_array_equal(np.concatenate(chunks), stack)
    if method == "robinhood":
        expected = detrend.correct_tile(model, stack, slice(0, stack.shape[1]), cells, plan)
    elif method == "linear":
        expected = detrend.correct_frames(model, stack)
    else:
        expected = detrend.correct_tile(model, stack, slice(0, stack.shape[1]))
    trace = detrend.CorrectedTrace(model, cells)
    for block in detrend.corrected_blocks(stack, model, cells, plan, frame_budget=stack[0].size * 8 * 9):
        trace.update(block)
    np.testing.assert_allclose(trace.mean(), expected[:, cells].mean(axis=1), rtol=1e-12)


def test_fit_to_stack_checks_the_stack(bleached_cells):
    stack, cells = bleached_cells
    model, plan = detrend.fit_to_stack(stack, cells, "boxcar", 10)
    assert model["applied_to"] == "every pixel" and plan.shape == (0, 2, stack.shape[0])
    # Robin Hood: integer counts >= 0 only, with messages that say what to use instead
    with pytest.raises(ValueError, match="needs an integer stack.*boxcar, exponential or polynomial"):
        detrend.fit_to_stack(stack.astype(np.float32), cells, "robinhood")
    with pytest.raises(ValueError, match="negative pixel values"):
        detrend.fit_to_stack(stack.astype(np.int32) - 50, cells, "robinhood")
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
        np.mean(model["trace"]), rel=0.02)
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
