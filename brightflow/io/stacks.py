"""Reading recordings: TIFF stacks block by block, their axes, channels and calibration.

A recording is never read whole into memory: :class:`Stack` reads the frames or the tiles of
pixel rows a step asks for (brightflow.blocks sizes them). Every reading function turns a bad
file into :class:`~brightflow.io.InputError`, with a message that names the file, says what is
wrong and what to do.
"""

from __future__ import annotations

import hashlib
import logging
import math
import tempfile
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import tifffile

from .. import calibration as calib
from ..blocks import frame_chunks
from .errors import InputError
from .stores import temporary_file_error

log = logging.getLogger("brightflow")

__all__ = [
    "Stack",
    "channel_count",
    "check_stack_shape",
    "frame_size",
    "open_channel",
    "open_stack",
    "read_calibration",
    "sha256",
    "stack_axes",
    "stack_shape",
    "tiff_series",
    "whole_stack_megabytes",
]


class Stack:
    """A (t, y, x) stack read from its TIFF file block by block, in its own dtype.

    Not an array: indexing reads what it asks for from the file and returns a new
    array, so a process's memory holds only the frames it is working on however
    long the recording is.

    - ``stack[a:b]`` (frames ``a .. b-1``): an uncompressed stack stored
      contiguously is read with one seek and one ``readinto`` per call (no memory
      map, so no file pages stay in the resident set); a compressed or
      non-contiguous one is decoded page by page (tifffile) for those frames only.
    - ``stack[:, rows, :]`` (a tile of pixel rows across every frame): one seek
      and ``readinto`` per frame of the bytes holding those rows. A compressed (or
      non-contiguous) stack is first decoded once, block by block, into an
      uncompressed temporary file of the selected channel (in ``TMPDIR``, which
      snakemake points at the job's ``resources.tmpdir``; as big as the channel's
      pixels), and its tiles, and then its frames, are read from that file the same
      way: memory stays one block or one tile, not the stack. The file has no name:
      :meth:`close`, garbage collection or the end of the process (killed included)
      frees it.
    - Other keys read the frames that the first index selects, then apply the rest.
    - ``np.asarray(stack)`` reads every frame.

    Multi-channel files (``TCYX``, ``TYXS`` ...) are read in blocks of time points in
    their own layout; brightflow.axes.to_tcyx is applied to each block and the one
    channel kept, so no other channel is ever held for the whole recording.

    Parameters
    ----------
    path : Path
    shape : tuple of int
        The file's series shape (all its axes).
    dtype : numpy.dtype
    axes : str
        The series' resolved axes (brightflow.axes.resolve_axes), e.g. ``"TYX"``, ``"TCYX"``.
    channel : int
        Index (from 0) of the channel to select along the channel axis of ``to_tcyx``.
    series : int
        The TIFF series (from 0): an OME-TIFF's image, a shaped TIFF's stack.
    """

    #: The recording's pixel size and frame interval (set by :func:`open_channel` from the file's metadata).
    calibration = calib.UNCALIBRATED
    #: The channel's name from the file's metadata (OME, CZI, OME-Zarr), None when it has none.
    channel_name = None

    def __init__(self, path, shape, dtype, axes="TYX", channel=0, series=0):
        self.path = Path(path)
        self._series = int(series or 0)
        self._file_shape = tuple(int(s) for s in shape)
        self._axes = axes
        self._channel = int(channel)
        self._tif = None
        self._decoded = None  # the whole decoded series (layouts where time is not the first axis)
        self._spool = None  # compressed stacks: the decoded channel in a temporary file (tiles)
        self._file = None  # the open file to read from instead of ``path`` (Stack._raw)
        self.dtype = np.dtype(dtype).newbyteorder("=")
        with tifffile.TiffFile(self.path) as tif:
            series = tif.series[self._series]
            self._mode = _read_mode(axes, series)
            offset = series.dataoffset
            self._byteorder = tif.byteorder
            pages = len(series.pages)
        if self._mode == "array":
            self._decoded = self._select_all(_read_whole(self.path, self._series))
            self.shape = self._decoded.shape
            return
        probe = self._select(np.empty((1,) + self._file_shape[1:], dtype=np.uint8))
        self.shape = (self._file_shape[0],) + probe.shape[1:]
        self._frame_items = math.prod(self._file_shape[1:])
        self._file_dtype = self.dtype.newbyteorder(self._byteorder)
        if self._mode == "contiguous":
            self._offset = int(offset)
            needed = self._offset + math.prod(self._file_shape) * self.dtype.itemsize
            size = self.path.stat().st_size
            if size < needed:
                raise InputError(
                    f"{self.path}: the file is truncated ({size} bytes; its header describes "
                    f"{self._file_shape} {self.dtype} pixels ending at byte {needed}). Copy or export "
                    "the recording again."
                )
        else:
            self._pages_per_frame = pages // self._file_shape[0]

    # --- array-like -------------------------------------------------------------------------

    @property
    def ndim(self):
        return len(self.shape)

    def __len__(self):
        return self.shape[0]

    def __array__(self, dtype=None, copy=None):
        values = self[:]
        return values if dtype is None else values.astype(dtype, copy=False)

    def __repr__(self):
        return f"Stack({str(self.path)!r}, shape={self.shape}, dtype={self.dtype}, {self._mode})"

    def close(self):
        """Close the file kept open for page-by-page reading and delete the temporary decoded
        copy of a compressed stack, if any (both are made again when read again)."""
        if self._tif is not None:
            self._tif.close()
            self._tif = None
        if self._spool is not None:
            self._spool.remove()
            self._spool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            key = (key,)
        if key and key[0] is Ellipsis and len(key) == 1:
            key = (slice(None),)
        first, rest = (key[0] if key else slice(None)), key[1:]
        frames = len(self)
        if (
            isinstance(first, slice)
            and first == slice(None)
            and len(rest) in (1, 2)
            and isinstance(rest[0], slice)
            and (len(rest) == 1 or rest[1] == slice(None))
            and rest[0] != slice(None)
        ):
            return self._tile(rest[0])
        if isinstance(first, slice) and first.step in (None, 1):
            start, stop, _ = first.indices(frames)
            block = self._frames(start, max(start, stop))
            return block[(slice(None),) + rest] if rest else block
        if isinstance(first, (int, np.integer)):
            index = int(first) + frames if first < 0 else int(first)
            if not 0 <= index < frames:
                raise IndexError(f"frame {first} is out of range for {frames} frames")
            block = self._frames(index, index + 1)[0]
            return block[rest] if rest else block
        return self._frames(0, frames)[key]

    # --- reading ----------------------------------------------------------------------------

    def _data(self):
        """The file holding the pixel data: the TIFF, opened for one read, or the open temporary
        file of a :meth:`_raw` stack (left open)."""
        return nullcontext(self._file) if self._file is not None else open(self.path, "rb", buffering=0)

    def _select(self, block):
        """``block`` (time points in the file's layout) as (t, y, x) of the selected channel."""
        from brightflow import axes

        return axes.to_tcyx(block, self._axes)[:, self._channel]

    def _select_all(self, array):
        return np.ascontiguousarray(self._select(array.reshape(self._file_shape)))

    def _frames(self, start, stop):
        count = stop - start
        if self._spool is not None:  # a compressed stack already decoded for its tiles
            return self._spool.stack._frames(start, stop)
        if self._mode == "array":
            return np.array(self._decoded[start:stop])
        if count <= 0:
            return np.empty((0,) + self.shape[1:], dtype=self.dtype)
        if self._mode == "contiguous":
            raw = np.empty((count,) + self._file_shape[1:], dtype=self._file_dtype)
            with self._data() as handle:
                handle.seek(self._offset + start * self._frame_items * self.dtype.itemsize)
                read = handle.readinto(memoryview(raw).cast("B"))
            if read != raw.nbytes:
                raise InputError(
                    f"{self.path}: the file ends inside frame {start + read // raw[0].nbytes}; it is "
                    "truncated. Copy or export the recording again."
                )
        else:
            if self._tif is None:
                self._tif = tifffile.TiffFile(self.path)
            per = self._pages_per_frame
            try:
                raw = self._tif.asarray(key=list(range(start * per, stop * per)), series=self._series)
            except Exception as error:
                raise InputError(f"{self.path}: frames {start}..{stop - 1} cannot be decoded ({error}).") from error
            raw = raw.reshape((count,) + self._file_shape[1:])
        block = self._select(raw)
        if block.dtype != self.dtype or not block.flags.c_contiguous:
            block = np.ascontiguousarray(block, dtype=self.dtype)  # the channel; native byte order
        return block

    def _tile(self, rows):
        """Every frame of the pixel rows ``rows``: ``(t, len(rows), x)``, a new array.

        For an uncompressed stack, each frame's bytes that hold those rows (of the selected
        channel) are read with one seek and ``readinto``. Not a memory map: the kernel maps
        the pages around each touched page of a file mapping ("fault-around", 64 KiB), so a
        tile of a few rows across 4000 frames held 300-550 MB of file pages in the resident
        set, where these reads hold the tile only.
        """
        if self._mode == "contiguous":
            frames = self._file_shape[0]
            # the item numbers, within one frame in the file's layout, of the tile's pixels
            items = np.arange(self._frame_items, dtype=np.int64).reshape((1,) + self._file_shape[1:])
            wanted = self._select(items)[0, rows, :]
            if wanted.size == 0:
                return np.empty((frames, 0, self.shape[2]), dtype=self.dtype)
            first = int(wanted.min())
            span = int(wanted.max()) + 1 - first
            raw = np.empty((frames, span), dtype=self._file_dtype)
            view = memoryview(raw).cast("B")
            row_bytes = span * self.dtype.itemsize
            frame_bytes = self._frame_items * self.dtype.itemsize
            with self._data() as handle:
                for frame in range(frames):
                    handle.seek(self._offset + frame * frame_bytes + first * self.dtype.itemsize)
                    if handle.readinto(view[frame * row_bytes : (frame + 1) * row_bytes]) != row_bytes:
                        raise InputError(
                            f"{self.path}: the file ends inside frame {frame}; it is truncated. "
                            "Copy or export the recording again."
                        )
            if span == wanted.size:  # the rows are contiguous in each frame (TYX, TCYX)
                tile = raw.reshape((frames,) + wanted.shape)
            else:  # interleaved channels (TYXS): pick the channel's values
                tile = raw[:, wanted - first]
            return np.ascontiguousarray(tile, dtype=self.dtype)
        if self._mode == "pages":
            if self._spool is None:
                self._spool = _DecodedCopy(self)
            return self._spool.stack._tile(rows)
        return np.array(self._decoded[:, rows, :])

    @classmethod
    def _raw(cls, file, label, shape, dtype):
        """A (t, y, x) stack of ``dtype`` (native byte order) stored from byte 0 of the open
        binary ``file`` with no header (the temporary decoded copy of a compressed stack);
        ``label`` names it in messages."""
        stack = cls.__new__(cls)
        stack.path, stack.shape, stack.dtype = Path(label), tuple(shape), np.dtype(dtype)
        stack._file_shape, stack._axes, stack._channel, stack._series = stack.shape, "TYX", 0, 0
        stack._tif = stack._decoded = stack._spool = None
        stack._file = file
        stack._frame_items = math.prod(stack.shape[1:])
        stack._file_dtype = stack.dtype
        stack._mode, stack._offset = "contiguous", 0
        return stack


