"""Rule nb_maps: stream the stack once, apply the bleach correction, write the six N&B maps.

Per-frame corrections (none, linear) stream chunks of frames. The detrending methods
(boxcar, exponential, polynomial, robinhood) need each pixel's whole time series: they
stream tiles of pixel rows across all frames (``stack[:, rows, :]``, a memory-map slice)
sized by a memory budget. No corrected stack is written.
"""

import os

from brightflow import detrend, nb

import stackio


def main(snakemake):
    stack = stackio.open_stack(snakemake.input.stack)
    model = stackio.read_json(snakemake.input.model)
    if model["frames"] != stack.shape[0]:
        raise stackio.InputError(
            f"{snakemake.input.model} covers {model['frames']} frames but {snakemake.input.stack} "
            f"has {stack.shape[0]}: the stack changed; rerun the workflow."
        )
    ddof = snakemake.params.variance_ddof
    detector = nb.DetectorModel(**snakemake.params.detector)
    moments = nb.StreamingMoments(stack.shape[1:])
    if model["method"] in detrend.TILE_METHODS:
        cells = plan = None
        if model["method"] == "robinhood":
            cells = stackio.read_image(snakemake.input.labels) > 0
            plan = stackio.read_npy(snakemake.input.swaps, mmap=True)
            if plan.shape != (stack.shape[1], 2, stack.shape[0]):
                raise stackio.InputError(
                    f"{snakemake.input.swaps}: swap plan of shape {plan.shape} does not fit the stack "
                    f"{stack.shape}; rerun the workflow."
                )
        for rows in stackio.row_tiles(stack.shape[0], stack.shape[1:]):
            try:
                corrected = detrend.correct_tile(model, stack[:, rows, :], rows, cells, plan)
            except ValueError as error:
                raise stackio.InputError(f"{snakemake.input.stack}: {error}") from error
            moments.update(corrected, rows=rows)
    else:
        for start, stop in stackio.frame_chunks(stack.shape[0], stack.shape[1:]):
            moments.update(detrend.correct_frames(model, stack[start:stop], start))
    maps = nb.number_and_brightness(moments.mean(), moments.variance(ddof), detector)
    folder = os.path.dirname(snakemake.output[0])
    for name, values in maps.items():
        stackio.write_map(os.path.join(folder, name), values)


stackio.run(main, snakemake)  # noqa: F821
