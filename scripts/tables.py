"""Rule tables: per-pixel values of the cell pixels and per-cell values, as CSV.

The per-cell CSV keeps the replaced app's columns first (pixel means of each map) and adds
the ratio-of-means estimators, medians and SDs after them (brightflow.stats.cell_table).
"""

import numpy as np

from brightflow import nb, stats

import stackio


def main(snakemake):
    maps = {path.rsplit("/", 1)[-1][: -len(".npy")]: np.load(path) for path in snakemake.input.maps}
    labels = stackio.read_image(snakemake.input.labels)
    # every segmented cell gets a row, also one that erosion removed (Pixels 0, NaN values)
    segmented = stackio.read_seg_masks(snakemake.input.seg)
    cell_ids = np.unique(segmented[segmented > 0])
    detector = nb.DetectorModel(**snakemake.params.detector)
    stats.cell_pixel_table(maps, labels).to_csv(snakemake.output.pixels, index=False)
    cells = stats.cell_table(maps, labels, cell_ids, detector, snakemake.params.gamma)
    if snakemake.params.monomer_brightness is not None:
        cells = stats.add_oligomeric_state(cells, snakemake.params.monomer_brightness)
    cells.to_csv(snakemake.output.cells, index=False)


stackio.run(main, snakemake)  # noqa: F821