def _read_mode(axes, series):
    """How :class:`Stack` reads a TIFF series whose resolved axes are ``axes``.

    ``"contiguous"``: uncompressed and stored in one run of bytes, read with seeks;
    ``"pages"``: one or more pages per time point, decoded page by page for the frames
    asked (tiles of rows from a decoded copy on disk); ``"array"``: decoded whole, because
    time is not the first axis or the pages do not divide into time points.
    """
    if axes.index("T") != 0:
        return "array"
    if series.dataoffset is not None and series.keyframe.compression <= 1:
        return "contiguous"
    pages = len(series.pages)
    return "pages" if pages and pages % series.shape[0] == 0 else "array"


def whole_stack_megabytes(path, configured_axes=None):
    """Memory (MB) that reading the stack at ``path`` adds beyond its blocks: 0 when it is read
    block by block (:class:`Stack`, and every CZI and OME-Zarr), else its decoded size (shape x item
    size), for the TIFF layouts it decodes whole. Axes are resolved as :func:`open_channel`
    resolves them (``configured_axes``: ``input.axes``); ``path`` may be a
    :class:`~brightflow.io.sources.StackSource` naming a series. Reads the header only.

    Raises
    ------
    InputError
        The file is missing or not a readable stack.
    """
    from .sources import file_kind, series_of

    if file_kind(path) in ("czi", "zarr"):
        return 0.0
    series = series_of(path) or 0
    path = Path(path)
    header = _series_header(path, series)
    axes = _header_axes(path, header, configured_axes) if len(header.shape) >= 4 else "TYX"
    with tifffile.TiffFile(path) as tif:
        if _read_mode(axes, tif.series[series]) != "array":
            return 0.0
    return math.prod(header.shape) * np.dtype(header.dtype).itemsize / 2**20


