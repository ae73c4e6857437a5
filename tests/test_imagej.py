"""ImageJ measures cell_rois.zip on intensity.tif exactly as average_values_in_roi.csv says.

The workflow runs through the snakemake command line on a simulated experiment whose mask
(``segmentation.method: existing``) holds every kind of cell a ROI set must handle: a ring
with another cell in its hole, a cell of two separate parts, two touching cells, cells cut by
the image border and a cell of two squares that meet at a corner. Real ImageJ (Debian's
``imagej``, run by tests/imagej_helpers.py under xvfb-run) opens the workflow's files and
measures every ROI; nothing of ImageJ is mocked. Skipped with the reason where ImageJ cannot
run; ``BRIGHTFLOW_REQUIRE_IMAGEJ=1`` (set by .ci/run) makes that a failure.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import tifffile
from helpers import write_config, write_stack
from imagej_helpers import ImageJError, imagej_or_skip, run_imagej_macro

from brightflow import io as bio
from brightflow import segment, simulate

# Open an image and a ROI set, and measure every ROI as Fiji's ROI Manager does. Argument:
# "image|roi set|output folder". Writes imagej_measurements.csv (per ROI: the pixels inside,
# counted without calibration, the calibrated area, the mean, the pixel size) and
# imagej_pixels.csv (every pixel inside every ROI).
MEASURE_ROIS_MACRO = r"""
args = split(getArgument(), "|");
open(args[0]);
roiManager("reset");
roiManager("Open", args[1]);
getPixelSize(unit, pixelWidth, pixelHeight);
measurements = "name,selection_type,contained_pixels,area,mean,pixel_width,pixel_height,unit\n";
pixels = "name,x,y\n";
for (i = 0; i < roiManager("count"); i++) {
    roiManager("select", i);
    name = Roi.getName;
    Roi.getContainedPoints(xs, ys);
    List.setMeasurements;
    measurements = measurements + name + "," + selectionType() + "," + xs.length + ","
        + d2s(List.getValue("Area"), -9) + "," + d2s(List.getValue("Mean"), -9) + ","
        + pixelWidth + "," + pixelHeight + "," + unit + "\n";
    for (j = 0; j < xs.length; j++)
        pixels = pixels + name + "," + xs[j] + "," + ys[j] + "\n";
}
File.saveString(measurements, args[2] + "/imagej_measurements.csv");
File.saveString(pixels, args[2] + "/imagej_pixels.csv");
print("ImageJ " + getVersion() + ": " + roiManager("count") + " ROIs measured on " + getTitle());
"""
TRACED, COMPOSITE = 4, 9  # ImageJ's selectionType()


def _cells():
    """A label mask (60 x 90) with every kind of cell, and the label of the special ones."""
    labels = np.zeros((60, 90), np.uint16)
    yy, xx = np.mgrid[:60, :90]

    def disk(row, col, radius):
        return (yy - row) ** 2 + (xx - col) ** 2 <= radius**2

    labels[disk(17, 17, 11) & ~disk(17, 17, 5)] = 1  # a ring
    labels[disk(17, 17, 2)] = 2  # a cell in the ring's hole
    labels[disk(46, 12, 6) | disk(50, 34, 5)] = 3  # two separate parts
    labels[disk(0, 48, 8)] = 4  # cut by the top border
    labels[disk(30, 89, 9)] = 5  # cut by the right border
    labels[disk(59, 89, 6)] = 6  # in the bottom-right corner
    labels[disk(28, 45, 7)] = 7
    labels[disk(28, 59, 7) & (labels == 0)] = 8  # touches cell 7
    labels[42:46, 52:57] = 9
    labels[46:50, 57:61] = 9  # two squares meeting at a corner: one 8-connected part
    return labels, {"ring": (8, 17), "parts": (46, 12)}


def _stack(labels, rng, frames=20):
    """A recording with a different number of molecules in each cell (a wrong pixel shows)."""
    number = np.where(labels > 0, 2.0 + 0.5 * labels, 0.0)
    stack = simulate.mobile_stack(number, 2.0, frames, rng) + simulate.immobile_stack(
        np.where(labels > 0, 0.0, 0.5), frames, rng
    )
    return stack.astype(np.uint16)


def _measure_in_imagej(image, rois, folder):
    """ImageJ's measurements of every ROI of ``rois`` on ``image`` (MEASURE_ROIS_MACRO), its
    pixels inside each ROI, what it printed and how long it took."""
    folder.mkdir(parents=True)
    started = time.monotonic()
    log = run_imagej_macro(MEASURE_ROIS_MACRO, folder, argument=f"{image}|{rois}|{folder}")
    seconds = time.monotonic() - started
    measured = pd.read_csv(folder / "imagej_measurements.csv")
    return measured, pd.read_csv(folder / "imagej_pixels.csv"), log.strip(), seconds


@pytest.mark.workflow
def test_imagej_measures_every_roi_of_the_workflow_like_the_csv(run_workflow, tmp_path):
    imagej_or_skip()
    labels, where = _cells()
    write_stack(tmp_path / "cells.tif", _stack(labels, np.random.default_rng(11)))
    tifffile.imwrite(tmp_path / "cells_mask.tif", labels)
    (tmp_path / "samples.tsv").write_text("experiment\tpath\tmask\ncells\tcells.tif\tcells_mask.tif\n")
    settings = dict(
        input_dir=str(tmp_path), samples=str(tmp_path / "samples.tsv"), output_dir="out",
        segmentation={"method": "existing"}, bleach_correction={"method": "none"},
    )  # fmt: skip
    run_workflow(tmp_path, "--configfile", write_config(tmp_path / "config.yaml", **settings))
    folder = tmp_path / "out" / "cells"
    cells = pd.read_csv(folder / "average_values_in_roi.csv")
    analysed = tifffile.imread(folder / "analysis_labels.tif")
    exported = tifffile.imread(folder / "segmentation_labels.tif")
    assert np.array_equal(analysed, exported)  # no erosion: the ROIs' mask is the analysis mask
    assert len(cells) == 9

    rois, inside, log, seconds = _measure_in_imagej(folder / "intensity.tif", folder / "cell_rois.zip", tmp_path / "ij")
    # one ROI per cell, in the CSV's order, named after its Cell ID
    assert rois["name"].tolist() == [f"cell_{k}" for k in cells["Cell ID"]]
    for cell_id, name in zip(cells["Cell ID"], rois["name"], strict=False):
        rows, cols = np.nonzero(analysed == cell_id)
        points = inside[inside["name"] == name]
        # exactly the cell's pixels, not only as many
        assert sorted(zip(points["y"], points["x"], strict=False)) == sorted(
            zip(rows.tolist(), cols.tolist(), strict=False)
        ), name
    # pixel counts exact, by ImageJ's contained points and by its calibrated area
    assert (rois["contained_pixels"] == cells["Pixels"]).all()
    assert (rois["area"] / (rois["pixel_width"] * rois["pixel_height"]) == cells["Pixels"]).all()
    # means: ImageJ's of the float32 intensity.tif against the CSV's of the float64 map
    assert rois["mean"].tolist() == pytest.approx(cells["Intensity"].tolist(), rel=1e-6)
    relative = (rois["mean"] / cells["Intensity"] - 1).abs()
    # a ring and a two-part cell are composite ROIs; every other cell one traced polygon
    composite = {f"cell_{exported[where['ring']]}", f"cell_{exported[where['parts']]}"}
    assert set(rois.loc[rois["selection_type"] == COMPOSITE, "name"]) == composite
    assert (rois.loc[~rois["name"].isin(composite), "selection_type"] == TRACED).all()
    print(
        f"{log} in {seconds:.1f} s; {len(cells)} cells, max |area - Pixels| "
        f"{(rois['contained_pixels'] - cells['Pixels']).abs().max()} px, max relative mean difference "
        f"{relative.max():.2e}"
    )
    # the same ROIs measure the other maps as the CSV does
    rois = _measure_in_imagej(folder / "brightness.tif", folder / "cell_rois.zip", tmp_path / "ij-brightness")[0]
    assert rois["mean"].tolist() == pytest.approx(cells["Brightness"].tolist(), rel=1e-6)
    print(f"brightness.tif: max relative mean difference {(rois['mean'] / cells['Brightness'] - 1).abs().max():.2e}")

    # nb.threshold: the pixels it drops are NaN in the maps; ImageJ's area and mean leave NaN
    # pixels out, so its area is 'Pixels analysed' and its mean still the CSV's; the ROIs keep
    # every pixel of the mask
    settings["nb"] = {"threshold": 5.5}
    run_workflow(tmp_path, "--configfile", write_config(tmp_path / "config.yaml", **settings))
    cells = pd.read_csv(folder / "average_values_in_roi.csv")
    assert (cells["Pixels analysed"] < cells["Pixels"]).sum() >= 2 and (cells["Pixels analysed"] > 0).all()
    rois = _measure_in_imagej(folder / "intensity.tif", folder / "cell_rois.zip", tmp_path / "ij-threshold")[0]
    assert (rois["contained_pixels"] == cells["Pixels"]).all()
    assert (rois["area"] == cells["Pixels analysed"]).all()
    assert rois["mean"].tolist() == pytest.approx(cells["Intensity"].tolist(), rel=1e-6)
    print(
        f"nb.threshold 5.5: {(cells['Pixels analysed'] < cells['Pixels']).sum()} cells lose "
        f"{(cells['Pixels'] - cells['Pixels analysed']).sum()} of {cells['Pixels'].sum()} pixels; max relative "
        f"mean difference {(rois['mean'] / cells['Intensity'] - 1).abs().max():.2e}"
    )


def test_roi_set_holds_traced_polygons_and_composite_shapes(tmp_path):
    """The file as roifile reads it back: one loop a traced polygon, several loops a ShapeRoi path."""
    from roifile import ROI_TYPE, roiread

    labels, _ = _cells()
    polygons = segment.pixel_edge_polygons(labels)
    bio.write_imagej_rois(tmp_path / "rois.zip", polygons)
    rois = roiread(tmp_path / "rois.zip")
    assert [roi.name for roi in rois] == [f"cell_{k}" for k in range(1, 10)]
    for roi, loops in zip(rois, polygons.values(), strict=False):
        if len(loops) == 1:
            assert roi.roitype == ROI_TYPE.TRACED and not roi.composite
            assert np.array_equal(roi.coordinates(), loops[0])
        else:
            assert roi.roitype == ROI_TYPE.RECT and roi.composite
            read = roi.coordinates(multi=True)  # each loop closed: its first vertex repeated
            assert [np.array_equal(r[:-1], loop) for r, loop in zip(read, loops, strict=False)] == [True] * len(loops)
        corners = np.concatenate(loops)
        assert (roi.left, roi.top) == tuple(corners.min(axis=0))
        assert (roi.right, roi.bottom) == tuple(corners.max(axis=0))
    assert [len(loops) for loops in polygons.values()] == [2, 1, 2, 1, 1, 1, 1, 1, 1]


def test_run_imagej_macro_reports_a_macro_that_stops_or_fails(tmp_path):
    """A macro that stops early, or fails (ImageJ then waits on an error dialog), raises."""
    imagej_or_skip()
    assert run_imagej_macro('print("ImageJ " + getVersion());', tmp_path / "ok").startswith("ImageJ 1.")
    with pytest.raises(ImageJError, match="before the end of the macro") as stopped:
        run_imagej_macro('print("started"); exit(); print("not reached");', tmp_path / "exit")
    assert "started" in str(stopped.value) and "not reached" not in str(stopped.value)
    with pytest.raises(ImageJError, match="did not finish within 10 s"):
        run_imagej_macro("x = undefined_variable + 1;", tmp_path / "error", timeout=10)
