"""Rule projection: the mean over frames of the stack, streamed, as float32 TIFF."""

import numpy as np

import stackio


def main(snakemake):
    stack = stackio.open_input_stack(snakemake)
    total = np.zeros(stack.shape[1:], dtype=np.float64)
    for start, stop in stackio.frame_chunks(stack.shape[0], stack.shape[1:]):
        total += np.asarray(stack[start:stop]).sum(axis=0, dtype=np.float64)
    projection = (total / stack.shape[0]).astype(np.float32)
    stackio.write_image(snakemake.output[0], projection, stack.calibration)
    stackio.log.info("%s: %d frames of %d x %d, %s", snakemake.input.stack, *stack.shape, stack.dtype)


stackio.run(main, snakemake)  # noqa: F821
