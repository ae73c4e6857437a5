"""The brightness explorer (brightflow.explorer, rule brightness_explorer).

Fast tests build the page from arrays and check what it holds. The browser tests run the workflow
on simulated stacks of known cells (one calibrated single-channel stack, one two-channel stack),
open every explorer page in headless Chromium (tests/browser_helpers.py) from a file:// URL, and
use it as a person would: box and lasso drags with the mouse in the plot, a cell chosen in the
list and clicked on the image, the map switch, the download button. What the page shows is
checked against the workflow's own CSVs and maps, computed independently here.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from helpers import write_config

from brightflow import calibration, explorer, nb, simulate, stats

# --- the page, without a browser -------------------------------------------------------------------


def _maps_and_labels(seed=0, shape=(40, 50), threshold=None):
    """Two rectangular cells of N&B maps from random intensity and variance (the N&B equations)."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, dtype=np.uint16)
    labels[5:20, 5:25] = 1
    labels[22:38, 28:46] = 2
    intensity = rng.uniform(2.0, 20.0, shape)
    variance = intensity * rng.uniform(1.2, 4.0, shape)
    if threshold is not None:
        intensity[intensity < threshold] = np.nan
        variance[np.isnan(intensity)] = np.nan
    return nb.number_and_brightness(intensity, variance), labels


def _tags(page):
    """(tag, {attribute: value}) of every tag of an HTML page."""
    from html.parser import HTMLParser

    found = []

    class Tags(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, dict(attrs)))

    Tags().feed(page)
    return found


def _model(layout, name):
    return layout.select_one({"name": name})


def test_page_is_self_contained_and_holds_every_cell_pixel():
    maps, labels = _maps_and_labels()
    page = explorer.explorer_html(maps, labels, title="cells_a")
    # every script inline: no tag of the page loads anything (HTMLParser reads script bodies as text,
    # so the URLs inside Bokeh's own code do not count as tags)
    tags = _tags(page)
    assert [attrs for tag, attrs in tags if {"src", "href"} & set(attrs)] == []
    scripts = [tag for tag, _ in tags if tag == "script"]
    assert len(scripts) >= 2 and "Bokeh" in page and "cells_a" in page
    layout = explorer.explorer_layout(maps, labels)
    pixels = _model(layout, "pixels").data
    assert len(pixels["cell"]) == (labels > 0).sum() == 300 + 288
    # the CSV's rows, in its order and with its values
    table = stats.cell_pixel_table(maps, labels)
    np.testing.assert_array_equal(pixels["cell"], table["Cell ID"])
    np.testing.assert_array_equal(pixels["y"], table["y"])
    np.testing.assert_array_equal(pixels["x"], table["x"])
    np.testing.assert_array_equal(pixels["apparent_brightness"], table["Apparent brightness"])
    np.testing.assert_array_equal(pixels["brightness"], table["Brightness"])
    # under the limit the plot draws them all and says so; no subsampling notice
    scatter = _model(layout, "scatter_plot")
    assert scatter.renderers[0].view.filter.__class__.__name__ == "AllIndices"
    assert "all 588 cell pixels" in scatter.title.text
    assert "Subsampled" not in _model(layout, "notice").text
    assert _model(layout, "cell_select").options == [
        ("", "none"),
        ("1", "cell 1: 300 pixels"),
        ("2", "cell 2: 288 pixels"),
    ]
    # the list shows each cell's ratio-of-means values, when given (the per-cell CSV's)
    listed = explorer.explorer_layout(maps, labels, cell_values={2: (3.14159, 12.5)})
    assert _model(listed, "cell_select").options[2] == ("2", "cell 2: 288 pixels, ε 3.14, n 12.5")


def test_past_the_limit_the_plot_is_subsampled_and_says_so():
    maps, labels = _maps_and_labels()
    layout = explorer.explorer_layout(maps, labels, max_scatter_points=100)
    drawn = np.asarray(_model(layout, "scatter_plot").renderers[0].view.filter.indices)
    assert drawn.size == 100 and np.unique(drawn).size == 100 and drawn.max() < 588
    assert len(_model(layout, "pixels").data["cell"]) == 588  # the page still holds every pixel
    assert "100 of 588 cell pixels" in _model(layout, "scatter_plot").title.text
    notice = _model(layout, "notice").text
    assert "draws 100 of the 588 cell pixels" in notice and "at most 100 points" in notice
    assert explorer.MAX_SCATTER_POINTS >= 76_107  # the benchmark's cells are all drawn


