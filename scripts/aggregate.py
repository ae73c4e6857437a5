"""Rule aggregate: all experiments' per-cell rows in Folder_average_values_in_roi.csv, the
oligomeric state when a monomer brightness is configured, and Folder_brightness_summary.png."""

import logging

import pandas as pd

from brightflow import figures, stats

import stackio

log = logging.getLogger("brightflow")

#: The per-cell brightness the oligomeric state and the summary figure use.
BRIGHTNESS = "Brightness (ratio of means)"


def main(snakemake):
    tables = {
        experiment: pd.read_csv(path)
        for experiment, path in zip(snakemake.params.experiments, snakemake.input)
    }
    folder = stats.folder_table(tables)
    groups = folder["Experiment"].copy()  # the figure's boxes: one per experiment, or per channel
    channels = snakemake.params.channels
    if channels:
        # a unit of a multi-channel stack is "experiment/ch<c>": Experiment and Channel columns
        units = folder["Experiment"]
        folder["Experiment"] = [unit.rsplit("/ch", 1)[0] if channels.get(unit) else unit for unit in units]
        folder.insert(1, "Channel", pd.array([channels.get(unit) for unit in units], dtype="Int64"))
    monomer = snakemake.params.monomer_brightness
    if isinstance(monomer, str):
        try:
            monomer = stats.monomer_brightness_from_reference(tables[monomer], BRIGHTNESS)
        except ValueError as error:
            raise stackio.InputError(
                f"nb.monomer_brightness names the reference experiment {snakemake.params.monomer_brightness!r}, "
                f"but {error}. Check its segmentation and per-cell table, or give the monomer brightness as a number."
            ) from error
        log.info(
            "monomer brightness from %s: median %.4g (MAD %.3g) over %d cells",
            snakemake.params.monomer_brightness, monomer["median"], monomer["mad"], monomer["cells"],
        )
    if monomer is not None:
        folder = stats.add_oligomeric_state(folder, monomer, BRIGHTNESS)
        column, ylabel, lines = "Oligomeric state", "oligomeric state (epsilon / epsilon monomer)", (1, 2, 4)
        value = folder["Monomer brightness"].iloc[0]
        if isinstance(monomer, dict):
            source = (f"median of {monomer['cells']} cell(s) of {snakemake.params.monomer_brightness}, "
                      f"MAD {monomer['mad']:.2g}")
        else:
            source = "nb.monomer_brightness"
        title = f"Oligomeric state per cell\nmonomer brightness {value:.3g} ({source})"
    else:
        column, ylabel, lines = BRIGHTNESS, "brightness epsilon (photons per molecule per frame)", ()
        title = "Brightness per cell (ratio of means)\nset nb.monomer_brightness for the oligomeric state"
    folder.to_csv(snakemake.output.table, index=False)
    figure = figures.folder_brightness_figure(groups, folder[column], ylabel, title, lines)
    stackio.save_figure(figure, snakemake.output.figure)


stackio.run(main, snakemake)  # noqa: F821
