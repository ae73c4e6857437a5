"""Threshold segmentation, erosion and the cellpose _seg.npy layout."""

import numpy as np
import pytest

from brightflow import segment, simulate


def test_threshold_segmentation_finds_the_demo_cells():
    stack, truth = simulate.demo_experiment(simulate.DEMO_EXPERIMENTS["demo_mixed"], seed=1)
    labels = segment.threshold_segmentation(stack.mean(axis=0))
    assert labels.dtype == np.uint16 and labels.max() == 4
    for cell in range(1, 5):
        overlap = np.bincount(truth[labels == cell], minlength=5)
        best = overlap[1:].argmax() + 1
        inter = np.count_nonzero((labels == cell) & (truth == best))
        union = np.count_nonzero((labels == cell) | (truth == best))
        assert inter / union > 0.85


def test_erosion_is_a_symmetric_disk_and_keeps_labels():
    labels = np.zeros((41, 41), dtype=np.uint16)
    labels[10:31, 10:31] = 7
    eroded = segment.erode_labels(labels, 3)
    assert set(np.unique(eroded)) == {0, 7}
    rows, cols = np.nonzero(eroded)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (13, 27, 13, 27)
    # symmetric: the eroded square is its own mirror image
    assert np.array_equal(eroded, eroded[::-1, ::-1]) and np.array_equal(eroded, eroded.T)


def test_erosion_separates_touching_cells_and_removes_small_ones():
    labels = np.zeros((26, 50), dtype=np.uint16)
    labels[2:18, 2:20] = 1
    labels[2:18, 20:38] = 2
    labels[20:23, 42:45] = 3  # too small to survive a radius-2 disk
    eroded = segment.erode_labels(labels, 2)
    assert 3 not in eroded
    # two pixels removed on each side of the shared edge
    assert (eroded[:, 18:22] == 0).all()
    assert eroded[10, 17] == 1 and eroded[10, 22] == 2


def test_erode_zero_is_a_copy():
    labels = np.arange(12, dtype=np.uint16).reshape(3, 4)
    assert np.array_equal(segment.erode_labels(labels, 0), labels)


def test_seg_npy_dict_has_the_cellpose_layout():
    labels = np.zeros((30, 30), dtype=np.int32)
    labels[5:15, 5:15] = 4
    labels[18:28, 18:28] = 9
    seg = segment.seg_npy_dict(np.ones((30, 30)), labels, "/data/segmentation_image.tif", "threshold")
    for key in ("filename", "img", "masks", "outlines", "colors", "chan_choose", "ismanual", "flows"):
        assert key in seg
    assert seg["masks"].dtype == np.uint16 and set(np.unique(seg["masks"])) == {0, 1, 2}
    assert seg["outlines"][5, 10] == 1 and seg["outlines"][10, 10] == 0
    assert seg["colors"].shape == (2, 3) and len(seg["ismanual"]) == 2
    assert np.array_equal(segment.masks_from_seg_dict(seg), seg["masks"])


def test_masks_from_seg_dict_rejects_other_files():
    with pytest.raises(ValueError, match="masks"):
        segment.masks_from_seg_dict({"img": np.zeros((3, 3))})
