"""Recordings in the microscope formats brightflow reads, each written by its format's own library.

- CZI: pylibCZIrw (Zeiss's libCZI, the library ZEN's files are read and written with), one scene
  per recording, with the pixel size and channel names in the CZI metadata;
- OME-Zarr: zarr, NGFF 0.4 (zarr v2 store, ``.zattrs``) or 0.5 (zarr v3, attributes under ``ome``),
  with the ``scale`` transformation and units, ``omero`` channel labels;
- OME-TIFF: tifffile's OME writer, one image per series, with PhysicalSize and TimeIncrement.

Every function takes (t, y, x) or (t, c, y, x) arrays and writes them as the format stores them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import tifffile


def _tcyx(stack):
    stack = np.asarray(stack)
    return stack[:, None] if stack.ndim == 3 else stack


def write_czi(path, scenes, pixel_size_um=0.1, channel_names=None, compression=None):
    """A CZI with one scene per (t, [c,] y, x) array of ``scenes`` (side by side on the stage)."""
    from pylibCZIrw import czi as pyczi

    path = Path(path)
    path.unlink(missing_ok=True)
    options = {"compression_options": compression} if compression else {}
    with pyczi.create_czi(str(path), exist_ok=True, **options) as czi:
        x = 0
        for scene, stack in enumerate(scenes):
            stack = _tcyx(stack)
            for t in range(stack.shape[0]):
                for c in range(stack.shape[1]):
                    czi.write(
                        data=np.ascontiguousarray(stack[t, c][..., None]),
                        plane={"T": t, "C": c, "Z": 0},
                        scene=scene,
                        location=(x, 0),
                    )
            x += stack.shape[-1] + 50
        channels = _tcyx(scenes[0]).shape[1]
        names = {index: name for index, name in enumerate(channel_names or [f"ch{c}" for c in range(channels)])}
        czi.write_metadata(
            document_name=path.stem,
            channel_names=names,
            scale_x=pixel_size_um * 1e-6,
            scale_y=pixel_size_um * 1e-6,
            scale_z=1e-6,
        )
    return path


def write_ome_zarr(
    path, stack, pixel_size_um=0.2, frame_interval_s=0.05, channel_names=None, version="0.4", axes="tczyx", chunks=None
):
    """An OME-Zarr image of a (t, [c,] y, x) array (stored as 5D ``tczyx``, or as ``axes`` says with the
    array given in that order)."""
    import zarr

    path = Path(path)
    shutil.rmtree(path, ignore_errors=True)
    data = np.asarray(stack)
    if axes == "tczyx":
        data = _tcyx(stack)[:, :, None]
    units = {"t": "second", "c": None, "z": "micrometer", "y": "micrometer", "x": "micrometer"}
    kinds = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
    scale_of = {"t": frame_interval_s, "c": 1.0, "z": 1.0, "y": pixel_size_um, "x": pixel_size_um}
    axis_list = [{"name": a, "type": kinds[a]} | ({"unit": units[a]} if units[a] else {}) for a in axes]
    multiscale = {
        "axes": axis_list,
        "datasets": [
            {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [scale_of[a] for a in axes]}]}
        ],
        "name": path.name.split(".")[0],
    }
    if chunks is None:
        chunks = tuple(1 if a in "tcz" else size for a, size in zip(axes, data.shape, strict=False))
    group = zarr.open_group(str(path), mode="w", zarr_format=2 if version == "0.4" else 3)
    array = group.create_array("0", shape=data.shape, dtype=data.dtype, chunks=chunks)
    array[...] = data
    channels = data.shape[axes.index("c")] if "c" in axes else 1
    omero = {"channels": [{"label": name} for name in (channel_names or [f"ch{c}" for c in range(channels)])]}
    if version == "0.4":
        group.attrs.update({"multiscales": [multiscale | {"version": "0.4"}], "omero": omero})
    else:
        group.attrs.update({"ome": {"version": "0.5", "multiscales": [multiscale], "omero": omero}})
    return path


def write_ome_tiff(path, series, names=None, pixel_size_um=0.25, frame_interval_s=0.1, axes="TYX", **options):
    """An OME-TIFF with one image per array of ``series`` (each ``axes``), named ``names``."""
    path = Path(path)
    with tifffile.TiffWriter(path, ome=True) as tif:
        for index, stack in enumerate(series):
            metadata = {
                "axes": axes,
                "PhysicalSizeX": pixel_size_um,
                "PhysicalSizeY": pixel_size_um,
                "TimeIncrement": frame_interval_s,
                "TimeIncrementUnit": "s",
            }
            if names:
                metadata["Name"] = names[index]
            tif.write(np.asarray(stack), metadata=metadata, photometric="minisblack", **options)
    return path