class _DecodedCopy:
    """The selected channel of a compressed :class:`Stack`, decoded once into a temporary file.

    Decoded in blocks of frames (:func:`frame_chunks`) and written in the stack's dtype,
    native byte order, (t, y, x) order; ``.stack`` reads it as an uncompressed stack. The file
    is a ``tempfile.TemporaryFile`` under ``TMPDIR`` (snakemake sets it to the job's
    ``tmpdir`` resource): it has no name, so the system frees its space when it is closed
    (:meth:`remove`, garbage collection) or the process ends in any way, killed included.
    """

    def __init__(self, source, why="is compressed", instead="or save the stack uncompressed"):
        size = math.prod(source.shape) * source.dtype.itemsize
        self.file = None
        try:
            self.file = tempfile.TemporaryFile(prefix="brightflow-decoded-")
            for start, stop in frame_chunks(len(source), source.shape[1:]):
                self.file.write(memoryview(source[start:stop]).cast("B"))
            self.file.flush()
        except OSError as error:
            self.remove()
            raise temporary_file_error(
                f"{source.path}: {why}, and the tiles of pixel rows this step reads need it "
                "decoded into a temporary file",
                size,
                error,
                instead,
            ) from error
        if source._tif is not None:  # the page reader is no longer needed
            source._tif.close()
            source._tif = None
        self.stack = Stack._raw(self.file, f"{source.path} (decoded copy)", source.shape, source.dtype)
        log.info(
            "%s %s: decoded once into a temporary file (%.0f MB, in %s) to read tiles of pixel rows",
            source.path,
            why,
            size / 2**20,
            tempfile.gettempdir(),
        )

    def remove(self):
        if self.file is not None:
            self.file.close()
            self.file = None


