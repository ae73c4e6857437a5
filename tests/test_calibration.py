"""Calibration (pixel size, unit, frame interval): read from ImageJ and OME metadata, carried into
every output TIFF, settings.json and the figures' axes; uncalibrated input stays in pixels/frames."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tifffile
from helpers import write_config

from brightflow import calibration, figures, simulate
from brightflow import io as bio
from brightflow.calibration import UNCALIBRATED, Calibration

MAP_NAMES = ("intensity", "variance", "apparent_brightness", "apparent_number", "brightness", "number")


# --- parsing the metadata --------------------------------------------------------------------------


def test_imagej_metadata_gives_pixel_size_unit_and_frame_interval():
    found = calibration.from_imagej({"unit": "micron", "finterval": 0.5}, 10.0, 8.0)
    assert found == Calibration(0.1, 0.125, "µm", 0.5, "ImageJ metadata")
    assert found.spatial and found.temporal and found.imagej_unit() == "micron"
    # ImageJ's escaped micro sign, a time unit in ms
    found = calibration.from_imagej({"unit": "\\u00B5m", "finterval": 250, "tunit": "ms"}, 20.0, 20.0)
    assert found.unit == "µm" and found.pixel_width == pytest.approx(0.05) and found.frame_interval == 0.25


def test_imagej_without_unit_or_resolution_is_uncalibrated_in_space():
    assert calibration.from_imagej({"unit": "pixel"}, 1.0, 1.0) == UNCALIBRATED
    assert calibration.from_imagej({}, None, None) == UNCALIBRATED
    frames_only = calibration.from_imagej({"finterval": 2.0}, 1.0, 1.0)
    assert not frames_only.spatial and frames_only.frame_interval == 2.0


OME = """<?xml version="1.0" encoding="UTF-8"?>
<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><Image ID="Image:0"><Pixels ID="Pixels:0"
 DimensionOrder="XYCZT" Type="uint16" SizeX="8" SizeY="8" SizeZ="1" SizeC="1" SizeT="5" {attributes}>
