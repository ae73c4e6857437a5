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
The linking is Bokeh ``CustomJS`` callbacks, written out below.

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

import numpy as np
from bokeh.embed import file_html
from bokeh.layouts import column, row
from bokeh.models import (BoxSelectTool, Button, CDSView, ColorBar, ColumnDataSource, CustomJS, Div, IndexFilter,
                          InlineStyleSheet, Label, LabelSet, LassoSelectTool, LinearColorMapper, RadioButtonGroup,
                          Range1d, Select, Span)
from bokeh.palettes import Greys256, Viridis256
from bokeh.plotting import figure
from bokeh.resources import INLINE
from bokeh.settings import settings

from . import nb
from .stats import point_density
from .calibration import UNCALIBRATED

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
#: brightness_intensity_values.csv, plus Variance and Number).
PIXEL_COLUMNS = {
    "intensity": "Intensity",
    "variance": "Variance",
    "apparent_brightness": "Apparent brightness",
    "brightness": "Brightness",
    "number": "Number",
}

#: Colour (red, green, blue, opacity) of the selected pixels on the image; in the plot, the same
#: orange-red, opaque.
SELECTION_RGBA = (255, 69, 0, 220)
#: Colour of the cell outlines drawn on the image (cyan, as in cellmask.png).
OUTLINE_RGBA = (0, 229, 255, 170)
#: Size on the page (CSS pixels) of the plot's frame (square) and of the image's longer side.
PLOT_SIZE = 470


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

_PRELUDE = r"""
const N = pixels.data;
function format(v) {
  if (!Number.isFinite(v)) return "undefined";
  const a = Math.abs(v);
  return (a !== 0 && (a < 1e-3 || a >= 1e5)) ? v.toExponential(3) : v.toPrecision(4);
}
function pixel_mean(name, indices) {
  let sum = 0, count = 0;
  for (const i of indices) { const v = N[name][i]; if (Number.isFinite(v)) { sum += v; count += 1; } }
  return count > 0 ? sum / count : NaN;
}
function ratio_of_means(indices) {
  // brightflow.stats.cell_estimators: the N&B equations on the mean intensity and mean variance
  // over the pixels where both are defined (Digman 2008; Dalal 2008 for an analog detector)
  let k = 0, v = 0, count = 0;
  for (const i of indices) {
    const ki = N.intensity[i], vi = N.variance[i];
    if (Number.isFinite(ki) && Number.isFinite(vi)) { k += ki; v += vi; count += 1; }
  }
  k /= count; v /= count;
  const signal = k - detector.offset, excess = v - detector.readout_variance;
  const B = signal !== 0 ? excess / signal : NaN;
  const n_den = excess - detector.s_factor * signal;
  return {count: count, B: B, epsilon: B / detector.s_factor - 1, n: n_den !== 0 ? signal * signal / n_den : NaN};
}
function row(quantity, label, value, note) {
  return `<tr><th>${label}</th><td class="value" data-quantity="${quantity}" data-value="${value}">` +
         `${format(value)}</td><td class="note">${note}</td></tr>`;
}
function paint(indices) {
  const image = highlight.data.image[0];
  image.fill(0);
  for (const i of highlight.data.outline[0]) image[i] = outline_color;
  const width = image_width, color = selection_color;
  for (const i of indices) image[N.y[i] * width + N.x[i]] = color;
  highlight.change.emit();
}
function describe(indices, what) {
  if (indices.length === 0) { readout.text = nothing_selected; return; }
  const cells = [...new Set(Array.from(indices, (i) => N.cell[i]))].sort((a, b) => a - b);
  const rom = ratio_of_means(indices);
  const listed = cells.length <= 12 ? cells.join(", ") : cells.slice(0, 12).join(", ") + ", ...";
  let text = `<p><b>${what}</b>: <span data-quantity="pixels" data-value="${indices.length}">` +
             `${indices.length.toLocaleString("en-US")}</span> of ${N.cell.length.toLocaleString("en-US")} ` +
             `cell pixels, in ${cells.length} cell${cells.length === 1 ? "" : "s"} (${listed}).`;
  if (rom.count !== indices.length) text += ` ${rom.count} of them have a defined intensity and variance.`;
  text += '</p><div class="tables"><table><caption><b>Pixel means</b>: each map\'s mean over the selected ' +
    "pixels<br>(as the Intensity, Apparent brightness, Brightness, Number<br>columns of average_values_in_roi.csv)" +
    "</caption>" +
    row("mean_intensity", "intensity &lt;k&gt;", pixel_mean("intensity", indices), "counts per frame") +
    row("mean_apparent_brightness", "apparent brightness B", pixel_mean("apparent_brightness", indices), "") +
    row("mean_brightness", "brightness ε", pixel_mean("brightness", indices), "counts per molecule per frame") +
    row("mean_number", "number n", pixel_mean("number", indices), "molecules (biased high)") +
    '</table><table><caption><b>Ratio of means</b> (the values to quote): the N&amp;B equations<br>applied once ' +
    'to the selection\'s mean intensity and mean variance<br>(as the "(ratio of means)" columns)</caption>' +
    row("rom_apparent_brightness", "apparent brightness B", rom.B, "") +
    row("rom_brightness", "brightness ε", rom.epsilon, "counts per molecule per frame") +
    row("rom_number", "number n", rom.n, "molecules") +
    "</table></div>";
  readout.text = text;
}
function show(indices, what) {
  pixels.selected.indices = Array.from(indices);
  paint(indices);
  describe(indices, what);
}
"""

