"""What a recording file holds, and which part of it an experiment reads: formats, series, sources.

A file may hold several recordings: the series of an OME-TIFF (stage positions), the scenes of a
Zeiss CZI, the images of an OME-Zarr written by bioformats2raw. Each is a *series*, and each
series is an experiment of its own (brightflow.io.samples names it ``<file stem>_<series name or
index>``). A :class:`StackSource` is what the steps receive as their ``stack``: the file's path
(it is a ``str``), the series it reads, and the content the workflow fingerprinted when it
started (:func:`check_unchanged`), so that no step mixes two versions of a file that changes
during a run.

The formats brightflow reads (``FORMATS``), each through its own maintained reader: TIFF,
ImageJ TIFF and OME-TIFF (tifffile), Zeiss CZI (pylibCZIrw, Zeiss's own libCZI) and OME-Zarr
(zarr). Leica LIF and Nikon ND2 are recognised and refused with a clear message: no file of
either format can be tested here (docs/input_formats.md).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from .errors import InputError

__all__ = [
    "FORMATS",
    "SeriesInfo",
    "StackSource",
    "check_unchanged",
    "file_kind",
    "list_series",
    "recording_stem",
    "source",
]

#: The file kinds brightflow reads, by how their names end (lower case), and what they are.
FORMATS = {
    ".ome.tiff": "tiff",
    ".ome.tif": "tiff",
    ".tiff": "tiff",
    ".tif": "tiff",
    ".czi": "czi",
    ".ome.zarr": "zarr",
    ".zarr": "zarr",
}

#: Microscope formats recognised but not read, with what to do instead.
UNSUPPORTED = {
    ".lif": "a Leica LIF file",
    ".nd2": "a Nikon ND2 file",
}

#: What to do with a file of an UNSUPPORTED format.
_CONVERT = (
    "brightflow reads TIFF, OME-TIFF, Zeiss CZI and OME-Zarr (docs/input_formats.md): export the recording "
    "as OME-TIFF (Fiji: File > Save As > OME-TIFF, or bfconvert) and run again."
)


def _suffix(name):
    lower = str(name).lower()
    for suffix in sorted(list(FORMATS) + list(UNSUPPORTED), key=len, reverse=True):
        if lower.endswith(suffix) and len(lower) > len(suffix):
            return suffix
    return None


def file_kind(path):
    """``"tiff"``, ``"czi"``, ``"zarr"``, ``"unsupported"`` (LIF, ND2), or None (not a recording's name)."""
    suffix = _suffix(Path(path).name)
    if suffix is None:
        return None
    return FORMATS.get(suffix, "unsupported")


def recording_stem(path):
    """The file's name without its format's suffix (``a.ome.tif`` -> ``a``, ``b.ome.zarr`` -> ``b``)."""
    name = Path(path).name
    suffix = _suffix(name)
    return name[: -len(suffix)] if suffix else Path(path).stem


@dataclass(frozen=True)
class SeriesInfo:
    """One recording in a file: its index in the file (from 0), its name (None when the file gives
    none), its shape and axes as the file describes them."""

    index: int
    name: str | None
    shape: tuple
    axes: str


def list_series(path):
    """The recordings of the file at ``path``, as :class:`SeriesInfo` (one for most files).

    Raises
    ------
    InputError
        The file is missing, of a format brightflow does not read, or unreadable.
    """
    path = Path(path)
    kind = file_kind(path)
    if kind == "unsupported":
        raise InputError(f"{path}: is {UNSUPPORTED[_suffix(path.name)]}. {_CONVERT}")
    if kind == "zarr":
        from . import vendor

        return vendor.zarr_series(path)
    if kind == "czi":
        from . import vendor

        return vendor.czi_series(path)
    from .stacks import tiff_series

    return tiff_series(path)


# --- the source of an experiment: path, series and content ------------------------------------------


class StackSource(str):
    """The path of a recording (a ``str``: it opens and prints as the path) that also carries the
    series the experiment reads and the content the workflow fingerprinted when the run started.

    Attributes
    ----------
    series : int or None
        The series (from 0) of a file with several; None for a file with one.
    sha256 : str or None
        The file's SHA-256 when the run started (None: not checked, e.g. the demo's own stacks).
    digest_cache : str or None
        The workflow's digest cache (brightflow.io.content_digest), which makes the check cheap.
    """

    series = None
    sha256 = None
    digest_cache = None

    def __new__(cls, path, series=None, sha256=None, digest_cache=None):
        text = super().__new__(cls, os.fspath(path))
        text.series = None if series is None else int(series)
        text.sha256, text.digest_cache = sha256, digest_cache
        return text

    def label(self):
        """The path, with the series when the file has several (for messages)."""
        return str(self) if self.series is None else f"{self} (series {self.series})"


def source(spec):
    """A :class:`StackSource` for a rule's ``source`` parameter (``{"path": ..., "series": ..., "sha256": ...,
    "digest_cache": ...}``, brightflow's common.smk ``stack_source``)."""
    return StackSource(spec["path"], spec.get("series"), spec.get("sha256"), spec.get("digest_cache"))


def series_of(path):
    """The series a step reads from ``path`` (a :class:`StackSource`, or a plain path: None)."""
    return getattr(path, "series", None)


def check_unchanged(path):
    """Raise :class:`InputError` when the recording is no longer the content the run started with.

    Every step that opens the stack calls this: a file that gains frames, is re-exported or is
    replaced while the run goes on would otherwise give masks from one version and maps from
    another. Cheap: the digest comes from the workflow's cache while the file's fingerprint (size,
    modification time, inode) is unchanged, and the file is read again only when it moved.
    """
    expected = getattr(path, "sha256", None)
    if not expected:
        return
    from .digests import content_digest

    cache = getattr(path, "digest_cache", None)
    if cache:
        now = content_digest(str(path), cache)
    else:
        from .stacks import sha256

        now = sha256(str(path)) if os.path.exists(path) else None
    if now is None:
        raise InputError(
            f"{path}: the recording was removed while the run went on (it was there when the run started). Put it "
            "back and run again."
        )
    if now != expected:
        raise InputError(
            f"{path}: the recording changed while the run went on (its content is no longer the one this run "
            f"started from, sha256 {expected[:12]}..., now {now[:12]}...): the steps of one experiment must all read "
            "the same data. Let the acquisition or copy finish, then run again: the experiment is analysed anew "
            "from the new content."
        )


# --- OME-XML: images, their names and channels (parsing only) ----------------------------------------


def _local(tag):
    return tag.rsplit("}", 1)[-1]


def ome_images(xml):
    """``[(name or None, [channel names or None])]`` of each ``Image`` of an OME-XML document."""
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return []
    images = []
    for image in (element for element in root.iter() if _local(element.tag) == "Image"):
        pixels = next((e for e in image if _local(e.tag) == "Pixels"), None)
        channels = [] if pixels is None else [c.get("Name") for c in pixels if _local(c.tag) == "Channel"]
        images.append((image.get("Name") or None, channels))
    return images


#: Characters a series name may not bring into an experiment name (brightflow.io.samples.safe_name).
_NAME_UNSAFE = re.compile(r"[^\w.+-]+")


def series_label(info):
    """The part of an experiment name that names a series: its name made safe, else its index."""
    name = _NAME_UNSAFE.sub("_", info.name or "").strip("._-")
    return name or str(info.index)