<Channel ID="Channel:0:0" SamplesPerPixel="1"/></Pixels></Image></OME>"""


def test_ome_metadata_with_units_and_defaults():
    found = calibration.from_ome(
        OME.format(
            attributes='PhysicalSizeX="65" PhysicalSizeXUnit="nm" '
            'PhysicalSizeY="65" PhysicalSizeYUnit="nm" TimeIncrement="100" '
            'TimeIncrementUnit="ms"'
        )
    )
    assert found == Calibration(65.0, 65.0, "nm", pytest.approx(0.1), "OME-XML")
    # the OME schema's default units: µm and s
    found = calibration.from_ome(OME.format(attributes='PhysicalSizeX="0.2" PhysicalSizeY="0.2" TimeIncrement="3"'))
    assert (found.unit, found.pixel_width, found.frame_interval) == ("µm", 0.2, 3.0)
    assert calibration.from_ome(OME.format(attributes="")) == UNCALIBRATED
    assert calibration.from_ome("not xml") == UNCALIBRATED


def test_record_round_trip_and_uncalibrated_record_says_pixels_and_frames():
    cal = Calibration(0.1, 0.1, "µm", 0.5, "ImageJ metadata")
    assert calibration.from_record(cal.record()) == cal
    record = UNCALIBRATED.record()
    assert record["spatially_calibrated"] is False and record["unit"] == "pixel"
    assert record["time_unit"] == "frame" and record["frame_interval_s"] is None
    assert calibration.from_record(record) == UNCALIBRATED


@pytest.mark.parametrize("width, expected", [(9.6, 1.0), (50, 10.0), (0.7, 0.1), (25.6, 5.0), (3, 0.5)])
def test_scale_bar_is_a_round_fifth_of_the_width(width, expected):
    assert calibration.scale_bar_length(width) == pytest.approx(expected)


# --- reading the files ------------------------------------------------------------------------------


def test_read_calibration_from_imagej_ome_and_plain_tiffs(tmp_path):
    stack = np.zeros((4, 8, 8), np.uint16)
    tifffile.imwrite(
        tmp_path / "ij.tif",
        stack,
        imagej=True,
        resolution=(1 / 0.08, 1 / 0.08),
        metadata={"axes": "TYX", "unit": "micron", "finterval": 0.05},
    )
    tifffile.imwrite(
        tmp_path / "ome.ome.tif",
        stack,
        ome=True,
        metadata={
            "axes": "TYX",
            "PhysicalSizeX": 0.13,
            "PhysicalSizeY": 0.13,
            "PhysicalSizeXUnit": "µm",
            "PhysicalSizeYUnit": "µm",
            "TimeIncrement": 2.0,
            "TimeIncrementUnit": "s",
        },
    )
    tifffile.imwrite(tmp_path / "plain.tif", stack, photometric="minisblack")
    tifffile.imwrite(
        tmp_path / "cm.tif", stack, photometric="minisblack", resolution=(50000.0, 50000.0), resolutionunit="CENTIMETER"
    )
    tifffile.imwrite(
        tmp_path / "inch.tif", stack, photometric="minisblack", resolution=(72.0, 72.0), resolutionunit="INCH"
    )
    ij = bio.read_calibration(tmp_path / "ij.tif")
    assert (ij.unit, ij.pixel_width, ij.frame_interval, ij.source) == (
        "µm",
        pytest.approx(0.08),
        0.05,
        "ImageJ metadata",
    )
    ome = bio.read_calibration(tmp_path / "ome.ome.tif")
    assert (ome.unit, ome.pixel_width, ome.frame_interval, ome.source) == ("µm", 0.13, 2.0, "OME-XML")
    assert bio.read_calibration(tmp_path / "plain.tif") == UNCALIBRATED
    cm = bio.read_calibration(tmp_path / "cm.tif")
    assert cm.unit == "µm" and cm.pixel_width == pytest.approx(0.2)
    assert bio.read_calibration(tmp_path / "inch.tif") == UNCALIBRATED  # a screen's dpi is no pixel size
    # the stack reader carries it
    assert bio.open_channel(tmp_path / "ij.tif").calibration == ij


def test_label_tiffs_are_imagej_16_bit_or_32_bit_above_65535_cells(tmp_path):
    cal = Calibration(0.25, 0.25, "µm", None, "test")
    small = np.arange(12, dtype=np.uint32).reshape(3, 4)
    bio.write_labels(tmp_path / "small.tif", small, cal)
    many = np.arange(70000, dtype=np.uint32).reshape(280, 250)
    bio.write_labels(tmp_path / "many.tif", many, cal)
    with tifffile.TiffFile(tmp_path / "small.tif") as tif:
        assert tif.is_imagej and tif.pages[0].dtype == np.uint16
        np.testing.assert_array_equal(tif.asarray(), small)
    with tifffile.TiffFile(tmp_path / "many.tif") as tif:
        assert tif.is_imagej and tif.pages[0].dtype == np.float32
        np.testing.assert_array_equal(tif.asarray().astype(np.int64), many)
    assert bio.read_calibration(tmp_path / "many.tif").pixel_width == pytest.approx(0.25)


# --- figures ----------------------------------------------------------------------------------------


def _scale_bars(ax):
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    return [artist for artist in ax.artists if isinstance(artist, AnchoredSizeBar)]


def test_calibrated_previews_have_axes_in_the_unit_and_a_scale_bar():
    values = np.random.default_rng(0).random((40, 50))
    cal = Calibration(0.1, 0.1, "µm", 0.5, "test")
    ax = figures.map_preview(values, "Intensity", "counts", calibration=cal).axes[0]
    assert ax.get_xlabel() == "x (µm)" and ax.get_ylabel() == "y (µm)"
    assert ax.images[0].get_extent() == pytest.approx([0, 5.0, 4.0, 0])
    (bar,) = _scale_bars(ax)
    assert bar.txt_label.get_text() == "1 µm"
    plain = figures.map_preview(values, "Intensity", "counts").axes[0]
    assert "pixels" in plain.get_xlabel() and not _scale_bars(plain)
    mask_ax = figures.cellmask_figure(values, (values > 0.5).astype(int), calibration=cal).axes[0]
    assert len(_scale_bars(mask_ax)) == 1


def test_time_axes_are_in_seconds_when_the_frame_interval_is_known():
    trace = np.linspace(10, 8, 21)
    labels = {
        "title": "Bleach correction: boxcar (l = 3 (set))",
        "trend": "trend (boxcar)",
        "corrected": "after correction",
        "note": "",
    }
    ax = figures.bleach_correction_figure(trace, trace, trace, labels, frame_interval=0.5).axes[0]
    assert ax.get_xlabel() == "time (s)" and ax.lines[0].get_xdata()[-1] == pytest.approx(10.0)
    ax = figures.bleach_correction_figure(trace, trace, trace, labels).axes[0]
    assert ax.get_xlabel().startswith("frame") and ax.lines[0].get_xdata()[-1] == 20


# --- through the workflow -----------------------------------------------------------------------------


def _tiff_calibration(path):
    """(is ImageJ, unit in the description, x resolution, finterval) read straight from the tags."""
    with tifffile.TiffFile(path) as tif:
        metadata = tif.imagej_metadata or {}
        x_resolution = tif.pages[0].tags.valueof("XResolution")
        return tif.is_imagej, metadata.get("unit"), x_resolution[0] / x_resolution[1], metadata.get("finterval")


@pytest.fixture(scope="module")
def calibrated_run(run_workflow, tmp_path_factory):
    """A calibrated stack (ImageJ: 0.1 µm pixels, 0.5 s frames) and an uncalibrated one, analysed
    once with the time series on (windows of 20 frames starting every 10)."""
    workdir = tmp_path_factory.mktemp("calibration")
    stacks = workdir / "stacks"
    stacks.mkdir()
    stack, _ = simulate.demo_experiment([(2.0, 5.0), (1.0, 5.0)], seed=3, shape=(48, 64), frames=40)
    tifffile.imwrite(
        stacks / "calibrated.tif",
        stack,
        imagej=True,
        resolution=(1 / 0.1, 1 / 0.1),
        metadata={"axes": "TYX", "unit": "micron", "finterval": 0.5},
    )
    tifffile.imwrite(stacks / "plain.tif", stack, imagej=True, metadata={"axes": "TYX"})
    config = write_config(
        workdir / "config.yaml",
        input_dir=str(stacks),
        bleach_correction={"method": "none"},
        nb={"timeseries": {"frames_per_set": 20, "overlap": 10}},
    )
    run_workflow(workdir, "--configfile", config)
    return workdir / "results"


def _output_tiffs(folder):
    return (
        [folder / f"{name}.tif" for name in MAP_NAMES]
        + [
            folder / "segmentation_image.tif",
            folder / "segmentation_labels.tif",
            folder / "analysis_labels.tif",
        ]
        + sorted((folder / "timeseries").glob("*.tif"))
    )


@pytest.mark.workflow
def test_calibration_is_carried_into_every_output_tiff_and_settings(calibrated_run):
    folder = calibrated_run / "calibrated"
    tiffs = _output_tiffs(folder)
    assert len(tiffs) == 13
    for path in tiffs:
        is_imagej, unit, x_resolution, _ = _tiff_calibration(path)
        assert is_imagej and unit == "micron" and x_resolution == pytest.approx(10.0), path
        assert bio.read_calibration(path).pixel_width == pytest.approx(0.1), path
    for path in sorted((folder / "timeseries").glob("*.tif")):
        # one page per window; windows start every frames_per_set - overlap = 10 frames of 0.5 s
        assert _tiff_calibration(path)[3] == pytest.approx(5.0), path
    for name in ("segmentation_labels.tif", "analysis_labels.tif"):
        assert tifffile.imread(folder / name).dtype == np.uint16
    recorded = json.loads((folder / "settings.json").read_text())["input"]["calibration"]
    assert recorded == {
        "spatially_calibrated": True,
        "pixel_width": pytest.approx(0.1),
        "pixel_height": pytest.approx(0.1),
        "unit": "µm",
        "frame_interval_s": 0.5,
        "time_unit": "s",
        "source": "ImageJ metadata",
    }

    folder = calibrated_run / "plain"
    for path in [folder / "intensity.tif", folder / "segmentation_labels.tif", folder / "timeseries" / "number.tif"]:
        is_imagej, unit, x_resolution, finterval = _tiff_calibration(path)
        assert is_imagej and unit is None and x_resolution == 1 and finterval is None, path
    recorded = json.loads((folder / "settings.json").read_text())["input"]["calibration"]
    assert recorded["spatially_calibrated"] is False and recorded["unit"] == "pixel"
    assert recorded["time_unit"] == "frame"


#: Prints, for each image path (one per line of the argument file), ImageJ's calibration and type,
#: then the calibrated area of every ROI of the set on the first image.
CALIBRATION_MACRO = r"""
lines = split(File.openAsString(getArgument()), "\n");
for (i = 1; i < lines.length; i++) {
    open(lines[i]);
    getPixelSize(unit, width, height);
    print("image|" + lines[i] + "|" + unit + "|" + width + "|" + height + "|" + Stack.getFrameInterval() + "|" + bitDepth() + "|" + nSlices);
    close();
}
open(lines[1]);
roiManager("Open", lines[0]);
for (k = 0; k < roiManager("count"); k++) {
    roiManager("Select", k);
    List.setMeasurements;
    print("roi|" + Roi.getName + "|" + List.getValue("Area"));
}
"""


@pytest.mark.workflow
def test_imagej_reads_the_calibration_of_every_output_tiff(calibrated_run, tmp_path, imagej):
    """The real ImageJ sees 0.1 µm pixels in every output TIFF of the calibrated stack, the window
    interval (5 s) in the time series, 16-bit label images, and ROI areas in µm² (Pixels x 0.01);
    the uncalibrated stack's TIFFs stay in pixels."""
    folder, plain = calibrated_run / "calibrated", calibrated_run / "plain"
    tiffs = _output_tiffs(folder) + [plain / "intensity.tif", plain / "segmentation_labels.tif"]
    listing = tmp_path / "images.txt"
    listing.write_text("\n".join([str(folder / "cell_rois.zip")] + [str(path) for path in tiffs]))
    printed = imagej(CALIBRATION_MACRO, tmp_path, argument=listing)
    seen = {}
    areas = {}
    for line in printed.splitlines():
        fields = line.split("|")
        if fields[0] == "image":
            seen[fields[1]] = fields[2:]
        elif fields[0] == "roi":
            areas[fields[1]] = float(fields[2])
    for path in _output_tiffs(folder):
        unit, width, height, interval, depth, pages = seen[str(path)]
        assert unit in ("microns", "micron", "µm") and float(width) == pytest.approx(0.1), (path, unit, width)
        assert float(height) == pytest.approx(0.1)
        if path.parent.name == "timeseries":
            assert float(interval) == pytest.approx(5.0) and int(pages) == 3, (path, interval, pages)
        if "labels" in path.name:
            assert int(depth) == 16, path
    for path in (plain / "intensity.tif", plain / "segmentation_labels.tif"):
        unit, width, *_ = seen[str(path)]
        assert unit in ("pixels", "pixel") and float(width) == 1.0, (path, unit)
    cells = pd.read_csv(folder / "average_values_in_roi.csv")
    assert len(cells) == len(areas) > 0
    for cell_id, pixels in zip(cells["Cell ID"], cells["Pixels"], strict=False):
        assert areas[f"cell_{cell_id}"] == pytest.approx(pixels * 0.01, rel=1e-9)
