"""Segmentation without cellpose: threshold method, erosion, outlines, _seg.npy, existing masks."""

from __future__ import annotations

import json
import warnings

import gui_helpers
import numpy as np
import pandas as pd
import pytest
import tifffile
from helpers import jobs_run, write_config, write_stack
from scipy import ndimage as ndi
from skimage import measure

from brightflow import segment, simulate


@pytest.mark.parametrize("seed", range(6))
def test_threshold_segmentation_finds_simulated_cells_and_splits_touching_ones(seed):
    rng = np.random.default_rng(seed)
    truth = simulate.cell_field((96, 96), 7, rng, touching_pairs=3)
    # three pairs of touching cells really touch: one connected blob holds two cells
    blobs = measure.label(truth > 0)
    assert blobs.max() <= truth.max() - 2
    projection = simulate.cell_field_projection(truth, rng, frames=50)
    scores = segment.match_scores(truth, segment.threshold_segmentation(projection))
    assert scores["recall"] >= 0.9, scores
    assert scores["precision"] >= 0.9, scores
    assert scores["mean_iou"] >= 0.85, scores


def test_match_scores_on_known_masks():
    truth = np.zeros((20, 20), int)
    truth[0:10, 0:10] = 1
    truth[12:20, 12:20] = 2
    predicted = np.zeros_like(truth)
    predicted[0:10, 0:8] = 5  # IoU 0.8
    predicted[0:3, 15:18] = 7  # a false cell
    scores = segment.match_scores(truth, predicted)
    assert scores == {
        "true_cells": 2, "predicted_cells": 2, "matched": 1, "recall": 0.5,
        "precision": 0.5, "mean_iou": pytest.approx(0.8),
    }  # fmt: skip


def _disk_cells():
    labels = np.zeros((60, 60), np.uint16)
    yy, xx = np.mgrid[:60, :60]
    labels[(yy - 20) ** 2 + (xx - 20) ** 2 <= 12**2] = 3
    labels[(yy - 20) ** 2 + (xx - 41) ** 2 <= 9**2] = 7  # touches cell 3
    labels[50:53, 50:53] = 9  # 3x3: erodes away at 2 pixels
    return labels


def test_erosion_is_a_disk_per_cell_symmetric_and_keeps_labels():
    from scipy.ndimage import binary_erosion
    from skimage.morphology import disk

    labels = _disk_cells()
    eroded = segment.erode_labels(labels, 2)
    assert eroded.dtype == labels.dtype
    assert set(np.unique(eroded)) == {0, 3, 7}  # labels kept, the 3x3 cell gone
    # an isolated cell shrinks exactly like a binary erosion by a disk of radius 2
    alone = labels == 9
    assert not binary_erosion(alone, disk(2).astype(bool)).any()
    lone = np.where(labels == 3, labels, 0)
    assert np.array_equal(segment.erode_labels(lone, 2) == 3, binary_erosion(lone == 3, disk(2).astype(bool)))
    # symmetric: eroding the transposed or flipped mask gives the transposed or flipped result
    assert np.array_equal(segment.erode_labels(labels.T, 2), eroded.T)
    assert np.array_equal(segment.erode_labels(labels[::-1], 2), eroded[::-1])
    # neighbours shrink away from each other: no pixel of 3 within 2 px of a pixel of 7
    from scipy import ndimage as ndi

    distance_to_7 = ndi.distance_transform_edt(labels != 7)
    assert distance_to_7[eroded == 3].min() > 2
    assert np.array_equal(segment.erode_labels(labels, 0), labels)


def test_outlines_text_is_cellpose_format():
    labels = _disk_cells()
    outlines = segment.outline_polygons(labels)
    assert list(outlines) == [3, 7, 9]
    text = segment.outlines_text(outlines.values()).splitlines()
    assert len(text) == 3
    first = np.array(text[0].split(","), int).reshape(-1, 2)
    xs, ys = first[:, 0], first[:, 1]
    assert (labels[ys, xs] == 3).all()  # (x, y) pixel coordinates on the cell
    assert xs.min() == 20 - 12 and xs.max() == 31  # cell 7 covers cell 3 from x = 32


def _shoelace(loop):
    x, y = loop[:, 0], loop[:, 1]
    return float((x * np.roll(y, -1) - np.roll(x, -1) * y).sum() / 2)


