"""Rule figures: a preview PNG per map and the brightness-intensity scatter of the cell pixels."""

import numpy as np

from brightflow import figures

import stackio


def main(snakemake):
    maps = {path.rsplit("/", 1)[-1][: -len(".npy")]: np.load(path) for path in snakemake.input.maps}
    cells = stackio.read_image(snakemake.input.labels) > 0
    # the projection carries the recording's pixel size
    calibration = stackio.read_calibration(snakemake.input.image)
    for path in snakemake.output.previews:
        name = path.rsplit("/", 1)[-1][: -len(".png")]
        preview = figures.map_preview(maps[name], figures.MAP_TITLES[name], figures.MAP_LABELS[name], cells,
                                      calibration)
        stackio.save_figure(preview, path)
    scatter = figures.brightness_intensity_figure(
        maps["intensity"][cells], maps["apparent_brightness"][cells], reference=snakemake.params.detector["s_factor"]
    )
    stackio.save_figure(scatter, snakemake.output.scatter)


stackio.run(main, snakemake)  # noqa: F821
