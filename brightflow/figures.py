"""Figures of an experiment, as matplotlib ``Figure`` objects.

Nothing here writes files or touches pyplot's global state: the rule scripts
save the returned figures. Cell outlines are drawn with scikit-image, never
with cellpose (importing it costs seconds and a GPU library).
"""

from __future__ import annotations

import textwrap

import numpy as np
from matplotlib import colormaps, patheffects
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from brightflow.calibration import UNCALIBRATED, scale_bar_length
from brightflow.nb import brightness_unit
from brightflow.stats import point_density

__all__ = [
    "MAP_LABELS",
    "MAP_TITLES",
    "bleach_correction_figure",
    "brightness_intensity_figure",
    "cell_timeseries_figure",
    "cellmask_figure",
    "eroded_mask_figure",
    "folder_brightness_figure",
    "map_preview",
    "robust_limits",
]

#: Colour of undefined (NaN) pixels in every map preview.
NAN_COLOUR = "#ff00ff"

#: How much the background (pixels outside every cell) is veiled in the map previews: the opacity
#: of a white layer over it, so the cells' colours stand out while the background stays visible.
BACKGROUND_VEIL = 0.85

#: Title of each map's preview (the six N&B maps and the three cross-correlation maps).
MAP_TITLES = {
    "intensity": "Intensity",
    "variance": "Variance",
    "apparent_brightness": "Apparent brightness B",
    "apparent_number": "Apparent number N",
    "brightness": "Brightness epsilon",
    "number": "Number n",
    "cross_variance": "Cross-variance",
    "cross_brightness": "Cross brightness B_cc",
    "cross_number": "Cross number N_cc",
}

#: Colour bar label of each map: the quantity, its symbol and its unit (Digman et al. 2008,
#: Biophys J 94:2320; cross-correlation: Digman et al. 2009, PNAS 106:2170). "counts" are the
#: detector's counts (photons for a photon-counting detector); the brightness's unit follows
#: nb.detector (:func:`map_label`).
MAP_LABELS = {
    "intensity": "<k>: mean counts per frame",
    "variance": "s²: variance of the counts (counts²)",
    "apparent_brightness": "B = s² / <k>",
    "apparent_number": "N = <k>² / s² (apparent molecules)",
    "brightness": "ε: counts per molecule per frame",
    "number": "n: molecules in the observation volume",
    "cross_variance": "cov(k1, k2) (counts²)",
    "cross_brightness": "B_cc: counts per molecule per frame",
    "cross_number": "N_cc: molecules",
}


def map_label(name, detector=None):
    """The colour bar label of map ``name``, the brightness's unit after ``detector``
    (brightflow.nb.brightness_unit: photons once an analog detector is described, else counts)."""
    label = MAP_LABELS[name]
    if name in ("brightness", "cross_brightness"):
        label = label.replace("counts per molecule per frame", brightness_unit(detector))
    return label