def test_undefined_pixels_stay_in_the_page_but_not_in_the_plot():
    maps, labels = _maps_and_labels(threshold=5.0)
    undefined = int((np.isnan(maps["intensity"]) & (labels > 0)).sum())
    assert undefined > 0
    layout = explorer.explorer_layout(maps, labels, max_scatter_points=10_000)
    assert len(_model(layout, "pixels").data["cell"]) == 588
    notice = _model(layout, "notice").text
    assert f"{undefined:,} of the 588 cell pixels have no defined intensity" in notice
    assert f"all {588 - undefined:,} cell pixels" in _model(layout, "scatter_plot").title.text


def test_reference_line_axes_and_calibration():
    maps, labels = _maps_and_labels()
    calibrated = calibration.Calibration(0.2, 0.25, "µm", None, "test")
    layout = explorer.explorer_layout(maps, labels, calibrated, nb.DetectorModel(s_factor=2.5))
    image = _model(layout, "image_plot")
    assert image.xaxis[0].axis_label == "x (µm)" and image.yaxis[0].axis_label == "y (µm)"
    assert image.x_range.end == pytest.approx(50 * 0.2) and image.y_range.start == pytest.approx(40 * 0.25)
    assert image.y_range.end == 0  # row 0 at the top
    scatter = _model(layout, "scatter_plot")
    span = [r for r in scatter.center if r.__class__.__name__ == "Span"]
    assert [s.location for s in span] == [2.5]
    assert scatter.y_range.start < 2.5 < scatter.y_range.end
    assert "intensity" in scatter.xaxis[0].axis_label and "apparent brightness B" in scatter.yaxis[0].axis_label
    plain = explorer.explorer_layout(maps, labels)
    assert _model(plain, "image_plot").xaxis[0].axis_label == "x (pixels; the file has no pixel size)"


def test_a_recording_without_cells_still_gets_its_page():
    maps, labels = _maps_and_labels()
    layout = explorer.explorer_layout(maps, np.zeros_like(labels))
    assert len(_model(layout, "pixels").data["cell"]) == 0
    assert "all 0 cell pixels" in _model(layout, "scatter_plot").title.text
    assert _model(layout, "cell_select").options == [("", "none")]


def test_maps_of_another_shape_are_an_error():
    maps, labels = _maps_and_labels()
    with pytest.raises(ValueError, match="same shape"):
        explorer.explorer_layout(maps, labels[:-1])


# --- in the browser, on pages the workflow made ------------------------------------------------------

#: The single-channel stack's cells: (epsilon, n); cell k of the mask is cells[k - 1].
CELLS = ((1.0, 6.0), (4.0, 3.0), (2.0, 5.0))
PIXEL_SIZE_UM = 0.2
READY = "() => window.Bokeh !== undefined && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle"


@pytest.fixture(scope="module")
def explorer_run(run_workflow, tmp_path_factory):
    """The workflow on a calibrated single-channel stack and a two-channel stack, with their masks."""
    workdir = tmp_path_factory.mktemp("explorer")
    stacks = workdir / "stacks"
    stacks.mkdir()
    stack, truth = simulate.demo_experiment(list(CELLS), seed=3, shape=(96, 96), frames=100)
    tifffile.imwrite(
        stacks / "cells.tif",
        stack,
        imagej=True,
        resolution=(1 / PIXEL_SIZE_UM, 1 / PIXEL_SIZE_UM),
        metadata={"axes": "TYX", "unit": "micron"},
    )
    tifffile.imwrite(stacks / "cells_labels.tif", truth)
    first, pair_truth = simulate.demo_experiment([(1.0, 5.0), (3.0, 4.0)], seed=5, shape=(48, 64), frames=80)
    second, _ = simulate.demo_experiment([(2.0, 5.0), (1.0, 4.0)], seed=5, shape=(48, 64), frames=80)
    tifffile.imwrite(stacks / "pair.tif", np.stack([first, second], axis=1), imagej=True, metadata={"axes": "TCYX"})
    tifffile.imwrite(stacks / "pair_labels.tif", pair_truth)
    (stacks / "samples.tsv").write_text(
        "experiment\tpath\tmask\ncells\tcells.tif\tcells_labels.tif\npair\tpair.tif\tpair_labels.tif\n"
    )
    config = write_config(
        workdir / "config.yaml",
        samples=str(stacks / "samples.tsv"),
        segmentation={"method": "existing"},
        bleach_correction={"method": "none"},
    )
    run_workflow(workdir, "--configfile", config)
    return workdir / "results"


