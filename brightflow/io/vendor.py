"""Zeiss CZI and OME-Zarr recordings, read plane by plane behind brightflow's :class:`Stack` interface.

One small adapter per format, each on the format's own maintained reader:

- CZI: pylibCZIrw (Zeiss's libCZI). Each scene is a series. A frame is one ``read`` of the
  scene's rectangle at (T=t, C=c, Z=0); a tile of rows is the same ``read`` of those rows only
  (libCZI decodes the sub-blocks the rectangle touches), so memory holds one frame or one tile.
  Sub-blocks compressed with JPEG or JPEG XR (lossy) are refused.
- OME-Zarr (NGFF 0.4 with zarr v2, 0.5 with zarr v3): zarr. Each image is a series: the store's
  own image, or the numbered images of a bioformats2raw layout. The full-resolution array is read
  by index, ``array[t, c, 0, rows, :]``: zarr decodes only the chunks those indices touch.

Both give a (t, y, x) :class:`PlaneStack` of one channel with its calibration and channel name.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from .. import calibration as calib
from .errors import InputError
from .sources import SeriesInfo
from .stacks import Stack

__all__ = ["PlaneStack", "czi_series", "open_czi_channel", "open_zarr_channel", "zarr_series"]


class PlaneStack(Stack):
    """A (t, y, x) channel read one plane (or one band of rows of a plane) at a time.

    ``read(t, start, stop)`` returns rows ``start .. stop-1`` of frame ``t`` as a 2D array. Chunks
    of frames read each frame once. Tiles of rows (the smoothing bleach corrections read the
    recording tile by tile) come, as for a compressed TIFF, from a copy of the channel decoded once,
    block by block, into an unnamed temporary file in ``TMPDIR`` (brightflow.io.stacks._DecodedCopy):
    both readers decode whole sub-blocks or chunks, usually whole frames, so reading a tile straight
    from the file would decode the recording again for every tile. A process holds one block or one
    tile, never the recording.
    """

    def __init__(self, path, shape, dtype, read, close=None, calibration=calib.UNCALIBRATED, channel_name=None):
        self.path = Path(path)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype).newbyteorder("=")
        self._read, self._closer = read, close
        self._mode = "planes"
        self._tif = self._decoded = self._spool = self._file = None
        self.calibration = calibration
        self.channel_name = channel_name

    def close(self):
        if self._spool is not None:
            self._spool.remove()
            self._spool = None

    def __del__(self):
        if getattr(self, "_closer", None) is not None:
            self._closer()

    def _frames(self, start, stop):
        if self._spool is not None:  # decoded for its tiles already
            return self._spool.stack._frames(start, stop)
        block = np.empty((max(0, stop - start),) + self.shape[1:], dtype=self.dtype)
        for index, frame in enumerate(range(start, stop)):
            block[index] = self._plane(frame, 0, self.shape[1])
        return block

    def _tile(self, rows):
        if self._spool is None:
            from .stacks import _DecodedCopy

            self._spool = _DecodedCopy(self, "is read by frames", "or export it as an uncompressed TIFF")
        return self._spool.stack._tile(rows)

    def _plane(self, frame, start, stop):
        try:
            values = np.asarray(self._read(frame, start, stop))
        except InputError:
            raise
        except Exception as error:  # the readers raise many types for damaged data
            raise InputError(
                f"{self.path}: frame {frame} cannot be read ({type(error).__name__}: {error}). Copy or export the "
                "recording again."
            ) from error
        if values.shape != (stop - start, self.shape[2]):
            raise InputError(
                f"{self.path}: frame {frame} has shape {values.shape}, not {(stop - start, self.shape[2])}."
            )
        return values


def _single_channel(path, count, channel):
    """The channel's index from 0, for ``channel`` counted from 1 (None: the only one)."""
    index = 1 if channel is None and count == 1 else channel
    if index is None or not 1 <= index <= count:
        raise InputError(
            f"{path}: has {count} channel(s); channel {channel} does not exist. Check input.channels, "
            "segmentation.channel and nb.cross_channels (channels count from 1)."
        )
    return index - 1


def _time_series_check(path, sizes, what):
    """Refuse what is not a time series of 2D frames: a z-stack, too few frames, extra axes."""
    frames, planes = sizes.get("T", 1), sizes.get("Z", 1)
    if planes > 1:
        detail = "and no time axis" if frames <= 1 else f"at each of {frames} time points"
        raise InputError(
            f"{path}: {what} is a z-stack ({planes} planes in Z {detail}). N&B analyses one plane over time: "
            "record (or export) a time series of one plane."
        )
    others = {axis: size for axis, size in sizes.items() if axis not in "TCZYX" and size > 1}
    if others:
        raise InputError(
            f"{path}: {what} has axes brightflow does not analyse ({others}); export each recording of one "
            "plane over time on its own."
        )
    if frames < 3:
        raise InputError(f"{path}: {what} has only {frames} frame(s); N&B needs a time series of many frames.")


