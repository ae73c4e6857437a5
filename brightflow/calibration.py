"""Spatial and temporal calibration of a recording: pixel size, its unit, and the frame interval.

A :class:`Calibration` is read from the input stack's metadata (ImageJ's TIFF description and
resolution tags, or OME-XML; the reading itself is file I/O and lives in the rule scripts' I/O
layer, which hands the parsed values to :func:`from_imagej` and :func:`from_ome`) and carried
into every output: TIFF resolution and unit, axes and scale bars of the figures, and
``settings.json``. Nothing here reads files.

The conventions followed are ImageJ's (``ij.measure.Calibration``: pixel width and height in
``unit`` per pixel, frame interval in ``tunit``, "sec" by default) and the OME data model's
(``Pixels`` attributes ``PhysicalSizeX``/``PhysicalSizeY`` with their units, default µm, and
``TimeIncrement`` with ``TimeIncrementUnit``, default s; Goldberg et al. 2005, Genome Biol 6:R47).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from xml.etree import ElementTree

__all__ = [
    "UNCALIBRATED",
    "Calibration",
    "from_czi",
    "from_imagej",
    "from_ome",
    "from_record",
    "scale_bar_length",
    "seconds",
    "spatial_unit",
]

#: Spellings of spatial units, as ImageJ, OME and microscope software write them, and the unit
#: brightflow reports. ImageJ writes "micron" (and shows "µm"), OME "µm" (U+00B5 or U+03BC).
_SPATIAL_UNITS = {
    "micron": "µm", "microns": "µm", "um": "µm", "µm": "µm", "μm": "µm", "\\u00b5m": "µm", "micrometer": "µm",
    "micrometre": "µm", "nm": "nm", "nanometer": "nm", "nanometre": "nm", "mm": "mm", "millimeter": "mm",
    "millimetre": "mm", "cm": "cm", "centimeter": "cm", "centimetre": "cm", "m": "m", "meter": "m", "metre": "m",
    "å": "Å", "angstrom": "Å",
}  # fmt: skip
#: Words that mean "no unit": ImageJ's default "pixel", OME's "pixel" unit, an empty string.
_NO_UNIT = {"", "pixel", "pixels", "px", "none"}
#: Time units and their length in seconds (ImageJ's tunit, OME's TimeIncrementUnit).
_SECONDS = {
    "s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0, "ms": 1e-3, "msec": 1e-3, "millisecond": 1e-3,
    "milliseconds": 1e-3, "µs": 1e-6, "μs": 1e-6, "us": 1e-6, "microsecond": 1e-6, "ns": 1e-9,
    "min": 60.0, "minute": 60.0, "minutes": 60.0, "h": 3600.0, "hr": 3600.0, "hour": 3600.0, "hours": 3600.0,
}  # fmt: skip
#: The unit brightflow writes into ImageJ TIFFs for each reported unit (ImageJ 1.x reads "micron"
#: as micrometres and keeps the TIFF description ASCII).
_IMAGEJ_UNITS = {"µm": "micron", "Å": "angstrom"}


@dataclass(frozen=True)
class Calibration:
    """How big a pixel is and how long a frame lasts.

    Attributes
    ----------
    pixel_width, pixel_height : float or None
        Size of one pixel along x and y, in :attr:`unit`; None when the recording is not
        spatially calibrated.
    unit : str or None
        The spatial unit (``"µm"``, ``"nm"``, ...); None when not calibrated (pixels).
    frame_interval : float or None
        Seconds from one frame to the next; None when unknown (frames).
    source : str
        Where the values came from (``"ImageJ metadata"``, ``"OME-XML"``, ``"none"``).
    """

    pixel_width: float | None = None
    pixel_height: float | None = None
    unit: str | None = None
    frame_interval: float | None = None
    source: str = "none"

    @property
    def spatial(self):
        """True when pixel sizes and a unit are known."""
        return self.unit is not None and self.pixel_width is not None and self.pixel_height is not None

    @property
    def temporal(self):
        """True when the frame interval is known."""
        return self.frame_interval is not None

    @property
    def length_unit(self):
        """The unit of lengths in figures and tables: the spatial unit, or ``"pixels"``."""
        return self.unit if self.spatial else "pixels"

    def imagej_unit(self):
        """The unit as written into an ImageJ TIFF description (ASCII; ``"micron"`` for µm)."""
        return _IMAGEJ_UNITS.get(self.unit, self.unit)

    def record(self):
        """A JSON-ready description (``settings.json``); says so explicitly when uncalibrated."""
        return {
            "spatially_calibrated": self.spatial,
            "pixel_width": self.pixel_width if self.spatial else None,
            "pixel_height": self.pixel_height if self.spatial else None,
            "unit": self.unit if self.spatial else "pixel",
            "frame_interval_s": self.frame_interval,
            "time_unit": "s" if self.temporal else "frame",
            "source": self.source,
        }


UNCALIBRATED = Calibration()


def from_record(record):
    """The :class:`Calibration` that :meth:`Calibration.record` described (None: uncalibrated)."""
    if not record:
        return UNCALIBRATED
    spatial = record.get("spatially_calibrated")
    return Calibration(
        pixel_width=record.get("pixel_width") if spatial else None,
        pixel_height=record.get("pixel_height") if spatial else None,
        unit=record.get("unit") if spatial else None,
        frame_interval=record.get("frame_interval_s"),
        source=record.get("source", "none"),
    )


def spatial_unit(text):
    """The spatial unit named by ``text`` (``"micron"`` -> ``"µm"``), None for pixels or nothing.

    An unknown word is kept as written (ImageJ accepts any unit name).
    """
    if text is None:
        return None
    text = str(text).strip()
    if text.lower() in _NO_UNIT:
        return None
    return _SPATIAL_UNITS.get(text.lower(), _SPATIAL_UNITS.get(text, text))


def seconds(value, unit="s"):
    """``value`` in ``unit`` as seconds; None when it is missing, not positive or the unit unknown."""
    factor = _SECONDS.get(str(unit).strip().lower() if unit is not None else "s", _SECONDS.get(str(unit).strip()))
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    if factor is None or not math.isfinite(value) or value <= 0:
        return None
    return value * factor


def _positive(value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def from_imagej(metadata, x_resolution=None, y_resolution=None):
    """The calibration of an ImageJ TIFF.

    ImageJ stores the pixel size as the TIFF ``XResolution``/``YResolution`` tags (pixels per
    unit) and the unit, frame interval and time unit in its description (``unit=``,
    ``finterval=``, ``tunit=``; ij.io.FileSaver.getDescriptionString).

    Parameters
    ----------
    metadata : dict
        The parsed ImageJ description (tifffile's ``TiffFile.imagej_metadata``).
    x_resolution, y_resolution : float or None
        Pixels per unit along x and y (the tags' rationals as floats).

    Returns
    -------
    Calibration
        Spatially calibrated only when the description names a unit and both resolutions are
        positive; the frame interval only when ``finterval`` is positive.
    """
    metadata = metadata or {}
    unit = spatial_unit(metadata.get("unit"))
    x_resolution, y_resolution = _positive(x_resolution), _positive(y_resolution)
    frame_interval = seconds(metadata.get("finterval"), metadata.get("tunit", "sec"))
    if unit is None or x_resolution is None or y_resolution is None:
        if frame_interval is None:
            return UNCALIBRATED
        return Calibration(frame_interval=frame_interval, source="ImageJ metadata")
    return Calibration(1.0 / x_resolution, 1.0 / y_resolution, unit, frame_interval, "ImageJ metadata")


def from_ome(xml, image=0):
    """The calibration of image ``image`` of an OME-XML document.

    Reads the ``Pixels`` element's ``PhysicalSizeX``, ``PhysicalSizeY`` (unit attributes
    ``PhysicalSizeXUnit``/``PhysicalSizeYUnit``, µm when absent, as the OME schema defines) and
    ``TimeIncrement`` (``TimeIncrementUnit``, s when absent).

    Parameters
    ----------
    xml : str
        The OME-XML text (tifffile's ``TiffFile.ome_metadata``).
    image : int
        Which ``Image`` element (the series read).

    Returns
    -------
    Calibration
    """
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return UNCALIBRATED
    images = [element for element in root.iter() if element.tag.rsplit("}", 1)[-1] == "Image"]
    if not images or image >= len(images):
        return UNCALIBRATED
    pixels = next((e for e in images[image].iter() if e.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return UNCALIBRATED
    attributes = pixels.attrib
    width, height = _positive(attributes.get("PhysicalSizeX")), _positive(attributes.get("PhysicalSizeY"))
    x_unit = spatial_unit(attributes.get("PhysicalSizeXUnit", "µm"))
    y_unit = spatial_unit(attributes.get("PhysicalSizeYUnit", "µm"))
    frame_interval = seconds(attributes.get("TimeIncrement"), attributes.get("TimeIncrementUnit", "s"))
    if width is None or height is None or x_unit is None or x_unit != y_unit:
        if frame_interval is None:
            return UNCALIBRATED
        return Calibration(frame_interval=frame_interval, source="OME-XML")
    return Calibration(width, height, x_unit, frame_interval, "OME-XML")


def from_czi(xml):
    """The pixel size of a Zeiss CZI, from its metadata (``Metadata/Scaling/Items/Distance`` with
    ``Id`` X and Y: metres per pixel, as libCZI and ZEN write them).

    The frame interval is not read: ZEN keeps the acquisition time of each frame in the sub-blocks'
    own metadata, which the reader does not expose; the interval is then unknown (frames).

    Parameters
    ----------
    xml : str
        The CZI's metadata XML (pylibCZIrw's ``raw_metadata``).

    Returns
    -------
    Calibration
        In µm per pixel when both distances are positive; else uncalibrated.
    """
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return UNCALIBRATED
    sizes = {}
    for distance in root.iterfind(".//Scaling/Items/Distance"):
        value = _positive(distance.findtext("Value"))
        if distance.get("Id") in ("X", "Y") and value is not None:
            sizes[distance.get("Id")] = float(f"{value * 1e6:.12g}")  # metres -> µm, without binary residue
    if "X" not in sizes or "Y" not in sizes:
        return UNCALIBRATED
    return Calibration(sizes["X"], sizes["Y"], "µm", None, "CZI metadata")


def scale_bar_length(image_length, fraction=0.2):
    """A round scale bar length (1, 2 or 5 times a power of ten) near ``fraction`` of ``image_length``.

    Parameters
    ----------
    image_length : float
        The image's width in the calibrated unit.

    Returns
    -------
    float
        The largest such length not above ``fraction * image_length``.
    """
    target = float(image_length) * fraction
    if not math.isfinite(target) or target <= 0:
        return 0.0
    power = 10.0 ** math.floor(math.log10(target))
    return max(step * power for step in (1, 2, 5) if step * power <= target * (1 + 1e-9))
