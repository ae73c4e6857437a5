"""Rule nb_cross: cross-correlated N&B of two channels (nb.cross_channels) of a multi-channel stack.

Both channels are corrected for bleaching with their own models (each channel's
bleach_correction.json, as rule nb_maps corrects them) and streamed together; the cross-variance
and the cross brightness and number follow Digman, Wiseman, Choi, Horwitz & Gratton (2009), PNAS
106:2170 (brightflow.cross), with the covariance normalised by 1/(T - nb.variance_ddof) like the
variance. Pixels excluded by nb.threshold in either channel (NaN in its intensity map) are NaN;
nb.filter smooths the cross brightness and number maps as it smooths the single-channel ones.
"""

import os

import numpy as np

from brightflow import cross, detrend, figures, filters, nb, stats, threshold

import stackio

def cross_moments(snakemake, stacks, models):
    """Per-pixel means of both channels and their covariance, from the corrected frames."""
    ddof = snakemake.params.variance_ddof
    shape = stacks[0].shape
    tiles = any(model["method"] in detrend.TILE_METHODS for model in models)
    if not tiles:
        moments = cross.StreamingCrossMoments(shape[1:])
        for start, stop in stackio.frame_chunks(shape[0], shape[1:], budget_bytes=32 * 2**20):
            corrected = [detrend.correct_frames(m, s[start:stop], start) for m, s in zip(models, stacks)]
            moments.update(*corrected)
        return moments.first.mean(), moments.second.mean(), moments.covariance(ddof)
    cells = stackio.read_image(snakemake.input.labels) > 0
    plans = [
        stackio.read_swap_plan(path, stack.shape) if model["method"] == "robinhood" else None
        for path, stack, model in zip(snakemake.input.swaps, stacks, models)
    ]
    mean1, mean2, covariance = (np.full(shape[1:], np.nan) for _ in range(3))
    for rows in stackio.row_tiles(shape[0], shape[1:], copies=12):
        corrected = []
        for model, stack, plan in zip(models, stacks, plans):
            try:
                if model["method"] in detrend.TILE_METHODS:
                    corrected.append(detrend.correct_tile(model, stack[:, rows, :], rows, cells, plan))
                else:
                    corrected.append(detrend.correct_frames(model, stack[:, rows, :], 0))
            except ValueError as error:
                raise stackio.InputError(f"{snakemake.input.stack}: {error}") from error
        moments = cross.StreamingCrossMoments(corrected[0].shape[1:])
        moments.update(*corrected)
        mean1[rows], mean2[rows], covariance[rows] = moments.first.mean(), moments.second.mean(), moments.covariance(ddof)
    return mean1, mean2, covariance


def main(snakemake):
    first, second = snakemake.params.channels
    stacks = [stackio.open_channel(snakemake.input.stack, c, snakemake.params.axes) for c in (first, second)]
    models = [
        stackio.read_correction_model(path, stacks[0].shape[0], snakemake.input.stack)
        for path in snakemake.input.models
    ]
    detector = nb.DetectorModel(**snakemake.params.detector)
    mean1, mean2, covariance = cross_moments(snakemake, stacks, models)
    maps = cross.cross_maps(mean1, mean2, covariance, detector, detector)
    kept = np.isfinite(np.load(snakemake.input.intensities[0])) & np.isfinite(np.load(snakemake.input.intensities[1]))
    maps = threshold.apply_threshold(maps, kept)
    maps = filters.filter_maps(maps, kept, snakemake.params.filter, ("cross_brightness", "cross_number"))
    folder = os.path.dirname(snakemake.output.table)
    labels = stackio.read_image(snakemake.input.labels)
    calibration = stacks[0].calibration
    for name, values in maps.items():
        stackio.write_map(os.path.join(folder, name), values, calibration)
        title = f"{figures.MAP_TITLES[name]}, channels {first} and {second}"
        preview = figures.map_preview(values, title, figures.MAP_LABELS[name], labels > 0, calibration)
        stackio.save_figure(preview, os.path.join(folder, f"{name}.png"))
    segmented = stackio.read_seg_masks(snakemake.input.seg)
    cell_ids = np.unique(segmented[segmented > 0])
    table = stats.cross_cell_table(
        maps, np.where(kept, mean1, np.nan), np.where(kept, mean2, np.nan), labels, cell_ids, detector, detector
    )
    table.to_csv(snakemake.output.table, index=False)


stackio.run(main, snakemake)  # noqa: F821