# --- Zeiss CZI (pylibCZIrw) ----------------------------------------------------------------------------

#: libCZI's sub-block compression modes that lose information (CompressionMode: 1 JPEG, 4 JPEG XR).
CZI_LOSSY = {1: "JPEG", 4: "JPEG XR"}
#: libCZI's grey pixel types and their numpy types (colour types are refused).
CZI_PIXEL_TYPES = {"Gray8": np.uint8, "Gray16": np.uint16, "Gray32Float": np.float32, "Gray32": np.int32}


def _czi_open(path):
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found. Check input_dir or the sample sheet's 'path' column.")
    try:
        from pylibCZIrw import czi as pyczi
    except ImportError as error:  # pragma: no cover - make venv installs it
        raise InputError(f"{path}: reading CZI files needs pylibCZIrw (make venv installs it).") from error
    try:
        return pyczi.CziReader(str(path))
    except Exception as error:
        raise InputError(
            f"{path}: cannot be read as a CZI file ({type(error).__name__}: {error}). Copy or export the recording "
            "again."
        ) from error


def _czi_compressions(reader):
    modes = set()

    def note(_, info):
        modes.add(int(info.compressionModeRaw))
        return True

    reader.enumerate_subblocks(note)
    return modes


def _czi_check_lossless(path, reader):
    lossy = sorted(CZI_LOSSY[mode] for mode in _czi_compressions(reader) if mode in CZI_LOSSY)
    if lossy:
        raise InputError(lossy_message(path, " and ".join(lossy)))


def lossy_message(path, method):
    """The refusal of a recording stored with lossy compression."""
    which = (
        "which can be lossy and does not say whether it was here"
        if method in ("JPEG XR", "JPEG XL")
        else "which is lossy here"
    )
    return (
        f"{path}: its pixels are stored with {method} compression, {which}: lossy compression changes the photon "
        "counts' noise, and N&B measures brightness from exactly that noise (the variance over frames), so every "
        "number would be wrong. Export the raw recording uncompressed or with lossless compression (LZW, zlib, "
        "zstd) and run again."
    )


def _czi_scene_names(xml):
    """{scene index: name} from the CZI metadata (``Dimensions/S/Scenes/Scene``), where ZEN wrote them."""
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return {}
    names = {}
    for position, scene in enumerate(root.iterfind(".//Dimensions/S/Scenes/Scene")):
        index = scene.get("Index")
        name = scene.get("Name") or scene.findtext("Name")
        if name:
            names[int(index) if index and index.isdigit() else position] = name
    return names


def czi_channel_names(xml):
    """Channel names of a CZI (``Information/Image/Dimensions/Channels/Channel/@Name``), in order."""
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return []
    return [channel.get("Name") for channel in root.iterfind(".//Information/Image/Dimensions/Channels/Channel")]


def _czi_layout(path, reader):
    """(sizes by axis, {scene: (x, y, w, h)}) of an open CZI."""
    box = {axis: stop - start for axis, (start, stop) in reader.total_bounding_box.items()}
    scenes = reader.scenes_bounding_rectangle
    if scenes:
        rectangles = {int(index): (r.x, r.y, r.w, r.h) for index, r in sorted(scenes.items())}
    else:
        r = reader.total_bounding_rectangle
        rectangles = {None: (r.x, r.y, r.w, r.h)}
    return box, rectangles


def czi_series(path):
    """The scenes of a CZI as :class:`SeriesInfo` (one series when the file has no scenes)."""
    reader = _czi_open(path)
    try:
        _czi_check_lossless(path, reader)
        box, rectangles = _czi_layout(path, reader)
        names = _czi_scene_names(reader.raw_metadata)
    finally:
        reader.close()
    return [
        SeriesInfo(
            index if index is not None else 0,
            names.get(index),
            (box.get("T", 1), box.get("C", 1), box.get("Z", 1), h, w),
            "TCZYX",
        )
        for index, (x, y, w, h) in rectangles.items()
    ]


