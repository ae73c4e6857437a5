"""Segmentation without cellpose: threshold method, erosion, outlines, _seg.npy, existing masks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile
from skimage import measure

from brightflow import segment, simulate
from conftest import jobs_run, run_workflow, write_config, write_stack
from seg_helpers import load_in_cellpose_gui


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


def test_seg_npy_of_threshold_masks_opens_in_the_cellpose_gui(tmp_path):
    labels = _disk_cells()
    image = np.where(labels > 0, 10.0, 1.0).astype(np.float32)
    image_path = tmp_path / "segmentation_image.tif"
    tifffile.imwrite(image_path, image)
    seg_path = tmp_path / "segmentation_image_seg.npy"
    np.save(seg_path, segment.seg_npy_dict(image, labels, str(image_path), "threshold"), allow_pickle=True)
    gui, loaded_image = load_in_cellpose_gui(seg_path)
    assert gui.loaded is True
    assert gui.filename == str(image_path)
    assert loaded_image.shape == labels.shape
    assert gui.cellpix.shape == (1,) + labels.shape
    assert int(gui.ncells) == 3
    assert np.array_equal(gui.cellpix[0], segment.relabel_sequential(labels))
    assert len(gui.ismanual) == 3 and len(gui.zdraw) == 3


@pytest.mark.workflow
def test_existing_masks_and_erosion_in_the_workflow(tmp_path):
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
        gui, _ = load_in_cellpose_gui(folder / "segmentation_image_seg.npy")
        assert int(gui.ncells) == 3
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


def test_threshold_segmentation_finds_the_demo_cells():
    stack, truth = simulate.demo_experiment(simulate.DEMO_EXPERIMENTS["demo_mixed"], seed=1)
    scores = segment.match_scores(truth, segment.threshold_segmentation(stack.mean(axis=0)))
    assert scores["true_cells"] == 4 and scores["predicted_cells"] == 4, scores
    assert scores["mean_iou"] > 0.85, scores


def test_masks_from_seg_dict_rejects_other_files():
    with pytest.raises(ValueError, match="masks"):
        segment.masks_from_seg_dict({"img": np.zeros((3, 3))})