class Unit:
    """One explorer page and the workflow's CSVs and maps beside it (read here, independently)."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.page = self.folder / "brightness_explorer.html"
        # pandas reads floats exactly (round trip) by default
        self.pixels = pd.read_csv(self.folder / "brightness_intensity_values.csv")
        self.cells = pd.read_csv(self.folder / "average_values_in_roi.csv").set_index("Cell ID")
        ys, xs = self.pixels["y"].to_numpy(), self.pixels["x"].to_numpy()
        for name, column in (("variance", "Variance"), ("number", "Number")):
            self.pixels[column] = np.load(self.folder / f"{name}.npy")[ys, xs]
        self.shape = np.load(self.folder / "intensity.npy").shape

    def flat(self, rows):
        return set((rows["y"] * self.shape[1] + rows["x"]).tolist())

    def in_box(self, x0, x1, y0, y1):
        intensity, brightness = self.pixels["Intensity"], self.pixels["Apparent brightness"]
        return self.pixels[(intensity >= x0) & (intensity <= x1) & (brightness >= y0) & (brightness <= y1)]

    def in_polygon(self, xs, ys):
        """The even-odd rule: a ray from the point to +x crosses the polygon's edges an odd number of times."""
        x, y = self.pixels["Intensity"].to_numpy(), self.pixels["Apparent brightness"].to_numpy()
        inside = np.zeros(x.size, dtype=bool)
        for a in range(len(xs)):
            b = a - 1
            with np.errstate(invalid="ignore", divide="ignore"):
                crosses = ((ys[a] > y) != (ys[b] > y)) & (x < (xs[b] - xs[a]) * (y - ys[a]) / (ys[b] - ys[a]) + xs[a])
            inside ^= crosses
        return self.pixels[inside]


def _expected_readout(rows, detector=nb.DetectorModel()):
    """The readout of a selection, from the CSV rows and maps: pixel means, and the N&B equations
    (brightflow.nb) on the mean intensity and mean variance."""
    usable = rows[np.isfinite(rows["Intensity"]) & np.isfinite(rows["Variance"])]
    k, v = usable["Intensity"].mean(), usable["Variance"].mean()
    return {
        "pixels": len(rows),
        "mean_intensity": rows["Intensity"].mean(),
        "mean_apparent_brightness": rows["Apparent brightness"].mean(),
        "mean_brightness": rows["Brightness"].mean(),
        "mean_number": rows["Number"].mean(),
        "rom_apparent_brightness": float(nb.apparent_brightness(k, v, detector)),
        "rom_brightness": float(nb.brightness(k, v, detector)),
        "rom_number": float(nb.number(k, v, detector)),
    }


def _model_js(name, expression):
    return f"() => {{ const m = Bokeh.documents[0].get_model_by_name({name!r}); return {expression}; }}"


def _to_screen(page, plot, x, y):
    """Page coordinates (CSS pixels) of data point (x, y) of a plot, from Bokeh's own scales."""
    return page.evaluate(
        """([name, x, y]) => {
             const view = Bokeh.index.find_one(Bokeh.documents[0].get_model_by_name(name));
             const box = view.canvas_view.el.getBoundingClientRect();
             return [box.left + view.frame.x_scale.compute(x), box.top + view.frame.y_scale.compute(y)];
           }""",
        [plot, x, y],
    )