def robust_limits(values, percentiles=(1.0, 99.0)):
    """Colour limits from percentiles of the finite values, so a few hot pixels do
    not wash the map out. Returns ``(0, 1)`` when there is no finite value."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(finite, percentiles)
    if low == high:
        low, high = low - 0.5, high + 0.5
    return float(low), float(high)


def _extent(shape, calibration):
    """imshow's extent in the calibrated unit (pixel edges at multiples of the pixel size), or
    None for pixel coordinates (pixel centres at integers, matplotlib's default)."""
    if not calibration.spatial:
        return None
    height, width = shape
    return (0.0, width * calibration.pixel_width, height * calibration.pixel_height, 0.0)


def _label_axes(ax, calibration):
    if calibration.spatial:
        ax.set_xlabel(f"x ({calibration.unit})")
        ax.set_ylabel(f"y ({calibration.unit})")
    else:
        ax.set_xlabel("x (pixels; the file has no pixel size)")
        ax.set_ylabel("y (pixels)")


def _scale_bar(ax, shape, calibration):
    """A scale bar (1, 2 or 5 x 10^k of the unit, about a fifth of the width) in the lower right
    corner, on a white box so it reads on any image; nothing when the image is not calibrated."""
    if not calibration.spatial:
        return
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    length = scale_bar_length(shape[1] * calibration.pixel_width)
    if length <= 0:
        return
    bar = AnchoredSizeBar(
        ax.transData, length, f"{length:g} {calibration.unit}", "lower right", pad=0.3, borderpad=0.4,
        sep=3, color="black", frameon=True, size_vertical=max(shape[0] * calibration.pixel_height / 120, 0),
        fontproperties={"size": 8},
    )  # fmt: skip
    bar.patch.set_alpha(0.8)
    bar.patch.set_edgecolor("none")
    ax.add_artist(bar)


def map_preview(values, title, colorbar_label=None, cells=None, calibration=UNCALIBRATED, colormap="viridis", dpi=100):
    """Preview of one N&B map for a person to read.

    - The colour range is the 1st to 99th percentile of the cell pixels (``cells``), so the
      cells' values span the colour bar; the background's noise (N and n are huge and of either
      sign where there is no fluorescence) neither sets it nor hides the cells.
    - The background is veiled in white (:data:`BACKGROUND_VEIL`): visible, but clearly not data.
    - Undefined (NaN) pixels are magenta; the title counts those inside the cells.
    - The colour bar is labelled with the quantity and its unit (``colorbar_label``).
    - Given a label image, each cell gets a thin white outline and its ID, so a cell cut in two by
      the segmentation is visible on every map.
    - With a spatially calibrated recording, the axes are in its unit and a scale bar is drawn;
      otherwise the axes are in pixels and say the file had no pixel size.

    Parameters
    ----------
    values : ndarray, shape (y, x)
    title : str
    colorbar_label : str, optional
    cells : ndarray of bool or int, shape (y, x), optional
        The cell pixels, or a label image (0 = background) whose cells are also outlined and numbered;
        None (or no cell pixel) takes the range from the whole map, unveiled.
    calibration : brightflow.calibration.Calibration
    """
    values = np.asarray(values, dtype=np.float64)
    labels = None if cells is None or np.asarray(cells).dtype == bool else np.asarray(cells)
    inside = None if cells is None else np.asarray(cells) > 0
    if inside is not None and not inside.any():
        inside = None
    low, high = robust_limits(values if inside is None else values[inside])
    cmap = colormaps[colormap].with_extremes(bad=NAN_COLOUR)
    height, width = values.shape
    aspect = width / max(height, 1)
    fig_width = 5.0 * min(max(aspect, 0.6), 2.0) + 1.6
    fig = Figure(figsize=(fig_width, 5.0), dpi=dpi)
    # fixed margins (inches: 0.85 left, 0.2 right, 0.55 bottom, 0.6 top) instead of tight_layout's
    # search; the colour bar takes its share of the axes' width
    fig.subplots_adjust(left=0.85 / fig_width, right=1 - 0.2 / fig_width, bottom=0.55 / 5.0, top=1 - 0.6 / 5.0)
    ax = fig.add_subplot()
    extent = _extent(values.shape, calibration)
    image = ax.imshow(
        np.ma.masked_invalid(values), cmap=cmap, vmin=low, vmax=high, interpolation="nearest", extent=extent
    )
    undefined = ~np.isfinite(values)
    if inside is None:
        subtitle = f"colour range: 1st-99th percentile; magenta: undefined ({int(undefined.sum())} px)"
    else:
        veil = np.zeros(values.shape + (4,))
        veil[~inside] = (1.0, 1.0, 1.0, BACKGROUND_VEIL)
        ax.imshow(veil, interpolation="nearest", extent=extent)
        subtitle = (
            f"colour range: 1st-99th percentile of the cell pixels; background veiled\n"
            f"magenta: undefined ({int((undefined & inside).sum())} of {int(inside.sum())} cell px)"
        )
        if labels is not None:
            _draw_outlines(ax, labels, "white", linewidth=0.6, calibration=calibration, stroke="black")
    ax.set_title(f"{title}\n{subtitle}", fontsize=9)
    _label_axes(ax, calibration)
    _scale_bar(ax, values.shape, calibration)
    colorbar = fig.colorbar(image, ax=ax, shrink=0.85, extend="both")
    if colorbar_label:
        colorbar.set_label(colorbar_label)
    return fig


def _show_projection(ax, projection, calibration=UNCALIBRATED):
    low, high = robust_limits(projection, (0.5, 99.5))
    ax.imshow(
        projection,
        cmap="gray",
        vmin=low,
        vmax=high,
        interpolation="nearest",
        extent=_extent(projection.shape, calibration),
    )
    ax.set_axis_off()
    _scale_bar(ax, projection.shape, calibration)


#: Cell IDs: white with a black outline, readable on a dark background and on a bright cell.
_ID_STYLE = {
    "color": "white", "fontsize": 9, "ha": "center", "va": "center", "fontweight": "bold",
    "path_effects": [patheffects.withStroke(linewidth=2.5, foreground="black")],
}  # fmt: skip


def _cell_outlines(labels):
    """Each cell's outlines (marching squares at 0.5 on its padded mask, as ``(row, col)`` arrays of
    pixel-centre coordinates) and centroid ``(row, col)``, by label in increasing order.

    Bounding boxes and centroids come from one pass of numpy over the labelled pixels and the
    contours from contourpy (matplotlib's own contouring), which keeps scikit-image out of the
    rules that only draw.
    """
    import contourpy

    labels = np.asarray(labels, dtype=np.int64)
    width = labels.shape[1]
    flat = labels.ravel()
    pixels = np.flatnonzero(flat > 0)
    if not pixels.size:
        return []
    order = np.argsort(flat[pixels], kind="stable")
    pixels, owners = pixels[order], flat[pixels][order]
    rows, cols = np.divmod(pixels, width)
    ids, starts, counts = np.unique(owners, return_index=True, return_counts=True)
    cells = []
    for label, start, count in zip(ids, starts, counts, strict=True):
        r, c = rows[start : start + count], cols[start : start + count]
        top, left = r.min(), c.min()
        image = np.zeros((r.max() - top + 3, c.max() - left + 3))
        image[r - top + 1, c - left + 1] = 1.0
        lines = contourpy.contour_generator(z=image, line_type="Separate").lines(0.5)
        outlines = [np.column_stack((line[:, 1] + top - 1, line[:, 0] + left - 1)) for line in lines]
        # the ID at the centroid, or at the cell's pixel nearest to it when the centroid lies outside
        # the cell (a ring, an L-shaped cell)
        centre = (r.mean(), c.mean())
        if labels[int(round(centre[0])), int(round(centre[1]))] != label:
            nearest = int(np.argmin((r - centre[0]) ** 2 + (c - centre[1]) ** 2))
            centre = (float(r[nearest]), float(c[nearest]))
        cells.append((int(label), outlines, centre))
    return cells


def _draw_outlines(ax, labels, colour, label_ids=True, linewidth=1.0, calibration=UNCALIBRATED, stroke=None):
    # pixel (row, col) to the drawing's coordinates: pixel centres at integers, or in the unit
    if calibration.spatial:
        sx, sy, shift = calibration.pixel_width, calibration.pixel_height, 0.5
    else:
        sx, sy, shift = 1.0, 1.0, 0.0
    effects = [patheffects.withStroke(linewidth=linewidth + 1.2, foreground=stroke)] if stroke else None
    for label, outlines, (row, col) in _cell_outlines(labels):
        for outline in outlines:
            ax.plot(
                (outline[:, 1] + shift) * sx,
                (outline[:, 0] + shift) * sy,
                color=colour,
                linewidth=linewidth,
                path_effects=effects,
            )
        if label_ids:
            ax.text((col + shift) * sx, (row + shift) * sy, str(label), **_ID_STYLE)


def cellmask_figure(projection, labels, title="Cell mask", calibration=UNCALIBRATED):
    """The mean projection with each cell's outline and ID (and a scale bar when calibrated)."""
    projection = np.asarray(projection, dtype=np.float64)
    fig = Figure(figsize=(6, 6 * projection.shape[0] / max(projection.shape[1], 1) + 0.5), dpi=100)
    ax = fig.add_subplot()
    _show_projection(ax, projection, calibration)
    _draw_outlines(ax, labels, "cyan", calibration=calibration)
    count = len(np.unique(labels[labels > 0]))
    ax.set_title(f"{title}: {count} cell(s)", fontsize=10)
    fig.tight_layout()
    return fig


def eroded_mask_figure(projection, labels, eroded_labels, erode_pixels, calibration=UNCALIBRATED):
    """Original (cyan) and eroded (orange) outlines on the projection."""
    projection = np.asarray(projection, dtype=np.float64)
    fig = Figure(figsize=(6, 6 * projection.shape[0] / max(projection.shape[1], 1) + 0.5), dpi=100)
    ax = fig.add_subplot()
    _show_projection(ax, projection, calibration)
    _draw_outlines(ax, labels, "cyan", label_ids=False, calibration=calibration)
    _draw_outlines(ax, eroded_labels, "orange", calibration=calibration)
    if erode_pixels:
        lost = sorted(set(np.unique(labels[labels > 0])) - set(np.unique(eroded_labels[eroded_labels > 0])))
        note = f"eroded by {erode_pixels} px (cyan: original, orange: eroded)"
        if lost:
            note += f"\neroded away: cell(s) {', '.join(map(str, lost))}"
    else:
        note = "no erosion (segmentation.erode_pixels = 0): mask used as segmented"
    ax.set_title(note, fontsize=9)
    fig.tight_layout()
    return fig


def _time_axis(count, frame_interval, offset=0.0):
    """x values and axis label of per-frame data: seconds when the frame interval is known."""
    frames = np.arange(count, dtype=np.float64) + offset
    if frame_interval:
        return frames * frame_interval, "time (s)"
    return frames, "frame (the file has no frame interval)"


def bleach_correction_figure(trace, corrected, trend, labels, frame_interval=None):
    """Per-frame mean of the cell pixels before and after correction, and the fitted trend.

    ``trend`` may be None (Robin Hood fits no trend: it moves counts between frames). ``labels``
    (brightflow.detrend.CorrectionModel.figure_labels) gives the ``title`` (the method and its
    parameter), the ``trend`` and ``corrected`` legend labels and a ``note`` below the legend (why a
    requested method was not applied, the degrees of freedom the variance is divided by). The legend
    sits below the axes, off the traces. The time axis is in seconds when ``frame_interval`` (seconds
    per frame) is known, else in frames.
    """
    import textwrap

    times, xlabel = _time_axis(len(trace), frame_interval)
    note = "\n".join(textwrap.wrap(labels.get("note") or "", 110))
    lines = note.count("\n") + 1 if note else 0
    height = 4.6 + 0.18 * lines
    fig = Figure(figsize=(7, height), dpi=100)
    # fixed margins (inches: 0.9 left, 0.2 right, 1.25 bottom for the axis label and the legend, and
    # a line per line of the note)
    fig.subplots_adjust(left=0.9 / 7, right=1 - 0.2 / 7, bottom=(1.25 + 0.18 * lines) / height, top=1 - 0.45 / height)
    ax = fig.add_subplot()
    ax.plot(times, trace, color="0.55", linewidth=1, label="before correction")
    if trend is not None:
        ax.plot(times, trend, color="tab:red", linewidth=1.5, label=labels["trend"])
    ax.plot(times, corrected, color="tab:blue", linewidth=1, label=labels["corrected"])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mean intensity of cell pixels\n(counts per frame)")
    ax.set_title(labels["title"], fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, frameon=False)
    if note:
        fig.text(0.5, 0.12 / height, note, ha="center", va="bottom", fontsize=7.5, color="0.25")
    return fig


def brightness_intensity_figure(
    intensity, apparent_brightness, reference=1.0, title="Apparent brightness vs intensity"
):
    """Scatter of apparent brightness against intensity over cell pixels, coloured by point density.

    A dashed line marks ``reference``, the apparent brightness of immobile molecules (or of
    shot noise alone): 1 for a photon-counting detector, the S factor of an analog detector
    (Digman et al. 2008, Biophys J 94:2320; Dalal et al. 2008, Microsc Res Tech 71:69). Pixels
    above it hold mobile molecules; the higher, the brighter.
    """
    intensity = np.asarray(intensity, dtype=np.float64)
    apparent_brightness = np.asarray(apparent_brightness, dtype=np.float64)
    finite = np.isfinite(intensity) & np.isfinite(apparent_brightness)
    x, y = intensity[finite], apparent_brightness[finite]
    fig = Figure(figsize=(6, 5), dpi=100)
    # fixed margins (inches: 0.8 left, 0.15 right, 0.55 bottom, 0.6 top), no tight_layout search
    fig.subplots_adjust(left=0.8 / 6, right=1 - 0.15 / 6, bottom=0.55 / 5, top=1 - 0.6 / 5)
    ax = fig.add_subplot()
    if x.size:
        density = point_density(x, y)
        order = np.argsort(density, kind="stable")
        # no edge stroke: drawing each marker's outline doubles the rendering time
        points = ax.scatter(
            x[order],
            y[order],
            c=density[order],
            s=3,
            cmap="viridis",
            norm=Normalize(vmin=0, vmax=max(density.max(), 1)),
            rasterized=True,
            linewidths=0,
            edgecolors="none",
        )
        fig.colorbar(points, ax=ax, label="cell pixels in the same bin (density)")
        low, high = robust_limits(y, (0.5, 99.5))
        low, high = min(low, reference), max(high, reference)
        margin = 0.05 * (high - low) or 0.5
        ax.set_ylim(low - margin, high + margin)
    else:
        ax.text(0.5, 0.5, "no cell pixel with a defined brightness", ha="center", transform=ax.transAxes)
    ax.axhline(reference, color="tab:red", linewidth=1.2, linestyle="--", zorder=3)
    ax.set_xlabel("intensity <k> (mean counts per frame)")
    ax.set_ylabel("apparent brightness B")
    ax.set_title(
        f"{title} ({x.size} cell pixels)\ndashed: B = {reference:g}, immobile molecules or no "
        "molecules (shot noise only)",
        fontsize=9,
    )
    return fig


def folder_brightness_figure(experiments, values, ylabel, title, reference_lines=(), flagged=None, empty=()):
    """Per-cell values per experiment: a box per experiment with one point per cell on top.

    Parameters
    ----------
    experiments : sequence of str
        The experiment of every cell (the folder table's ``Experiment`` column).
    values : sequence of float
        One value per cell (brightness or oligomeric state); NaN cells are
        left out and counted in the axis label.
    ylabel, title : str
    reference_lines : sequence of float
        Horizontal guide lines (e.g. oligomeric states 1, 2, 4).
    flagged : sequence of bool, optional
        The cells with a warning (the folder table's ``Warnings``): drawn as red crosses.
    empty : sequence of str
        Experiments without any cell: a tick of their own saying so.
    """
    experiments = np.asarray(experiments, dtype=object)
    values = np.asarray(values, dtype=np.float64)
    flagged = np.zeros(values.shape, dtype=bool) if flagged is None else np.asarray(flagged, dtype=bool)
    names = list(dict.fromkeys(experiments.tolist()))
    names += [name for name in empty if name not in names]
    fig = Figure(figsize=(max(5.5, 1.1 * len(names) + 2.0), 4.8), dpi=100)
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)  # fixed jitter: the same figure on every run
    groups, crosses, labels = [], [], []
    for name in names:
        cell_values, cell_flags = values[experiments == name], flagged[experiments == name]
        finite = np.isfinite(cell_values)
        groups.append(cell_values[finite])
        crosses.append(cell_flags[finite])
        missing = cell_values.size - int(finite.sum())
        if name in empty:
            labels.append(f"{name}\nno cells")
        else:
            labels.append(f"{name}\n{int(finite.sum())} cell(s)" + (f", {missing} undefined" if missing else ""))
    positions = np.arange(1, len(names) + 1)
    drawable = [index for index, group in enumerate(groups) if group.size]
    if drawable:
        ax.boxplot(
            [groups[i] for i in drawable],
            positions=positions[drawable],
            widths=0.5,
            showfliers=False,
            medianprops={"color": "tab:red"},
        )
    for position, group, cross in zip(positions, groups, crosses, strict=False):
        jitter = rng.uniform(-0.15, 0.15, size=group.size)
        ax.scatter(position + jitter[~cross], group[~cross], s=14, color="tab:blue", alpha=0.8, zorder=3)
        if cross.any():
            ax.scatter(
                position + jitter[cross],
                group[cross],
                s=30,
                color="tab:red",
                marker="x",
                zorder=4,
                label="cell with a warning (Warnings column)",
            )
    if flagged.any():
        handles, texts = ax.get_legend_handles_labels()
        ax.legend(
            handles[:1],
            texts[:1],
            fontsize=8,
            loc="upper left",
            bbox_to_anchor=(0.0, -0.28 if len(names) > 4 else -0.16),
            frameon=False,
        )
    for level in reference_lines:
        ax.axhline(level, color="0.7", linewidth=0.8, linestyle="--", zorder=0)
    ax.set_xticks(positions)
    ax.set_xticklabels(
        labels, fontsize=8, rotation=30 if len(names) > 4 else 0, ha="right" if len(names) > 4 else "center"
    )
    ax.set_xlim(0.4, len(names) + 0.6)
    ax.set_ylabel(ylabel)
    width_chars = int(fig.get_figwidth() * 11)
    wrapped = "\n".join(textwrap.fill(line, width_chars) for line in title.split("\n"))
    ax.set_title(wrapped, fontsize=9)
    fig.tight_layout()
    return fig


