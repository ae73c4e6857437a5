"""Rule brightness_explorer: the interactive brightness-intensity page (brightflow.explorer)."""

from pathlib import Path

from brightflow import explorer, nb

import stackio


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
    )
    Path(snakemake.output[0]).write_text(page, encoding="utf-8")


stackio.run(main, snakemake)  # noqa: F821