def _ranges(page):
    return page.evaluate(_model_js("scatter_plot", "[m.x_range.start, m.x_range.end, m.y_range.start, m.y_range.end]"))


def _drag(page, points):
    page.mouse.move(*points[0])
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*point, steps=4)
    page.mouse.up()


def _highlighted(page):
    """The pixels (flat indices y * width + x) painted in the selection colour on the image."""
    color = int.from_bytes(bytes(explorer.SELECTION_RGBA), "little")
    return set(
        page.evaluate(
            """(color) => { const image = Bokeh.documents[0].get_model_by_name('highlight').data.image[0];
                        const found = []; image.forEach((value, i) => { if (value === color) found.push(i); });
                        return found; }""",
            color,
        )
    )


def _selected(page, unit):
    """The page's selection (pixels.selected.indices) as flat pixel indices."""
    rows = page.evaluate(_model_js("pixels", "Array.from(m.selected.indices, (i) => [m.data.y[i], m.data.x[i]])"))
    return {y * unit.shape[1] + x for y, x in rows}


def _readout(page):
    """The readout's numbers: {quantity: (exact value, text shown)}."""
    cells = page.locator("[data-quantity]").evaluate_all(
        "els => els.map(e => [e.dataset.quantity, e.dataset.value, e.textContent])"
    )
    return {quantity: (float(value), text) for quantity, value, text in cells}


def _check_readout(page, expected):
    shown = _readout(page)
    assert set(shown) == set(expected)
    for quantity, value in expected.items():
        exact, text = shown[quantity]
        assert exact == pytest.approx(value, rel=1e-12), quantity
        # the text shows 4 significant digits (thousands separated for the pixel count)
        assert float(text.replace(",", "")) == pytest.approx(value, rel=5e-4), (quantity, text)


def _download(page, unit, tmp_path):
    with page.expect_download() as download:
        page.get_by_text("Download selection (CSV)").click()
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    return pd.read_csv(path)


def _check_download(table, rows):
    columns = ["Cell ID", "y", "x", "Intensity", "Variance", "Apparent brightness", "Brightness", "Number"]
    assert list(table.columns) == columns
    expected = rows.sort_values(["Cell ID", "y", "x"])[columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(table, expected, check_exact=True, check_dtype=False)


def _screenshot(page, tmp_path, name):
    path = tmp_path / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    assert path.stat().st_size > 10_000
    keep = os.environ.get("BRIGHTFLOW_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)
    return path


@pytest.mark.workflow
def test_the_workflow_makes_a_self_contained_page_per_unit(explorer_run):
    """Without a browser: a page per experiment and per channel, for the cells of its CSV."""
    for unit_name in ("cells", "pair/ch1", "pair/ch2"):
        unit = Unit(explorer_run / unit_name)
        page = unit.page.read_text(encoding="utf-8")
        assert [attrs for tag, attrs in _tags(page) if {"src", "href"} & set(attrs)] == []
        assert f"Brightness explorer: {unit_name}" in page
        assert f"all {len(unit.pixels):,} cell pixels" in page
        assert (r"x (\u00b5m)" in page or "x (µm)" in page) == (unit_name == "cells")
        assert f"brightness_selection_{unit_name.replace('/', '_')}.csv" in page


@pytest.mark.workflow
def test_every_explorer_page_renders_without_errors_or_network(explorer_run, browser):
    pages = sorted(explorer_run.rglob("brightness_explorer.html"))
    assert [p.relative_to(explorer_run).as_posix() for p in pages] == [
        "cells/brightness_explorer.html",
        "pair/ch1/brightness_explorer.html",
        "pair/ch2/brightness_explorer.html",
    ]
    for path in pages:
        unit = Unit(path.parent)
        with browser(path, ready=READY) as (page, events):
            page.wait_for_timeout(300)  # let the canvases paint
            assert events.page_errors == [] and events.console_errors == [], (path, events)
            assert events.network_requests == [], (path, events.requests)
            assert page.evaluate(_model_js("pixels", "m.data.cell.length")) == len(unit.pixels)
            # both plots are drawn: canvases of their size
            for name in ("image_plot", "scatter_plot"):
                width, height = page.evaluate(
                    f"() => {{ const v = Bokeh.index.find_one(Bokeh.documents[0].get_model_by_name('{name}'));"
                    " return [v.frame.bbox.width, v.frame.bbox.height]; }"
                )
                assert width > 100 and height > 100
            assert "all" in page.evaluate(_model_js("scatter_plot", "m.title.text"))
        assert events.page_errors == [] and events.console_errors == [] and events.network_requests == []


@pytest.mark.workflow
def test_box_lasso_cell_and_click_select_exactly_the_csv_pixels(explorer_run, tmp_path, browser):
    unit = Unit(explorer_run / "cells")
    bright_cell = 2  # epsilon 4: B about 5
    assert unit.cells.loc[bright_cell, "Brightness (ratio of means)"] == pytest.approx(4.0, abs=0.5)
    with browser(unit.page, ready=READY) as (page, events):
        page.wait_for_timeout(300)
        _screenshot(page, tmp_path, "explorer_start")

        # a box around the bright population (B above 3.8), dragged with the box-select tool
        x_start, x_end, y_start, y_end = _ranges(page)
        width, height = x_end - x_start, y_end - y_start
        aim = (x_start + 0.02 * width, x_end - 0.02 * width, 3.8, y_end - 0.02 * height)
        corner0 = _to_screen(page, "scatter_plot", aim[0], aim[3])
        corner1 = _to_screen(page, "scatter_plot", aim[1], aim[2])
        _drag(page, [corner0, ((corner0[0] + corner1[0]) / 2, (corner0[1] + corner1[1]) / 2), corner1])
        region = page.evaluate(_model_js("region", "[m.data.x, m.data.y]"))
        box = (min(region[0]), max(region[0]), min(region[1]), max(region[1]))
        assert box == pytest.approx(aim, abs=0.01 * height)  # the box drawn is the box aimed at
        rows = unit.in_box(*box)
        assert 0 < len(rows) < len(unit.pixels)
        assert (rows["Cell ID"] == bright_cell).mean() > 0.9  # the bright population is the bright cell
        assert _highlighted(page) == unit.flat(rows) == _selected(page, unit)
        _check_readout(page, _expected_readout(rows))
        _check_download(_download(page, unit, tmp_path), rows)
        _screenshot(page, tmp_path, "explorer_box")

        # a lasso: a triangle over the plot's lower half, drawn with the lasso tool
        page.get_by_title("Lasso Select").click()
        triangle = [(0.1, 0.05), (0.9, 0.05), (0.5, 0.6)]
        _drag(
            page,
            [
                _to_screen(page, "scatter_plot", x_start + fx * width, y_start + fy * height)
                for fx, fy in triangle + triangle[:1]
            ],
        )
        xs, ys = page.evaluate(_model_js("region", "[m.data.x, m.data.y]"))
        assert len(xs) >= 4
        rows = unit.in_polygon(np.asarray(xs), np.asarray(ys))
        assert 0 < len(rows) < len(unit.pixels)
        assert _highlighted(page) == unit.flat(rows) == _selected(page, unit)
        _check_readout(page, _expected_readout(rows))
        _check_download(_download(page, unit, tmp_path), rows)

        # a cell chosen in the list: its pixels in the plot, and the CSV's per-cell values
        rows = unit.pixels[unit.pixels["Cell ID"] == bright_cell]
        cell = unit.cells.loc[bright_cell]
        page.locator("select").select_option(
            label=(
                f"cell {bright_cell}: {len(rows):,} pixels, ε {cell['Brightness (ratio of means)']:.3g}, "
                f"n {cell['Number (ratio of means)']:.3g}"
            )
        )
        assert _highlighted(page) == unit.flat(rows) == _selected(page, unit)
        assert page.evaluate(_model_js("region", "m.data.x.length")) == 0
        expected = {
            "pixels": cell["Pixels"],
            "mean_intensity": cell["Intensity"],
            "mean_apparent_brightness": cell["Apparent brightness"],
            "mean_brightness": cell["Brightness"],
            "mean_number": cell["Number"],
            "rom_apparent_brightness": cell["Apparent brightness (ratio of means)"],
            "rom_brightness": cell["Brightness (ratio of means)"],
            "rom_number": cell["Number (ratio of means)"],
        }
        _check_readout(page, expected)
        _check_download(_download(page, unit, tmp_path), rows)
        # the map switch shows the brightness map (the screenshot for the README)
        page.get_by_text("ε", exact=True).click()
        assert page.evaluate(_model_js("image_brightness", "m.visible")) is True
        assert page.evaluate(_model_js("image_intensity", "m.visible")) is False
        _screenshot(page, tmp_path, "explorer_cell")

        # a click on another cell in the image selects it
        other = 3
        rows = unit.pixels[unit.pixels["Cell ID"] == other]
        centre = rows.iloc[((rows["y"] - rows["y"].mean()) ** 2 + (rows["x"] - rows["x"].mean()) ** 2).argmin()]
        page.mouse.click(
            *_to_screen(page, "image_plot", (centre["x"] + 0.5) * PIXEL_SIZE_UM, (centre["y"] + 0.5) * PIXEL_SIZE_UM)
        )
        assert page.evaluate(_model_js("cell_select", "m.value")) == str(other)
        assert _highlighted(page) == unit.flat(rows) == _selected(page, unit)

        page.get_by_text("Clear selection").click()
        assert _highlighted(page) == set() and _selected(page, unit) == set()
    assert events.page_errors == [] and events.console_errors == [] and events.network_requests == []


@pytest.mark.workflow
def test_a_subsampled_plot_still_selects_every_pixel(explorer_run, tmp_path, browser):
    """A page made with a small point limit (and an analog detector, for the readout's equations)."""
    detector = nb.DetectorModel(offset=0.5, s_factor=1.5, readout_variance=0.2)
    unit = Unit(explorer_run / "cells")
    maps = {name: np.load(unit.folder / f"{name}.npy") for name in explorer.PIXEL_COLUMNS}
    labels = tifffile.imread(unit.folder / "analysis_labels.tif")
    page_path = tmp_path / "subsampled.html"
    text = explorer.explorer_html(maps, labels, detector=detector, max_scatter_points=300)
    page_path.write_text(text, encoding="utf-8")
    with browser(page_path, ready=READY) as (page, events):
        assert f"draws 300 of the {len(unit.pixels):,} cell pixels" in page.evaluate(_model_js("notice", "m.text"))
        drawn = page.evaluate(_model_js("scatter_plot", "Array.from(m.renderers[0].view.filter.indices)"))
        assert len(drawn) == 300
        # a box whose four edges cut through the points: from the 30th to the 70th percentile of
        # the cell pixels' intensity and apparent brightness
        x0, x1 = np.percentile(unit.pixels["Intensity"], [30, 70])
        y0, y1 = np.percentile(unit.pixels["Apparent brightness"], [30, 70])
        _drag(page, [_to_screen(page, "scatter_plot", x0, y1), _to_screen(page, "scatter_plot", x1, y0)])
        region = page.evaluate(_model_js("region", "[m.data.x, m.data.y]"))
        box = (min(region[0]), max(region[0]), min(region[1]), max(region[1]))
        assert box == pytest.approx((x0, x1, y0, y1), rel=0.02)
        rows = unit.in_box(*box)
        for edge, (column, _side) in enumerate(
            [("Intensity", 1), ("Intensity", -1), ("Apparent brightness", 1), ("Apparent brightness", -1)]
        ):
            # points just outside each edge, and the box holds points close to each edge
            near = unit.pixels[column].sub(box[edge]).abs() < 0.05 * abs(box[edge])
            assert (near & ~unit.pixels.index.isin(rows.index)).any() and near[rows.index].any(), column
        drawn_in_box = len(set(drawn) & set(page.evaluate(_model_js("pixels", "Array.from(m.selected.indices)"))))
        assert 0 < drawn_in_box < len(rows)  # the plot shows some of them; the image all
        assert _highlighted(page) == unit.flat(rows) == _selected(page, unit)
        _check_readout(page, _expected_readout(rows, detector))
    assert events.page_errors == [] and events.console_errors == [] and events.network_requests == []