def test_pixel_edge_polygons_follow_pixel_edges_around_holes_and_parts():
    labels = np.zeros((12, 14), np.uint16)
    labels[1:6, 1:6] = 1
    labels[3, 3] = 2  # a one-pixel cell in a hole of cell 1
    labels[8:10, 0:3] = 3
    labels[7:9, 10:14] = 3  # two parts, at the left and right borders
    labels[0, 8] = labels[1, 9] = 4  # two pixels touching at a corner: one part, one loop
    polygons = segment.pixel_edge_polygons(labels)
    assert list(polygons) == [1, 2, 3, 4]
    assert {k: [loop.tolist() for loop in loops] for k, loops in polygons.items()} == {
        1: [[[1, 1], [6, 1], [6, 6], [1, 6]], [[3, 3], [3, 4], [4, 4], [4, 3]]],  # outline, hole
        2: [[[3, 3], [4, 3], [4, 4], [3, 4]]],
        3: [[[10, 7], [14, 7], [14, 9], [10, 9]], [[0, 8], [3, 8], [3, 10], [0, 10]]],
        4: [[[8, 0], [9, 0], [9, 1], [10, 1], [10, 2], [9, 2], [9, 1], [8, 1]]],
    }
    # outlines have positive shoelace areas, holes negative; together the pixel count
    assert {k: [_shoelace(loop) for loop in loops] for k, loops in polygons.items()} == {
        1: [25.0, -1.0], 2: [1.0], 3: [8.0, 6.0], 4: [2.0],
    }  # fmt: skip


@pytest.mark.parametrize("seed", range(3))
def test_pixel_edge_polygons_hold_exactly_each_cells_pixels(seed):
    """Random masks: every pixel centre inside an odd number of a cell's loops is the cell's."""
    from matplotlib.path import Path
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    for _ in range(30):
        shape = tuple(rng.integers(1, 24, size=2))
        labels = (rng.random(shape) < rng.random()) * rng.integers(1, 4, size=shape)
        yy, xx = np.mgrid[: shape[0], : shape[1]]
        centres = np.column_stack([xx.ravel() + 0.5, yy.ravel() + 0.5])
        polygons = segment.pixel_edge_polygons(labels)
        assert list(polygons) == sorted(set(np.unique(labels)) - {0})
        for label, loops in polygons.items():
            cell = labels == label
            inside = np.zeros(cell.size, bool)
            for loop in loops:
                assert loop.dtype == np.int64 and (loop >= 0).all()
                steps = np.diff(np.vstack([loop, loop[:1]]), axis=0)
                assert ((steps == 0).sum(axis=1) == 1).all()  # along pixel edges
                turns = np.sign(steps)
                assert not (turns == np.roll(turns, 1, axis=0)).all(axis=1).any()  # collinear merged
                inside ^= Path(loop).contains_points(centres)
            assert np.array_equal(inside.reshape(shape), cell)
            areas = [_shoelace(loop) for loop in loops]
            assert sum(areas) == cell.sum()
            parts = ndi.label(cell, structure=np.ones((3, 3)))[1]
            holes = ndi.label(np.pad(~cell, 1, constant_values=True))[1] - 1
            assert (sum(a > 0 for a in areas), sum(a < 0 for a in areas)) == (parts, holes)


def test_median_diameter_is_cellposes_and_finite_without_cells():
    labels = _disk_cells()
    areas = np.array([(labels == k).sum() for k in (3, 7, 9)])
    assert segment.median_diameter(labels) == pytest.approx(np.median(2 * np.sqrt(areas / np.pi)))
    utils = pytest.importorskip("cellpose.utils")
    assert segment.median_diameter(labels) == pytest.approx(utils.diameters(labels)[0])
    # no cell: cellpose says 0; the GUI's starting diameter instead (the GUI divides by it)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # cellpose's median of no cells
        assert utils.diameters(np.zeros((8, 8), int))[0] == 0
    assert segment.median_diameter(np.zeros((8, 8), int)) == segment.GUI_DEFAULT_DIAMETER == 30.0


def _write_seg(folder, image, labels, method="threshold"):
    image_path = folder / "segmentation_image.tif"
    tifffile.imwrite(image_path, image)
    seg_path = folder / "segmentation_image_seg.npy"
    np.save(seg_path, segment.seg_npy_dict(image, labels, str(image_path), method), allow_pickle=True)
    return image_path, seg_path