def cell_timeseries_figure(
    table, column, ylabel="brightness epsilon", title="Per-cell brightness over time", frame_interval=None
):
    """One line per cell of ``column`` against the middle of each window of frames.

    The time axis is in seconds when ``frame_interval`` (seconds per frame) is known, else in
    frames; the legend (up to 12 cells) sits beside the axes, off the lines.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`brightflow.stats.cell_timeseries_table` output (``Cell ID``,
        ``First frame``, ``Last frame`` and ``column``).
    column : str
        The column drawn (e.g. brightflow.stats.BRIGHTNESS).
    """
    fig = Figure(figsize=(8, 4.5), dpi=100)
    fig.subplots_adjust(left=0.8 / 8, right=1 - 1.4 / 8, bottom=0.6 / 4.5, top=1 - 0.45 / 4.5)
    ax = fig.add_subplot()
    scale, xlabel = (
        (frame_interval, "time (s, middle of the window)")
        if frame_interval
        else (1.0, "frame (middle of the window; the file has no frame interval)")
    )
    for cell, rows in table.groupby("Cell ID", sort=True):
        middle = (rows["First frame"].to_numpy() + rows["Last frame"].to_numpy()) / 2 * scale
        ax.plot(
            middle, rows[column].to_numpy(dtype=np.float64), marker="o", markersize=3, linewidth=1, label=f"cell {cell}"
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if table["Cell ID"].nunique() <= 12:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig
