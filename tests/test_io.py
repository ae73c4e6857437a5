"""bio.Stack: stacks read from their TIFF block by block equal tifffile.imread's array."""

from __future__ import annotations

import gc
import os
import weakref
from pathlib import Path

import numpy as np
import pytest
import tifffile

from brightflow import io as bio
from brightflow.io import stacks as stacks_module

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _stack(frames=23, shape=(17, 13), seed=0, dtype=np.uint16):
    return np.random.default_rng(seed).integers(0, 4000, size=(frames,) + shape).astype(dtype)


def _check_reads(stack, expected):
    assert stack.shape == expected.shape and stack.dtype == expected.dtype
    assert stack.ndim == 3 and len(stack) == expected.shape[0]
    np.testing.assert_array_equal(np.asarray(stack), expected)
    for start, stop in [(0, 5), (5, 6), (3, expected.shape[0]), (0, expected.shape[0]), (7, 7)]:
        block = stack[start:stop]
        assert isinstance(block, np.ndarray)
        np.testing.assert_array_equal(block, expected[start:stop])
    for rows in [slice(0, 4), slice(4, 9), slice(9, expected.shape[1])]:
        np.testing.assert_array_equal(stack[:, rows, :], expected[:, rows, :])
        np.testing.assert_array_equal(stack[:, rows], expected[:, rows])
    np.testing.assert_array_equal(stack[4], expected[4])
    np.testing.assert_array_equal(stack[-1], expected[-1])
    np.testing.assert_array_equal(stack[2:9, 3:5, 1:4], expected[2:9, 3:5, 1:4])
    np.testing.assert_array_equal(stack[::3], expected[::3])


@pytest.mark.parametrize("dtype", [np.uint16, np.uint8, np.float32, np.int32])
def test_contiguous_stack_reads_frames_and_tiles(tmp_path, dtype):
    expected = _stack(dtype=dtype)
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, expected, contiguous=True, metadata={"axes": "TYX"})
    stack = bio.open_stack(path)
    assert stack._mode == "contiguous"
    _check_reads(stack, tifffile.imread(path))


def test_big_endian_and_imagej_stacks(tmp_path):
    expected = _stack()
    big = tmp_path / "big.tif"
    tifffile.imwrite(big, expected, byteorder=">")
    _check_reads(bio.open_stack(big), expected)
    imagej = tmp_path / "imagej.tif"
    tifffile.imwrite(imagej, expected, imagej=True, metadata={"axes": "TYX"})
    stack = bio.open_stack(imagej)
    assert stack._mode == "contiguous"
    _check_reads(stack, expected)


@pytest.mark.parametrize("compression", ["zlib", "lzw"])
def test_compressed_stack_reads_page_by_page(tmp_path, scratch, compression):
    expected = _stack()
    path = tmp_path / "compressed.tif"
    tifffile.imwrite(path, expected, compression=compression, metadata={"axes": "TYX"})
    stack = bio.open_stack(path)
    assert stack._mode == "pages"
    np.testing.assert_array_equal(stack[3:8], expected[3:8])
    assert stack._decoded is None and stack._spool is None  # frame ranges decode only those frames
    _check_reads(stack, tifffile.imread(path))
    # tiles of rows come from one decoded copy in an unnamed temporary file, never from the stack
    # held in memory; the copy has no name in TMPDIR, so even a killed job leaves nothing there
    assert stack._decoded is None and stack._spool is not None
    copy = stack._spool.file
    assert os.fstat(copy.fileno()).st_size == expected.nbytes
    assert not list(scratch.iterdir())
    stack.close()
    assert copy.closed and stack._spool is None
    np.testing.assert_array_equal(stack[:, 2:6], expected[:, 2:6])  # decoded again after close
    copy = weakref.ref(stack._spool.file)
    del stack  # garbage collection frees the copy too
    gc.collect()
    assert copy() is None


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """TMPDIR for this test: an empty folder (tempfile reads TMPDIR again)."""
    import tempfile

    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", None)
    return folder


def test_compressed_stack_tiles_need_a_writable_temporary_folder(tmp_path, monkeypatch):
    path = tmp_path / "compressed.tif"
    tifffile.imwrite(path, _stack(), compression="zlib")
    stack = bio.open_stack(path)

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(stacks_module.tempfile, "TemporaryFile", no_space)
    with pytest.raises(bio.InputError, match=r"compressed\.tif: is compressed.*No space left.*TMPDIR"):
        stack[:, 0:4]
    monkeypatch.undo()
    np.testing.assert_array_equal(stack[:, 0:4], _stack()[:, 0:4])


def test_multichannel_tcyx_hyperstack(tmp_path):
    hyperstack = _stack(frames=11 * 3, seed=1).reshape(11, 3, 17, 13)
    path = tmp_path / "tcyx.tif"
    tifffile.imwrite(path, hyperstack, imagej=True, metadata={"axes": "TCYX"})
    for channel in (1, 2, 3):
        stack = bio.open_channel(path, channel)
        assert isinstance(stack, bio.Stack)
        _check_reads(stack, hyperstack[:, channel - 1])
    compressed = tmp_path / "tcyx_zlib.tif"
    tifffile.imwrite(compressed, hyperstack, compression="zlib", photometric="minisblack", metadata={"axes": "TCYX"})
    stack = bio.open_channel(compressed, 2)
    assert stack._mode == "pages"
    _check_reads(stack, hyperstack[:, 1])
    assert os.fstat(stack._spool.file.fileno()).st_size == hyperstack[:, 1].nbytes  # the one channel only