def _read_whole(path, series=0):
    try:
        with tifffile.TiffFile(path) as tif:  # never tifffile.imread(path): it reads * ? [ as a glob
            return tif.asarray(series=series)
    except Exception as error:
        raise InputError(f"{path}: the pixel data cannot be decoded ({error}).") from error


def open_stack(path):
    """Open a (t, y, x) time series for reading, block by block, in its own dtype (a :class:`Stack`).

    Raises
    ------
    InputError
        The file is missing, not a readable TIFF, not a (t, y, x) stack, or truncated.
    """
    return open_channel(path)


class _Header(tuple):
    """(shape, axes, dtype) of a TIFF series, and whether its axes come from OME metadata."""

    def __new__(cls, shape, axes, dtype, ome=False):
        header = super().__new__(cls, (shape, axes, dtype))
        header.shape, header.axes, header.dtype, header.ome = shape, axes, dtype, ome
        return header


#: TIFF compression schemes that can lose information, by tifffile's COMPRESSION value. JPEG, JPEG 2000
#: and WebP are looked at more closely (:func:`_lossy_compression`): their lossless modes pass.
_MAYBE_LOSSY = {6: "old-style JPEG", 7: "JPEG", 33003: "JPEG 2000", 33004: "JPEG 2000", 33005: "JPEG 2000",
                34712: "JPEG 2000", 34892: "JPEG", 22610: "JPEG XR", 34934: "JPEG XR", 50001: "WebP",
                50002: "JPEG XL", 52546: "JPEG XL"}  # fmt: skip


def _first_strip(page):
    """The first stored (compressed) strip or tile of a page, as bytes."""
    handle = page.parent.filehandle
    offset, count = page.dataoffsets[0], page.databytecounts[0]
    handle.seek(offset)
    return handle.read(min(count, 1 << 20))