# A region drawn in the plot (box or lasso): every cell pixel inside it, also those the plot does
# not draw. A box keeps x0 <= intensity <= x1 and y0 <= B <= y1; a lasso keeps the points inside
# the polygon by the even-odd rule (a ray to +x crosses its edges an odd number of times).
_ON_REGION = r"""
if (!cb_obj.final) return;
const g = cb_obj.geometry;
const xs = N.intensity, ys = N.apparent_brightness, chosen = [];
let outline_x, outline_y, what;
if (g.type === "rect") {
  const x0 = Math.min(g.x0, g.x1), x1 = Math.max(g.x0, g.x1), y0 = Math.min(g.y0, g.y1), y1 = Math.max(g.y0, g.y1);
  for (let i = 0; i < xs.length; i++) {
    if (xs[i] >= x0 && xs[i] <= x1 && ys[i] >= y0 && ys[i] <= y1) chosen.push(i);
  }
  outline_x = [x0, x1, x1, x0]; outline_y = [y0, y0, y1, y1];
  what = `Box in the plot: intensity ${format(x0)} to ${format(x1)}, B ${format(y0)} to ${format(y1)}`;
} else if (g.type === "poly") {
  const px = Array.from(g.x), py = Array.from(g.y), m = px.length;
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i], y = ys[i];
    if (!(Number.isFinite(x) && Number.isFinite(y))) continue;
    let inside = false;
    for (let a = 0, b = m - 1; a < m; b = a++) {
      if ((py[a] > y) !== (py[b] > y) && x < (px[b] - px[a]) * (y - py[a]) / (py[b] - py[a]) + px[a]) inside = !inside;
    }
    if (inside) chosen.push(i);
  }
  outline_x = px; outline_y = py;
  what = "Lasso in the plot";
} else {
  return;
}
region.data = {x: outline_x, y: outline_y};
cell_select.value = "";
show(chosen, what);
"""

_ON_CELL = r"""
if (cell_select.value === "") return;
const cell = Number(cell_select.value), chosen = [];
for (let i = 0; i < N.cell.length; i++) if (N.cell[i] === cell) chosen.push(i);
region.data = {x: [], y: []};
show(chosen, `Cell ${cell}`);
"""

# A click on the image chooses the cell under it (a click on the background changes nothing).
_ON_TAP = r"""
const column = Math.floor(cb_obj.x / pixel_width), line = Math.floor(cb_obj.y / pixel_height);
if (column < 0 || line < 0 || column >= image_width || line >= image_height) return;
for (let i = 0; i < N.cell.length; i++) {
  if (N.y[i] === line && N.x[i] === column) {
    const value = String(N.cell[i]);
    if (cell_select.value === value) cell_select.value = "";  // chosen again: show it anew
    cell_select.value = value;
    return;
  }
}
"""

_ON_CLEAR = r"""
region.data = {x: [], y: []};
cell_select.value = "";
show([], "");
"""

# The selected pixels as CSV, sorted by cell, y, x (as brightness_intensity_values.csv); an
# undefined value is an empty field, as pandas writes NaN. Numbers are written in JavaScript's
# shortest round-trip form, so they read back as the exact float64 values.
_ON_DOWNLOAD = r"""
const N = pixels.data;
const chosen = Array.from(pixels.selected.indices);
chosen.sort((a, b) => (N.cell[a] - N.cell[b]) || (N.y[a] - N.y[b]) || (N.x[a] - N.x[b]));
const names = Object.keys(columns);
const lines = [["Cell ID", "y", "x", ...names.map((name) => columns[name])].join(",")];
for (const i of chosen) {
  const values = names.map((name) => Number.isFinite(N[name][i]) ? String(N[name][i]) : "");
  lines.push([N.cell[i], N.y[i], N.x[i], ...values].join(","));
}
const text = lines.join("\n") + "\n";
const link = document.createElement("a");
link.href = URL.createObjectURL(new Blob([text], {type: "text/csv"}));
link.download = file_name;
document.body.appendChild(link);
link.click();
link.remove();
setTimeout(() => URL.revokeObjectURL(link.href), 10000);
"""