def open_czi_channel(path, series=None, channel=None):
    """One channel of one scene of a CZI as a (t, y, x) :class:`PlaneStack`."""
    reader = _czi_open(path)
    try:
        _czi_check_lossless(path, reader)
        box, rectangles = _czi_layout(path, reader)
        if None in rectangles:
            scene, rectangle = None, rectangles[None]
            if series not in (None, 0):
                raise InputError(f"{path}: has no scenes; series {series} does not exist.")
        else:
            scene = 0 if series is None and len(rectangles) == 1 else series
            if scene not in rectangles:
                raise InputError(f"{path}: has scenes {sorted(rectangles)}; scene {series} does not exist.")
            rectangle = rectangles[scene]
        what = "the recording" if scene is None else f"scene {scene}"
        _time_series_check(path, {axis: size for axis, size in box.items() if axis not in "MSXY"}, what)
        index = _single_channel(path, box.get("C", 1), channel)
        starts = {axis: start for axis, (start, _) in reader.total_bounding_box.items()}
        pixel_type = reader.get_channel_pixel_type(index) if hasattr(reader, "get_channel_pixel_type") else None
        pixel_type = pixel_type or reader.pixel_types.get(index)
        if pixel_type not in CZI_PIXEL_TYPES:
            raise InputError(
                f"{path}: channel {index + 1} has pixels of type {pixel_type}; brightflow reads grey images "
                f"({', '.join(CZI_PIXEL_TYPES)}). Export the channels as grey images."
            )
        xml = reader.raw_metadata
    except BaseException:
        reader.close()
        raise
    x, y, w, h = rectangle
    frames = box.get("T", 1)
    plane = {"C": starts.get("C", 0) + index, "Z": starts.get("Z", 0)}

    def read(frame, start, stop):
        values = reader.read(
            roi=(x, y + start, w, stop - start), plane=plane | {"T": starts.get("T", 0) + frame}, scene=scene
        )
        return values[..., 0]

    names = czi_channel_names(xml)
    return PlaneStack(
        path,
        (frames, h, w),
        CZI_PIXEL_TYPES[pixel_type],
        read,
        reader.close,
        calib.from_czi(xml),
        names[index] if index < len(names) else None,
    )


# --- OME-Zarr (zarr) ------------------------------------------------------------------------------------


def _zarr_attributes(group):
    """The NGFF attributes of a group: under ``ome`` (0.5, zarr v3) or at the top (0.4, zarr v2)."""
    attributes = dict(group.attrs)
    return attributes.get("ome", attributes)


def _zarr_open(path):
    path = Path(path)
    if not path.is_dir():
        raise InputError(
            f"{path}: is not an OME-Zarr folder (an OME-Zarr is a folder named *.zarr). Check input_dir or the "
            "sample sheet's 'path' column."
        )
    try:
        import zarr
    except ImportError as error:  # pragma: no cover - make venv installs it
        raise InputError(f"{path}: reading OME-Zarr needs zarr (make venv installs it).") from error
    try:
        return zarr.open_group(str(path), mode="r")
    except Exception as error:
        raise InputError(
            f"{path}: cannot be read as an OME-Zarr ({type(error).__name__}: {error}). Copy or export it again."
        ) from error


def _zarr_images(path, group):
    """[(series index, name, image group)] of an OME-Zarr: its own image, or bioformats2raw's numbered ones."""
    attributes = _zarr_attributes(group)
    if "multiscales" in attributes:
        name = attributes["multiscales"][0].get("name") if attributes["multiscales"] else None
        return [(0, name, group)]
    if "plate" in attributes or "well" in attributes:
        raise InputError(
            f"{path}: is an OME-Zarr plate (high-content screening layout); brightflow reads OME-Zarr images. "
            "Give the path of each well's image folder in a sample sheet."
        )
    if "bioformats2raw.layout" in attributes:
        names = _bioformats2raw_names(path)
        images, index = [], 0
        while str(index) in group:
            images.append((index, names[index] if index < len(names) else None, group[str(index)]))
            index += 1
        if images:
            return images
    raise InputError(
        f"{path}: is a Zarr folder but not an OME-Zarr image (no 'multiscales' metadata). Write it as OME-Zarr "
        "(NGFF) or export the recording as OME-TIFF."
    )


def _bioformats2raw_names(path):
    xml = Path(path) / "OME" / "METADATA.ome.xml"
    if not xml.is_file():
        return []
    from .sources import ome_images

    return [name for name, _ in ome_images(xml.read_text(encoding="utf-8", errors="replace"))]