def _lossy_compression(page):
    """The name of the page's compression when it is (or may be) lossy, else None.

    JPEG is lossless only in its lossless processes (a SOF3, SOF7, SOF11 or SOF15 frame header);
    JPEG 2000 only with the reversible 5-3 wavelet (the COD segment's transform byte is 1); WebP
    only in its lossless format (a ``VP8L`` chunk). JPEG XR and JPEG XL can be either and do not
    say so cheaply: they are refused as possibly lossy.
    """
    method = _MAYBE_LOSSY.get(int(page.compression))
    if method is None:
        return None
    try:
        data = _first_strip(page)
    except Exception:  # unreadable: the stack's own reader reports it
        return method
    if method.endswith("JPEG"):
        return None if _jpeg_frame_type(bytes(page.jpegtables or b"") + data) in _LOSSLESS_JPEG else method
    if method == "JPEG 2000":
        at = data.find(b"\xff\x52")
        return None if at >= 0 and len(data) > at + 13 and data[at + 13] == 1 else method
    if method == "WebP":
        return None if b"VP8L" in data[:64] else method
    return method


#: JPEG's lossless processes: their start-of-frame markers (SOF3, SOF7, SOF11, SOF15).
_LOSSLESS_JPEG = {0xC3, 0xC7, 0xCB, 0xCF}


def _jpeg_frame_type(data):
    """The start-of-frame marker (0xC0 .. 0xCF) of a JPEG stream, walking its segments; None if none."""
    at = 2 if data[:2] == b"\xff\xd8" else data.find(b"\xff\xd8") + 2
    while 1 < at < len(data) - 3:
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            at += 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return marker
        if marker == 0xD9:  # the end of the tables-only stream: the strip's own stream follows
            found = data.find(b"\xff\xd8", at)
            at = found + 2 if found >= 0 else -1
            continue
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    return None


