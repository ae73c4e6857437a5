"""Rule figures: a preview PNG per map and the brightness-intensity scatter of the cell pixels."""

import numpy as np

from brightflow import figures

import stackio

TITLES = {
    "intensity": "Intensity <k> (mean counts per frame)",
    "variance": "Variance of the counts",
    "apparent_brightness": "Apparent brightness B",
    "apparent_number": "Apparent number N",
    "brightness": "Brightness epsilon (photons per molecule per frame)",
    "number": "Number n (molecules)",
}


def main(snakemake):
    maps = {path.rsplit("/", 1)[-1][: -len(".npy")]: np.load(path) for path in snakemake.input.maps}
    for path in snakemake.output.previews:
        name = path.rsplit("/", 1)[-1][: -len(".png")]
        stackio.save_figure(figures.map_preview(maps[name], TITLES[name]), path)
    cells = stackio.read_image(snakemake.input.labels) > 0
    scatter = figures.brightness_intensity_figure(maps["intensity"][cells], maps["apparent_brightness"][cells])
    stackio.save_figure(scatter, snakemake.output.scatter)


stackio.run(main, snakemake)  # noqa: F821