def test_seg_npy_of_threshold_masks_opens_in_the_cellpose_gui(tmp_path, cellpose_gui):
    labels = _disk_cells()
    image = np.where(labels > 0, 10.0, 1.0).astype(np.float32)
    image_path, seg_path = _write_seg(tmp_path, image, labels)
    gui = gui_helpers.load_seg(cellpose_gui, seg_path)
    assert gui.loaded is True
    assert gui.filename == str(image_path)
    assert int(gui.ncells) == 3
    assert gui.cellpix.shape == (1,) + labels.shape
    assert np.array_equal(gui.cellpix[0], segment.relabel_sequential(labels))
    assert np.allclose(gui_helpers.shown_image(gui), gui_helpers.as_gui_scales(image))
    diameter = segment.median_diameter(labels)
    assert gui.Diameter.text() == f"{diameter:0.1f}" and gui.diameter == float(f"{diameter:0.1f}")
    assert len(gui.ismanual) == 3 and len(gui.zdraw) == 3
    # File > Load image finds the _seg.npy beside the image
    gui = gui_helpers.load_image(cellpose_gui, image_path)
    assert gui.loaded is True and gui.filename == str(image_path)
    assert np.array_equal(gui.cellpix[0], segment.relabel_sequential(labels))
    assert gui_helpers.shown_diameter(gui) == float(f"{diameter:0.1f}")
    # no flows: the flow and cell-probability boxes do not recompute (nor lose) the masks,
    # and the GUI's flow views show an empty image
    assert gui.recompute_masks is False
    gui.compute_cprob()
    for view in (1, 2):
        gui.ViewDropDown.setCurrentIndex(view)
        gui.update_plot()
    gui.ViewDropDown.setCurrentIndex(0)
    assert int(gui.ncells) == 3 and np.array_equal(gui.cellpix[0], segment.relabel_sequential(labels))

    # the GUI saves it back (Ctrl+S) in a form it loads again, and brightflow reads it
    gui_helpers.save(gui)
    saved = np.load(seg_path, allow_pickle=True).item()
    assert np.array_equal(segment.masks_from_seg_dict(saved), segment.relabel_sequential(labels))
    gui = gui_helpers.load_seg(cellpose_gui, seg_path)
    assert gui.loaded is True and int(gui.ncells) == 3

    # no cell found: still a file the GUI loads, with the GUI's starting diameter
    _, seg_path = _write_seg(tmp_path, image, np.zeros_like(labels))
    gui = gui_helpers.load_seg(cellpose_gui, seg_path)
    assert gui.loaded is True and int(gui.ncells) == 0 and not gui.cellpix.any()
    assert gui_helpers.shown_diameter(gui) == 30.0


@pytest.mark.workflow
def test_existing_masks_and_erosion_in_the_workflow(run_workflow, tmp_path):
    """method existing with a label TIFF and with a _seg.npy; erosion keeps eroded-away cells."""
    rng = np.random.default_rng(3)
    labels = _disk_cells()
    stack = simulate.cell_field_stack(labels, 20, rng)
    write_stack(tmp_path / "a.tif", stack)
    write_stack(tmp_path / "b.tif", stack)
    tifffile.imwrite(tmp_path / "a_mask.tif", labels)
    np.save(tmp_path / "b_seg.npy", {"masks": labels, "outlines": segment.outlines(labels)}, allow_pickle=True)
    (tmp_path / "samples.tsv").write_text("experiment\tpath\tmask\na\ta.tif\ta_mask.tif\nb\tb.tif\tb_seg.npy\n")
    config = write_config(
        tmp_path / "config.yaml",
        input_dir=str(tmp_path),
        samples=str(tmp_path / "samples.tsv"),
        output_dir="out",
        segmentation={"method": "existing", "erode_pixels": 2},
    )
    run_workflow(tmp_path, "--configfile", config)
    for name in ("a", "b"):
        folder = tmp_path / "out" / name
        # the segmentation files keep the user's cells (relabelled 1..3); erosion only changes
        # the analysis mask
        exported = tifffile.imread(folder / "segmentation_labels.tif")
        assert exported.dtype == np.uint16
        assert np.array_equal(exported, segment.relabel_sequential(labels))
        analysed = tifffile.imread(folder / "analysis_labels.tif")
        assert np.array_equal(analysed, segment.erode_labels(exported, 2))
        cells = pd.read_csv(folder / "average_values_in_roi.csv")
        assert list(cells["Cell ID"]) == [1, 2, 3]
        assert list(cells["Pixels"]) == [int((analysed == k).sum()) for k in (1, 2, 3)]
        gone = cells[cells["Cell ID"] == 3].iloc[0]
        assert gone["Pixels"] == 0 and np.isnan(gone["Brightness"]) and np.isnan(gone["Intensity"])
        assert "cell 3 eroded away" in (tmp_path / "out" / "logs" / name / "analysis_mask.log").read_text()
        record = (folder / "segmentation.json").read_text()
        assert '"method": "existing"' in record
        outlines = (folder / "segmentation_image_cp_outlines.txt").read_text().splitlines()
        assert len(outlines) == 3
        from roifile import roiread

        rois = roiread(folder / "cell_rois.zip")
        assert [roi.name for roi in rois] == ["cell_1", "cell_2", "cell_3"]
    # erosion changed: the segmentation and its exports are not redone, the analysis is
    config = write_config(
        tmp_path / "config.yaml",
        input_dir=str(tmp_path),
        samples=str(tmp_path / "samples.tsv"),
        output_dir="out",
        segmentation={"method": "existing", "erode_pixels": 0},
    )
    jobs = jobs_run(run_workflow(tmp_path, "--configfile", config))
    assert "segmentation" not in jobs and "segmentation_exports" not in jobs
    assert jobs.get("analysis_mask") == 2 and jobs.get("tables") == 2
    cells = pd.read_csv(tmp_path / "out" / "a" / "average_values_in_roi.csv")
    assert (cells["Pixels"] > 0).all()