_ON_MAP = r"""
const chosen = map_switch.active;
for (let i = 0; i < renderers.length; i++) renderers[i].visible = i === chosen;
color_bar.color_mapper = renderers[chosen].glyph.color_mapper;
color_bar.title = titles[chosen];
"""

_NOTHING_SELECTED = ("<p>Nothing selected. Drag a box (or a lasso) in the plot, or choose a cell in the list or "
                     "click it on the image.</p>")

#: Style of the readout's table (Bokeh draws each widget in its own shadow DOM, so the style goes
#: with the widget).
_READOUT_CSS = """
div.tables { display: flex; gap: 48px; align-items: flex-start; }
table { border-collapse: collapse; font-size: 14px; }
caption { text-align: left; padding-bottom: 4px; color: #444; font-size: 13px; }
th, td { padding: 2px 12px 2px 0; text-align: left; font-weight: normal; }
td.value { font-family: "DejaVu Sans Mono", monospace; text-align: right; }
td.note { color: #666; }
p { font-size: 14px; }
"""


def explorer_layout(maps, labels, calibration=UNCALIBRATED, detector=nb.DetectorModel(), title="",
                    file_name="brightness_selection.csv", max_scatter_points=MAX_SCATTER_POINTS, cell_values=None):
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
    shown = (f"all {plottable.size:,} cell pixels" if drawn.size == plottable.size
             else f"{drawn.size:,} of {plottable.size:,} cell pixels (random subsample)")
    scatter_plot, region = _scatter_plot(source, drawn, total, density, float(detector.s_factor), shown)

    cells, counts = np.unique(pixels["cell"], return_counts=True)
    cell_select = Select(name="cell_select", title="Cell (ratio-of-means ε and n of average_values_in_roi.csv)",
                         value="", width=400, options=[("", "none")] + [
                             (str(cell), _cell_label(cell, count, (cell_values or {}).get(int(cell))))
                             for cell, count in zip(cells, counts)])
    clear = Button(name="clear", label="Clear selection", width=140)
    download = Button(name="download", label="Download selection (CSV)", button_type="primary", width=220)
    map_switch = RadioButtonGroup(name="map_switch", labels=["intensity", "B", "ε", "n"], active=0)
    page_width = 2 * PLOT_SIZE + 260
    readout = Div(name="readout", width=page_width, text=_NOTHING_SELECTED,
                  stylesheets=[InlineStyleSheet(css=_READOUT_CSS)])

    height, width = labels.shape
    args = dict(pixels=source, highlight=highlight, readout=readout, region=region, cell_select=cell_select,
                image_width=width, image_height=height, pixel_width=pixel_size[0], pixel_height=pixel_size[1],
                selection_color=_rgba(SELECTION_RGBA), outline_color=_rgba(OUTLINE_RGBA),
                nothing_selected=_NOTHING_SELECTED,
                detector=dict(offset=detector.offset, s_factor=detector.s_factor,
                              readout_variance=detector.readout_variance))
    scatter_plot.js_on_event("selectiongeometry", CustomJS(args=args, code=_PRELUDE + _ON_REGION))
    cell_select.js_on_change("value", CustomJS(args=args, code=_PRELUDE + _ON_CELL))
    image_plot.js_on_event("tap", CustomJS(args=args, code=_PRELUDE + _ON_TAP))
    clear.js_on_event("button_click", CustomJS(args=args, code=_PRELUDE + _ON_CLEAR))
    download.js_on_event("button_click", CustomJS(
        args=dict(pixels=source, columns=PIXEL_COLUMNS, file_name=file_name), code=_ON_DOWNLOAD))
    map_switch.js_on_change("active", CustomJS(code=_ON_MAP, args=dict(
        map_switch=map_switch, renderers=image_renderers, color_bar=color_bar, titles=list(IMAGE_MAPS.values()))))

    heading = Div(text=f"<h2>Brightness explorer{': ' + html.escape(title) if title else ''}</h2>", width=page_width)
    notice = Div(name="notice", width=page_width, text=_notice(
        total, plottable.size, drawn.size, max_scatter_points, float(detector.s_factor)))
    controls = row(column(Div(text="Image shows"), map_switch), cell_select, column(Div(text="&nbsp;"), clear),
                   column(Div(text="&nbsp;"), download))
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
        name="image_plot", title="Image: click a cell to select it",
        frame_width=max(120, round(extent_x * scale)), frame_height=max(120, round(extent_y * scale)),
        x_range=Range1d(0, extent_x, bounds=(0, extent_x)), y_range=Range1d(extent_y, 0, bounds=(0, extent_y)),
        tools="pan,wheel_zoom,box_zoom,reset,save", active_scroll="wheel_zoom",
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
        mapper = LinearColorMapper(palette=Greys256 if name == "intensity" else Viridis256, low=low, high=high,
                                   nan_color="magenta")
        renderers.append(plot.image(image=[values.astype(np.float32)], x=0, y=0, dw=extent_x, dh=extent_y,
                                    color_mapper=mapper, visible=not renderers, name=f"image_{name}"))
    outline = np.flatnonzero(_outline(labels)).astype(np.int32)
    overlay = np.zeros(labels.shape, dtype=np.uint32)
    overlay.flat[outline] = _rgba(OUTLINE_RGBA)
    highlight = ColumnDataSource({"image": [overlay], "outline": [outline]}, name="highlight")
    plot.image_rgba(image="image", source=highlight, x=0, y=0, dw=extent_x, dh=extent_y)
    color_bar = ColorBar(color_mapper=renderers[0].glyph.color_mapper, title=next(iter(IMAGE_MAPS.values())),
                         title_text_font_style="normal")
    plot.add_layout(color_bar, "below")
    # each cell's ID at its centroid
    ids = np.unique(pixels["cell"])
    counts = np.bincount(pixels["cell"], minlength=ids.max(initial=0) + 1)[ids]
    centre_x = (np.bincount(pixels["cell"], weights=pixels["x"])[ids] / counts + 0.5) * pixel_size[0]
    centre_y = (np.bincount(pixels["cell"], weights=pixels["y"])[ids] / counts + 0.5) * pixel_size[1]
    plot.add_layout(LabelSet(
        x="x", y="y", text="text",
        source=ColumnDataSource({"x": centre_x, "y": centre_y, "text": [str(i) for i in ids]}),
        text_color="white", text_font_size="11pt", text_font_style="bold", text_align="center",
        text_baseline="middle", background_fill_color="black", background_fill_alpha=0.45))
    return plot, renderers, color_bar


