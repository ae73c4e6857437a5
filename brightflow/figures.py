"""Figures of an experiment, as matplotlib ``Figure`` objects.

Nothing here writes files or touches pyplot's global state: the rule scripts
save the returned figures. Cell outlines are drawn with scikit-image, never
with cellpose (importing it costs seconds and a GPU library).
"""

from __future__ import annotations

import textwrap

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

__all__ = [
    "robust_limits",
    "map_preview",
    "cellmask_figure",
    "eroded_mask_figure",
    "bleach_correction_figure",
    "point_density",
    "brightness_intensity_figure",
    "folder_brightness_figure",
    "cell_timeseries_figure",
]

#: Colour of undefined (NaN) pixels in every map preview.
NAN_COLOUR = "#ff00ff"


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


def map_preview(values, title, colormap="viridis", dpi=100):
    """Preview of one N&B map: colour bar, robust colour limits, NaN pixels in magenta."""
    values = np.asarray(values, dtype=np.float64)
    low, high = robust_limits(values)
    cmap = colormaps[colormap].with_extremes(bad=NAN_COLOUR)
    height, width = values.shape
    aspect = width / max(height, 1)
    fig_width = 5.0 * min(max(aspect, 0.6), 2.0) + 1.2
    fig = Figure(figsize=(fig_width, 5.0), dpi=dpi)
    # fixed margins (inches: 0.85 left, 0.2 right, 0.55 bottom, 0.6 top) instead of tight_layout's
    # search; the colour bar takes its share of the axes' width
    fig.subplots_adjust(left=0.85 / fig_width, right=1 - 0.2 / fig_width, bottom=0.55 / 5.0, top=1 - 0.6 / 5.0)
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=low, vmax=high, interpolation="nearest")
    nan_count = int(np.count_nonzero(~np.isfinite(values)))
    subtitle = f"colour range: 1st-99th percentile; magenta: undefined ({nan_count} px)"
    ax.set_title(f"{title}\n{subtitle}", fontsize=9)
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    fig.colorbar(image, ax=ax, shrink=0.85, extend="both")
    return fig