#: Rules made from the masks: what a mask corrected in the GUI reruns (not projection, not segmentation).
AFTER_THE_MASKS = (
    "segmentation_exports", "analysis_mask", "bleach_correction", "nb_maps", "figures", "tables",
    "settings", "aggregate",
)  # fmt: skip


@pytest.mark.workflow
def test_existing_masks_corrected_in_the_cellpose_gui(run_workflow, tmp_path, cellpose_gui):
    """method existing: the _seg.npy made from a label TIFF (a) and from a user's _seg.npy (b)
    opens in the cellpose GUI, and corrections saved there are used by the next run."""
    rng = np.random.default_rng(4)
    labels = _disk_cells()
    stack = simulate.cell_field_stack(labels, 20, rng)
    write_stack(tmp_path / "a.tif", stack)
    write_stack(tmp_path / "b.tif", stack)
    tifffile.imwrite(tmp_path / "a_mask.tif", labels)
    # a user's _seg.npy with most keys missing and a NaN diameter (as brightflow wrote them before)
    user_seg = {"masks": labels, "outlines": segment.outlines(labels), "est_diam": np.nan}
    np.save(tmp_path / "b_seg.npy", user_seg, allow_pickle=True)
    (tmp_path / "samples.tsv").write_text("experiment\tpath\tmask\na\ta.tif\ta_mask.tif\nb\tb.tif\tb_seg.npy\n")
    config = write_config(
        tmp_path / "config.yaml",
        input_dir=str(tmp_path),
        samples=str(tmp_path / "samples.tsv"),
        output_dir="out",
        segmentation={"method": "existing"},
    )
    run_workflow(tmp_path, "--configfile", config)
    relabelled = segment.relabel_sequential(labels)
    for name in ("a", "b"):
        folder = tmp_path / "out" / name
        gui = gui_helpers.load_seg(cellpose_gui, folder / "segmentation_image_seg.npy")
        gui_helpers.assert_shows_results(gui, folder, stack.mean(axis=0), segment.median_diameter(labels))
        assert int(gui.ncells) == 3 and np.array_equal(gui.cellpix[0], relabelled)

    # a: delete cell 1 with Ctrl+click; b: draw a new cell; save each (Ctrl+S)
    gui = gui_helpers.load_seg(cellpose_gui, tmp_path / "out" / "a" / "segmentation_image_seg.npy")
    gui_helpers.click(gui, *gui_helpers.pixel_inside(relabelled, 1), modifier="ctrl")
    gui_helpers.save(gui)
    gui = gui_helpers.load_seg(cellpose_gui, tmp_path / "out" / "b" / "segmentation_image_seg.npy")
    centre = _background_centre(relabelled, radius=6)
    drawn = gui.cellpix[0] == gui_helpers.draw_cell(gui, centre, radius=6)
    gui_helpers.save(gui)
    jobs = jobs_run(run_workflow(tmp_path, "--configfile", config))
    assert "projection" not in jobs and "segmentation" not in jobs, jobs
    for rule in AFTER_THE_MASKS:
        assert jobs.get(rule) == (1 if rule == "aggregate" else 2), (rule, jobs)
    a = tifffile.imread(tmp_path / "out" / "a" / "segmentation_labels.tif")
    assert np.array_equal(a, segment.relabel_sequential(np.where(relabelled == 1, 0, relabelled)))
    b = tifffile.imread(tmp_path / "out" / "b" / "segmentation_labels.tif")
    assert np.array_equal(b, np.where(drawn, 4, relabelled))
    pixels = {name: list(pd.read_csv(tmp_path / "out" / name / "average_values_in_roi.csv")["Pixels"]) for name in "ab"}
    assert pixels == {
        "a": [int((a == k).sum()) for k in (1, 2)],
        "b": [int((relabelled == k).sum()) for k in (1, 2, 3)] + [int(drawn.sum())],
    }
    folder_table = pd.read_csv(tmp_path / "out" / "Folder_average_values_in_roi.csv")
    assert list(folder_table["Experiment"]) == ["a"] * 2 + ["b"] * 4
    for name, cells in (("a", 2), ("b", 4)):
        used = json.loads((tmp_path / "out" / name / "settings.json").read_text())["segmentation_used"]
        assert used["edited_after_segmentation"] is True and used["cells"] == cells


