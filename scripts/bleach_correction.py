"""Rule bleach_correction: fit the correction model on the cell pixels and draw it.

Writes the model (JSON: method, chosen parameter, how it was chosen, traces), the
Robin Hood swap plan (.npy; an empty array for the other methods) and the figure.
"""

import numpy as np

from brightflow import detrend, figures

import stackio


def _row_sums(stack, cells):
    chunks = stackio.frame_chunks(stack.shape[0], stack.shape[1:])
    return np.concatenate([detrend.row_sums(stack[start:stop], cells) for start, stop in chunks])


def _corrected_trace_by_tiles(snakemake, stack, model, cells):
    """Exact per-frame mean of the corrected cell pixels, one pass over tiles of rows.

    The smoothing corrections work pixel by pixel, so only the cell pixels of each tile
    (and only tiles of rows holding cells) are corrected.
    """
    total = np.zeros(stack.shape[0])
    for rows in stackio.row_tiles(stack.shape[0], stack.shape[1:]):
        inside = cells[rows]
        if inside.any():
            try:
                total += detrend.correct_series(model, stack[:, rows, :][:, inside]).sum(axis=1)
            except ValueError as error:
                raise stackio.InputError(f"{snakemake.input.stack}: {error}") from error
    return total / cells.sum()


def main(snakemake):
    stack = stackio.open_input_stack(snakemake)
    labels = stackio.read_image(snakemake.input.labels)
    cells = labels > 0
    if cells.shape != stack.shape[1:]:
        raise stackio.InputError(
            f"{snakemake.input.labels}: mask shape {cells.shape} differs from the frames "
            f"{stack.shape[1:]} of {snakemake.input.stack}; rerun segmentation."
        )
    if not cells.any():
        stackio.log.warning("no cell pixels: the trace and the correction use the whole image")
        cells = np.ones(cells.shape, dtype=bool)
    options = snakemake.params.bleach_correction
    method = options.get("method", "boxcar")
    seed = int(options.get("seed", 1))
    channel = snakemake.params.get("channel")
    if channel:
        # each channel of a multi-channel stack draws its own random numbers (Robin Hood's swaps): the
        # same draws in two channels would move counts of the same pixels in the same frames and add
        # a spurious cross-variance to cross-correlated N&B
        seed += channel - 1
    if method == "robinhood" and not np.issubdtype(stack.dtype, np.integer):
        raise stackio.InputError(
            f"{snakemake.input.stack}: Robin Hood detrending moves whole photon counts and needs an "
            f"integer stack, but its pixels are {stack.dtype}. Set bleach_correction.method to "
            "boxcar, exponential or polynomial."
        )
    sums = _row_sums(stack, cells)
    if method == "robinhood" and (sums < 0).any():
        raise stackio.InputError(
            f"{snakemake.input.stack}: has negative pixel values; Robin Hood detrending needs counts >= 0. "
            "Use boxcar, exponential or polynomial."
        )
    cell_pixels = int(cells.sum())
    trace = sums.sum(axis=1) / cell_pixels
    try:
        model = detrend.fit_correction(trace, method, options.get("parameter", "auto"), seed, cell_pixels)
    except ValueError as error:
        raise stackio.InputError(f"{snakemake.input.stack}: bleach correction {method}: {error}") from error
    plan = np.zeros((0, 2, stack.shape[0]), dtype=np.int32)
    if model["method"] == "robinhood":
        plan, info = detrend.robinhood_plan(sums, model["parameter"], seed)
        model.update(info)
        model["applied_to"] = "cell pixels (other pixels as recorded)"
        corrected = detrend.robinhood_corrected_sums(sums, plan) / cell_pixels
    elif model["method"] in detrend.SMOOTHING_METHODS:
        model["applied_to"] = "every pixel"
        corrected = _corrected_trace_by_tiles(snakemake, stack, model, cells)
    else:
        model["applied_to"] = "every pixel"
        corrected = detrend.corrected_trace(model)
    model["corrected_trace"] = np.asarray(corrected).tolist()
    stackio.log.info(
        "bleach correction: %s, parameter %s (%s)", model["method"], model["parameter"], model["parameter_source"]
    )
    stackio.write_json(snakemake.output.model, model)
    stackio.write_npy(snakemake.output.swaps, plan)
    figure = figures.bleach_correction_figure(
        model["trace"], model["corrected_trace"], model["trend"], model["method"], parameter_text(model),
        stack.calibration.frame_interval,
    )
    stackio.save_figure(figure, snakemake.output.figure)


def parameter_text(model):
    names = {"boxcar": "l", "exponential": "tau", "polynomial": "degree", "robinhood": "swaps"}
    if model["parameter"] is None:
        if model["method_requested"] != model["method"]:
            return f"{model['method_requested']} auto: no detrending needed"
        return "no parameter"
    value = model["parameter"]
    value = f"{value:.4g}" if isinstance(value, float) else str(value)
    source = "auto" if model["parameter_source"].startswith("auto") else "set"
    return f"{names[model['method']]} = {value} ({source})"


stackio.run(main, snakemake)  # noqa: F821
