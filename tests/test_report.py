"""The Snakemake report (``snakemake --report report.html`` after a run): every figure, key table and
explorer page of every unit, each with its caption stating the settings used, grouped by unit
(category) and kind of output (subcategory); the run's summary (workflow/report/workflow.rst); and the
page as a person sees it in Chromium.

Two runs on small simulated data: (a) a single-channel folder with the N&B time series, a numeric
monomer brightness and a polynomial bleach correction; (b) a two-channel hyperstack with
cross-correlated N&B and an analog detector model."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import tifffile
from browser_helpers import LOCAL_SCHEMES
from helpers import write_config, write_stack

import brightflow
from brightflow import simulate
from brightflow.cross import CROSS_MAP_NAMES
from brightflow.nb import MAP_NAMES

#: What each unit (an experiment, or experiment/ch<c>) shows, by subcategory (spelled out here, not
#: taken from the workflow, so that the test says what a user finds in the report).
UNIT_RESULTS = {
    "N&B maps": [f"{name}.png" for name in MAP_NAMES] + ["brightness_x_intensity.png"],
    "Bleach correction": ["Bleach_correction.png"],
    "Tables": ["average_values_in_roi.csv"],
    "Explorer": ["brightness_explorer.html"],
}
TIMESERIES_RESULTS = {"Time series": ["Brightness_timeseries.png", "timeseries_values_in_roi.csv"]}
#: Made once per experiment (in {experiment}/), for every channel of a multi-channel stack.
SEGMENTATION_RESULTS = {"Segmentation": ["cellmask.png", "eroded_mask.png"]}
CROSS_RESULTS = {
    "Cross-correlation": [f"cross_ch1_ch2/{name}.png" for name in CROSS_MAP_NAMES]
    + ["cross_ch1_ch2/cross_values_in_roi.csv"]
}
FOLDER_RESULTS = {"Tables": ["Folder_average_values_in_roi.csv"], "Summary": ["Folder_brightness_summary.png"]}

#: A phrase of each kind's caption (workflow/report/*.rst), by file name.
CAPTION_PHRASES = (
    {
        "brightness_x_intensity.png": "Apparent brightness B against intensity",
        "Bleach_correction.png": "Bleach correction of",
        "average_values_in_roi.csv": "Per-cell values of",
        "brightness_explorer.html": "Brightness explorer of",
        "Brightness_timeseries.png": "Brightness over time in",
        "timeseries_values_in_roi.csv": "Per-cell values over time in",
        "cellmask.png": "Segmentation of",
        "eroded_mask.png": "Segmentation of",
        "cross_values_in_roi.csv": "Per-cell cross-correlated N&B of channels 1 and 2",
        "Folder_average_values_in_roi.csv": "Every cell of every experiment",
        "Folder_brightness_summary.png": "one point per cell",
    }
    | {f"{name}.png": "N&B maps of" for name in MAP_NAMES}
    | {f"{name}.png": "Cross-correlated N&B of channels 1 and 2" for name in CROSS_MAP_NAMES}
)

MIME = {".png": "image/png", ".csv": "text/csv", ".html": "text/html"}

#: The report page is ready once Snakemake's loading screen is hidden (after its scripts ran).
READY = "() => document.querySelector('#loading-screen').style.display === 'none'"


@pytest.fixture(scope="module")
def single_channel(run_workflow, tmp_path_factory):
    """(a) A folder of one single-channel stack (two cells, 60 frames), time series on."""
    workdir = tmp_path_factory.mktemp("report_single")
    stacks = workdir / "stacks"
    stacks.mkdir()
    stack, _ = simulate.demo_experiment([(2.0, 5.0), (4.0, 3.0)], seed=5, shape=(64, 64), frames=60)
    write_stack(stacks / "cells.tif", stack)
    config = write_config(
        workdir / "config.yaml",
        input_dir=str(stacks),
        bleach_correction={"method": "polynomial", "parameter": 1},
        nb={"timeseries": {"frames_per_set": 20, "overlap": 5}, "monomer_brightness": 2.0},
    )
    run_workflow(workdir, "--configfile", config)
    run_workflow(workdir, "--configfile", config, "--report", workdir / "report.html")
    return workdir


@pytest.fixture(scope="module")
def two_channels(run_workflow, tmp_path_factory):
    """(b) A folder of one two-channel ImageJ hyperstack (TCYX), cross-correlated N&B, analog detector."""
    workdir = tmp_path_factory.mktemp("report_channels")
    stacks = workdir / "stacks"
    stacks.mkdir()
    # the same seed: the same two cells in both channels
    first, _ = simulate.demo_experiment([(1.0, 6.0), (2.0, 4.0)], seed=3, shape=(48, 64), frames=60)
    second, _ = simulate.demo_experiment([(2.0, 3.0), (1.0, 5.0)], seed=3, shape=(48, 64), frames=60)
    tifffile.imwrite(stacks / "pair.tif", np.stack([first, second], axis=1), imagej=True, metadata={"axes": "TCYX"})
    config = write_config(
        workdir / "config.yaml",
        input_dir=str(stacks),
        bleach_correction={"method": "none"},
        nb={"cross_channels": [1, 2], "detector": {"offset": 0.0, "s_factor": 1.5, "readout_variance": 0.0}},
    )
    run_workflow(workdir, "--configfile", config)
    run_workflow(workdir, "--configfile", config, "--report", workdir / "report.html")
    return workdir


def _report_data(path):
    """The data the report page embeds: {results, categories, workflow_desc} (its <script> variables)."""
    page = Path(path).read_text(encoding="utf-8")
    data = {}
    for script_id, name in (("results", "results"), ("categories", "categories"), ("workflow-desc", "workflow_desc")):
        match = re.search(rf'<script id="{script_id}">\s*var {name} = (.*?);\s*</script>', page, re.S)
        assert match, f"the report has no {name}"
        data[name] = json.loads(match.group(1))
    return data


def _expected(folders):
    """{category: {subcategory: [path, ...]}} from {category: (folder, {subcategory: [file, ...]})}."""
    expected = {}
    for category, (folder, kinds) in folders.items():
        for subcategory, names in kinds.items():
            expected.setdefault(category, {}).setdefault(subcategory, []).extend(
                f"{folder}/{name}" if folder else name for name in names
            )
    return {c: {s: sorted(paths) for s, paths in subs.items()} for c, subs in expected.items()}


def _text(html):
    """Caption HTML as text, whitespace collapsed."""
    return " ".join(re.sub(r"<[^>]+>", "", html).replace("&quot;", '"').replace("&amp;", "&").split())


def _check_results(workdir, data, expected):
    """Every result is the file on disk, with its caption and label; categories as expected."""
    categories = {c: {s: sorted(paths) for s, paths in subs.items()} for c, subs in data["categories"].items()}
    assert categories == expected
    results = data["results"]
    assert sorted(results) == sorted(p for subs in expected.values() for paths in subs.values() for p in paths)
    # every figure of the run is in the report (found on disk, not from any list)
    pngs = {p.relative_to(workdir).as_posix() for p in (workdir / "results").rglob("*.png")}
    assert pngs == {path for path in results if path.endswith(".png")}
    category_of = {path: category for category, subs in expected.items() for paths in subs.values() for path in paths}
    for path, result in results.items():
        name = Path(path).name
        payload = result["data_uri"].split(",", 1)[1]
        assert base64.b64decode(payload) == (workdir / path).read_bytes(), path
        assert result["mime_type"] == MIME[Path(path).suffix]
        assert name in result["labels"]["Shows"], (path, result["labels"])
        assert "system-message" not in result["caption"], (path, result["caption"])
        caption = _text(result["caption"])
        assert CAPTION_PHRASES[name] in caption, (path, caption)
        # the caption of a unit's output names the unit (its category)
        if category_of[path] != "Folder":
            assert f"of {category_of[path]}" in caption or f"in {category_of[path]}" in caption, (path, caption)
    return {path: _text(result["caption"]) for path, result in results.items()}


@pytest.mark.workflow
def test_single_channel_report_holds_every_output_with_its_caption(single_channel):
    workdir = single_channel
    data = _report_data(workdir / "report.html")
    expected = _expected(
        {
            "cells": ("results/cells", UNIT_RESULTS | TIMESERIES_RESULTS | SEGMENTATION_RESULTS),
            "Folder": ("results", FOLDER_RESULTS),
        }
    )
    captions = _check_results(workdir, data, expected)

    # the captions state the settings of this run
    maps = captions["results/cells/brightness.png"]
    assert "Here the detector is photon counting: the reference is B = 1." in maps
    assert "bleach_correction.method: polynomial" in maps and "bleach_correction.parameter: 1" in maps
    assert "nb.threshold: none: every cell pixel is analysed" in maps
    assert (
        "B = 1 (photon-counting detector; B = S for an analog one)"
        in captions["results/cells/brightness_x_intensity.png"]
    )
    assert "bleach_correction.method polynomial" in captions["results/cells/Bleach_correction.png"]
    assert "segmentation.method: threshold: a classical threshold" in captions["results/cells/cellmask.png"]
    assert (
        "Monomer brightness (2.0) and Oligomeric state = Brightness (ratio of means) / 2.0"
        in captions["results/cells/average_values_in_roi.csv"]
    )
    timeseries = captions["results/cells/Brightness_timeseries.png"]
    assert "in each window of 20 frames" in timeseries and "Consecutive windows share 5 frames" in timeseries
    summary = captions["results/Folder_brightness_summary.png"]
    assert "Estimator: the oligomeric state" in summary and "(2.0, from nb.monomer_brightness)" in summary
    assert "Estimator: Brightness (ratio of means)" not in summary
    assert (
        "Oligomeric state = Brightness (ratio of means) / 2.0" in captions["results/Folder_average_values_in_roi.csv"]
    )

    # the summary: the input, the settings, the versions
    description = _text(data["workflow_desc"])
    assert "brightflow N&B report" in description
    assert f"1 stack(s) from input_dir {workdir / 'stacks'}: cells." in description
    assert "Segmentation threshold (otsu), erode_pixels 0." in description
    assert "Bleach correction polynomial, parameter 1, seed 1" in description
    assert "Detector photon counting" in description and "Immobile molecules have B = 1;" in description
    assert "Oligomeric state = Brightness (ratio of means) / 2.0" in description
    assert "Time series windows of 20 frames, overlap 5" in description
    assert "Cross-correlated N&B off" in description
    assert f"brightflow {brightflow.__version__}, Snakemake {metadata.version('snakemake')}" in description
    # the summary reaches the report only: settings.json records the config as before
    assert "_report" not in (workdir / "results" / "cells" / "settings.json").read_text()


@pytest.mark.workflow
def test_multichannel_report_groups_by_experiment_and_channel(two_channels):
    workdir = two_channels
    data = _report_data(workdir / "report.html")
    expected = _expected(
        {
            "pair": ("results/pair", SEGMENTATION_RESULTS | CROSS_RESULTS),
            "pair/ch1": ("results/pair/ch1", UNIT_RESULTS),
            "pair/ch2": ("results/pair/ch2", UNIT_RESULTS),
            "Folder": ("results", FOLDER_RESULTS),
        }
    )
    captions = _check_results(workdir, data, expected)

    assert "analog with S = 1.5: the reference is B = 1.5." in captions["results/pair/ch2/brightness.png"]
    assert (
        "B = S = 1.5 (analog detector, nb.detector.s_factor)" in captions["results/pair/ch1/brightness_x_intensity.png"]
    )
    assert "of channel 1 (every channel is measured in these cells)" in captions["results/pair/cellmask.png"]
    assert "nb.cross_channels [1, 2]" in captions["results/pair/cross_ch1_ch2/cross_brightness.png"]
    summary = captions["results/Folder_brightness_summary.png"]
    assert "Estimator: Brightness (ratio of means)" in summary and "One box per unit (experiment or channel)" in summary
    assert "(2 unit(s): pair/ch1, pair/ch2)" in captions["results/Folder_average_values_in_roi.csv"]

    description = _text(data["workflow_desc"])
    assert "Detector analog (Dalal et al. 2008): nb.detector offset 0.0, S factor 1.5" in description
    assert "Immobile molecules have B = 1.5 (B = S)" in description
    assert "on channel 1 of multi-channel stacks" in description
    assert "Cross-correlated N&B channels 1 and 2" in description
    assert "Time series off" in description


def _screenshot(page, tmp_path, name):
    path = tmp_path / f"{name}.png"
    page.screenshot(path=path)
    assert path.stat().st_size > 10_000
    keep = os.environ.get("BRIGHTFLOW_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)
    return path


def _row_buttons(page, label):
    """The view (eye) and information buttons of a result's row in the open subcategory."""
    buttons = page.locator("tr", has_text=label).first.locator("a")
    return buttons.nth(0), buttons.nth(1)


@pytest.mark.workflow
def test_the_report_renders_in_chromium_without_errors_or_network(single_channel, tmp_path, browser):
    report = single_channel / "report.html"
    with browser(report, viewport=(1400, 900), ready=READY) as (page, events):
        # the landing page: the summary beside the rule graph, its title in view
        title = page.locator("h1", has_text="brightflow N&B report")
        assert title.is_visible() and title.bounding_box()["y"] >= 0
        assert "Time series windows of 20 frames" in page.inner_text("#app")
        _screenshot(page, tmp_path, "report_start")

        # the menu lists the unit and the folder; the unit's kinds of output
        menu = page.inner_text("#app")
        assert "cells" in menu and "Folder" in menu
        page.locator("#app li", has_text=re.compile(r"^\s*cells\s*$")).first.click()
        listed = page.inner_text("#app")
        for subcategory in ("Bleach correction", "Explorer", "N&B maps", "Segmentation", "Tables", "Time series"):
            assert subcategory in listed

        # a map: the figure shown, then its caption
        page.locator("#app li", has_text=re.compile(r"^\s*N&B maps\s*$")).first.click()
        view, info = _row_buttons(page, "brightness map (brightness.png)")
        view.click()
        image = page.locator("img[src^='data:image/png']").first
        image.wait_for()
        assert page.evaluate("(img) => img.complete && img.naturalWidth > 100", image.element_handle())
        _, info = _row_buttons(page, "brightness map (brightness.png)")
        info.click()
        caption = page.inner_text("#app")
        assert "Here the detector is photon counting: the reference is B = 1." in caption
        assert "polynomial" in caption
        _screenshot(page, tmp_path, "report_brightness_map")

        # the explorer: its caption's link opens the embedded page in a new tab, where it works
        page.locator("nav a, #app a", has_text=re.compile(r"^\s*cells\s*$")).first.click()
        page.locator("#app li", has_text=re.compile(r"^\s*Explorer\s*$")).first.click()
        _, info = _row_buttons(page, "brightness_explorer.html")
        info.click()
        # every page of the browser from here: the explorer tab's errors and requests too
        explorer_errors, requests = [], []
        page.context.on("weberror", lambda error: explorer_errors.append(str(error.error)))
        page.context.on("request", lambda request: requests.append(request.url))
        with page.context.expect_page() as opened:
            page.locator("a.brightflow-open-explorer").click()
        explorer = opened.value
        explorer.wait_for_function(
            "() => window.Bokeh && Bokeh.documents.length > 0 && "
            "Bokeh.documents[0].get_model_by_name('scatter_plot') !== null"
        )
        assert explorer.url.startswith("blob:")
        assert explorer.title() == "brightflow brightness explorer: cells"
        explorer.wait_for_timeout(500)  # let the canvases paint
        _screenshot(explorer, tmp_path, "report_explorer")
        assert explorer_errors == []
        assert requests and all(url.startswith(LOCAL_SCHEMES) for url in requests), requests

        assert events.page_errors == [] and events.console_errors == [], events
        assert events.network_requests == [], events.requests


