"""The brightness explorer: an interactive page linking the apparent brightness vs intensity plot
of the cell pixels to the image, as a self-contained HTML file.

Select a region of the B x I plot (box or lasso) and every cell pixel inside it is highlighted
on the image; choose a cell (list, or a click on the image) and its pixels are highlighted in the
plot. A readout gives the selection's pixel count, its pixel means (as the per-cell CSV's
replaced-app columns) and its ratio-of-means brightness and number (the N&B equations of
Digman et al. 2008, Biophys J 94:2320, eqs. 4-8, with the analog detector of Dalal et al. 2008,
Microsc Res Tech 71:69, applied once to the selection's mean intensity and mean variance, as the
CSV's "(ratio of means)" columns); the selected pixels download as CSV. This is how bright
populations (aggregates, vesicles) are separated from the rest in the SimFCS way of working.

The page is a Bokeh standalone document (:func:`bokeh.embed.file_html` with
:data:`bokeh.resources.INLINE`): all JavaScript is inline and it opens from disk with no network.
The linking is Bokeh ``CustomJS`` callbacks, whose code is in the ``.js`` files beside this module
(``prelude.js``: what every callback shares; ``on_*.js``: one per event), and the readout's style in
``readout.css``. The N&B equations are not written in JavaScript: the page evaluates the ratios
of polynomials in the mean intensity and variance that brightflow.nb.ratio_of_means_forms gives.

Scale: the page holds every cell pixel's values (about 75 bytes each, plus about 27 bytes per
image pixel for the maps it can show and the overlay, and 1.7 MB of Bokeh's JavaScript). The
plot draws at most :data:`MAX_SCATTER_POINTS` of them
(a seeded random subsample beyond that, which the page states); a region drawn on the plot
always selects among **all** cell pixels (the region's shape is tested against every pixel's
intensity and B), so the image, the readout and the download never miss a pixel.

Nothing here reads or writes files.
"""

from __future__ import annotations

import html
import re
from importlib import resources

import numpy as np
from bokeh.embed import file_html
from bokeh.layouts import column, row
from bokeh.models import (
    BoxSelectTool,
    Button,
    CDSView,
    ColorBar,
    ColumnDataSource,
    CustomJS,
    Div,
    IndexFilter,
    InlineStyleSheet,
    Label,
    LabelSet,
    LassoSelectTool,
    LinearColorMapper,
    RadioButtonGroup,
    Range1d,
    Select,
    Span,
)
from bokeh.palettes import Greys256, Viridis256
from bokeh.plotting import figure
from bokeh.resources import INLINE
from bokeh.settings import settings

from .. import nb
from ..calibration import UNCALIBRATED
from ..stats import MAP_COLUMNS, point_density

__all__ = ["MAX_SCATTER_POINTS", "IMAGE_MAPS", "cell_pixels", "explorer_layout", "explorer_html"]

#: Most cell pixels the B x I plot draws. Up to this number every cell pixel is a point of the
#: plot; past it the plot draws a random subsample of this size (seeded, so the same page every
#: run) and says so. Selections, the image highlight, the readout and the download always use
#: every cell pixel. 100,000 points keep panning and zooming smooth in a browser's canvas; the
#: benchmark's three cells (76,107 pixels) are all drawn.
MAX_SCATTER_POINTS = 100_000

#: The maps the image view can show (the switch under the image), with their colour bar titles.
IMAGE_MAPS = {
    "intensity": "intensity <k> (mean counts per frame)",
    "apparent_brightness": "apparent brightness B = s² / <k>",
    "brightness": "brightness ε (counts per molecule per frame)",
    "number": "number n (molecules in the observation volume)",
}

#: Per-pixel values in the page, and their column names in the downloaded CSV (those of
#: brightness_intensity_values.csv, plus Variance and Number; brightflow.stats.MAP_COLUMNS).
PIXEL_COLUMNS = {
    name: MAP_COLUMNS[name] for name in ("intensity", "variance", "apparent_brightness", "brightness", "number")
}

