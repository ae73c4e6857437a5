"""Temporary stores and page-by-page writers, so that no step holds more than a frame of results.

:class:`FrameStore` keeps frames of float64 (the time series' windows) in an unnamed temporary
file; :class:`MapSeriesWriter` writes a multi-page ImageJ TIFF one page at a time. Temporary
files live under ``TMPDIR`` (snakemake sets it to the job's ``tmpdir`` resource) and have no
name: the system frees them when they are closed or the process ends, killed included.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import tifffile

from .. import calibration as calib
from .errors import InputError
from .files import imagej_options

__all__ = ["FrameStore", "MapSeriesWriter", "temporary_file_error"]


def temporary_file_error(what, size_bytes, error, alternative):
    return InputError(
        f"{what} ({size_bytes / 2**20:.0f} MB) under {tempfile.gettempdir()}, which failed ({error}). Free "
        f"space there, point TMPDIR (snakemake: --default-resources tmpdir=...) at a bigger disk, {alternative}."
    )


class _OpenFile:
    """Owns one open file, ``_handle``: closed by :meth:`close` or at the end of a ``with`` block."""

    _handle = None

    def close(self):
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class FrameStore(_OpenFile):
    """``count`` frames of float64, ``(count, y, x)``, in a temporary file (not in memory).

    Written a frame, or a band of rows of a frame, at a time (:meth:`write`) in any order,
    and read back a frame at a time (:meth:`read`). The file is a ``tempfile.TemporaryFile``
    under ``TMPDIR``, freed by :meth:`close`, garbage collection or the end of the process
    (killed included). Used by rule nb_timeseries for every window's mean and variance.
    """

    def __init__(self, count, frame_shape, name, source):
        self.shape = (int(count),) + tuple(int(size) for size in frame_shape)
        self.name = f"{source}: the windows' {name} maps"
        size = math.prod(self.shape) * 8
        try:
            self._handle = tempfile.TemporaryFile(prefix=f"brightflow-windows-{name}-")
            self._handle.truncate(size)
        except OSError as error:
            self.close()
            raise temporary_file_error(
                f"{self.name} need a temporary file",
                size,
                error,
                "or use fewer windows (nb.timeseries)",
            ) from error

    def _seek(self, index, first_row=0):
        self._handle.seek(((int(index) * self.shape[1]) + int(first_row)) * self.shape[2] * 8)

    def write(self, index, values, rows=slice(None)):
        """Store ``values`` as frame ``index`` (or as its rows ``rows``, a slice of step 1)."""
        first, stop, _ = rows.indices(self.shape[1])
        values = np.ascontiguousarray(values, dtype=np.float64)
        if values.shape != (stop - first, self.shape[2]):
            raise ValueError(f"rows {first}..{stop - 1} of a {self.shape[1:]} frame, got {values.shape}")
        self._seek(index, first)
        try:
            self._handle.write(memoryview(values).cast("B"))
        except OSError as error:
            raise temporary_file_error(
                f"{self.name}: writing their temporary file",
                math.prod(self.shape) * 8,
                error,
                "or use fewer windows (nb.timeseries)",
            ) from error

    def read(self, index):
        frame = np.empty(self.shape[1:], dtype=np.float64)
        self._seek(index)
        if self._handle.readinto(memoryview(frame).cast("B")) != frame.nbytes:
            raise OSError(f"{self.name}: frame {index} is missing from the temporary file")
        return frame


class MapSeriesWriter(_OpenFile):
    """A multi-page float32 TIFF of maps with a leading window axis ``(windows, y, x)`` (ImageJ
    axes ``TYX``: Fiji opens it as a time series, one frame per window), written one page at a
    time, so that no more than one window's map is ever in memory.

    The file is created whole at the start (header and ImageJ metadata for every page, pixel
    data stored contiguously); :meth:`write` puts page ``index`` in place. ``calibration`` gives
    the pixel size, ``interval`` the seconds from one window to the next (ImageJ's frame interval).
    """

    def __init__(self, path, count, frame_shape, calibration=calib.UNCALIBRATED, interval=None):
        self.path = Path(path)
        self.frame_shape = tuple(int(size) for size in frame_shape)
        shape = (int(count),) + self.frame_shape
        tifffile.imwrite(
            self.path, shape=shape, dtype="float32", byteorder="<", **imagej_options(calibration, "TYX", interval)
        )
        with tifffile.TiffFile(self.path) as tif:
            self._offset = tif.series[0].dataoffset
        if self._offset is None:  # tifffile always stores an uncompressed ImageJ series contiguously
            raise RuntimeError(f"{self.path}: tifffile did not store the series contiguously")
        self._handle = open(self.path, "r+b")

    def write(self, index, values):
        page = np.ascontiguousarray(values, dtype="<f4")
        if page.shape != self.frame_shape:
            raise ValueError(f"{self.path}: a page is {self.frame_shape}, got {page.shape}")
        self._handle.seek(self._offset + int(index) * page.nbytes)
        self._handle.write(memoryview(page).cast("B"))
