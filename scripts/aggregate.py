"""Rule aggregate: all experiments' per-cell rows in Folder_average_values_in_roi.csv."""

import pandas as pd

from brightflow import stats

import stackio


def main(snakemake):
    tables = {
        experiment: pd.read_csv(path)
        for experiment, path in zip(snakemake.params.experiments, snakemake.input)
    }
    stats.folder_table(tables).to_csv(snakemake.output[0], index=False)


stackio.run(main, snakemake)  # noqa: F821