@pytest.mark.workflow
def test_channel_categories_open_in_chromium(two_channels, browser):
    with browser(two_channels / "report.html", viewport=(1400, 900), ready=READY) as (page, events):
        for category, subcategories in (
            ("pair/ch2", ("Explorer", "N&B maps", "Tables")),
            ("pair", ("Cross-correlation", "Segmentation")),
        ):
            page.reload()  # back to the start
            page.wait_for_function(READY)
            page.locator("#app li", has_text=re.compile(rf"^\s*{re.escape(category)}\s*$")).first.click()
            listed = page.inner_text("#app")
            assert all(subcategory in listed for subcategory in subcategories), (category, listed)
        assert events.page_errors == [] and events.console_errors == [] and events.network_requests == []


def test_a_second_analysis_in_the_same_folder_cannot_make_a_mixed_report(run_workflow, tmp_path):
    """Two analyses into one output folder: the report of the first one's configuration is refused (the
    folder table and figure are now the second's), saying whose results the folder holds; the second's
    report is made, and its start page names its configuration and input."""
    configs = {}
    for name, seed in (("first", 5), ("second", 6)):
        stacks = tmp_path / f"stacks_{name}"
        stacks.mkdir()
        stack, _ = simulate.demo_experiment([(2.0, 5.0), (4.0, 3.0)], seed=seed, shape=(48, 48), frames=40)
        write_stack(stacks / f"cells_{name}.tif", stack)
        configs[name] = write_config(tmp_path / f"{name}.yaml", input_dir=str(stacks))
        run_workflow(tmp_path, "--configfile", configs[name])
    refused = run_workflow(tmp_path, "--configfile", configs["first"], "--report", tmp_path / "first.html", check=False)
    assert refused.returncode != 0 and not (tmp_path / "first.html").exists()
    message = " ".join((refused.stdout + refused.stderr).split())
    assert (
        f"results holds the results of another run (input_dir {tmp_path / 'stacks_second'}: experiments "
        "cells_second), not of this configuration" in message
    ), message[-2000:]
    run_workflow(tmp_path, "--configfile", configs["second"], "--report", tmp_path / "second.html")
    start = _text(_report_data(tmp_path / "second.html")["workflow_desc"])
    assert f"input_dir {tmp_path / 'stacks_second'}" in start and str(configs["second"]) in start
