"""Rule brightness_explorer: the interactive brightness-intensity page (brightflow.explorer)."""

import csv
from pathlib import Path

from brightflow import explorer, nb

import stackio

#: The per-cell values shown in the page's list of cells (average_values_in_roi.csv).
QUOTED_COLUMNS = ("Brightness (ratio of means)", "Number (ratio of means)")


def read_cell_values(path):
    """{Cell ID: (brightness, number)} by the ratio of means; cells without a value are left out."""
    values = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if all(row.get(column) not in (None, "", "nan", "NaN") for column in QUOTED_COLUMNS):
                values[int(float(row["Cell ID"]))] = tuple(float(row[column]) for column in QUOTED_COLUMNS)
    return values


def main(snakemake):
    maps = {path.rsplit("/", 1)[-1][: -len(".npy")]: stackio.read_npy(path) for path in snakemake.input.maps}
    page = explorer.explorer_html(
        maps,
        stackio.read_image(snakemake.input.labels),
        # the projection carries the recording's pixel size
        calibration=stackio.read_calibration(snakemake.input.image),
        detector=nb.DetectorModel(**snakemake.params.detector),
        title=snakemake.wildcards.experiment,
        file_name=f"brightness_selection_{snakemake.wildcards.experiment.replace('/', '_')}.csv",
        cell_values=read_cell_values(snakemake.input.cells),
    )
    Path(snakemake.output[0]).write_text(page, encoding="utf-8")


stackio.run(main, snakemake)  # noqa: F821
