"""Reading and writing brightflow's files: images and maps (TIFF with the recording's calibration),
label masks, cellpose ``_seg.npy`` files, ImageJ ROI sets, NumPy arrays, JSON records and figures.

Readers turn a bad file into :class:`~brightflow.io.InputError` naming the file and the problem.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import tifffile

from .. import calibration as calib
from .errors import InputError

__all__ = [
    "PNG_COMPRESS_LEVEL",
    "imagej_options",
    "read_correction_model",
    "read_image",
    "read_json",
    "read_label_file",
    "read_maps",
    "read_npy",
    "read_seg_masks",
    "read_seg_npy",
    "read_swap_plan",
    "save_figure",
    "write_image",
    "write_imagej_rois",
    "write_json",
    "write_text",
    "write_labels",
    "write_map",
    "write_npy",
    "write_seg_npy",
    "write_stack",
]


def read_image(path):
    """A TIFF's image (its first series). Never ``tifffile.imread(path)``, which reads ``*``, ``?`` and
    ``[`` in a path as a glob pattern: an output folder named ``x?`` would read ``x1``'s files too."""
    with tifffile.TiffFile(path) as tif:
        return tif.asarray()


def imagej_options(calibration, axes, frame_interval=None):
    """tifffile.imwrite options of an ImageJ TIFF of ``axes`` carrying ``calibration``.

    The pixel size goes into the resolution tags (pixels per unit) and the unit into ImageJ's
    description, as ImageJ writes them; ``frame_interval`` (seconds from one page to the next of
    a time series) into ``finterval``. Uncalibrated: no resolution, no unit (ImageJ: pixels).
    """
    metadata = {"axes": axes}
    options = {"imagej": True, "metadata": metadata}
    if calibration.spatial:
        options["resolution"] = (1.0 / calibration.pixel_width, 1.0 / calibration.pixel_height)
        metadata["unit"] = calibration.imagej_unit()
    if frame_interval:
        metadata["finterval"] = float(frame_interval)
    return options


def write_stack(path, stack, calibration=calib.UNCALIBRATED):
    """A (t, y, x) recording as an ImageJ TIFF in its own dtype, with its calibration (the demo's stacks)."""
    tifffile.imwrite(path, np.asarray(stack), **imagej_options(calibration, "TYX", calibration.frame_interval))


def write_image(path, image, calibration=calib.UNCALIBRATED):
    """A 2D image as a float32 ImageJ TIFF, with the recording's pixel size (e.g. the projection)."""
    tifffile.imwrite(path, np.asarray(image, dtype=np.float32), **imagej_options(calibration, "YX"))


def write_labels(path, labels, calibration=calib.UNCALIBRATED):
    """A label mask as an ImageJ TIFF: 16-bit, or 32-bit (float, exact up to 2**24) above 65535 cells.

    ImageJ has no unsigned 32-bit images; its 32-bit type is float, which holds every label up to
    16,777,216 exactly. The recording's pixel size comes along, so ROIs measure in its unit.
    """
    labels = np.asarray(labels)
    if labels.size and labels.min() < 0:
        raise ValueError(f"{path}: a label mask cannot hold negative labels")
    top = int(labels.max()) if labels.size else 0
    if top > 2**24:
        raise ValueError(f"{path}: {top} labels do not fit an ImageJ label image (at most {2**24})")
    dtype = np.uint16 if top <= np.iinfo(np.uint16).max else np.float32
    tifffile.imwrite(path, labels.astype(dtype), **imagej_options(calibration, "YX"))


def write_map(npy_path, tif_path, values, calibration=calib.UNCALIBRATED):
    """Write one N&B map as ``.npy`` (float64) and ``.tif`` (float32, opens in Fiji, with the
    recording's pixel size)."""
    values = np.asarray(values, dtype=np.float64)
    np.save(npy_path, values)
    tifffile.imwrite(tif_path, values.astype(np.float32), **imagej_options(calibration, "YX"))


class _DataOnly(pickle.Unpickler):
    """Unpickles numpy arrays, numpy scalars and dtypes, and plain containers (dict, list, tuple, str,
    numbers, None: pickle builds those without looking up any class); any other class or function
    is refused before it is called, so loading runs no code the file brings."""

    ALLOWED = {
        (module, name)
        for module in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name in ("_reconstruct", "scalar")
    } | {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("builtins", "bytearray"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (
            (module, name) in self.ALLOWED
            or (module == "numpy" and name.endswith("DType"))
            or (module == "numpy.dtypes" and name.endswith("DType"))
        ):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name}")


def _load_npy_data(path):
    """The array of an ``.npy`` file; an object array is unpickled by :class:`_DataOnly`."""
    from numpy.lib import format as npy

    with open(path, "rb") as handle:
        version = npy.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = npy.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, fortran, dtype = npy.read_array_header_2_0(handle)
        else:
            shape, fortran, dtype = npy._read_array_header(handle, version)
        if dtype.hasobject:
            return _DataOnly(handle).load()
    return np.load(path, allow_pickle=False)


def read_seg_npy(path):
    """Load a cellpose ``_seg.npy`` file as a dict, safely.

    The file is a pickle (a dict in a 0-d object array). A user's file could hold a crafted
    object that runs a command when unpickled; this reader accepts only numpy arrays and plain
    containers (:class:`_DataOnly`) and refuses anything else with a clear message. The cellpose
    GUI's own files hold nothing else.
    """
    try:
        seg = _load_npy_data(path)
    except pickle.UnpicklingError as error:
        raise InputError(
            f"{path}: holds a Python object of type {error} besides arrays, numbers and text; brightflow does not "
            "load it, because loading such an object can run code. A cellpose _seg.npy holds only arrays, numbers, "
            "text, lists and dicts: save the masks again from the cellpose GUI, or give a label TIFF."
        ) from error
    except Exception as error:
        raise InputError(f"{path}: cannot be read as a cellpose _seg.npy file ({error}).") from error
    if isinstance(seg, np.ndarray) and seg.dtype.hasobject and seg.shape == ():
        seg = seg.item()
    if not isinstance(seg, dict) or "masks" not in seg:
        raise InputError(f"{path}: is not a cellpose _seg.npy file (no 'masks' entry).")
    return seg


def read_seg_masks(path):
    """The label image (uint16, cells 1..n) of a cellpose ``_seg.npy`` file; errors name the file."""
    from brightflow import segment

    try:
        return segment.masks_from_seg_dict(read_seg_npy(path))
    except ValueError as error:
        raise InputError(f"{path}: {error}") from error


def write_seg_npy(path, seg):
    np.save(path, seg, allow_pickle=True)


def read_label_file(path):
    """A user's label mask: a label TIFF or a cellpose ``_seg.npy``. Returns the raw labels."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: mask file not found. Check the sample sheet's 'mask' column.")
    if path.name.endswith(".npy"):
        labels = np.asarray(read_seg_npy(path)["masks"])
    else:
        try:
            labels = read_image(path)
        except Exception as error:
            raise InputError(f"{path}: cannot be read as a label TIFF ({error}).") from error
    labels = np.squeeze(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(
            f"{path}: a mask must be a 2D integer label image (0 = background), got shape "
            f"{labels.shape} of type {labels.dtype}."
        )
    if labels.size and labels.min() < 0:
        raise InputError(
            f"{path}: holds negative labels (the smallest is {int(labels.min())}); a label mask has 0 for the "
            "background and 1, 2, 3 ... for the cells. Save the mask again as an unsigned integer label image."
        )
    return labels


def write_npy(path, array):
    np.save(path, np.asarray(array))


def read_maps(paths, names):
    """The maps from their .npy files, ``{name: array}``, given in the order of ``names``."""
    return {name: read_npy(path) for name, path in zip(names, paths, strict=True)}


def read_npy(path, mmap=False):
    """Load an .npy array (as a read-only memory map when ``mmap``)."""
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except Exception as error:
        raise InputError(f"{path}: cannot be read as a NumPy .npy array ({error}); rerun the workflow.") from error


def write_imagej_rois(path, polygons):
    """Write an ImageJ ROI set (.zip, opens in Fiji's ROI Manager) with the ``roifile`` package.

    ``polygons`` maps each cell's label to its boundary loops along pixel edges, as
    :func:`brightflow.segment.pixel_edge_polygons` traces them ((x, y) pixel corners). Each ROI
    is named ``cell_<label>`` (the ``Cell ID`` of the tables). A cell of one loop (one part, no
    hole) is a traced polygon ROI (``Roi.TRACED_ROI``, what ImageJ's wand makes); a cell with a
    hole or several parts is a composite ROI (ImageJ's ``ShapeRoi``: type rectangle with the
    shape's path of MOVETO, LINETO, CLOSE operations in absolute coordinates, as ImageJ's
    ``RoiEncoder`` writes it). Either way ImageJ counts exactly the cell's pixels (a pixel is
    inside when its centre is).
    """
    from roifile import ROI_TYPE, ImagejRoi, roiwrite

    moveto, lineto, close = 0, 1, 4  # java.awt.geom.PathIterator segment types
    rois = []
    for label, loops in polygons.items():
        loops = [np.asarray(loop, dtype=np.int64) for loop in loops]
        corners = np.concatenate(loops)
        (left, top), (right, bottom) = corners.min(axis=0).tolist(), corners.max(axis=0).tolist()
        roi = ImagejRoi(left=left, top=top, right=right, bottom=bottom)
        if len(loops) == 1:
            roi.roitype = ROI_TYPE.TRACED
            roi.integer_coordinates = (loops[0] - [left, top]).astype(np.int32)
            roi.n_coordinates = len(loops[0])
        else:
            shape = []
            for loop in loops:
                (x0, y0), *rest = loop.tolist()
                shape += [moveto, x0, y0] + [v for x, y in rest for v in (lineto, x, y)] + [close]
            roi.roitype = ROI_TYPE.RECT
            roi.multi_coordinates = np.array(shape, dtype=np.float32)
            roi.shape_roi_size = len(shape)
        roi.name = f"cell_{int(label)}"
        rois.append(roi)
    Path(path).unlink(missing_ok=True)  # roiwrite appends to an existing zip
    if rois:
        roiwrite(path, rois)
    else:
        import zipfile

        zipfile.ZipFile(path, "w").close()  # an empty ROI set


def write_text(path, text):
    """A text file (e.g. an HTML page), UTF-8."""
    Path(path).write_text(text, encoding="utf-8")


def write_json(path, data):
    with open(path, "w") as handle:
        json.dump(data, handle, indent=2, default=_json_default)
        handle.write("\n")


def read_json(path):
    with open(path) as handle:
        return json.load(handle)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


#: zlib level of the PNGs: 3 writes a figure in about two thirds of the time of Pillow's default 6,
#: in files of about the same size (measured: cellmask.png 15% smaller, a map preview 2% smaller; a
#: figure of pure noise can come out some 10% bigger)
PNG_COMPRESS_LEVEL = 3


def save_figure(figure, path, dpi=None):
    options = {"pil_kwargs": {"compress_level": PNG_COMPRESS_LEVEL}} if str(path).lower().endswith(".png") else {}
    figure.savefig(path, dpi=dpi or figure.dpi, **options)


def read_correction_model(path, frames, stack_path):
    """The bleach-correction model (brightflow.detrend.CorrectionModel, from JSON) of a stack of ``frames``
    frames, checked to fit it."""
    from ..detrend import CorrectionModel

    try:
        model = CorrectionModel.from_json(read_json(path))
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(
            f"{path} is not a bleach-correction model brightflow can read ({error}); rerun the workflow."
        ) from error
    if model.frames != frames:
        raise InputError(
            f"{path} covers {model.frames} frames but {stack_path} has {frames}: the stack changed; rerun the workflow."
        )
    return model


def read_swap_plan(path, shape):
    """Robin Hood's swap plan (.npy, memory-mapped), checked to fit a stack of ``shape`` (t, y, x)."""
    plan = read_npy(path, mmap=True)
    if plan.shape != (shape[1], 2, shape[0]):
        raise InputError(
            f"{path}: swap plan of shape {plan.shape} does not fit the stack {tuple(shape)}; rerun the workflow."
        )
    return plan
