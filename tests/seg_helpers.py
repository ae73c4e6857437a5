"""Test helpers for segmentation: open a _seg.npy with the cellpose GUI's own loader."""

from __future__ import annotations

from unittest import mock

import numpy as np


def load_in_cellpose_gui(seg_path):
    """Run cellpose's GUI loader (``cellpose.gui.io._load_seg``) on ``seg_path`` without a window.

    The GUI object is a mock; only the drawing of the image is replaced. Returns the mock GUI
    (``loaded``, ``cellpix``, ``ncells``, ``ismanual``, ``filename``...) and the image it loaded.
    """
    from cellpose.gui import io as gui_io

    parent = mock.MagicMock()
    parent.restore = None
    parent.NZ = 1
    parent.colormap = (np.random.default_rng(0).random((1000, 3)) * 255).astype(np.uint8)
    seen = {}

    def initialize_images(gui, image, load_3D=False):
        seen["image"] = np.asarray(image)

    with mock.patch.object(gui_io, "_initialize_images", initialize_images):
        gui_io._load_seg(parent, filename=str(seg_path))
    return parent, seen.get("image")