def _zarr_image(path, image, what):
    """(array of the full resolution, axes letters, multiscale metadata) of an NGFF image group."""
    multiscales = _zarr_attributes(image).get("multiscales")
    if not multiscales:
        raise InputError(f"{path}: {what} has no 'multiscales' metadata; it is not an OME-Zarr image.")
    multiscale = multiscales[0]
    axes = multiscale.get("axes")
    if axes is None:  # NGFF 0.1-0.3: always 5D TCZYX
        axes = [{"name": letter} for letter in "tczyx"]
    letters = "".join((axis["name"] if isinstance(axis, dict) else str(axis))[0].upper() for axis in axes)
    try:
        array = image[multiscale["datasets"][0]["path"]]
    except Exception as error:
        raise InputError(f"{path}: {what}: its full-resolution array cannot be opened ({error}).") from error
    if len(letters) != array.ndim:
        raise InputError(f"{path}: {what}: its axes {letters!r} do not fit its array of shape {array.shape}.")
    return array, letters, multiscale, axes


def zarr_series(path):
    """The images of an OME-Zarr as :class:`SeriesInfo`."""
    group = _zarr_open(path)
    series = []
    for index, name, image in _zarr_images(path, group):
        array, letters, _, _ = _zarr_image(path, image, f"image {index}")
        series.append(SeriesInfo(index, name, tuple(array.shape), letters))
    return series


def zarr_calibration(multiscale, axes):
    """Pixel size and frame interval of an NGFF image (the first dataset's ``scale`` transformation,
    with each axis's ``unit``; NGFF's units are UDUNITS names: ``micrometer``, ``second``)."""
    scale = None
    for transformations in (
        multiscale.get("datasets", [{}])[0].get("coordinateTransformations", []),
        multiscale.get("coordinateTransformations", []),
    ):
        for transformation in transformations or []:
            if transformation.get("type") == "scale":
                factors = transformation.get("scale")
                scale = factors if scale is None else [a * b for a, b in zip(scale, factors, strict=False)]
    if scale is None or len(scale) != len(axes):
        return calib.UNCALIBRATED
    named = {
        (axis.get("name", "") if isinstance(axis, dict) else str(axis)).lower(): (value, axis)
        for axis, value in zip(axes, scale, strict=False)
    }

    def unit_of(letter):
        axis = named.get(letter, (None, {}))[1]
        return axis.get("unit") if isinstance(axis, dict) else None

    frame_interval = None
    if "t" in named and unit_of("t"):
        frame_interval = calib.seconds(named["t"][0], unit_of("t"))
    x_unit, y_unit = calib.spatial_unit(unit_of("x")), calib.spatial_unit(unit_of("y"))
    if "x" in named and "y" in named and x_unit and x_unit == y_unit:
        return calib.Calibration(float(named["x"][0]), float(named["y"][0]), x_unit, frame_interval, "OME-Zarr")
    if frame_interval is not None:
        return calib.Calibration(frame_interval=frame_interval, source="OME-Zarr")
    return calib.UNCALIBRATED


def _omero_channel_names(image):
    omero = _zarr_attributes(image).get("omero") or {}
    return [channel.get("label") for channel in omero.get("channels", [])]


def open_zarr_channel(path, series=None, channel=None, configured_axes=None):
    """One channel of one image of an OME-Zarr as a (t, y, x) :class:`PlaneStack`."""
    group = _zarr_open(path)
    images = {index: (name, image) for index, name, image in _zarr_images(path, group)}
    index = 0 if series is None and len(images) == 1 else series
    if index not in images:
        raise InputError(f"{path}: has images {sorted(images)}; image {series} does not exist.")
    what = "the image" if len(images) == 1 else f"image {index}"
    array, letters, multiscale, axes = _zarr_image(path, images[index][1], what)
    sizes = dict(zip(letters, array.shape, strict=False))
    if "Y" not in sizes or "X" not in sizes:
        raise InputError(f"{path}: {what}: its axes {letters!r} lack y or x.")
    _time_series_check(path, sizes, what)
    channel_index = _single_channel(path, sizes.get("C", 1), channel)
    if np.dtype(array.dtype).kind not in "uif":
        raise InputError(f"{path}: {what}: pixel type {array.dtype} is not a real number type.")
    fixed = {"C": channel_index}

    def read(frame, start, stop):
        key = tuple(
            frame
            if letter == "T"
            else slice(start, stop)
            if letter == "Y"
            else slice(None)
            if letter == "X"
            else fixed.get(letter, 0)
            for letter in letters
        )
        return array[key]

    names = _omero_channel_names(images[index][1])
    shape = (sizes.get("T", 1), sizes["Y"], sizes["X"])
    return PlaneStack(
        path,
        shape,
        array.dtype,
        read,
        None,
        zarr_calibration(multiscale, axes),
        names[channel_index] if channel_index < len(names) else None,
    )


def folder_bytes(path):
    """The bytes of a file, or of every file under a folder (an OME-Zarr)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())