#: Colour (red, green, blue, opacity) of the selected pixels on the image; in the plot, the same
#: orange-red, opaque.
SELECTION_RGBA = (255, 69, 0, 220)
#: Colour of the cell outlines drawn on the image (cyan, as in cellmask.png).
OUTLINE_RGBA = (0, 229, 255, 170)
#: Size on the page (CSS pixels) of the plot's frame (square) and of the image's longer side.
PLOT_SIZE = 470


def _asset(name):
    """The text of ``name``, a file of this package (the callbacks' JavaScript, the readout's CSS)."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _callback(name, args, prelude=True):
    """A ``CustomJS`` running ``name`` (with ``prelude.js`` before it) with ``args``."""
    return CustomJS(args=args, code=(_asset("prelude.js") if prelude else "") + _asset(name))


def _rgba(rgba):
    """A colour as one uint32 of Bokeh's image_rgba (bytes R, G, B, A in memory order)."""
    return int(np.array(rgba, dtype=np.uint8).view("<u4")[0])


def cell_pixels(maps, labels):
    """The cell pixels' positions and values, as the page holds them.

    Parameters
    ----------
    maps : dict of name -> ndarray (y, x)
        The N&B maps (at least the keys of :data:`PIXEL_COLUMNS`).
    labels : ndarray of int (y, x)
        The label mask the values are taken from (0 = background), ``analysis_labels.tif``.

    Returns
    -------
    dict of name -> ndarray
        ``cell``, ``y``, ``x`` (int32) and one float64 array per key of :data:`PIXEL_COLUMNS`,
        one entry per cell pixel, in raster order within each cell and cells in increasing
        order (the order of ``brightness_intensity_values.csv``).
    """
    labels = np.asarray(labels)
    ys, xs = np.nonzero(labels > 0)
    order = np.lexsort((xs, ys, labels[ys, xs]))
    ys, xs = ys[order], xs[order]
    pixels = {"cell": labels[ys, xs].astype(np.int32), "y": ys.astype(np.int32), "x": xs.astype(np.int32)}
    for name in PIXEL_COLUMNS:
        pixels[name] = np.asarray(maps[name], dtype=np.float64)[ys, xs]
    return pixels


def _limits(values, percentiles):
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(finite, percentiles))
    return (low - 0.5, high + 0.5) if low == high else (low, high)


def _outline(labels):
    """True on the cell pixels that touch another label or the background (4-neighbours)."""
    padded = np.pad(labels, 1, mode="constant")
    centre = padded[1:-1, 1:-1]
    edge = np.zeros(labels.shape, dtype=bool)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        edge |= padded[dy : dy + labels.shape[0], dx : dx + labels.shape[1]] != centre
    return edge & (labels > 0)


# --- the page's JavaScript ------------------------------------------------------------------------
#
# Every callback starts with this prelude, which defines show(indices, what): select `indices`
# (rows of the pixel source) everywhere: in the source (the plot draws them highlighted), on the
# image (the overlay, repainted from the outline image) and in the readout. Numbers use the same
# formulas as brightflow.nb and brightflow.stats.


_NOTHING_SELECTED = (
    "<p>Nothing selected. Drag a box (or a lasso) in the plot, or choose a cell in the list or "
    "click it on the image.</p>"
)


