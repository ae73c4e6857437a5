"""Shared fixtures: the workflow runner, the real recordings, ImageJ, Chromium and the cellpose GUI."""

from __future__ import annotations

import os

import pytest
from helpers import REPO, SHARED_DATA, run_snakemake


@pytest.fixture(scope="session")
def run_workflow():
    """Run ``snakemake`` on the repository's Snakefile in a folder, as a user does (helpers.run_snakemake):
    ``run_workflow(workdir, *args, config=None, check=True, cores=2, timeout=900)``."""
    return run_snakemake


@pytest.fixture
def repo():
    return REPO


@pytest.fixture
def shared_data():
    """../shared/data beside the checkout (real recordings); the test skips where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is not beside this checkout")
    return SHARED_DATA


@pytest.fixture
def imagej():
    """Run ImageJ macros (imagej_helpers.run_imagej_macro); skips where ImageJ cannot run here, and
    BRIGHTFLOW_REQUIRE_IMAGEJ=1 (set by .ci/run) makes that a failure."""
    import imagej_helpers

    imagej_helpers.imagej_or_skip()
    return imagej_helpers.run_imagej_macro


@pytest.fixture
def browser():
    """Open pages in Debian's Chromium, headless (browser_helpers.open_page); skips where Chromium cannot
    run here, and BRIGHTFLOW_REQUIRE_BROWSER=1 (set by .ci/run) makes that a failure."""
    import browser_helpers

    browser_helpers.browser_or_skip()
    return browser_helpers.open_page


@pytest.fixture(scope="session")
def cellpose_gui_window():
    """The real cellpose GUI (one QApplication and one main window per session; see gui_helpers).

    Skipped with the reason when PyQt6 & co. are missing; ``BRIGHTFLOW_REQUIRE_GUI=1`` makes
    that a failure.
    """
    import gui_helpers

    problem = gui_helpers.gui_problem()
    if problem:
        if os.environ.get("BRIGHTFLOW_REQUIRE_GUI") == "1":
            pytest.fail(f"BRIGHTFLOW_REQUIRE_GUI=1 but {problem}")
        pytest.skip(problem)
    app, window = gui_helpers.start_gui()
    yield window
    window.close()
    app.processEvents()


@pytest.fixture
def cellpose_gui(cellpose_gui_window):
    """The session's cellpose GUI, reset: no file loaded (gui_helpers.load_seg resets it too)."""
    import gui_helpers

    gui_helpers.reset(cellpose_gui_window)
    return cellpose_gui_window