def _series_header(path, series=0):
    """The :class:`_Header` of the file's series ``series``, as :class:`InputError` when unreadable.

    A truncated file is reported as such: tifffile then finds fewer pages than the
    file's metadata (ImageJ ``images``, tifffile's shape) describes, or an IFD offset
    past the end of the file. Lossy compression is refused (:func:`_lossy_compression`).
    """
    if path.is_dir():
        raise InputError(
            f"{path}: is a folder, not a stack file. Give the path of the recording's file (an OME-Zarr is a "
            "folder named *.zarr)."
        )
    if not path.is_file():
        raise InputError(f"{path}: file not found. Check input_dir or the sample sheet's 'path' column.")
    problems = _TiffProblems()
    tifffile_log = logging.getLogger("tifffile")
    tifffile_log.addHandler(problems)
    try:
        with tifffile.TiffFile(path) as tif:
            if series >= len(tif.series):
                raise InputError(f"{path}: has {len(tif.series)} series; series {series} does not exist.")
            chosen = tif.series[series]
            shape, axes, dtype = tuple(chosen.shape), chosen.axes, chosen.dtype
            keyframe = chosen.keyframe
            lossy = _lossy_compression(keyframe)
            planes = math.prod(shape) // max(math.prod(keyframe.shape), 1)
            pages = len(chosen.pages)
            imagej = tif.imagej_metadata or {}
            described = [int(imagej.get("images", 0))]
            shaped = [tuple(meta["shape"]) for meta in (tif.shaped_metadata or ()) if meta.get("shape")]
            if len(shaped) == len(tif.series) > 1:  # one stack per series: compare this series' own
                shaped = [shaped[series]]
            described += [math.prod(one) // max(math.prod(keyframe.shape), 1) for one in shaped]
            ome = tif.is_ome
            # a plain multi-page TIFF whose pages differ in shape: tifffile splits it into series
            mixed = None
            if len(tif.series) > 1 and not (tif.is_ome or tif.is_imagej or _stacks_of_frames(tif)):
                mixed = [(tuple(other.keyframe.shape), len(other.pages)) for other in tif.series]
    except InputError:
        raise
    except Exception as error:  # tifffile raises several types for damaged files
        raise InputError(
            f"{path}: cannot be read as a TIFF ({type(error).__name__}: {error}). "
            "Export the recording as a TIFF stack (t, y, x) and run again."
        ) from error
    finally:
        tifffile_log.removeHandler(problems)
    if mixed:
        shapes = {}
        for one, count in mixed:
            shapes[one] = shapes.get(one, 0) + count
        if len(shapes) > 1:
            listing = ", ".join(f"{count} page(s) of {one}" for one, count in shapes.items())
            raise InputError(
                f"{path}: its pages do not all have the same shape ({listing}): a recording is frames of one size. "
                "Export all frames of the recording, at one size, into one multi-page TIFF."
            )
        raise InputError(
            f"{path}: holds {len(mixed)} separate images of {next(iter(shapes))} rather than one stack of frames. "
            "Save the recording as one multi-page stack (Fiji: File > Save As > Tiff; tifffile: "
            "imwrite(path, frames))."
        )
    thin = _one_pixel_frames(shape, shaped, imagej, pages)
    if thin:
        raise InputError(
            f"{path}: holds frames of {thin[0]} x {thin[1]} pixels (one pixel wide: a line scan, or a stack saved "
            "with its axes swapped). N&B needs 2D frames (t, y, x): export the recording as frames of its image."
        )
    if lossy:
        from .vendor import lossy_message

        raise InputError(lossy_message(path, lossy))
    if problems.messages or max(described) > planes:
        detail = "; ".join(problems.messages) or f"its metadata describes {max(described)} images, it holds {planes}"
        raise InputError(f"{path}: the file is truncated or damaged ({detail}). Copy or export the recording again.")
    return _Header(shape, axes, dtype, ome)


def _one_pixel_frames(shape, shaped, imagej, pages):
    """(height, width) of frames one pixel wide or high, as the file describes them; None otherwise.

    tifffile stores a (t, y, 1) array as one page of (t, y) with one sample per pixel; its own
    shaped metadata, or ImageJ's image count, still says what was written.
    """
    for described in shaped:
        if len(described) == 3 and min(described[1:]) == 1 and described[0] > 1:
            return tuple(described[1:])
    images = int(imagej.get("images", 0))
    if images > 1 and pages == 1 and len(shape) == 2 and shape[0] == images:
        return (shape[1], 1)
    if len(shape) == 3 and min(shape[1:]) == 1:
        return tuple(shape[1:])
    return None


def _stacks_of_frames(tif):
    """True when a TIFF's several series are each a stack of frames (shaped metadata written by
    tifffile, one stack per series), not separate single images."""
    return bool(tif.is_shaped) and all(len(series.shape) >= 3 and series.shape[0] > 1 for series in tif.series)


def tiff_series(path):
    """The series of a TIFF as :class:`~brightflow.io.sources.SeriesInfo`: every image of an OME-TIFF,
    every stack of a shaped TIFF of several stacks, else the one stack.

    Raises
    ------
    InputError
        The file is missing or cannot be read as a TIFF.
    """
    from .sources import SeriesInfo, ome_images

    path = Path(path)
    _series_header(path, 0)  # missing, unreadable, truncated, lossy: said once, for the file
    with tifffile.TiffFile(path) as tif:
        if not (tif.is_ome or _stacks_of_frames(tif)) or len(tif.series) == 1:
            series = tif.series[0]
            return [SeriesInfo(0, None, tuple(series.shape), series.axes)]
        names = [name for name, _ in ome_images(tif.ome_metadata)] if tif.is_ome else []
        return [
            SeriesInfo(index, (names[index] if index < len(names) else None) or None, tuple(series.shape), series.axes)
            for index, series in enumerate(tif.series)
        ]


class _TiffProblems(logging.Handler):
    """Collects tifffile's log messages that mean pages are missing (a truncated file)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        message = record.getMessage()
        if "invalid page offset" in message or "corrupted file" in message:
            self.messages.append(message.split("> ", 1)[-1])


def stack_axes(path, shape, metadata_axes, configured_axes=None, strict=False):
    """The axes of a stack (brightflow.axes.resolve_axes), as InputError.

    ``configured_axes`` (``input.axes``) applies only to stacks with as many dimensions as it
    has letters, so one setting serves a folder that also holds plain (t, y, x) stacks.
    ``strict``: the metadata's axes are the file's word even without a time axis (OME).
    """
    from brightflow import axes

    if configured_axes and len(configured_axes) != len(shape):
        configured_axes = None
    try:
        return axes.resolve_axes(shape, metadata_axes, configured_axes, strict=strict)
    except axes.AxesError as error:
        raise InputError(f"{path}: {error}.") from error


def _header_axes(path, header, configured_axes):
    return stack_axes(path, header.shape, header.axes, configured_axes, strict=header.ome)


def open_channel(path, channel=None, configured_axes=None):
    """One channel of a recording as a (t, y, x) :class:`Stack` (reads that channel block by block).

    Parameters
    ----------
    path : str or brightflow.io.sources.StackSource
        The recording: a TIFF, OME-TIFF, CZI or OME-Zarr. A :class:`StackSource` also names the
        series to read (else the file's only one) and the content the run started from, which is
        checked first (brightflow.io.sources.check_unchanged).
    channel : int or None
        The channel, counted from 1 as ImageJ does; ``None`` for a single-channel stack.
    configured_axes : str or None
        ``input.axes`` (e.g. ``"TYXS"``), for TIFFs whose metadata does not name the axes.

    A (t, y, x) stack is read as it is; a stack of 4 or more dimensions (ImageJ hyperstack
    ``TCYX``, OME ``TCYX``, channels as samples ``TYXS``) gets its axes from the metadata or
    ``configured_axes`` (:func:`stack_axes`) and is brought to ``(t, c, y, x)`` by
    brightflow.axes.to_tcyx. CZI and OME-Zarr are read by brightflow.io.vendor.
    """
    from .sources import check_unchanged, file_kind, list_series, series_of

    series = series_of(path)
    kind = file_kind(path)
    check_unchanged(path)
    if kind == "czi":
        from .vendor import open_czi_channel

        return open_czi_channel(path, series, channel)
    if kind == "zarr":
        from .vendor import open_zarr_channel

        return open_zarr_channel(path, series, channel, configured_axes)
    if kind == "unsupported":
        list_series(path)  # raises the format's message
    path = Path(path)
    series = series or 0
    header = _series_header(path, series)
    shape, dtype = header.shape, header.dtype
    if len(shape) < 4:
        if channel not in (None, 1):
            raise InputError(f"{path}: is a single-channel stack {shape}; it has no channel {channel}.")
        found = _header_axes(path, header, None) if header.ome and len(shape) == 3 else "TYX"
        check_stack_shape(path, shape, header.axes, dtype)
        frames = Stack(path, shape, dtype, found, 0, series)
        frames.calibration = read_calibration(path, series)
        frames.channel_name = _ome_channel_name(path, series, 0)
        return frames
    from brightflow import axes

    found = _header_axes(path, header, configured_axes)
    count = axes.to_tcyx(np.broadcast_to(np.uint8(0), shape), found).shape[1]  # a view: no memory used
    index = 1 if channel is None and count == 1 else channel
    if index is None or not 1 <= index <= count:
        raise InputError(
            f"{path}: has {count} channel(s) (axes {found!r}); channel {channel} does not exist. "
            "Check input.channels, segmentation.channel and nb.cross_channels (channels count from 1)."
        )
    frames = Stack(path, shape, dtype, found, index - 1, series)
    check_stack_shape(path, frames.shape, "TYX", dtype)
    frames.calibration = read_calibration(path, series)
    frames.channel_name = _ome_channel_name(path, series, index - 1)
    return frames


def _ome_channel_name(path, series, channel):
    with tifffile.TiffFile(path) as tif:
        if not tif.is_ome:
            return None
        from .sources import ome_images

        images = ome_images(tif.ome_metadata)
    names = images[series][1] if series < len(images) else []
    return names[channel] if channel < len(names) else None


def _tcyx_shape(path, configured_axes=None):
    """The stack's shape as ``(t, c, y, x)``, from its header: axes resolved as :func:`open_channel`
    resolves them (``configured_axes``: ``input.axes``); one channel for a (t, y, x) stack."""
    from brightflow import axes

    from .sources import file_kind, series_of

    if file_kind(path) in ("czi", "zarr"):
        return _vendor_tcyx_shape(path)
    series = series_of(path) or 0
    path = Path(path)
    header = _series_header(path, series)
    shape = header.shape
    if len(shape) < 4:
        return (shape[0], 1) + tuple(shape[1:]) if len(shape) == 3 else (1, 1) + tuple(shape[-2:])
    found = _header_axes(path, header, configured_axes)
    return axes.to_tcyx(np.broadcast_to(np.uint8(0), shape), found).shape  # a view: no memory used


def stack_shape(path, configured_axes=None):
    """The stack's ``(t, c, y, x)`` shape from its header (one channel for a (t, y, x) stack), for a
    TIFF or a vendor file's series (brightflow.io.sources).

    Raises
    ------
    InputError
        The file is missing, not readable, or its axes cannot be resolved.
    """
    return tuple(int(size) for size in _tcyx_shape(path, configured_axes))


def _vendor_tcyx_shape(path):
    from .sources import list_series, series_of

    wanted = series_of(path)
    found = list_series(path)
    info = next((one for one in found if one.index == wanted), found[0])
    sizes = dict(zip(info.axes, info.shape, strict=False))
    return (sizes.get("T", 1), sizes.get("C", 1), sizes.get("Y", 1), sizes.get("X", 1))


def channel_count(path, configured_axes=None):
    """How many channels the stack at ``path`` has (1 for a (t, y, x) stack), from its header.

    Raises
    ------
    InputError
        The file is missing, not a readable TIFF, or its axes cannot be resolved.
    """
    return _tcyx_shape(path, configured_axes)[1]


def frame_size(path, configured_axes=None):
    """Pixels in one frame of one channel of the stack at ``path`` (y times x), from its header.

    Raises
    ------
    InputError
        The file is missing, not a readable TIFF, or its axes cannot be resolved.
    """
    return math.prod(_tcyx_shape(path, configured_axes)[2:])


def check_stack_shape(path, shape, axes, dtype):
    """Raise :class:`InputError` unless ``shape`` is a (t, y, x) stack of real numbers."""
    if len(shape) == 2:
        raise InputError(
            f"{path}: is a single 2D image {shape}, not a time series. N&B needs a stack of "
            "frames (t, y, x): export all frames of the recording into one multi-page TIFF."
        )
    if len(shape) != 3:
        raise InputError(
            f"{path}: has {len(shape)} dimensions {shape} (axes {axes!r}); brightflow reads "
            "single-channel stacks (t, y, x). Split channels or z into separate files."
        )
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise InputError(f"{path}: pixel type {dtype} is not a real number type.")
    if shape[0] < 3:
        raise InputError(f"{path}: has only {shape[0]} frame(s); N&B needs a time series of many frames.")


def read_calibration(path, series=0):
    """The pixel size, unit and frame interval of a TIFF (brightflow.calibration.Calibration).

    From the OME-XML of an OME-TIFF (the image of ``series``), else from an ImageJ TIFF's
    description (``unit``, ``finterval``, ``tunit``) and resolution tags, else from a plain TIFF's
    resolution tags when their unit is the centimetre (a resolution in inches is a screen or
    printer setting, not a microscope's pixel size, and is ignored). Anything else is
    uncalibrated: pixels and frames.
    """
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.series[series].keyframe if series < len(tif.series) else tif.pages.first
            resolution = [_tag_number(page, name) for name in ("XResolution", "YResolution")]
            if tif.is_ome and tif.ome_metadata:
                found = calib.from_ome(tif.ome_metadata, series)
                if found != calib.UNCALIBRATED:
                    return found
            if tif.is_imagej:
                return calib.from_imagej(tif.imagej_metadata, *resolution)
            if int(page.tags.valueof("ResolutionUnit", 1)) == 3 and None not in resolution:  # centimetre
                return calib.Calibration(1e4 / resolution[0], 1e4 / resolution[1], "µm", None, "TIFF resolution")
    except Exception as error:  # a damaged file: the stack's own reader reports it
        raise InputError(f"{path}: cannot read its calibration ({type(error).__name__}: {error}).") from error
    return calib.UNCALIBRATED


def _tag_number(page, name):
    """A rational TIFF tag (``(numerator, denominator)``) as a float; None when absent or zero."""
    value = page.tags.valueof(name)
    if value is None:
        return None
    numerator, denominator = value if isinstance(value, tuple) else (value, 1)
    return numerator / denominator if numerator and denominator else None


def sha256(path, block=2**22):
    """SHA-256 of a file; of a folder (an OME-Zarr), of every file under it with its relative path."""
    digest = hashlib.sha256()
    path = Path(path)
    files = (
        [(None, path)]
        if not path.is_dir()
        else [(item.relative_to(path).as_posix(), item) for item in sorted(path.rglob("*")) if item.is_file()]
    )
    for name, file in files:
        if name is not None:
            digest.update(name.encode() + b"\0")
        with open(file, "rb") as handle:
            while chunk := handle.read(block):
                digest.update(chunk)
    return digest.hexdigest()
