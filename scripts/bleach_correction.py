"""Rule bleach_correction: fit the correction model on the cell pixels and draw it."""

import numpy as np

from brightflow import detrend, figures

import stackio


def main(snakemake):
    stack = stackio.open_stack(snakemake.input.stack)
    cells = stackio.read_image(snakemake.input.labels) > 0
    if not cells.any():
        stackio.log.warning("no cell pixels: the intensity trace is taken over the whole image")
    trace = np.concatenate(
        [detrend.cell_trace(stack[start:stop], cells) for start, stop in stackio.frame_chunks(stack.shape[0], stack.shape[1:])]
    )
    options = snakemake.params.bleach_correction
    try:
        model = detrend.fit_correction(trace, options.get("method", "none"), options.get("parameter", "auto"))
    except ValueError as error:
        raise stackio.InputError(f"{snakemake.input.stack}: {error}") from error
    stackio.write_json(snakemake.output.model, model)
    parameter = "parameter: " + (str(model["parameter"]) if model["parameter"] is not None else "-")
    figure = figures.bleach_correction_figure(
        model["trace"], detrend.corrected_trace(model), model["trend"], model["method"], parameter
    )
    stackio.save_figure(figure, snakemake.output.figure)


stackio.run(main, snakemake)  # noqa: F821
