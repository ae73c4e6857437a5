"""The real cellpose GUIs (cellpose 3.1.1 and 4.2.1, PyQt6) in the tests, without a display.

Qt runs on its ``offscreen`` platform (set here, before Qt is imported). One ``QApplication``
and one ``cellpose.gui.gui.MainW`` of cellpose 3 serve the whole test session (fixtures
``cellpose_gui`` in conftest.py); :func:`load_seg` resets the window before each file. Edits go
through the GUI's own code: its mouse handlers receive real Qt mouse events (``QTest``) on the
image view, as when a user clicks, and :func:`save` is the GUI's Ctrl+S (``io._save_sets``).
The GUI's autosave after each edit is switched off, so the tests' files change only when they save.

Cellpose 4's GUI cannot live in the tests' process (one cellpose per process): :func:`session`
runs these same helpers in a child process with cellpose 4's overlay first on ``PYTHONPATH``
(as its worker runs: brightflow.cellpose_worker), and returns what the GUI showed (:func:`view`).

Without PyQt6 (or pyqtgraph, superqt, qtpy) the GUI tests are skipped with the reason;
``BRIGHTFLOW_REQUIRE_GUI=1`` (set by .ci/run) turns that skip into a failure.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import tifffile

#: The diameter box's value when MainW starts (``MainW.diameter``): restored before each load.
GUI_START_DIAMETER = "30"


def gui_problem():
    """Why the cellpose GUI cannot run here (a sentence), or None when it can."""
    os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before Qt starts: no display needed
    for module in ("PyQt6.QtWidgets", "pyqtgraph", "superqt", "qtpy", "cellpose.gui.gui"):
        try:
            importlib.import_module(module)
        except Exception as error:  # ImportError, or a Qt library missing (OSError)
            return (
                f"the cellpose GUI cannot be imported ({module}: {error}); install the GUI "
                "packages pinned in requirements.txt (make venv)"
            )
    return None


def start_gui():
    """The session's QApplication and cellpose GUI main window (about 7 s), on Qt's offscreen platform."""
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from brightflow.cellpose_adapter import import_cellpose

    import_cellpose()  # cellpose 4 (in a session): torchvision's fix before the GUI imports cellpose
    from cellpose.gui import gui
    from qtpy import QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    # gui.run() passes its logger; the flow-threshold box (compute_cprob) writes to it
    window = gui.MainW(logger=logging.getLogger("cellpose.gui.tests"))
    # File > Disable autosave: an edit reaches the _seg.npy only through the tests' Ctrl+S
    window.disableAutosave.setChecked(True)
    return app, window


def load_seg(gui, seg_path):
    """Reset the window, then open ``seg_path`` with the GUI's loader (``io._load_seg``).

    This is what dropping a ``_seg.npy`` on the window, or File > Load processed/labelled
    image, does. The window is shown with the whole image in view, so that :func:`click` and
    :func:`draw_cell` reach every pixel.
    """
    from cellpose.gui import io as gui_io

    reset(gui)
    gui_io._load_seg(gui, filename=str(seg_path))
    return _show(gui)


def load_image(gui, image_path):
    """Reset the window, then File > Load image: ``io._load_image``, which loads the image's
    ``_seg.npy`` when there is one beside it."""
    from cellpose.gui import io as gui_io

    reset(gui)
    gui_io._load_image(gui, filename=str(image_path))
    return _show(gui)


def reset(gui):
    """No file loaded, the diameter box as when the GUI starts (cellpose 3's; cellpose 4's ignores the file's)."""
    if hasattr(gui, "Diameter"):
        gui.Diameter.setText(GUI_START_DIAMETER)
    gui.reset()


def cells(gui):
    """The GUI's cell count (cellpose 4 keeps it in an observable: ``ncells.get()``)."""
    count = gui.ncells
    return int(count.get() if hasattr(count, "get") else count)


def view(gui):
    """What the GUI shows: loaded, the image file, the cell count, the masks, the image, the diameter
    box (None in cellpose 4's GUI, which does not read the file's diameter)."""
    return {
        "loaded": bool(gui.loaded),
        "filename": gui.filename,
        "cells": cells(gui),
        "cellpix": np.asarray(gui.cellpix[0]).copy(),
        "shown": shown_image(gui).copy(),
        "diameter": shown_diameter(gui) if hasattr(gui, "Diameter") else None,
    }


def _show(gui):
    from qtpy import QtCore

    gui.show()
    gui.p0.setRange(QtCore.QRectF(0, 0, gui.Lx, gui.Ly), padding=0)
    _process_events()
    return gui


def save(gui):
    """The GUI's Ctrl+S (File > Save masks and image), which runs ``io._save_sets`` over the loaded file."""
    gui.saveSet.trigger()


def shown_image(gui):
    """The image the GUI shows (its first channel; the GUI scales it to 0..255)."""
    return np.asarray(gui.stack[0, ..., 0])


def as_gui_scales(image):
    """``image`` scaled as the GUI scales an image it loads (``io._initialize_images``)."""
    image = np.asarray(image, dtype=np.float32)
    low, high = image.min(), image.max()
    scaled = image - low
    if high > low + 1e-3:
        scaled = scaled / (high - low)
    return scaled * 255


def shown_diameter(gui):
    """The number in the GUI's diameter box."""
    return float(gui.Diameter.text())


def assert_shows_results(gui, folder, projection, diameter, labels=None):
    """The GUI shows the experiment's projection, exactly the masks brightflow uses, and ``diameter``.

    ``gui`` is a GUI window or its :func:`view` (from a :func:`session`); ``folder`` an
    experiment's results folder; ``projection`` the mean of its stack; ``diameter`` the
    ``est_diam`` expected in the diameter box (which shows one decimal; cellpose 3's GUI only).
    ``labels``: the masks expected, when they are not ``segmentation_labels.tif`` (the workflow
    has not rerun since an edit).
    """
    shows = gui if isinstance(gui, dict) else view(gui)
    image_file = folder / "segmentation_image.tif"
    if labels is None:
        labels = tifffile.imread(folder / "segmentation_labels.tif")
        assert labels.max() == json.loads((folder / "segmentation.json").read_text())["cells"]
    assert shows["loaded"] is True
    assert shows["filename"] == str(image_file.resolve())
    assert shows["cells"] == labels.max()
    assert np.array_equal(shows["cellpix"], labels)
    assert np.allclose(tifffile.imread(image_file), projection, rtol=1e-5)
    assert np.allclose(shows["shown"], as_gui_scales(projection), atol=1e-3)
    if shows["diameter"] is not None:
        assert np.isfinite(diameter) and shows["diameter"] == float(f"{diameter:0.1f}")


def pixel_inside(labels, label):
    """The pixel of cell ``label`` farthest from its edge (where a click surely hits the cell)."""
    from scipy import ndimage as ndi

    distance = ndi.distance_transform_edt(np.pad(labels == label, 1))[1:-1, 1:-1]
    row, col = np.unravel_index(np.argmax(distance), labels.shape)
    return int(row), int(col)


def _process_events():
    from qtpy import QtWidgets

    QtWidgets.QApplication.processEvents()


def _view_point(gui, row, col):
    """Where pixel (row, col) of the image lies in the image view's widget."""
    from qtpy import QtCore

    scene = gui.layer.mapToScene(QtCore.QPointF(col + 0.5, row + 0.5))
    point = gui.win.mapFromScene(scene)
    if not gui.win.viewport().rect().contains(point):
        raise AssertionError(f"pixel ({row}, {col}) is outside the GUI's view")
    return point


def _wait():
    # pyqtgraph drops mouse moves that come faster than its rate limit (100 a second)
    from qtpy import QtTest

    QtTest.QTest.qWait(15)


def click(gui, row, col, modifier=None, button="left"):
    """A mouse click on pixel (row, col); ``modifier``: None, ``"ctrl"``, ``"alt"`` or ``"shift"``.

    In cellpose's GUI a click selects the cell under it, Ctrl+click deletes it, Alt+click
    merges it with the selected cell (with no cell selected it deletes it), a right click
    starts or ends a drawn outline.
    """
    from qtpy import QtCore, QtTest

    modifiers = {
        None: QtCore.Qt.KeyboardModifier.NoModifier,
        "ctrl": QtCore.Qt.KeyboardModifier.ControlModifier,
        "alt": QtCore.Qt.KeyboardModifier.AltModifier,
        "shift": QtCore.Qt.KeyboardModifier.ShiftModifier,
    }
    buttons = {"left": QtCore.Qt.MouseButton.LeftButton, "right": QtCore.Qt.MouseButton.RightButton}
    point = _view_point(gui, row, col)
    _wait()
    QtTest.QTest.mouseClick(gui.win.viewport(), buttons[button], modifiers[modifier], point)
    _process_events()


def draw_cell(gui, centre, radius, points=64):
    """Draw a new cell as a user does: right-click on its outline, trace it round, back to the start.

    The GUI closes the outline when the pointer returns to where it started, fills it and adds
    the cell (``MainW.add_set``, which autosaves the ``_seg.npy``); the pixels that already
    belong to a cell stay in that cell. Returns the new cell's label.
    """
    from qtpy import QtTest

    before = cells(gui)
    angles = np.linspace(0, 2 * np.pi, points, endpoint=False)
    outline = [(centre[0] + radius * np.sin(a), centre[1] + radius * np.cos(a)) for a in angles]
    click(gui, *outline[0], button="right")
    if not gui.in_stroke:
        raise AssertionError("the right click did not start an outline")
    for row, col in outline[1:] + outline[:8]:
        _wait()
        QtTest.QTest.mouseMove(gui.win.viewport(), _view_point(gui, row, col))
        _process_events()
        if not gui.in_stroke:
            break
    if gui.in_stroke or cells(gui) != before + 1:
        raise AssertionError(f"the GUI did not add the drawn cell ({cells(gui)} cells, {before} before)")
    return before + 1


# --- another cellpose's GUI, in a child process -------------------------------------------------------


def session(steps, overlay, generation=4, timeout=600):
    """Run ``steps`` in the cellpose ``generation``'s GUI, in a child process (see the module's docstring).

    ``steps``: a list of ``("load_seg", path)``, ``("click", row, col, modifier)``,
    ``("draw_cell", (row, col), radius)``, ``("save",)``, ``("autosave", on)`` (File > Disable
    autosave, which :func:`start_gui` ticks) and ``("view",)``. Returns
    ``{"cellpose": <the cellpose the child imported>, "views": [one view() per "view" step]}``.
    """
    from brightflow.cellpose_worker import worker_environment

    env = worker_environment(generation, overlay)
    env["QT_QPA_PLATFORM"] = "offscreen"
    with tempfile.TemporaryDirectory(prefix="brightflow-gui-") as folder:
        folder = Path(folder)
        (folder / "steps.json").write_text(json.dumps([list(step) for step in steps]))
        process = subprocess.run(
            [sys.executable, "-s", __file__, str(folder)], env=env, capture_output=True, text=True, timeout=timeout
        )
        if process.returncode != 0:
            raise AssertionError(f"the cellpose {generation} GUI session failed:\n{process.stdout[-3000:]}\n"
                                 f"{process.stderr[-6000:]}")  # fmt: skip
        answer = json.loads((folder / "answer.json").read_text())
        for k, shows in enumerate(answer["views"]):
            with np.load(folder / f"view{k}.npz") as arrays:
                shows |= {name: arrays[name] for name in arrays.files}
    return answer


def _session_main(folder):
    """The child of :func:`session`: start the GUI of the cellpose this Python imports, run the steps."""
    from brightflow.cellpose_adapter import import_cellpose

    folder = Path(folder)
    imported = import_cellpose()
    app, gui = start_gui()
    gui.show()
    views = []
    for step in json.loads((folder / "steps.json").read_text()):
        name, arguments = step[0], step[1:]
        if name == "load_seg":
            load_seg(gui, *arguments)
        elif name == "click":
            click(gui, *arguments)
        elif name == "draw_cell":
            draw_cell(gui, tuple(arguments[0]), arguments[1])
        elif name == "save":
            save(gui)
        elif name == "autosave":
            gui.disableAutosave.setChecked(not arguments[0])
        elif name == "view":
            shows = view(gui)
            np.savez(folder / f"view{len(views)}.npz", cellpix=shows.pop("cellpix"), shown=shows.pop("shown"))
            views.append(shows)
        else:
            raise ValueError(f"unknown GUI step {name!r}")
    cellpose = {key: imported[key] for key in ("generation", "version", "file")}
    (folder / "answer.json").write_text(json.dumps({"cellpose": cellpose, "views": views}))
    gui.close()
    app.processEvents()


if __name__ == "__main__":
    _session_main(sys.argv[1])
