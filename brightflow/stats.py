"""Per-cell and per-pixel tables of the N&B maps.

Column names follow the replaced app's CSV files so that existing analysis
scripts keep working.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["MAP_COLUMNS", "cell_averages", "cell_pixel_table", "folder_table"]

#: CSV column for each N&B map, in output order.
MAP_COLUMNS = {
    "intensity": "Intensity",
    "variance": "Variance",
    "apparent_brightness": "Apparent brightness",
    "apparent_number": "Apparent number",
    "brightness": "Brightness",
    "number": "Number",
}


def cell_averages(maps, labels, cell_ids=None):
    """NaN-aware mean of every map over each cell's pixels.

    Parameters
    ----------
    maps : dict of name -> ndarray (y, x)
        The N&B maps (keys of :data:`MAP_COLUMNS`).
    labels : ndarray of int, shape (y, x)
        The label mask the values are taken from (after erosion).
    cell_ids : sequence of int, optional
        The cells to report (default: every label present). A cell with no
        pixels in ``labels`` (eroded away) gets ``Pixels`` 0 and NaN values,
        so it does not vanish from the table.

    Returns
    -------
    pandas.DataFrame
        Columns ``Cell ID``, ``Pixels`` and one per map; one row per cell.
    """
    labels = np.asarray(labels)
    if cell_ids is None:
        cell_ids = np.unique(labels[labels > 0])
    cell_ids = np.asarray(sorted(int(c) for c in cell_ids), dtype=np.int64)
    size = int(max(labels.max(initial=0), cell_ids.max(initial=0))) + 1
    flat_labels = labels.ravel()
    pixels = np.bincount(flat_labels, minlength=size)
    table = {"Cell ID": cell_ids, "Pixels": pixels[cell_ids]}
    for name, column in MAP_COLUMNS.items():
        values = np.asarray(maps[name], dtype=np.float64).ravel()
        finite = np.isfinite(values)
        sums = np.bincount(flat_labels[finite], weights=values[finite], minlength=size)
        counts = np.bincount(flat_labels[finite], minlength=size)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        table[column] = means[cell_ids]
    return pd.DataFrame(table)


def cell_pixel_table(maps, labels):
    """One row per cell pixel: ``Cell ID``, ``y``, ``x``, ``Intensity``,
    ``Apparent brightness``, ``Brightness`` (the scatter plot's values)."""
    labels = np.asarray(labels)
    ys, xs = np.nonzero(labels > 0)
    order = np.lexsort((xs, ys, labels[ys, xs]))
    ys, xs = ys[order], xs[order]
    return pd.DataFrame(
        {
            "Cell ID": labels[ys, xs].astype(np.int64),
            "y": ys,
            "x": xs,
            "Intensity": np.asarray(maps["intensity"])[ys, xs],
            "Apparent brightness": np.asarray(maps["apparent_brightness"])[ys, xs],
            "Brightness": np.asarray(maps["brightness"])[ys, xs],
        }
    )


def folder_table(tables):
    """All experiments' per-cell rows with an ``Experiment`` column first.

    Parameters
    ----------
    tables : dict of experiment name -> DataFrame
        Each experiment's ``average_values_in_roi`` table.

    Returns
    -------
    pandas.DataFrame
        Sorted by experiment, then cell.
    """
    frames = []
    for experiment, table in tables.items():
        table = table.copy()
        table.insert(0, "Experiment", experiment)
        frames.append(table)
    if not frames:
        raise ValueError("no experiments to aggregate")
    folder = pd.concat(frames, ignore_index=True)
    return folder.sort_values(["Experiment", "Cell ID"], kind="stable").reset_index(drop=True)