def explorer_layout(
    maps,
    labels,
    calibration=UNCALIBRATED,
    detector=nb.DetectorModel(),
    title="",
    file_name="brightness_selection.csv",
    max_scatter_points=MAX_SCATTER_POINTS,
    cell_values=None,
):
    """The explorer as a Bokeh layout: image and B x I plot, linked, with a readout.

    Parameters
    ----------
    maps : dict of name -> ndarray (y, x)
        The N&B maps: ``intensity``, ``variance``, ``apparent_brightness``, ``brightness``,
        ``number`` (brightflow.nb), float, NaN where undefined.
    labels : ndarray of int (y, x)
        The cells (0 = background): ``analysis_labels.tif``, the mask the CSVs are taken from.
    calibration : brightflow.calibration.Calibration
        The pixel size; the image's axes are in its unit, or in pixels when uncalibrated.
    detector : brightflow.nb.DetectorModel
        For the ratio-of-means readout, and the plot's reference line at B = S (the apparent
        brightness of immobile molecules, or of shot noise alone).
    title : str
        Shown at the top (e.g. the experiment's name).
    file_name : str
        Name offered for the downloaded selection.
    max_scatter_points : int
        Most points the plot draws (:data:`MAX_SCATTER_POINTS`).
    cell_values : dict of int -> (float, float), optional
        Each cell's brightness and number by the ratio of means (the per-cell CSV's values to
        quote), shown beside the cell in the list of cells.

    Raises
    ------
    ValueError
        When the maps and labels are not 2D arrays of one shape.

    Returns
    -------
    bokeh.models.Column
        Its models are named for tests and scripts: ``pixels`` (every cell pixel; its
        ``selected.indices`` are the selection), ``highlight`` (the image's overlay: ``image``
        shown, ``outline`` the cell outlines), ``region`` (the outline of the region drawn in the
        plot), ``readout``, ``cell_select``, ``image_plot``, ``scatter_plot``, ``download``,
        ``clear``, ``map_switch``, ``notice``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or any(np.shape(maps[name]) != labels.shape for name in PIXEL_COLUMNS):
        raise ValueError("labels and maps must be 2D arrays of the same shape")
    labels = labels.astype(np.int64)
    pixels = cell_pixels(maps, labels)
    total = pixels["cell"].size
    plottable = np.flatnonzero(np.isfinite(pixels["intensity"]) & np.isfinite(pixels["apparent_brightness"]))
    density = np.full(total, np.nan)
    density[plottable] = point_density(pixels["intensity"][plottable], pixels["apparent_brightness"][plottable])
    drawn = plottable
    if plottable.size > max_scatter_points:
        drawn = np.sort(np.random.default_rng(0).choice(plottable, max_scatter_points, replace=False))
    source = ColumnDataSource({**pixels, "density": density.astype(np.float32)}, name="pixels")

    pixel_size = (calibration.pixel_width, calibration.pixel_height) if calibration.spatial else (1.0, 1.0)
    image_plot, image_renderers, color_bar = _image_plot(maps, labels, pixels, calibration, pixel_size)
    highlight = image_plot.select_one({"name": "highlight"})
    shown = (
        f"all {plottable.size:,} cell pixels"
        if drawn.size == plottable.size
        else f"{drawn.size:,} of {plottable.size:,} cell pixels (random subsample)"
    )
    scatter_plot, region = _scatter_plot(source, drawn, total, density, float(detector.s_factor), shown)

    cells, counts = np.unique(pixels["cell"], return_counts=True)
    cell_select = Select(
        name="cell_select",
        title="Cell (ratio-of-means ε and n of average_values_in_roi.csv)",
        value="",
        width=400,
        options=[("", "none")]
        + [
            (str(cell), _cell_label(cell, count, (cell_values or {}).get(int(cell))))
            for cell, count in zip(cells, counts, strict=False)
        ],
    )
    clear = Button(name="clear", label="Clear selection", width=140)
    download = Button(name="download", label="Download selection (CSV)", button_type="primary", width=220)
    map_switch = RadioButtonGroup(name="map_switch", labels=["intensity", "B", "ε", "n"], active=0)
    page_width = 2 * PLOT_SIZE + 260
    readout = Div(
        name="readout",
        width=page_width,
        text=_NOTHING_SELECTED,
        stylesheets=[InlineStyleSheet(css=_asset("readout.css"))],
    )

    height, width = labels.shape
    args = dict(
        pixels=source,
        highlight=highlight,
        readout=readout,
        region=region,
        cell_select=cell_select,
        image_width=width,
        image_height=height,
        pixel_width=pixel_size[0],
        pixel_height=pixel_size[1],
        selection_color=_rgba(SELECTION_RGBA),
        outline_color=_rgba(OUTLINE_RGBA),
        nothing_selected=_NOTHING_SELECTED,
        forms=nb.ratio_of_means_forms(detector),
        brightness_unit=nb.brightness_unit(detector),
    )
    scatter_plot.js_on_event("selectiongeometry", _callback("on_region.js", args))
    cell_select.js_on_change("value", _callback("on_cell.js", args))
    image_plot.js_on_event("tap", _callback("on_tap.js", args))
    clear.js_on_event("button_click", _callback("on_clear.js", args))
    download.js_on_event(
        "button_click",
        CustomJS(args=dict(pixels=source, columns=PIXEL_COLUMNS, file_name=file_name), code=_asset("on_download.js")),
    )
    map_switch.js_on_change(
        "active",
        CustomJS(
            code=_asset("on_map.js"),
            args=dict(
                map_switch=map_switch,
                renderers=image_renderers,
                color_bar=color_bar,
                titles=[
                    title.replace("counts per molecule per frame", nb.brightness_unit(detector))
                    for title in IMAGE_MAPS.values()
                ],
            ),
        ),
    )

    heading = Div(text=f"<h2>Brightness explorer{': ' + html.escape(title) if title else ''}</h2>", width=page_width)
    notice = Div(
        name="notice",
        width=page_width,
        text=_notice(total, plottable.size, drawn.size, max_scatter_points, float(detector.s_factor)),
    )
    controls = row(
        column(Div(text="Image shows"), map_switch),
        cell_select,
        column(Div(text="&nbsp;"), clear),
        column(Div(text="&nbsp;"), download),
    )
    return column(heading, row(image_plot, scatter_plot), controls, readout, notice)


def _cell_label(cell, pixels, values):
    """A cell's entry in the list: its ID, pixel count and, when given, its (ε, n)."""
    label = f"cell {cell}: {pixels:,} pixels"
    if values is not None:
        label += f", ε {values[0]:.3g}, n {values[1]:.3g}"
    return label


