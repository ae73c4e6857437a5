"""Rule nb_timeseries: N&B in windows of frames (nb.timeseries), after bleach correction of the whole stack.

The frames are corrected exactly as rule nb_maps corrects them (the same bleach model; frame
chunks for the per-frame corrections, row tiles across all frames for the detrending methods),
then every window's per-pixel mean and variance give the N&B maps of that window (nandb's
brightness_timeseries / number_timeseries; Nolan et al. 2017, Bioinformatics 33:3508; the
equations of Digman et al. 2008, Biophys J 94:2320, and Dalal et al. 2008 for analog detectors).
Pixels excluded by nb.threshold (NaN in the whole-stack intensity map) are NaN in every window;
nb.filter smooths each window's brightness and number maps as it smooths the whole-stack maps.
"""

import numpy as np

from brightflow import detrend, figures, filters, nb, stats, timeseries

import stackio

#: The quantities written as multi-page TIFFs, one page per window.
TIMESERIES_MAPS = ("apparent_brightness", "apparent_number", "brightness", "number")


def window_moments(snakemake, stack, model, bounds, ddof):
    """Per-window mean and variance maps ``(windows, y, x)`` of the corrected frames."""
    if model["method"] in detrend.TILE_METHODS:
        means = np.full((len(bounds),) + stack.shape[1:], np.nan)
        variances = np.full_like(means, np.nan)
        for rows, corrected in stackio.corrected_tiles(snakemake, stack, model):
            moments = timeseries.WindowedMoments(corrected.shape[1:], bounds, ddof)
            moments.update(corrected, 0)
            means[:, rows] = moments.means
            variances[:, rows] = moments.variances
        return means, variances
    moments = timeseries.WindowedMoments(stack.shape[1:], bounds, ddof)
    for start, stop in stackio.frame_chunks(stack.shape[0], stack.shape[1:]):
        moments.update(stack[start:stop], start, scale=detrend.frame_scale(model, start, stop))
    return moments.means, moments.variances


def main(snakemake):
    stack = stackio.open_input_stack(snakemake)
    model = stackio.read_correction_model(snakemake.input.model, stack.shape[0], snakemake.input.stack)
    frames_per_set, overlap = snakemake.params.frames_per_set, snakemake.params.overlap
    bounds = timeseries.window_bounds(stack.shape[0], frames_per_set, overlap)
    if not bounds:
        raise stackio.InputError(
            f"{snakemake.input.stack}: has {stack.shape[0]} frames, fewer than nb.timeseries.frames_per_set "
            f"= {frames_per_set}: lower frames_per_set (or set it to null to switch the time series off)."
        )
    ddof = snakemake.params.variance_ddof
    detector = nb.DetectorModel(**snakemake.params.detector)
    means, variances = window_moments(snakemake, stack, model, bounds, ddof)
    maps = timeseries.timeseries_maps(means, variances, detector)
    # the whole-stack threshold (NaN pixels of the intensity map) applies to every window
    kept = np.isfinite(np.load(snakemake.input.intensity))
    maps = {name: np.where(kept, values, np.nan) for name, values in maps.items()}
    if snakemake.params.filter != "none":
        for name in TIMESERIES_MAPS:
            maps[name] = np.stack(
                [np.where(kept, filters.nan_filter(page, snakemake.params.filter), np.nan) for page in maps[name]]
            )
    for name, path in zip(TIMESERIES_MAPS, snakemake.output.maps):
        stackio.write_map_series(path, maps[name])
    labels = stackio.read_image(snakemake.input.labels)
    segmented = stackio.read_seg_masks(snakemake.input.seg)
    cell_ids = np.unique(segmented[segmented > 0])
    table = stats.cell_timeseries_table(maps, bounds, labels, cell_ids, detector, snakemake.params.gamma)
    table.to_csv(snakemake.output.cells, index=False)
    title = (f"Per-cell brightness over time ({frames_per_set} frames per window, "
             f"{overlap} shared, {len(bounds)} windows)")
    stackio.save_figure(figures.cell_timeseries_figure(table, title=title), snakemake.output.figure)


stackio.run(main, snakemake)  # noqa: F821
