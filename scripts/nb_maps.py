"""Rule nb_maps: stream the stack once, apply the bleach correction, write the six N&B maps."""

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
    for start, stop in stackio.frame_chunks(stack.shape[0], stack.shape[1:]):
        moments.update(detrend.correct_frames(model, stack[start:stop], start))
    maps = nb.number_and_brightness(moments.mean(), moments.variance(ddof), detector)
    folder = os.path.dirname(snakemake.output[0])
    for name, values in maps.items():
        stackio.write_map(os.path.join(folder, name), values)


stackio.run(main, snakemake)  # noqa: F821