def _background_centre(labels, radius, margin=3):
    """A pixel at least ``radius + margin`` pixels from every cell and from the image border."""
    distance = ndi.distance_transform_edt(np.pad(labels == 0, 1))[1:-1, 1:-1]
    row, col = np.unravel_index(np.argmax(distance), labels.shape)
    assert distance[row, col] >= radius + margin, "no room for a new cell"
    return int(row), int(col)


@pytest.mark.workflow
def test_threshold_masks_corrected_in_the_cellpose_gui(run_workflow, tmp_path, cellpose_gui):
    """The README's correction loop with the real cellpose GUI: delete a cell, then draw one.

    Each edit is saved with the GUI's own Ctrl+S over ``segmentation_image_seg.npy``; the next
    ``snakemake`` run redoes only the steps made from the masks, and the per-cell tables lose
    the deleted cell and gain the drawn one.
    """
    rng = np.random.default_rng(11)
    truth = simulate.cell_field((80, 80), 4, rng, touching_pairs=0)
    stack = simulate.cell_field_stack(truth, 30, rng)
    (tmp_path / "stacks").mkdir()
    write_stack(tmp_path / "stacks" / "cells.tif", stack)
    config = write_config(tmp_path / "config.yaml", input_dir=str(tmp_path / "stacks"), output_dir="out")
    run_workflow(tmp_path, "--configfile", config)
    folder = tmp_path / "out" / "cells"
    seg_path = folder / "segmentation_image_seg.npy"
    labels = tifffile.imread(folder / "segmentation_labels.tif")
    count = int(labels.max())
    assert count == 4, "the threshold method finds the four simulated cells"
    before = pd.read_csv(folder / "average_values_in_roi.csv")
    assert list(before["Pixels"]) == [int((labels == k).sum()) for k in range(1, count + 1)]

    gui = gui_helpers.load_seg(cellpose_gui, seg_path)
    gui_helpers.assert_shows_results(gui, folder, stack.mean(axis=0), segment.median_diameter(labels))

    # 1. delete cell 2 (what Ctrl+click on it does) and save
    gui.remove_cell(2)
    gui_helpers.save(gui)
    jobs = jobs_run(run_workflow(tmp_path, "--configfile", config))
    assert "projection" not in jobs and "segmentation" not in jobs, jobs
    for rule in AFTER_THE_MASKS:
        assert jobs.get(rule) == 1, (rule, jobs)
    kept = np.where(labels == 2, 0, labels)
    kept[kept > 2] -= 1
    assert np.array_equal(tifffile.imread(folder / "segmentation_labels.tif"), kept)
    after = pd.read_csv(folder / "average_values_in_roi.csv")
    assert list(after["Cell ID"]) == [1, 2, 3]
    assert list(after["Pixels"]) == [p for k, p in enumerate(before["Pixels"], start=1) if k != 2]
    folder_table = pd.read_csv(tmp_path / "out" / "Folder_average_values_in_roi.csv")
    assert list(folder_table["Pixels"]) == list(after["Pixels"])
    used = json.loads((folder / "settings.json").read_text())["segmentation_used"]
    assert used["edited_after_segmentation"] is True and used["cells"] == count - 1
    assert used["cells_segmented"] == count

    # 2. draw a new cell in the background (right-click, trace its outline) and save
    gui = gui_helpers.load_seg(cellpose_gui, seg_path)
    assert int(gui.ncells) == count - 1
    centre = _background_centre(kept, radius=6)
    new = gui_helpers.draw_cell(gui, centre, radius=6)
    drawn = gui.cellpix[0] == new
    assert drawn[centre] and 90 < drawn.sum() < 150 and not (drawn & (kept > 0)).any()
    assert list(gui.ismanual) == [False] * (count - 1) + [True]
    gui_helpers.save(gui)
    jobs = jobs_run(run_workflow(tmp_path, "--configfile", config))
    assert "projection" not in jobs and "segmentation" not in jobs, jobs
    for rule in AFTER_THE_MASKS:
        assert jobs.get(rule) == 1, (rule, jobs)
    assert np.array_equal(tifffile.imread(folder / "segmentation_labels.tif"), np.where(drawn, new, kept))
    added = pd.read_csv(folder / "average_values_in_roi.csv")
    assert list(added["Cell ID"]) == [1, 2, 3, 4]
    assert list(added["Pixels"]) == list(after["Pixels"]) + [int(drawn.sum())]
    # the drawn cell holds no molecules: the background's mean intensity (0.5 photons a frame)
    assert added["Intensity"].iloc[-1] == pytest.approx(0.5, rel=0.2)
    folder_table = pd.read_csv(tmp_path / "out" / "Folder_average_values_in_roi.csv")
    assert list(folder_table["Pixels"]) == list(added["Pixels"])
    used = json.loads((folder / "settings.json").read_text())["segmentation_used"]
    assert used["edited_after_segmentation"] is True and used["cells"] == count
    assert jobs_run(run_workflow(tmp_path, "--configfile", config)) == {}  # nothing left to do