def test_multichannel_samples_tyxs(tmp_path):
    samples = _stack(frames=9 * 2, seed=2).reshape(9, 2, 17, 13).transpose(0, 2, 3, 1).copy()
    path = tmp_path / "tyxs.tif"
    tifffile.imwrite(path, samples, photometric="minisblack", planarconfig="contig")
    for channel in (1, 2):
        _check_reads(bio.open_channel(path, channel, "TYXS"), samples[..., channel - 1])
    with pytest.raises(bio.InputError, match="channel 3 does not exist"):
        bio.open_channel(path, 3, "TYXS")


@pytest.mark.skipif(not (SHARED_DATA / "two_ch.tif").is_file(), reason="../shared/data/two_ch.tif missing")
def test_two_ch_tif_equals_imread():
    path = SHARED_DATA / "two_ch.tif"
    whole = tifffile.imread(path)
    for channel in (1, 2):
        stack = bio.open_channel(path, channel, "TYXS")
        np.testing.assert_array_equal(np.asarray(stack), whole[..., channel - 1])
        np.testing.assert_array_equal(stack[10:20, 5:9], whole[10:20, 5:9, :, channel - 1])
        np.testing.assert_array_equal(stack[:, 3:7, :], whole[:, 3:7, :, channel - 1])


def test_single_channel_files_in_open_channel(tmp_path):
    expected = _stack()
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, expected)
    _check_reads(bio.open_channel(path, None), expected)
    with pytest.raises(bio.InputError, match="no channel 2"):
        bio.open_channel(path, 2)


@pytest.mark.parametrize(
    "options",
    [
        {"imagej": True, "metadata": {"axes": "TYX"}},
        {"metadata": {"axes": "TYX"}},
        {"metadata": None},
        {"compression": "zlib"},
    ],
    ids=["imagej", "shaped", "plain", "zlib"],
)
def test_truncated_file_names_the_file(tmp_path, options):
    expected = _stack(frames=40, shape=(64, 64))
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, expected, **options)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(bio.InputError, match=r"cut\.tif: the file is truncated"):
        bio.open_stack(path)
    with pytest.raises(bio.InputError, match=r"cut\.tif: the file is truncated"):
        bio.open_channel(path, None)


def test_file_cut_after_opening_names_the_file(tmp_path):
    expected = _stack(frames=40, shape=(64, 64))
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, expected, imagej=True, metadata={"axes": "TYX"})
    stack = bio.open_stack(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 3 * 64 * 64 * 2])
    np.testing.assert_array_equal(stack[0:10], expected[0:10])
    with pytest.raises(bio.InputError, match=r"cut\.tif: the file ends inside frame 37"):
        stack[30:40]
    with pytest.raises(bio.InputError, match=r"cut\.tif: the file ends inside frame 3[78]"):
        stack[:, 10:20, :]  # rows 10-20 of the partly cut frame 37 may still be there


def test_reads_are_new_arrays(tmp_path):
    """Frame blocks and tiles are new arrays, not views of a memory map: editing one does not touch the file."""
    expected = _stack()
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, expected)
    stack = bio.open_stack(path)
    block = stack[0:4]
    assert block.flags.writeable and block.base is None or not isinstance(block.base, np.memmap)
    block[:] = 0
    np.testing.assert_array_equal(stack[0:4], expected[0:4])
    tile = stack[:, 2:5, :]
    assert tile.base is None or not isinstance(tile.base, np.memmap)


def test_frame_store_round_trip_by_frames_and_bands_of_rows(scratch):
    expected = np.random.default_rng(3).normal(size=(4, 9, 5))
    with bio.FrameStore(4, (9, 5), "mean", "stack.tif") as store:
        for index in (2, 0, 3, 1):  # any order
            store.write(index, expected[index, :4], slice(0, 4))
            store.write(index, expected[index, 4:], slice(4, 9))
        for index in range(4):
            np.testing.assert_array_equal(store.read(index), expected[index])
        with pytest.raises(ValueError, match=r"rows 0..3 of a \(9, 5\) frame"):
            store.write(0, expected[0], slice(0, 4))
        assert not list(scratch.iterdir())  # an unnamed file: nothing to leave behind
        handle = store._handle
    assert handle.closed


def test_map_series_writer_pages_are_an_imagej_time_series(tmp_path):
    maps = np.random.default_rng(4).normal(size=(6, 11, 7))
    maps[2, 3, 4] = np.nan
    path = tmp_path / "brightness.tif"
    with bio.MapSeriesWriter(path, 6, (11, 7)) as writer:
        for index in (5, 0, 1, 2, 3, 4):
            writer.write(index, maps[index])
    with tifffile.TiffFile(path) as tif:
        assert tif.series[0].axes == "TYX" and tif.imagej_metadata["frames"] == 6
        np.testing.assert_array_equal(tif.asarray(), maps.astype(np.float32))


def test_a_full_disk_is_said_plainly(tmp_path):
    """A step that hits a full disk (ENOSPC, as numpy or tifffile raise it) ends its job with one line that
    says so and what to do, in the job's log where the failure summary finds it, not a traceback."""
    import errno

    from brightflow import io as bio

    def step(path):
        raise OSError(errno.ENOSPC, "No space left on device", path)

    log = tmp_path / "job.log"
    with pytest.raises(SystemExit) as ended:
        bio.run(step, str(log), 1, path=str(tmp_path / "maps.npy"))
    assert ended.value.code == 1
    text = log.read_text()
    assert f"ERROR brightflow: the disk is full writing {tmp_path / 'maps.npy'} (No space left on device)" in text
    assert "Traceback" not in text
    summary = bio.failure_summary({"x": [str(tmp_path / "maps.npy")]}, {"x": [str(tmp_path)]})
    assert "the disk is full writing" in summary[1]