def _image_plot(maps, labels, pixels, calibration, pixel_size):
    """The image view: the maps (one shown at a time), the overlay of outlines and selection, the
    cell IDs. Row 0 is at the top, as in the map previews and in Fiji."""
    height, width = labels.shape
    extent_x, extent_y = width * pixel_size[0], height * pixel_size[1]
    scale = PLOT_SIZE / max(extent_x, extent_y)
    unit = calibration.unit if calibration.spatial else None
    plot = figure(
        name="image_plot",
        title="Image: click a cell to select it",
        frame_width=max(120, round(extent_x * scale)),
        frame_height=max(120, round(extent_y * scale)),
        x_range=Range1d(0, extent_x, bounds=(0, extent_x)),
        y_range=Range1d(extent_y, 0, bounds=(0, extent_y)),
        tools="pan,wheel_zoom,box_zoom,reset,save",
        active_scroll="wheel_zoom",
        x_axis_label=f"x ({unit})" if unit else "x (pixels; the file has no pixel size)",
        y_axis_label=f"y ({unit})" if unit else "y (pixels)",
    )
    plot.toolbar.logo = None
    cells = labels > 0
    renderers = []
    for name in IMAGE_MAPS:
        values = np.asarray(maps[name], dtype=np.float64)
        # the cells' 1st to 99th percentile (as the previews); the intensity from the background's low end up
        low, high = _limits(values[cells] if cells.any() else values, (1.0, 99.0))
        if name == "intensity":
            low = min(low, _limits(values, (1.0, 99.0))[0])
        mapper = LinearColorMapper(
            palette=Greys256 if name == "intensity" else Viridis256, low=low, high=high, nan_color="magenta"
        )
        renderers.append(
            plot.image(
                image=[values.astype(np.float32)],
                x=0,
                y=0,
                dw=extent_x,
                dh=extent_y,
                color_mapper=mapper,
                visible=not renderers,
                name=f"image_{name}",
            )
        )
    outline = np.flatnonzero(_outline(labels)).astype(np.int32)
    overlay = np.zeros(labels.shape, dtype=np.uint32)
    overlay.flat[outline] = _rgba(OUTLINE_RGBA)
    highlight = ColumnDataSource({"image": [overlay], "outline": [outline]}, name="highlight")
    plot.image_rgba(image="image", source=highlight, x=0, y=0, dw=extent_x, dh=extent_y)
    color_bar = ColorBar(
        color_mapper=renderers[0].glyph.color_mapper,
        title=next(iter(IMAGE_MAPS.values())),
        title_text_font_style="normal",
    )
    plot.add_layout(color_bar, "below")
    # each cell's ID at its centroid
    ids = np.unique(pixels["cell"])
    counts = np.bincount(pixels["cell"], minlength=ids.max(initial=0) + 1)[ids]
    centre_x = (np.bincount(pixels["cell"], weights=pixels["x"])[ids] / counts + 0.5) * pixel_size[0]
    centre_y = (np.bincount(pixels["cell"], weights=pixels["y"])[ids] / counts + 0.5) * pixel_size[1]
    plot.add_layout(
        LabelSet(
            x="x",
            y="y",
            text="text",
            source=ColumnDataSource({"x": centre_x, "y": centre_y, "text": [str(i) for i in ids]}),
            text_color="white",
            text_font_size="11pt",
            text_font_style="bold",
            text_align="center",
            text_baseline="middle",
            background_fill_color="black",
            background_fill_alpha=0.45,
        )
    )
    return plot, renderers, color_bar


