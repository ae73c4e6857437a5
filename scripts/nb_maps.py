"""Rule nb_maps: stream the stack once, apply the bleach correction, write the six N&B maps.

Per-frame corrections (none, linear) stream chunks of frames read from the file
(stackio.Stack), the per-frame factors applied inside the moment sums. The detrending
methods (boxcar, exponential, polynomial, robinhood) need each pixel's whole time series:
they stream tiles of pixel rows across all frames (``stack[:, rows, :]``) sized by a
memory budget. No corrected stack is written.
"""

import logging
import os

from brightflow import detrend, filters, nb, threshold

import stackio

log = logging.getLogger("brightflow")

def threshold_and_filter(maps, setting, method, stack_path):
    """Apply ``nb.threshold`` then ``nb.filter`` to the six maps.

    The threshold is computed on the intensity map (the per-pixel mean of the corrected
    frames) as ImageJ's AutoThresholder defines the method (brightflow.threshold); pixels
    below it are NaN in every map, so they are left out of every per-cell value. The filter
    is nandb's NaN-aware 3x3 mean or median (Nolan et al. 2017, Bioinformatics 33:3508;
    brightflow.filters) on the brightness and number maps; excluded pixels stay NaN.

    Returns
    -------
    maps : dict
    record : dict
        What nb_threshold.json records: the setting, the value used, the pixels kept.
    """
    try:
        value = threshold.resolve_threshold(maps["intensity"], setting)
    except ValueError as error:
        raise stackio.InputError(f"{stack_path}: nb.threshold {setting!r} cannot be applied: {error}.") from error
    kept = threshold.threshold_mask(maps["intensity"], value)
    if value is not None:
        maps = threshold.apply_threshold(maps, kept)
    maps = filters.filter_maps(maps, kept, method)
    record = {
        "setting": setting,
        "value": value,
        "units": "mean counts per frame (the intensity map)",
        "pixels_kept": int(kept.sum()),
        "pixels": int(kept.size),
        "filter": method,
    }
    if value is not None:
        log.info("nb.threshold %s: %.6g, %d of %d pixels kept", setting, value, kept.sum(), kept.size)
    return maps, record


def main(snakemake):
    stack = stackio.open_input_stack(snakemake)
    model = stackio.read_correction_model(snakemake.input.model, stack.shape[0], snakemake.input.stack)
    ddof = snakemake.params.variance_ddof
    detector = nb.DetectorModel(**snakemake.params.detector)
    moments = nb.StreamingMoments(stack.shape[1:])
    if model["method"] in detrend.TILE_METHODS:
        for rows, corrected in stackio.corrected_tiles(snakemake, stack, model):
            moments.update(corrected, rows=rows)
    else:
        for start, stop in stackio.frame_chunks(stack.shape[0], stack.shape[1:]):
            # the per-frame factors are applied inside the accumulation: no corrected float64 copy
            moments.update(stack[start:stop], scale=detrend.frame_scale(model, start, stop))
    maps = nb.number_and_brightness(moments.mean(), moments.variance(ddof), detector)
    maps, record = threshold_and_filter(
        maps, snakemake.params.threshold, snakemake.params.filter, snakemake.input.stack
    )
    stackio.write_json(snakemake.output.threshold, record)
    folder = os.path.dirname(snakemake.output.maps[0])
    for name, values in maps.items():
        stackio.write_map(os.path.join(folder, name), values, stack.calibration)


stackio.run(main, snakemake)  # noqa: F821