def _show_projection(ax, projection):
    low, high = robust_limits(projection, (0.5, 99.5))
    ax.imshow(projection, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
    ax.set_axis_off()


def _draw_outlines(ax, labels, colour, label_ids=True, linewidth=1.0):
    from skimage import measure

    for region in measure.regionprops(np.asarray(labels, dtype=np.int64)):
        contours = measure.find_contours(
            np.pad(region.image, 1).astype(float), 0.5
        )
        for contour in contours:
            ax.plot(
                contour[:, 1] + region.bbox[1] - 1,
                contour[:, 0] + region.bbox[0] - 1,
                color=colour,
                linewidth=linewidth,
            )
        if label_ids:
            row, col = region.centroid
            ax.text(col, row, str(region.label), color="yellow", fontsize=9, ha="center", va="center",
                    fontweight="bold")


def cellmask_figure(projection, labels, title="Cell mask"):
    """The mean projection with each cell's outline and ID."""
    projection = np.asarray(projection, dtype=np.float64)
    fig = Figure(figsize=(6, 6 * projection.shape[0] / max(projection.shape[1], 1) + 0.5), dpi=100)
    ax = fig.add_subplot()
    _show_projection(ax, projection)
    _draw_outlines(ax, labels, "cyan")
    count = len(np.unique(labels[labels > 0]))
    ax.set_title(f"{title}: {count} cell(s)", fontsize=10)
    fig.tight_layout()
    return fig


def eroded_mask_figure(projection, labels, eroded_labels, erode_pixels):
    """Original (cyan) and eroded (orange) outlines on the projection."""
    projection = np.asarray(projection, dtype=np.float64)
    fig = Figure(figsize=(6, 6 * projection.shape[0] / max(projection.shape[1], 1) + 0.5), dpi=100)
    ax = fig.add_subplot()
    _show_projection(ax, projection)
    _draw_outlines(ax, labels, "cyan", label_ids=False)
    _draw_outlines(ax, eroded_labels, "orange")
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


def bleach_correction_figure(trace, corrected, trend, method, parameter_text):
    """Per-frame mean of the cell pixels before and after correction, and the fitted trend.

    ``trend`` may be None (Robin Hood fits no trend: it moves counts between frames).
    The legend names the method and ``parameter_text`` (the parameter and how it was chosen).
    """
    frames = np.arange(len(trace))
    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.add_subplot()
    ax.plot(frames, trace, color="0.5", linewidth=1, label="before correction")
    if trend is not None:
        ax.plot(frames, trend, color="tab:red", linewidth=1.5, label=f"trend ({method})")
    label = "after correction" if method != "none" else "after correction (none applied)"
    ax.plot(frames, corrected, color="tab:blue", linewidth=1, label=f"{label}: {method}, {parameter_text}")
    ax.set_xlabel("frame")
    ax.set_ylabel("mean intensity of cell pixels")
    ax.set_title(f"Bleach correction: {method} ({parameter_text})", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def point_density(x, y, bins=128):
    """Local point density of a scatter by 2D histogram lookup, O(points).

    Each point gets the count of the histogram bin it falls in (of ``bins`` x
    ``bins`` bins spanning the data): a cheap stand-in for a kernel density
    estimate, whose cost grows with the square of the number of points.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size == 0:
        return np.zeros(0)
    counts, x_edges, y_edges = np.histogram2d(x, y, bins=bins)
    x_bin = np.clip(np.searchsorted(x_edges, x, side="right") - 1, 0, bins - 1)
    y_bin = np.clip(np.searchsorted(y_edges, y, side="right") - 1, 0, bins - 1)
    return counts[x_bin, y_bin]


def brightness_intensity_figure(intensity, apparent_brightness, title="Apparent brightness vs intensity"):
    """Scatter of apparent brightness against intensity over cell pixels, coloured by point density."""
    intensity = np.asarray(intensity, dtype=np.float64)
    apparent_brightness = np.asarray(apparent_brightness, dtype=np.float64)
    finite = np.isfinite(intensity) & np.isfinite(apparent_brightness)
    x, y = intensity[finite], apparent_brightness[finite]
    fig = Figure(figsize=(6, 5), dpi=100)
    # fixed margins (inches: 0.8 left, 0.15 right, 0.55 bottom, 0.4 top), no tight_layout search
    fig.subplots_adjust(left=0.8 / 6, right=1 - 0.15 / 6, bottom=0.55 / 5, top=1 - 0.4 / 5)
    ax = fig.add_subplot()
    if x.size:
        density = point_density(x, y)
        order = np.argsort(density, kind="stable")
        # no edge stroke: drawing each marker's outline doubles the rendering time
        points = ax.scatter(x[order], y[order], c=density[order], s=3, cmap="viridis",
                            norm=Normalize(vmin=0, vmax=max(density.max(), 1)), rasterized=True,
                            linewidths=0, edgecolors="none")
        fig.colorbar(points, ax=ax, label="points in bin")
        low, high = robust_limits(y, (0.5, 99.5))
        margin = 0.05 * (high - low)
        ax.set_ylim(low - margin, high + margin)
    else:
        ax.text(0.5, 0.5, "no cell pixel with a defined brightness", ha="center", transform=ax.transAxes)
    ax.set_xlabel("intensity (mean counts per frame)")
    ax.set_ylabel("apparent brightness B")
    ax.set_title(f"{title} ({x.size} cell pixels)", fontsize=10)
    return fig


def folder_brightness_figure(experiments, values, ylabel, title, reference_lines=()):
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
    """
    experiments = np.asarray(experiments, dtype=object)
    values = np.asarray(values, dtype=np.float64)
    names = list(dict.fromkeys(experiments.tolist()))
    fig = Figure(figsize=(max(5.5, 1.1 * len(names) + 2.0), 4.8), dpi=100)
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)  # fixed jitter: the same figure on every run
    groups, labels = [], []
    for name in names:
        cell_values = values[experiments == name]
        finite = cell_values[np.isfinite(cell_values)]
        groups.append(finite)
        missing = cell_values.size - finite.size
        labels.append(f"{name}\n{finite.size} cell(s)" + (f", {missing} undefined" if missing else ""))
    positions = np.arange(1, len(names) + 1)
    drawable = [index for index, group in enumerate(groups) if group.size]
    if drawable:
        ax.boxplot([groups[i] for i in drawable], positions=positions[drawable], widths=0.5,
                   showfliers=False, medianprops={"color": "tab:red"})
    for position, group in zip(positions, groups):
        jitter = rng.uniform(-0.15, 0.15, size=group.size)
        ax.scatter(position + jitter, group, s=14, color="tab:blue", alpha=0.8, zorder=3)
    for level in reference_lines:
        ax.axhline(level, color="0.7", linewidth=0.8, linestyle="--", zorder=0)
    ax.set_xticks(positions)
    ax.set_xticklabels(labels, fontsize=8, rotation=30 if len(names) > 4 else 0, ha="right" if len(names) > 4 else "center")
    ax.set_xlim(0.4, len(names) + 0.6)
    ax.set_ylabel(ylabel)
    width_chars = int(fig.get_figwidth() * 11)
    wrapped = "\n".join(textwrap.fill(line, width_chars) for line in title.split("\n"))
    ax.set_title(wrapped, fontsize=9)
    fig.tight_layout()
    return fig


def cell_timeseries_figure(table, column="Brightness (ratio of means)", ylabel="brightness epsilon",
                           title="Per-cell brightness over time"):
    """One line per cell of ``column`` against the window's middle frame.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`brightflow.stats.cell_timeseries_table` output (``Cell ID``,
        ``First frame``, ``Last frame`` and ``column``).
    """
    fig = Figure(figsize=(7, 4.5), dpi=100)
    ax = fig.add_subplot()
    for cell, rows in table.groupby("Cell ID", sort=True):
        middle = (rows["First frame"].to_numpy() + rows["Last frame"].to_numpy()) / 2
        ax.plot(middle, rows[column].to_numpy(dtype=np.float64), marker="o", markersize=3, linewidth=1,
                label=f"cell {cell}")
    ax.set_xlabel("frame (middle of the window)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if table["Cell ID"].nunique() <= 12:
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig
