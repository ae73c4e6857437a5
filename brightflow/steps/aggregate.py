"""Rule aggregate: every experiment's per-cell rows in Folder_average_values_in_roi.csv, with the
oligomeric state when a monomer brightness is configured, and Folder_brightness_summary.png."""

from __future__ import annotations

import logging

import pandas as pd

from .. import figures, io, nb, quality, stats

log = logging.getLogger("brightflow")


def aggregate(cells, experiments, table, figure, channels, monomer_brightness, detector):
    """Gather the per-cell tables of every experiment (and channel) into the folder's table and figure.

    Parameters
    ----------
    cells : sequence of str
        Each unit's ``average_values_in_roi.csv``, in the order of ``experiments``.
    experiments : sequence of str
        The units: an experiment, or ``experiment/ch<c>`` for a channel of a multi-channel stack.
    table, figure : str
        ``Folder_average_values_in_roi.csv`` and ``Folder_brightness_summary.png``.
    channels : dict, optional
        ``{unit: channel}`` when the folder holds multi-channel stacks: the table then gets a
        ``Channel`` column after ``Experiment`` (None for single-channel stacks).
    monomer_brightness : float or str, optional
        The monomer's brightness, or the unit whose cells are the monomer reference (the median
        of their per-cell brightness, brightflow.stats.monomer_brightness_from_reference).
    detector : dict
        ``nb.detector``: the brightness's unit on the figure (brightflow.nb.brightness_unit).
    """
    tables = {unit: pd.read_csv(path) for unit, path in zip(experiments, cells, strict=True)}
    folder = stats.folder_table(tables)
    groups = folder["Experiment"].copy()  # the figure's boxes: one per experiment, or per channel
    if channels:
        # a unit of a multi-channel stack is "experiment/ch<c>": Experiment and Channel columns
        units = folder["Experiment"]
        folder["Experiment"] = [unit.rsplit("/ch", 1)[0] if channels.get(unit) else unit for unit in units]
        folder.insert(1, "Channel", pd.array([channels.get(unit) for unit in units], dtype="Int64"))
    monomer = monomer_brightness
    if isinstance(monomer, str):
        try:
            monomer = stats.monomer_brightness_from_reference(tables[monomer_brightness])
        except ValueError as error:
            raise io.InputError(
                f"nb.monomer_brightness names the reference experiment {monomer_brightness!r}, but {error}. Check "
                "its segmentation and per-cell table, or give the monomer brightness as a number."
            ) from error
        log.info(
            "monomer brightness from %s: median %.4g (MAD %.3g) over %d cells",
            monomer_brightness,
            monomer["median"],
            monomer["mad"],
            monomer["cells"],
        )
    if monomer is not None:
        folder = stats.add_oligomeric_state(folder, monomer)
        column, ylabel, lines = "Oligomeric state", "oligomeric state (epsilon / epsilon monomer)", (1, 2, 4)
        value = folder["Monomer brightness"].iloc[0]
        if isinstance(monomer, dict):
            source = f"median of {monomer['cells']} cell(s) of {monomer_brightness}, MAD {monomer['mad']:.2g}"
        else:
            source = "nb.monomer_brightness"
        title = f"Oligomeric state per cell\nmonomer brightness {value:.3g} ({source})"
    else:
        column, ylabel, lines = stats.BRIGHTNESS, f"brightness ε ({nb.brightness_unit(detector)})", ()
        title = "Brightness per cell (ratio of means)\nset nb.monomer_brightness for the oligomeric state"
    warnings = folder.pop("Warnings").fillna("").astype(str)
    folder["Warnings"] = warnings  # always the last column
    _log_warnings(groups, warnings)
    folder.to_csv(table, index=False)
    empty = warnings == quality.NO_CELLS
    drawing = figures.folder_brightness_figure(
        groups[~empty],
        folder.loc[~empty, column],
        ylabel,
        title,
        lines,
        flagged=warnings[~empty] != "",
        empty=groups[empty].tolist(),
    )
    io.save_figure(drawing, figure)


def _log_warnings(units, warnings):
    """One log line per warning code: how many cells of which experiments carry it."""
    for code in quality.CODES:
        hit = warnings.map(
            lambda text, code=code: any(quality.code_of(part) == code for part in text.split("; ") if part)
        )
        if hit.any():
            where = ", ".join(f"{unit} ({count})" for unit, count in units[hit].value_counts(sort=False).items())
            noun = "experiment(s)" if code == quality.NO_CELLS else "cell(s)"
            log.warning("%s: %d %s: %s", code, int(hit.sum()), noun, where)
