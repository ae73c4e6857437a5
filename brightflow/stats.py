"""Per-cell and per-pixel tables of the N&B maps.

Column names follow the replaced app's CSV files so that existing analysis
scripts keep working.
"""

from __future__ import annotations

import numpy as np

from . import nb

# pandas is imported by the functions that build tables: brightflow.figures and the brightness explorer
# use this module (point_density) without it, and start faster

__all__ = [
    "BRIGHTNESS",
    "CROSS_COLUMNS",
    "ESTIMATOR_COLUMNS",
    "MAP_COLUMNS",
    "add_oligomeric_state",
    "cell_averages",
    "cell_estimators",
    "cell_pixel_table",
    "cell_table",
    "cell_timeseries_table",
    "cross_cell_table",
    "folder_table",
    "monomer_brightness_from_reference",
    "oligomeric_state",
    "point_density",
    "window_cell_table",
]

#: The per-cell brightness to quote (the ratio of the cell's mean variance to its mean intensity;
#: docs/outputs.md, "Per-cell values"): the oligomeric state, the folder figure and the time series use it.
BRIGHTNESS = "Brightness (ratio of means)"

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
    import pandas as pd

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


#: The per-cell columns added after the replaced app's, in output order.
ESTIMATOR_COLUMNS = (
    "Pixels analysed",
    "Apparent brightness (ratio of means)",
    "Apparent number (ratio of means)",
    BRIGHTNESS,
    "Number (ratio of means)",
    "Number (ratio of means) / gamma",
    "Brightness median",
    "Brightness SD",
    "Number median",
    "Number SD",
)


def _cell_groups(labels, cell_ids):
    labels = np.asarray(labels)
    if cell_ids is None:
        cell_ids = np.unique(labels[labels > 0])
    return labels, np.asarray(sorted(int(c) for c in cell_ids), dtype=np.int64)


def cell_estimators(maps, labels, cell_ids=None, detector=nb.DetectorModel(), gamma=1.0):
    """Per-cell brightness and number by the ratio of means, and the median and SD over pixels.

    The pixel mean of ``n = <k>^2 / (s2 - <k>)`` (the ``Number`` column) is
    biased high: ``n`` is a ratio whose denominator, the excess variance, is a
    noisy estimate from ``T`` frames, and the mean of ``1 / x`` exceeds
    ``1 / mean(x)`` (Jensen's inequality); near-zero denominators add
    outliers. The ratio-of-means estimator applies the N&B equations (Digman
    et al. 2008, Biophys J 94:2320, eqs. 4-8; Dalal et al. 2008 for the analog
    detector) once per cell, to the cell's mean intensity ``<k>_cell`` and mean
    variance ``<s2>_cell`` (means over the cell's pixels where both are
    finite)::

        epsilon_cell = (<s2>_cell - v0) / (S (<k>_cell - o)) - 1
        n_cell       = (<k>_cell - o)^2 / (<s2>_cell - v0 - S (<k>_cell - o))

    Because ``<s2>_cell`` averages the variance over many pixels its noise is
    small, and for a cell of uniform ``epsilon`` ``n_cell`` is the mean number
    per pixel without the upward bias.

    ``gamma`` corrects the number for the illumination profile as nandb's
    ``number(..., gamma)`` does (Nolan et al. 2017, Bioinformatics 33:3508):
    ``n / gamma`` (1 for a square profile, 0.3536 for a 3D Gaussian, 0.0760 for
    a Gaussian-Lorentzian).

    Parameters
    ----------
    maps : dict of name -> ndarray (y, x)
        The N&B maps (at least ``intensity``, ``variance``, ``brightness``, ``number``).
        Pixels excluded by a threshold are NaN.
    labels : ndarray of int (y, x)
    cell_ids : sequence of int, optional
        Cells to report (default: every label); a cell without pixels gets NaN.
    detector : brightflow.nb.DetectorModel
    gamma : float
        Illumination-profile factor, > 0.

    Returns
    -------
    pandas.DataFrame
        ``Cell ID`` and the :data:`ESTIMATOR_COLUMNS`. ``Pixels analysed`` counts the cell's
        pixels whose intensity and variance are finite: those ``nb.threshold`` kept (all of
        ``Pixels`` without a threshold).
    """
    import pandas as pd

    if not np.isfinite(gamma) or gamma <= 0:
        raise ValueError(f"gamma must be a positive number, got {gamma!r}")
    labels, cell_ids = _cell_groups(labels, cell_ids)
    intensity = np.asarray(maps["intensity"], dtype=np.float64)
    variance = np.asarray(maps["variance"], dtype=np.float64)
    usable = (labels > 0) & np.isfinite(intensity) & np.isfinite(variance)
    size = int(max(labels.max(initial=0), cell_ids.max(initial=0))) + 1
    flat = labels[usable].astype(np.int64)
    counts = np.bincount(flat, minlength=size).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_intensity = np.bincount(flat, weights=intensity[usable], minlength=size) / counts
        mean_variance = np.bincount(flat, weights=variance[usable], minlength=size) / counts
    mean_intensity, mean_variance = mean_intensity[cell_ids], mean_variance[cell_ids]
    number = nb.number(mean_intensity, mean_variance, detector)
    table = {
        "Cell ID": cell_ids,
        "Pixels analysed": counts[cell_ids].astype(np.int64),
        "Apparent brightness (ratio of means)": nb.apparent_brightness(mean_intensity, mean_variance, detector),
        "Apparent number (ratio of means)": nb.apparent_number(mean_intensity, mean_variance, detector),
        BRIGHTNESS: nb.brightness(mean_intensity, mean_variance, detector),
        "Number (ratio of means)": number,
        "Number (ratio of means) / gamma": number / gamma,
    }
    for name, column in (("brightness", "Brightness"), ("number", "Number")):
        values = np.asarray(maps[name], dtype=np.float64)
        medians, deviations = [], []
        for cell in cell_ids:
            cell_values = values[(labels == cell) & np.isfinite(values)]
            medians.append(np.median(cell_values) if cell_values.size else np.nan)
            deviations.append(np.std(cell_values, ddof=1) if cell_values.size > 1 else np.nan)
        table[f"{column} median"] = np.asarray(medians)
        table[f"{column} SD"] = np.asarray(deviations)
    return pd.DataFrame(table)[["Cell ID", *ESTIMATOR_COLUMNS]]


def cell_table(maps, labels, cell_ids=None, detector=nb.DetectorModel(), gamma=1.0):
    """The per-cell CSV: the replaced app's columns (:func:`cell_averages`) then :data:`ESTIMATOR_COLUMNS`."""
    averages = cell_averages(maps, labels, cell_ids)
    estimators = cell_estimators(maps, labels, averages["Cell ID"].tolist(), detector, gamma)
    return averages.merge(estimators, on="Cell ID", how="left", validate="one_to_one")


def monomer_brightness_from_reference(reference_table, column=BRIGHTNESS):
    """The monomer's brightness from a reference experiment's cells: median and spread.

    The reference expresses a monomeric fluorophore (or a monomeric fusion)
    under the same acquisition settings; its cells' brightness is the unit of
    oligomeric state (Digman et al. 2008, Biophys J 94:2320, where the
    brightness of EGFP monomers calibrates that of the paxillin complexes).

    Returns
    -------
    dict
        ``median`` (the monomer brightness used), ``mad`` (median absolute
        deviation, scaled by 1.4826 to estimate a standard deviation),
        ``cells`` (cells with a finite brightness).

    Raises
    ------
    ValueError
        The reference has no cell with a positive finite brightness.
    """
    import pandas as pd

    values = pd.to_numeric(reference_table[column], errors="coerce").to_numpy(dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("the reference experiment has no cell with a finite brightness")
    median = float(np.median(values))
    if median <= 0:
        raise ValueError(
            f"the reference experiment's median brightness is {median:.4g} <= 0: it cannot be a monomer's "
            "brightness (no mobile fluorescent molecules were detected in its cells)"
        )
    mad = float(1.4826 * np.median(np.abs(values - median)))
    return {"median": median, "mad": mad, "cells": int(values.size)}


def oligomeric_state(brightness, monomer_brightness):
    """Oligomeric state ``epsilon_cell / epsilon_monomer`` (Digman et al. 2008; Chen et al. 2003,
    Biophys J 84:2254 for brightness as a measure of stoichiometry)."""
    if not np.isfinite(monomer_brightness) or monomer_brightness <= 0:
        raise ValueError(f"the monomer brightness must be a positive number, got {monomer_brightness!r}")
    return np.asarray(brightness, dtype=np.float64) / monomer_brightness


def add_oligomeric_state(table, monomer, column=BRIGHTNESS):
    """A copy of ``table`` with ``Monomer brightness`` and ``Oligomeric state`` columns appended.

    ``monomer`` is a number or the dict of :func:`monomer_brightness_from_reference`
    (then ``Monomer brightness spread (MAD)`` and ``Monomer reference cells`` are added too).
    """
    table = table.copy()
    if isinstance(monomer, dict):
        value = monomer["median"]
        table["Monomer brightness"] = value
        table["Monomer brightness spread (MAD)"] = monomer["mad"]
        table["Monomer reference cells"] = monomer["cells"]
    else:
        value = float(monomer)
        table["Monomer brightness"] = value
    table["Oligomeric state"] = oligomeric_state(table[column].to_numpy(dtype=np.float64), value)
    return table


def cell_timeseries_table(window_maps, bounds, labels, cell_ids=None, detector=nb.DetectorModel(), gamma=1.0):
    """Per-cell values in every time window: one row per (window, cell).

    Parameters
    ----------
    window_maps : dict of name -> ndarray (windows, y, x)
        From :func:`brightflow.timeseries.stack_timeseries`.
    bounds : list of (int, int)
        The windows' frame ranges.

    Returns
    -------
    pandas.DataFrame
        ``Window``, ``First frame``, ``Last frame`` (inclusive, from 0), then
        the columns of :func:`cell_table`.
    """
    import pandas as pd

    tables = [
        window_cell_table(
            {name: values[index] for name, values in window_maps.items()},
            index,
            window,
            labels,
            cell_ids,
            detector,
            gamma,
        )
        for index, window in enumerate(bounds)
    ]
    return pd.concat(tables, ignore_index=True)


def window_cell_table(maps, index, window, labels, cell_ids=None, detector=nb.DetectorModel(), gamma=1.0):
    """The rows of :func:`cell_timeseries_table` for one window: ``maps`` (name -> (y, x)) of
    window number ``index``, whose frames are ``window = (start, stop)``."""
    start, stop = window
    table = cell_table(maps, labels, cell_ids, detector, gamma)
    table.insert(0, "Last frame", stop - 1)
    table.insert(0, "First frame", start)
    table.insert(0, "Window", index)
    return table


def cell_pixel_table(maps, labels):
    """One row per cell pixel: ``Cell ID``, ``y``, ``x``, ``Intensity``,
    ``Apparent brightness``, ``Brightness`` (the scatter plot's values)."""
    import pandas as pd

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
        Sorted by experiment, then cell. An experiment whose table is empty (no cells) keeps one
        row: its name, empty values and ``Warnings`` "no cells".
    """
    import pandas as pd

    if not tables:
        raise ValueError("no experiments to aggregate")
    kinds = next((table.dtypes for table in tables.values() if len(table)), None)
    frames = []
    for experiment, table in tables.items():
        table = table.copy()
        if not len(table):
            # an experiment without cells keeps a row: its name, empty values, "no cells"
            table = pd.DataFrame({column: [None] for column in table.columns} | {"Warnings": ["no cells"]})
        table.insert(0, "Experiment", experiment)
        frames.append(table.astype(object))
    folder = pd.concat(frames, ignore_index=True)
    if kinds is not None:  # the per-experiment tables' types, integers nullable (a "no cells" row has none)
        for column, kind in kinds.items():
            if pd.api.types.is_integer_dtype(kind):
                folder[column] = folder[column].astype("Int64")
            elif pd.api.types.is_float_dtype(kind):
                folder[column] = pd.to_numeric(folder[column], errors="coerce").astype(kind)
    return folder.sort_values(["Experiment", "Cell ID"], kind="stable").reset_index(drop=True)


#: The per-cell columns of the cross-correlated N&B table, after ``Cell ID`` and ``Pixels``.
CROSS_COLUMNS = (
    "Cross variance",
    "Cross brightness",
    "Cross number",
    "Cross brightness (ratio of means)",
    "Cross number (ratio of means)",
)


def cross_cell_table(
    maps, mean1, mean2, labels, cell_ids=None, detector1=nb.DetectorModel(), detector2=nb.DetectorModel()
):
    """Per-cell cross-correlated N&B (Digman, Wiseman, Choi, Horwitz & Gratton 2009, PNAS 106:2170).

    ``Cross variance``, ``Cross brightness``, ``Cross number`` are the NaN-aware means of the
    maps over the cell's pixels (as the single-channel ``Brightness``, ``Number``). The ratio
    of means, the value to quote, applies the equations once per cell to the cell's mean
    counts and mean cross-variance (pixels where all three are finite)::

        B_cc,cell = <cov>_cell / sqrt((<k1>_cell - o1)(<k2>_cell - o2))
        N_cc,cell = (<k1>_cell - o1)(<k2>_cell - o2) / <cov>_cell

    Parameters
    ----------
    maps : dict of name -> ndarray (y, x)
        ``cross_variance``, ``cross_brightness``, ``cross_number`` (brightflow.cross.cross_maps).
    mean1, mean2 : ndarray (y, x)
        The two channels' per-pixel mean counts (NaN where a threshold excluded the pixel).
    labels : ndarray of int (y, x)
    cell_ids : sequence of int, optional
    detector1, detector2 : brightflow.nb.DetectorModel
    """
    import pandas as pd

    from . import cross

    labels, cell_ids = _cell_groups(labels, cell_ids)
    size = int(max(labels.max(initial=0), cell_ids.max(initial=0))) + 1
    table = {"Cell ID": cell_ids, "Pixels": np.bincount(labels.ravel(), minlength=size)[cell_ids]}
    for name, column in zip(cross.CROSS_MAP_NAMES, CROSS_COLUMNS[:3], strict=False):
        values = np.asarray(maps[name], dtype=np.float64)
        finite = (labels > 0) & np.isfinite(values)
        sums = np.bincount(labels[finite], weights=values[finite], minlength=size)
        counts = np.bincount(labels[finite], minlength=size)
        with np.errstate(invalid="ignore", divide="ignore"):
            table[column] = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)[cell_ids]
    covariance = np.asarray(maps["cross_variance"], dtype=np.float64)
    mean1, mean2 = np.asarray(mean1, dtype=np.float64), np.asarray(mean2, dtype=np.float64)
    usable = (labels > 0) & np.isfinite(covariance) & np.isfinite(mean1) & np.isfinite(mean2)
    flat = labels[usable]
    counts = np.bincount(flat, minlength=size).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        cell_cov, cell1, cell2 = (
            np.bincount(flat, weights=v[usable], minlength=size)[cell_ids] / counts[cell_ids]
            for v in (covariance, mean1, mean2)
        )
    table["Cross brightness (ratio of means)"] = cross.cross_brightness(cell1, cell2, cell_cov, detector1, detector2)
    table["Cross number (ratio of means)"] = cross.cross_number(cell1, cell2, cell_cov, detector1, detector2)
    return pd.DataFrame(table)[["Cell ID", "Pixels", *CROSS_COLUMNS]]


def point_density(x, y, bins=128):
    """Local point density of a scatter by 2D histogram lookup, O(points).

    Each point gets the count of the histogram bin it falls in (of ``bins`` x
    ``bins`` bins spanning the data): a cheap stand-in for a kernel density
    estimate, whose cost grows with the square of the number of points. The
    colour of the points of brightness_x_intensity.png and of the brightness
    explorer.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size == 0:
        return np.zeros(0)
    counts, x_edges, y_edges = np.histogram2d(x, y, bins=bins)
    x_bin = np.clip(np.searchsorted(x_edges, x, side="right") - 1, 0, bins - 1)
    y_bin = np.clip(np.searchsorted(y_edges, y, side="right") - 1, 0, bins - 1)
    return counts[x_bin, y_bin]