def _scatter_plot(source, drawn, total, density, reference, shown):
    """The B x I plot of the cell pixels (those in ``drawn``), coloured by density, with the line
    B = ``reference`` and the outline of the region selected."""
    # as brightness_x_intensity.png: B from its 0.5th to 99.5th percentile, the reference line in view
    low, high = _limits(source.data["apparent_brightness"], (0.5, 99.5))
    low, high = min(low, reference), max(high, reference)
    margin = 0.05 * (high - low) or 0.5
    plot = figure(
        name="scatter_plot",
        title=f"Apparent brightness vs intensity: {shown}",
        frame_width=PLOT_SIZE,
        frame_height=PLOT_SIZE,
        y_range=Range1d(low - margin, high + margin),
        tools="box_select,lasso_select,pan,wheel_zoom,box_zoom,reset,save",
        active_drag="box_select",
        x_axis_label="intensity <k> (mean counts per frame)",
        y_axis_label="apparent brightness B = s² / <k>",
    )
    plot.toolbar.logo = None
    density_mapper = LinearColorMapper(palette=Viridis256, low=0, high=max(float(np.nanmax(density, initial=0)), 1))
    view = CDSView() if drawn.size == total else CDSView(filter=IndexFilter(indices=drawn.tolist()))
    plot.scatter(
        "intensity",
        "apparent_brightness",
        source=source,
        view=view,
        size=3,
        line_color=None,
        fill_color={"field": "density", "transform": density_mapper},
        selection_fill_color="#{:02x}{:02x}{:02x}".format(*SELECTION_RGBA[:3]),
        selection_fill_alpha=1.0,
        nonselection_fill_alpha=0.12,
    )
    plot.add_layout(
        ColorBar(
            color_mapper=density_mapper, title="cell pixels in the same bin (density)", title_text_font_style="normal"
        ),
        "right",
    )
    plot.add_layout(Span(location=reference, dimension="width", line_color="red", line_dash="dashed", line_width=1.5))
    plot.add_layout(
        Label(
            x=6,
            y=reference,
            x_units="screen",
            y_offset=-3,
            text_baseline="top",
            text_font_size="9pt",
            text_color="red",
            text=f"B = {reference:g}: immobile or no molecules (shot noise only)",
        )
    )
    region = ColumnDataSource({"x": [], "y": []}, name="region")
    plot.patch(
        "x",
        "y",
        source=region,
        fill_alpha=0.08,
        fill_color="black",
        line_color="black",
        line_dash="dashed",
        line_width=1.5,
    )
    for tool in plot.select(type=BoxSelectTool) + plot.select(type=LassoSelectTool):
        # the tools only draw the region: the page selects among all cell pixels itself (on_region.js)
        tool.renderers = []
        tool.continuous = False
    return plot, region


