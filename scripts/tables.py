"""Rule tables: per-pixel values of the cell pixels and per-cell averages, as CSV."""

import numpy as np

from brightflow import segment, stats

import stackio


def main(snakemake):
    maps = {path.rsplit("/", 1)[-1][: -len(".npy")]: np.load(path) for path in snakemake.input.maps}
    labels = stackio.read_image(snakemake.input.labels)
    # every segmented cell gets a row, also one that erosion removed (Pixels 0, NaN values)
    segmented = segment.masks_from_seg_dict(stackio.read_seg_npy(snakemake.input.seg))
    cell_ids = np.unique(segmented[segmented > 0])
    stats.cell_pixel_table(maps, labels).to_csv(snakemake.output.pixels, index=False)
    stats.cell_averages(maps, labels, cell_ids).to_csv(snakemake.output.cells, index=False)


stackio.run(main, snakemake)  # noqa: F821
