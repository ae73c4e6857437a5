"""Multi-channel stacks in the workflow: per-channel outputs in {experiment}/ch{c}/, one segmentation
per experiment on segmentation.channel, the Channel column of the folder CSV, and cross-correlated
N&B (nb.cross_channels) on a simulation of known complex fractions and on ../shared/data/two_ch.tif."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tifffile
from conftest import SHARED_DATA, run_workflow, write_config, write_stack

from brightflow import simulate

pytestmark = pytest.mark.workflow

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
def simulated(tmp_path_factory):
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
        workdir / "config.yaml", input_dir=str(stacks), samples=str(stacks / "samples.tsv"),
        bleach_correction=NO_CORRECTION, segmentation={"method": "existing"}, nb={"cross_channels": [1, 2]},
    )
    run_workflow(workdir, "--configfile", config)
    return workdir, hyperstack, labels


def test_each_channel_has_its_own_folder_and_single_channel_stacks_keep_theirs(simulated):
    workdir, hyperstack, _ = simulated
    results = workdir / "results"
    for name in ("segmentation_image.tif", "segmentation_image_seg.npy", "analysis_labels.tif", "cell_rois.zip"):
        assert (results / "pair" / name).is_file(), name
    for channel in (1, 2):
        folder = results / "pair" / f"ch{channel}"
        for name in ("intensity.npy", "brightness.tif", "number.png", "average_values_in_roi.csv",
                     "Bleach_correction.png", "settings.json", "nb_threshold.json"):
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


def test_cross_brightness_measures_the_fraction_of_complexes(simulated):
    workdir, hyperstack, labels = simulated
    folder = workdir / "results" / "pair" / "cross_ch1_ch2"
    table = pd.read_csv(folder / "cross_values_in_roi.csv").set_index("Cell ID")
    assert list(table.columns) == ["Pixels", "Cross variance", "Cross brightness", "Cross number",
                                   "Cross brightness (ratio of means)", "Cross number (ratio of means)"]
    # B_cc = f sqrt(e1 e2) (Digman et al. 2009): 0.5 sqrt(2) with complexes, 0 without
    assert table.loc[1, "Cross brightness (ratio of means)"] == pytest.approx(0.5 * np.sqrt(2.0), rel=0.1)
    assert abs(table.loc[2, "Cross brightness (ratio of means)"]) < 0.05 * np.sqrt(2.0)
    # the map is the covariance of the two channels' counts, normalised by 1 / (T - 1)
    k1, k2 = (hyperstack[:, c].astype(np.float64) for c in (0, 1))
    expected = ((k1 - k1.mean(0)) * (k2 - k2.mean(0))).sum(axis=0) / (k1.shape[0] - 1)
    np.testing.assert_allclose(np.load(folder / "cross_variance.npy"), expected, rtol=1e-9, atol=1e-12)
    for name in ("cross_brightness", "cross_number"):
        assert (folder / f"{name}.tif").is_file() and (folder / f"{name}.png").stat().st_size > 5_000


@pytest.mark.skipif(not TWO_CH.is_file(), reason="../shared/data/two_ch.tif is not beside this checkout")
def test_two_ch_tif_with_input_axes(tmp_path):
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    (stacks / "two_ch.tif").symlink_to(TWO_CH)
    config = write_config(
        tmp_path / "config.yaml", input_dir=str(stacks), input={"axes": "TYXS"},
        bleach_correction=NO_CORRECTION, segmentation={"channel": 2, "threshold": {"min_cell_area": 20}},
        nb={"cross_channels": [1, 2]},
    )
    run_workflow(tmp_path, "--configfile", config)
    data = tifffile.imread(TWO_CH).astype(np.float64)  # (t, y, x, s)
    results = tmp_path / "results" / "two_ch"
    np.testing.assert_allclose(tifffile.imread(results / "segmentation_image.tif"), data[..., 1].mean(0), rtol=1e-6)
    for channel in (1, 2):
        np.testing.assert_allclose(np.load(results / f"ch{channel}" / "intensity.npy"), data[..., channel - 1].mean(0))
        np.testing.assert_allclose(np.load(results / f"ch{channel}" / "variance.npy"), data[..., channel - 1].var(0, ddof=1))
    k1, k2 = data[..., 0], data[..., 1]
    covariance = ((k1 - k1.mean(0)) * (k2 - k2.mean(0))).sum(axis=0) / 99
    np.testing.assert_allclose(np.load(results / "cross_ch1_ch2" / "cross_variance.npy"), covariance, atol=1e-12)
    folder = pd.read_csv(tmp_path / "results" / "Folder_average_values_in_roi.csv")
    assert sorted(folder["Channel"].unique()) == [1, 2]


@pytest.mark.skipif(not TWO_CH.is_file(), reason="../shared/data/two_ch.tif is not beside this checkout")
def test_input_channels_selects_and_unknown_axes_are_a_clear_error(tmp_path):
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