def _notice(total, plottable, drawn, max_points, reference):
    parts = []
    if drawn < plottable:
        parts.append(
            f"<b>Subsampled plot:</b> the plot draws {drawn:,} of the {plottable:,} cell pixels (a random "
            f"subsample; at most {max_points:,} points are drawn). A box or lasso still selects among "
            f"all {plottable:,}: the image, the readout and the download include every pixel inside it."
        )
    if plottable < total:
        parts.append(
            f"{total - plottable:,} of the {total:,} cell pixels have no defined intensity or apparent "
            "brightness (excluded by nb.threshold, or zero intensity) and are not in the plot; choosing their "
            "cell includes them."
        )
    parts.append(
        "How to use: drag a box in the plot (or pick the lasso in its toolbar) to select pixels by intensity and "
        "apparent brightness; they light up on the image. Choose a cell in the list, or click it on the image, to "
        "see its pixels in the plot. Each selection replaces the previous one. The readout gives pixel means (the "
        "mean of each map over the selected pixels) and ratio-of-means values (the N&B equations on the "
        "selection's mean intensity and variance; quote these, see docs/outputs.md, 'Per-cell values'). "
        f"Dashed red line: B = {reference:g}. Values are those of the maps (.npy) and of "
        "brightness_intensity_values.csv."
    )
    parts.append(
        "Image colours span the 1st to 99th percentile of the cell pixels of the map shown (the intensity from "
        "the background's 1st percentile, so a dim cell stays visible); magenta: undefined "
        "(NaN); cyan: cell outlines; orange-red: the selection. The plot's points are coloured by the number of "
        "cell pixels in the same bin of a 128 x 128 grid, as in brightness_x_intensity.png."
    )
    return "".join(f"<p>{part}</p>" for part in parts)


def explorer_html(
    maps,
    labels,
    calibration=UNCALIBRATED,
    detector=nb.DetectorModel(),
    title="",
    file_name="brightness_selection.csv",
    max_scatter_points=MAX_SCATTER_POINTS,
    cell_values=None,
):
    """The explorer as one self-contained HTML page (all JavaScript inline, no network).

    Parameters are those of :func:`explorer_layout`.

    Returns
    -------
    str
        The page, to be written to ``brightness_explorer.html``.
    """
    layout = explorer_layout(maps, labels, calibration, detector, title, file_name, max_scatter_points, cell_values)
    # the arrays go into the page as they are (base64), not gzip-compressed (Bokeh's default): on
    # 512 x 512 maps with 76,107 cell pixels gzip made the page 10.6 instead of 14.4 MB but took a
    # third more time (0.11 s) to build it, as the maps are noise, which compresses poorly
    settings.compression_level.set_value(0)
    try:
        page = file_html(
            layout,
            INLINE,
            title=f"brightflow brightness explorer: {title}" if title else "brightflow brightness explorer",
        )
    finally:
        settings.compression_level.unset_value()
    return _stable_ids(page)


#: A UUID, as Bokeh names the page's document, its root element and its data script (uuid4).
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _stable_ids(page):
    """The page with Bokeh's random element ids (uuid4, in the body only: the document, its root element
    and its data script) replaced by fixed ones, numbered in order, so the same data give the same bytes."""
    body = page.find("<body")
    numbering = {}

    def stable(match):
        return numbering.setdefault(match.group(0), f"00000000-0000-4000-8000-{len(numbering) + 1:012d}")

    return page[:body] + _UUID.sub(stable, page[body:])
