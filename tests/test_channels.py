"""Multi-channel stacks: axes and channels, per-channel outputs in {experiment}/ch{c}/ with one
segmentation per experiment, the folder CSV's Channel column, and cross-correlated N&B (Digman et al.
2009) against ground truth and in the workflow."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tifffile
from helpers import SHARED_DATA, write_config, write_stack

from brightflow import axes, cross, nb, simulate


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
    offset = cross.cross_maps(
        shifted1.mean(0), shifted2.mean(0), cross.cross_variance(shifted1, shifted2), detector1, detector2
    )
    assert np.allclose(offset["cross_brightness"], plain["cross_brightness"])
    assert np.allclose(offset["cross_number"], plain["cross_number"])


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


TWO_CH = SHARED_DATA / "two_ch.tif"


NO_CORRECTION = {"method": "none"}


#: true per-cell fraction of complexes (cell 1, cell 2); e1 = 1, e2 = 2
FRACTIONS = (0.5, 0.0)


def _two_channel_cells(seed=3, frames=100, shape=(48, 64), total=8.0, e1=1.0, e2=2.0):
    """Two cells; in cell i a fraction FRACTIONS[i] of each channel's molecules are complexes AB
    (seen in both channels), the rest A (channel 1) or B (channel 2); all mobile (fresh Poisson
    numbers every frame); an immobile background of 0.5 counts per frame in each channel."""
    rng = np.random.default_rng(seed)
    labels = simulate.cell_layout(shape, [(24, 16), (24, 48)], [(13, 12), (13, 12)])
    fraction = np.zeros(shape)
    for cell, f in enumerate(FRACTIONS, start=1):
        fraction[labels == cell] = f
    inside = labels > 0
    size = (frames,) + shape
    complexes = rng.poisson(np.where(inside, fraction * total, 0.0), size=size)
    only_a = rng.poisson(np.where(inside, (1 - fraction) * total, 0.0), size=size)
    only_b = rng.poisson(np.where(inside, (1 - fraction) * total, 0.0), size=size)
    k1 = rng.poisson(e1 * (complexes + only_a)) + rng.poisson(0.5, size=size)
    k2 = rng.poisson(e2 * (complexes + only_b)) + rng.poisson(0.5, size=size)
    return np.stack([k1, k2], axis=1).astype(np.uint16), labels  # (t, c, y, x)


@pytest.fixture(scope="module")
def simulated(run_workflow, tmp_path_factory):
    """A two-channel ImageJ hyperstack (axes TCYX in its metadata) beside a single-channel stack."""
    workdir = tmp_path_factory.mktemp("channels")
    stacks = workdir / "stacks"
    stacks.mkdir()
    hyperstack, labels = _two_channel_cells()
    tifffile.imwrite(stacks / "pair.tif", hyperstack, imagej=True, metadata={"axes": "TCYX"})
    tifffile.imwrite(stacks / "pair_labels.tif", labels)
    single, truth = simulate.demo_experiment([(2.0, 5.0)], seed=8, shape=(48, 64), frames=100)
    write_stack(stacks / "single.tif", single)
    tifffile.imwrite(stacks / "single_labels.tif", truth)
    (stacks / "samples.tsv").write_text(
        "experiment\tpath\tmask\npair\tpair.tif\tpair_labels.tif\nsingle\tsingle.tif\tsingle_labels.tif\n"
    )
    config = write_config(
        workdir / "config.yaml",
        input_dir=str(stacks),
        samples=str(stacks / "samples.tsv"),
        bleach_correction=NO_CORRECTION,
        segmentation={"method": "existing"},
        nb={"cross_channels": [1, 2]},
    )
    run_workflow(workdir, "--configfile", config)
    return workdir, hyperstack, labels


@pytest.mark.workflow
def test_each_channel_has_its_own_folder_and_single_channel_stacks_keep_theirs(simulated):
    workdir, hyperstack, _ = simulated
    results = workdir / "results"
    for name in ("segmentation_image.tif", "segmentation_image_seg.npy", "analysis_labels.tif", "cell_rois.zip"):
        assert (results / "pair" / name).is_file(), name
    for channel in (1, 2):
        folder = results / "pair" / f"ch{channel}"
        for name in (
            "intensity.npy",
            "brightness.tif",
            "number.png",
            "average_values_in_roi.csv",
            "Bleach_correction.png",
            "settings.json",
            "nb_threshold.json",
        ):
            assert (folder / name).is_file(), (channel, name)
        intensity = np.load(folder / "intensity.npy")
        np.testing.assert_allclose(intensity, hyperstack[:, channel - 1].mean(axis=0, dtype=np.float64))
        settings = json.loads((folder / "settings.json").read_text())
        assert settings["experiment"] == "pair" and settings["channel"] == channel
        assert settings["input"]["shape_tyx"] == [100, 48, 64]
        assert not (folder / "segmentation_image.tif").exists()
    # segmentation.channel defaults to the first channel
    projection = tifffile.imread(results / "pair" / "segmentation_image.tif")
    np.testing.assert_allclose(projection, hyperstack[:, 0].mean(axis=0), rtol=1e-6)
    assert (results / "single" / "intensity.npy").is_file() and not (results / "single" / "ch1").exists()


@pytest.mark.workflow
def test_per_channel_brightness_and_the_folder_channel_column(simulated):
    workdir, _, _ = simulated
    folder = pd.read_csv(workdir / "results" / "Folder_average_values_in_roi.csv")
    assert list(folder.columns[:3]) == ["Experiment", "Channel", "Cell ID"]
    assert folder[folder.Experiment == "single"]["Channel"].isna().all()
    pair = folder[folder.Experiment == "pair"].set_index(["Channel", "Cell ID"])
    # every molecule seen in channel 1 has brightness 1, in channel 2 brightness 2
    for channel, brightness in ((1, 1.0), (2, 2.0)):
        for cell in (1, 2):
            assert pair.loc[(channel, cell), "Brightness (ratio of means)"] == pytest.approx(brightness, rel=0.1)
    single = folder[folder.Experiment == "single"]
    assert single["Brightness (ratio of means)"].to_numpy() == pytest.approx([2.0], rel=0.1)


@pytest.mark.workflow
def test_cross_brightness_measures_the_fraction_of_complexes(simulated):
    workdir, hyperstack, labels = simulated
    folder = workdir / "results" / "pair" / "cross_ch1_ch2"
    table = pd.read_csv(folder / "cross_values_in_roi.csv").set_index("Cell ID")
    assert list(table.columns) == [
        "Pixels",
        "Cross variance",
        "Cross brightness",
        "Cross number",
        "Cross brightness (ratio of means)",
        "Cross number (ratio of means)",
    ]
    # B_cc = f sqrt(e1 e2) (Digman et al. 2009): 0.5 sqrt(2) with complexes, 0 without
    assert table.loc[1, "Cross brightness (ratio of means)"] == pytest.approx(0.5 * np.sqrt(2.0), rel=0.1)
    assert abs(table.loc[2, "Cross brightness (ratio of means)"]) < 0.05 * np.sqrt(2.0)
    # the map is the covariance of the two channels' counts, normalised by 1 / (T - 1)
    k1, k2 = (hyperstack[:, c].astype(np.float64) for c in (0, 1))
    expected = ((k1 - k1.mean(0)) * (k2 - k2.mean(0))).sum(axis=0) / (k1.shape[0] - 1)
    np.testing.assert_allclose(np.load(folder / "cross_variance.npy"), expected, rtol=1e-9, atol=1e-12)
    for name in ("cross_brightness", "cross_number"):
        assert (folder / f"{name}.tif").is_file() and (folder / f"{name}.png").stat().st_size > 5_000


@pytest.mark.workflow
@pytest.mark.skipif(not TWO_CH.is_file(), reason="../shared/data/two_ch.tif is not beside this checkout")
def test_two_ch_tif_with_input_axes(run_workflow, tmp_path):
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    (stacks / "two_ch.tif").symlink_to(TWO_CH)
    config = write_config(
        tmp_path / "config.yaml",
        input_dir=str(stacks),
        input={"axes": "TYXS"},
        bleach_correction=NO_CORRECTION,
        segmentation={"channel": 2, "threshold": {"min_cell_area": 20}},
        nb={"cross_channels": [1, 2]},
    )
    run_workflow(tmp_path, "--configfile", config)
    data = tifffile.imread(TWO_CH).astype(np.float64)  # (t, y, x, s)
    results = tmp_path / "results" / "two_ch"
    np.testing.assert_allclose(tifffile.imread(results / "segmentation_image.tif"), data[..., 1].mean(0), rtol=1e-6)
    for channel in (1, 2):
        np.testing.assert_allclose(np.load(results / f"ch{channel}" / "intensity.npy"), data[..., channel - 1].mean(0))
        np.testing.assert_allclose(
            np.load(results / f"ch{channel}" / "variance.npy"), data[..., channel - 1].var(0, ddof=1)
        )
    k1, k2 = data[..., 0], data[..., 1]
    covariance = ((k1 - k1.mean(0)) * (k2 - k2.mean(0))).sum(axis=0) / 99
    np.testing.assert_allclose(np.load(results / "cross_ch1_ch2" / "cross_variance.npy"), covariance, atol=1e-12)
    folder = pd.read_csv(tmp_path / "results" / "Folder_average_values_in_roi.csv")
    assert sorted(folder["Channel"].unique()) == [1, 2]


@pytest.mark.workflow
@pytest.mark.skipif(not TWO_CH.is_file(), reason="../shared/data/two_ch.tif is not beside this checkout")
def test_input_channels_selects_and_unknown_axes_are_a_clear_error(run_workflow, tmp_path):
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    (stacks / "two_ch.tif").symlink_to(TWO_CH)
    only_second = write_config(tmp_path / "second.yaml", input_dir=str(stacks), input={"axes": "TYXS", "channels": [2]})
    dry = run_workflow(tmp_path, "--dry-run", "--configfile", only_second)
    assert "results/two_ch/ch2/average_values_in_roi.csv" in dry.stdout
    assert "results/two_ch/ch1/" not in dry.stdout
    too_many = write_config(tmp_path / "third.yaml", input_dir=str(stacks), input={"axes": "TYXS", "channels": [3]})
    result = run_workflow(tmp_path, "--dry-run", "--configfile", too_many, check=False)
    assert result.returncode != 0 and "has 2 channels (1 to 2)" in result.stdout + result.stderr
    # tifffile reads the file as IYXS: without input.axes the time axis is unknown
    plain = write_config(tmp_path / "plain.yaml", input_dir=str(stacks))
    result = run_workflow(tmp_path, "--configfile", plain, check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "two_ch.tif: a stack of shape (100, 30, 28, 2)" in output and "set input.axes" in output
