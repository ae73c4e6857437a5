"""Microscope formats, series and axes (docs/input_formats.md): CZI, OME-Zarr and OME-TIFF files
written by their own libraries read frame for frame and tile for tile as written, with their
calibration and channel names; every series an experiment; z-stacks and lossy compression refused;
a file that changes during a run fails its experiment instead of mixing two versions."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import numpy as np
import pandas as pd
import pytest
import tifffile
from format_writers import write_czi, write_ome_tiff, write_ome_zarr
from helpers import REPO, SNAKEMAKE, jobs_run, write_stack

from brightflow import io as bio
from brightflow import simulate
from brightflow.io import sources


def _stack(frames=23, shape=(17, 13), seed=0, channels=None):
    size = (frames,) + ((channels,) if channels else ()) + shape
    return np.random.default_rng(seed).integers(1, 4000, size=size).astype(np.uint16)


def _check_reads(stack, expected):
    """Frames, chunks of frames and tiles of rows equal the array written."""
    assert stack.shape == expected.shape and stack.dtype == expected.dtype
    np.testing.assert_array_equal(np.asarray(stack), expected)
    for start, stop in [(0, 5), (5, 6), (3, len(expected)), (7, 7)]:
        np.testing.assert_array_equal(stack[start:stop], expected[start:stop])
    for rows in [slice(0, 4), slice(4, 9), slice(9, expected.shape[1])]:
        np.testing.assert_array_equal(stack[:, rows, :], expected[:, rows, :])
    np.testing.assert_array_equal(stack[4], expected[4])
    np.testing.assert_array_equal(stack[2:9, 3:5, 1:4], expected[2:9, 3:5, 1:4])


# --- each format, written by its own library -------------------------------------------------------------


def test_czi_scenes_and_channels_read_as_written(tmp_path):
    scenes = [_stack(seed=1, channels=2), _stack(seed=2, channels=2)]
    path = write_czi(tmp_path / "two scenes.czi", scenes, pixel_size_um=0.085, channel_names=["GFP", "mCherry"])
    found = bio.list_series(path)
    assert [(info.index, info.shape, info.axes) for info in found] == [
        (0, (23, 2, 1, 17, 13), "TCZYX"),
        (1, (23, 2, 1, 17, 13), "TCZYX"),
    ]
    for scene, expected in enumerate(scenes):
        for channel in (1, 2):
            stack = bio.open_channel(bio.StackSource(path, scene), channel)
            np.testing.assert_array_equal(stack[3:9], expected[3:9, channel - 1])
            assert stack._spool is None  # chunks of frames: read from the file, frame by frame
            _check_reads(stack, expected[:, channel - 1])
            # tiles of rows: from one copy of the channel decoded into an unnamed temporary file
            assert stack._spool is not None and stack._spool.stack.shape == expected[:, 0].shape
            stack.close()
            assert stack._spool is None
            np.testing.assert_array_equal(stack[:, 2:5], expected[:, channel - 1, 2:5])
            assert stack.calibration.record() | {"frame_interval_s": None} == {
                "spatially_calibrated": True,
                "pixel_width": 0.085,
                "pixel_height": 0.085,
                "unit": "µm",
                "frame_interval_s": None,
                "time_unit": "frame",
                "source": "CZI metadata",
            }
            assert stack.channel_name == ["GFP", "mCherry"][channel - 1]
    assert bio.channel_count(bio.StackSource(path, 1)) == 2 and bio.frame_size(bio.StackSource(path, 1)) == 17 * 13
    with pytest.raises(bio.InputError, match="channel 3 does not exist"):
        bio.open_channel(bio.StackSource(path, 0), 3)
    with pytest.raises(bio.InputError, match=r"scenes \[0, 1\]; scene 5 does not exist"):
        bio.open_channel(bio.StackSource(path, 5), 1)


def _czi_directory_compression(path, mode):
    """Set every sub-block's compression in the CZI's sub-block directory to ``mode`` (libCZI's
    CompressionMode: 4 is JPEG XR), as a file ZEN saved with that compression says."""
    data = bytearray(path.read_bytes())
    directory = int.from_bytes(data[84:92], "little")  # ZISRAWFILE: DirectoryPosition
    assert data[directory : directory + 15] == b"ZISRAWDIRECTORY"
    count = int.from_bytes(data[directory + 32 : directory + 36], "little")
    entry = directory + 32 + 128
    for _ in range(count):
        assert data[entry : entry + 2] == b"DV"
        data[entry + 18 : entry + 22] = mode.to_bytes(4, "little")
        entry += 32 + 20 * int.from_bytes(data[entry + 28 : entry + 32], "little")
    path.write_bytes(bytes(data))


def test_czi_with_lossy_sub_blocks_is_refused(tmp_path):
    path = write_czi(tmp_path / "jpgxr.czi", [_stack()])
    _czi_directory_compression(path, 4)
    with pytest.raises(bio.InputError, match=r"jpgxr\.czi: its pixels are stored with JPEG XR compression.*N&B"):
        bio.list_series(path)
    zstd = write_czi(tmp_path / "zstd.czi", [_stack()], compression="zstd1:ExplicitLevel=2")  # lossless: read
    _check_reads(bio.open_channel(zstd), _stack())


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_reads_as_written_with_its_calibration(tmp_path, version):
    expected = _stack(channels=2, seed=3)
    path = write_ome_zarr(
        tmp_path / "image.ome.zarr",
        expected,
        pixel_size_um=0.3,
        frame_interval_s=0.05,
        channel_names=["GFP", "RFP"],
        version=version,
        chunks=(4, 1, 1, 5, 13),
    )
    assert bio.file_kind(path) == "zarr" and sources.recording_stem(path) == "image"
    assert [(info.shape, info.axes) for info in bio.list_series(path)] == [((23, 2, 1, 17, 13), "TCZYX")]
    for channel in (1, 2):
        stack = bio.open_channel(path, channel)
        _check_reads(stack, expected[:, channel - 1])
        assert (stack.calibration.pixel_width, stack.calibration.unit, stack.calibration.frame_interval) == (
            0.3,
            "µm",
            0.05,
        )
        assert stack.channel_name == ["GFP", "RFP"][channel - 1]


def test_ome_zarr_of_three_axes_and_z_stacks(tmp_path):
    expected = _stack(seed=4)
    path = write_ome_zarr(tmp_path / "tyx.zarr", expected, axes="tyx")
    _check_reads(bio.open_channel(path), expected)
    zstack = write_ome_zarr(tmp_path / "z.ome.zarr", expected, axes="zyx")
    with pytest.raises(bio.InputError, match=r"z\.ome\.zarr: the image is a z-stack \(23 planes in Z and no time"):
        bio.open_channel(zstack)
    not_ome = tmp_path / "plain.zarr"
    import zarr

    zarr.open_group(str(not_ome), mode="w").create_array("0", shape=(3, 4, 4), dtype="u2")
    with pytest.raises(bio.InputError, match="not an OME-Zarr image"):
        bio.list_series(not_ome)


def test_every_series_of_an_ome_tiff_and_its_calibration(tmp_path):
    preview, recording = _stack(frames=3, seed=5), _stack(frames=40, seed=6)
    path = write_ome_tiff(
        tmp_path / "positions.ome.tif",
        [preview, recording],
        names=["preview", "position 2"],
        pixel_size_um=0.2,
        frame_interval_s=0.5,
    )
    assert [(info.index, info.name, info.shape) for info in bio.list_series(path)] == [
        (0, "preview", (3, 17, 13)),
        (1, "position 2", (40, 17, 13)),
    ]
    stack = bio.open_channel(bio.StackSource(path, 1))
    _check_reads(stack, recording)
    assert (stack.calibration.pixel_width, stack.calibration.frame_interval) == (0.2, 0.5)
    np.testing.assert_array_equal(np.asarray(bio.open_channel(bio.StackSource(path, 0))), preview)
    compressed = write_ome_tiff(tmp_path / "zlib.ome.tif", [preview, recording], compression="zlib")
    _check_reads(bio.open_channel(bio.StackSource(compressed, 1)), recording)


def test_ome_axes_are_obeyed_a_z_stack_is_refused(tmp_path):
    path = tmp_path / "z.ome.tif"
    tifffile.imwrite(path, _stack(frames=40), ome=True, metadata={"axes": "ZYX"})
    with pytest.raises(bio.InputError, match=r"is a z-stack: its metadata names the axes 'ZYX', 40 planes in Z"):
        bio.open_channel(path)
    hyper = tmp_path / "tz.ome.tif"
    tifffile.imwrite(hyper, _stack(frames=10 * 3).reshape(10, 3, 17, 13), ome=True, metadata={"axes": "TZYX"})
    with pytest.raises(bio.InputError, match="a Z axis of 3 planes"):
        bio.open_channel(hyper)
    time_series = tmp_path / "t.ome.tif"
    tifffile.imwrite(time_series, _stack(frames=40), ome=True, metadata={"axes": "TYX"})
    assert bio.open_channel(time_series).shape == (40, 17, 13)


@pytest.mark.parametrize(
    "name, data, options, lossy",
    [
        ("jpeg_8bit", np.uint8, {"compression": "jpeg"}, "JPEG"),
        ("jpeg_16bit", np.uint16, {"compression": "jpeg"}, "JPEG"),
        ("lossless_jpeg", np.uint16, {"compression": "jpeg", "compressionargs": {"lossless": True}}, None),
        ("jpeg2000", np.uint16, {"compression": "jpeg2000", "compressionargs": {"level": 50}}, "JPEG 2000"),
        ("jpeg2000_reversible", np.uint16, {"compression": "jpeg2000", "compressionargs": {"reversible": True}}, None),
        ("jpegxr", np.uint8, {"compression": "jpegxr"}, "JPEG XR"),
        ("zstd", np.uint16, {"compression": "zstd"}, None),
    ],
)
def test_lossy_compression_is_refused_lossless_is_read(tmp_path, name, data, options, lossy):
    expected = (
        _stack(frames=6, shape=(32, 32)).astype(data)
        if data is np.uint16
        else (_stack(frames=6, shape=(32, 32)) % 250).astype(np.uint8)
    )
    path = tmp_path / f"{name}.tif"
    tifffile.imwrite(path, expected, photometric="minisblack", **options)
    if lossy is None:
        np.testing.assert_array_equal(np.asarray(bio.open_channel(path)), expected)
        return
    assert not np.array_equal(tifffile.imread(path), expected) or lossy == "JPEG XR"
    with pytest.raises(
        bio.InputError,
        match=rf"{name}\.tif: its pixels are stored with {lossy} compression.*"
        "N&B measures brightness from exactly that noise",
    ):
        bio.open_channel(path)


def test_webp_lossy_refused_lossless_read(tmp_path):
    rgb = (_stack(frames=4, shape=(16, 16, 3)) % 250).astype(np.uint8)
    for lossless in (False, True):
        path = tmp_path / f"webp_{lossless}.tif"
        tifffile.imwrite(path, rgb, photometric="rgb", compression="webp", compressionargs={"lossless": lossless})
        if lossless:
            assert bio.channel_count(path, "TYXS") == 3
        else:
            with pytest.raises(bio.InputError, match="WebP compression, which is lossy here"):
                bio.channel_count(path, "TYXS")


def test_leica_and_nikon_files_are_refused_with_what_to_do(tmp_path):
    for name in ("a.lif", "b.nd2"):
        (tmp_path / name).write_bytes(b"\0" * 64)
        with pytest.raises(bio.InputError, match="export the recording as OME-TIFF"):
            bio.list_series(tmp_path / name)


# --- the file that changes during a run ----------------------------------------------------------------


def test_a_step_refuses_a_recording_that_changed_since_the_run_started(tmp_path):
    path = tmp_path / "growing.tif"
    write_stack(path, _stack(frames=40))
    cache = tmp_path / "digests.json"
    started = bio.content_digest(str(path), str(cache))
    source = bio.StackSource(path, None, started, str(cache))
    assert bio.open_channel(source).shape == (40, 17, 13)
    write_stack(path, _stack(frames=60))  # the acquisition went on
    with pytest.raises(bio.InputError, match=r"growing\.tif: the recording changed while the run went on"):
        bio.open_channel(source)
    path.unlink()
    with pytest.raises(bio.InputError, match="was removed while the run went on"):
        bio.open_channel(source)


def test_an_ome_zarr_that_changes_is_noticed(tmp_path):
    path = write_ome_zarr(tmp_path / "image.ome.zarr", _stack())
    cache = str(tmp_path / "digests.json")
    source = bio.StackSource(path, None, bio.content_digest(str(path), cache), cache)
    bio.open_channel(source)
    import zarr

    zarr.open_array(str(path / "0"), mode="r+")[0, 0, 0, 0, 0] = 7  # one chunk rewritten in place
    with pytest.raises(bio.InputError, match="changed while the run went on"):
        bio.open_channel(source)


# --- the workflow on a folder of every format ------------------------------------------------------------


def _cells(seed, frames=60, brightness=2.0):
    return simulate.demo_experiment([(brightness, 6.0)], seed=seed, shape=(48, 48), frames=frames)[0]


@pytest.fixture(scope="module")
def formats_run(run_workflow, tmp_path_factory):
    """One command on a folder of a two-scene CZI, an OME-Zarr, a two-series OME-TIFF (a 3-frame preview
    and the recording) and a plain TIFF; the same recording ``cells(1)`` is in each file."""
    workdir = tmp_path_factory.mktemp("formats")
    folder = workdir / "stacks"
    folder.mkdir()
    same = _cells(1)
    write_czi(folder / "confocal.czi", [same, _cells(2, brightness=4.0)], pixel_size_um=0.1, channel_names=["GFP"])
    write_ome_zarr(
        folder / "converted.ome.zarr", same, pixel_size_um=0.2, frame_interval_s=0.05, channel_names=["EGFP"]
    )
    write_ome_tiff(
        folder / "positions.ome.tif",
        [_cells(3, frames=3), same],
        names=["preview", "cell 2"],
        pixel_size_um=0.25,
        frame_interval_s=0.1,
    )
    write_stack(folder / "plain.tif", same)
    result = run_workflow(workdir, config={"input_dir": folder}, timeout=1500)
    return workdir, folder, result


@pytest.mark.workflow
def test_every_scene_and_series_is_an_experiment_calibrated(formats_run):
    workdir, _, result = formats_run
    results = workdir / "results"
    folder = pd.read_csv(results / "Folder_average_values_in_roi.csv")
    assert sorted(folder["Experiment"].unique()) == [
        "confocal_0",
        "confocal_1",
        "converted",
        "plain",
        "positions_cell_2",
        "positions_preview",
    ]
    expected = {
        "confocal_0": (0.1, None, "GFP", 0),
        "confocal_1": (0.1, None, "GFP", 1),
        "converted": (0.2, 0.05, "EGFP", None),
        "positions_cell_2": (0.25, 0.1, None, 1),
        "plain": (None, None, None, None),
    }
    for experiment, (pixel, interval, channel_name, series) in expected.items():
        settings = json.loads((results / experiment / "settings.json").read_text())
        calibration = settings["input"]["calibration"]
        assert (calibration["pixel_width"], calibration["frame_interval_s"]) == (pixel, interval), experiment
        assert (settings["input"]["channel_name"], settings["input"]["series"]) == (channel_name, series)
        if pixel:  # the maps' TIFFs carry the pixel size, as for ImageJ TIFFs
            with tifffile.TiffFile(results / experiment / "brightness.tif") as tif:
                assert tif.imagej_metadata["unit"] == "micron"
                assert tif.pages[0].tags["XResolution"].value[0] / tif.pages[0].tags["XResolution"].value[1] == (
                    pytest.approx(1 / pixel)
                )


@pytest.mark.workflow
def test_the_same_recording_gives_the_same_maps_in_every_format(formats_run):
    workdir, _, _ = formats_run
    results = workdir / "results"
    for name in ("intensity", "variance", "apparent_brightness", "brightness", "number"):
        plain = np.load(results / "plain" / f"{name}.npy")
        for experiment in ("confocal_0", "converted", "positions_cell_2"):
            np.testing.assert_array_equal(np.load(results / experiment / f"{name}.npy"), plain, err_msg=experiment)
    folder = pd.read_csv(results / "Folder_average_values_in_roi.csv").set_index("Experiment")
    brightness = folder["Brightness (ratio of means)"]
    assert brightness["confocal_1"] == pytest.approx(4.0, rel=0.25) and brightness["plain"] == pytest.approx(
        2.0, rel=0.25
    )


@pytest.mark.workflow
def test_reruns_follow_the_content_of_vendor_files(run_workflow, formats_run):
    workdir, folder, _ = formats_run
    config = {"input_dir": folder}
    for path in (folder / "confocal.czi", *(folder / "converted.ome.zarr").rglob("*")):
        path.touch()  # a new modification time alone
    assert jobs_run(run_workflow(workdir, "--dry-run", config=config)) == {}
    write_ome_zarr(folder / "converted.ome.zarr", _cells(7), pixel_size_um=0.2, frame_interval_s=0.05)
    jobs = jobs_run(run_workflow(workdir, "--dry-run", config=config))
    assert jobs.get("projection") == 1 and jobs.get("nb_maps") == 1, jobs


@pytest.mark.workflow
def test_a_sheet_picks_series_by_name_or_index_and_refuses_without(run_workflow, formats_run, tmp_path):
    _, folder, _ = formats_run
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text(f"experiment\tpath\na\t{folder / 'positions.ome.tif'}\n")
    result = run_workflow(tmp_path, "--dry-run", config={"samples": sheet, "input_dir": folder}, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and f"{sheet}, row 2: {folder / 'positions.ome.tif'} holds 2 series" in output
    assert "0 ('preview'): shape (3, 48, 48)" in output and "Add a 'series' column" in output
    sheet.write_text(
        f"experiment\tpath\tseries\na\t{folder / 'positions.ome.tif'}\tcell 2\n"
        f"b\t{folder / 'confocal.czi'}\t1\nc\t{folder / 'confocal.czi'}\t7\n"
    )
    result = run_workflow(tmp_path, "--dry-run", config={"samples": sheet, "input_dir": folder}, check=False)
    output = result.stdout + result.stderr
    assert (
        result.returncode != 0
        and f"{sheet}, row 4, column 'series': {folder / 'confocal.czi'} has no series '7'" in output
    ), output[-2000:]
    sheet.write_text(
        f"experiment\tpath\tseries\na\t{folder / 'positions.ome.tif'}\tcell 2\nb\t{folder / 'confocal.czi'}\t1\n"
    )
    run_workflow(tmp_path, "--until", "projection", config={"samples": sheet, "input_dir": folder})
    with tifffile.TiffFile(tmp_path / "results" / "a" / "segmentation_image.tif") as tif:
        np.testing.assert_allclose(tif.asarray(), _cells(1).mean(axis=0), rtol=1e-6)


@pytest.mark.workflow
def test_a_recording_that_grows_during_the_run_fails_its_experiment(tmp_path):
    """The acquisition goes on after the run started: the masks come from 40 frames, so the maps must not
    come from 60; the experiment fails with the reason, the other finishes, nothing records the new file."""
    folder = tmp_path / "stacks"
    folder.mkdir()
    write_stack(folder / "growing.tif", _cells(1, frames=40))
    write_stack(folder / "steady.tif", _cells(2))
    command = SNAKEMAKE + [
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(tmp_path),
        "--cores",
        "1",
        "--keep-going",
        "--config",
        f"input_dir={folder}",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    projection = tmp_path / "results" / "growing" / "segmentation_image.tif"
    deadline = time.monotonic() + 600
    while not projection.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    grown = folder / "growing.tif.part"
    write_stack(grown, _cells(1, frames=60))
    shutil.move(grown, folder / "growing.tif")  # as an export replaces the file
    output = process.communicate(timeout=900)[0]
    assert process.returncode != 0, output[-3000:]
    line = next(line for line in output.splitlines() if line.startswith("  - growing: "))
    assert "growing.tif: the recording changed while the run went on" in line, line
    assert not (tmp_path / "results" / "growing" / "settings.json").exists()
    assert (tmp_path / "results" / "steady" / "settings.json").is_file()