def _scatter_plot(source, drawn, total, density, reference, shown):
    """The B x I plot of the cell pixels (those in ``drawn``), coloured by density, with the line
    B = ``reference`` and the outline of the region selected."""
    # as brightness_x_intensity.png: B from its 0.5th to 99.5th percentile, the reference line in view
    low, high = _limits(source.data["apparent_brightness"], (0.5, 99.5))
    low, high = min(low, reference), max(high, reference)
    margin = 0.05 * (high - low) or 0.5
    plot = figure(
        name="scatter_plot", title=f"Apparent brightness vs intensity: {shown}",
        frame_width=PLOT_SIZE, frame_height=PLOT_SIZE, y_range=Range1d(low - margin, high + margin),
        tools="box_select,lasso_select,pan,wheel_zoom,box_zoom,reset,save", active_drag="box_select",
        x_axis_label="intensity <k> (mean counts per frame)", y_axis_label="apparent brightness B = s² / <k>",
    )
    plot.toolbar.logo = None
    density_mapper = LinearColorMapper(palette=Viridis256, low=0, high=max(float(np.nanmax(density, initial=0)), 1))
    view = CDSView() if drawn.size == total else CDSView(filter=IndexFilter(indices=drawn.tolist()))
    plot.scatter("intensity", "apparent_brightness", source=source, view=view, size=3, line_color=None,
                 fill_color={"field": "density", "transform": density_mapper},
                 selection_fill_color="#%02x%02x%02x" % SELECTION_RGBA[:3], selection_fill_alpha=1.0,
                 nonselection_fill_alpha=0.12)
    plot.add_layout(ColorBar(color_mapper=density_mapper, title="cell pixels in the same bin (density)",
                             title_text_font_style="normal"), "right")
    plot.add_layout(Span(location=reference, dimension="width", line_color="red", line_dash="dashed", line_width=1.5))
    plot.add_layout(Label(x=6, y=reference, x_units="screen", y_offset=-3, text_baseline="top", text_font_size="9pt",
                          text_color="red", text=f"B = {reference:g}: immobile or no molecules (shot noise only)"))
    region = ColumnDataSource({"x": [], "y": []}, name="region")
    plot.patch("x", "y", source=region, fill_alpha=0.08, fill_color="black", line_color="black", line_dash="dashed",
               line_width=1.5)
    for tool in plot.select(type=BoxSelectTool) + plot.select(type=LassoSelectTool):
        # the tools only draw the region: the page selects among all cell pixels itself (_ON_REGION)
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
        "selection's mean intensity and variance; quote these, see the README's 'Per-cell values'). "
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


def explorer_html(maps, labels, calibration=UNCALIBRATED, detector=nb.DetectorModel(), title="",
                  file_name="brightness_selection.csv", max_scatter_points=MAX_SCATTER_POINTS, cell_values=None):
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
        page = file_html(layout, INLINE, title=f"brightflow brightness explorer: {title}" if title else
                         "brightflow brightness explorer")
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