def test_threshold_segmentation_finds_the_demo_cells():
    stack, truth = simulate.demo_experiment(simulate.DEMO_EXPERIMENTS["demo_mixed"], seed=1)
    scores = segment.match_scores(truth, segment.threshold_segmentation(stack.mean(axis=0)))
    assert scores["true_cells"] == 4 and scores["predicted_cells"] == 4, scores
    assert scores["mean_iou"] > 0.85, scores


def test_masks_from_seg_dict_rejects_other_files():
    with pytest.raises(ValueError, match="masks"):
        segment.masks_from_seg_dict({"img": np.zeros((3, 3))})


def test_the_seed_spacing_follows_the_expected_cell_size(shared_data):
    """min_peak_distance auto is 0.8 x segmentation.diameter: nandb's 50.tif (the edge of one cell, cut by
    the image border) stays one cell with the default diameter (the old fixed 10 pixels cut it into 3),
    the demo's cells stay four, and touching cells 16-22 pixels across are all split with the diameter of
    the smaller ones, 16."""
    assert segment.resolve_peak_distance("auto", 75) == 60 and segment.resolve_peak_distance(12, 75) == 12
    with pytest.raises(ValueError, match="set segmentation.diameter to the typical cell diameter"):
        segment.resolve_peak_distance("auto", 0)
    edge = tifffile.imread(shared_data / "50.tif").astype(np.float64).mean(axis=0)
    assert segment.threshold_segmentation(edge, min_peak_distance=10).max() == 3
    assert segment.threshold_segmentation(edge, min_peak_distance=segment.resolve_peak_distance("auto", 75)).max() == 1
    stack, truth = simulate.demo_experiment(simulate.DEMO_EXPERIMENTS["demo_mixed"], seed=2)
    found = segment.threshold_segmentation(
        stack.mean(axis=0), min_peak_distance=segment.resolve_peak_distance("auto", 75)
    )
    assert segment.match_scores(truth, found)["matched"] == 4
    for seed in range(3, 9):
        rng = np.random.default_rng(seed)
        field = simulate.cell_field((96, 96), 7, rng, touching_pairs=3)  # radii 8-11 pixels, 3 touching pairs
        projection = simulate.cell_field_projection(field, rng, frames=50)
        scores = segment.match_scores(
            field,
            segment.threshold_segmentation(projection, min_peak_distance=segment.resolve_peak_distance("auto", 16)),
        )
        assert scores["matched"] == scores["true_cells"] == scores["predicted_cells"] == 7, (seed, scores)
