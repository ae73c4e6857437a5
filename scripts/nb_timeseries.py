"""Rule nb_timeseries: N&B in windows of frames (nb.timeseries), after bleach correction of the whole stack.

The frames are corrected exactly as rule nb_maps corrects them (the same bleach model; frame
chunks for the per-frame corrections, row tiles across all frames for the detrending methods),
then every window's per-pixel mean and variance give the N&B maps of that window (nandb's
brightness_timeseries / number_timeseries; Nolan et al. 2017, Bioinformatics 33:3508; the
equations of Digman et al. 2008, Biophys J 94:2320, and Dalal et al. 2008 for analog detectors).
Pixels excluded by nb.threshold (NaN in the whole-stack intensity map) are NaN in every window;
nb.filter smooths each window's brightness and number maps as it smooths the whole-stack maps.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from brightflow import detrend, figures, nb, stats, timeseries

import stackio


def window_moments(snakemake, stack, model, bounds, ddof):
    """Every window's per-pixel mean and variance of the corrected frames, as two
    stackio.FrameStore (temporary files): memory holds the windows still open, or one tile of
    rows, never every window."""
    means = stackio.FrameStore(len(bounds), stack.shape[1:], "mean", snakemake.input.stack)
    variances = stackio.FrameStore(len(bounds), stack.shape[1:], "variance", snakemake.input.stack)
    if model["method"] in detrend.TILE_METHODS:
        for rows, corrected in stackio.corrected_tiles(snakemake, stack, model):
            moments = timeseries.WindowedMoments(corrected.shape[1:], bounds, ddof)
            moments.update(corrected, 0)
            for index in range(len(bounds)):
                means.write(index, moments.means[index], rows)
                variances.write(index, moments.variances[index], rows)
        return means, variances
    moments = timeseries.WindowedMoments(stack.shape[1:], bounds, ddof, keep=False)
    for start, stop in stackio.frame_chunks(stack.shape[0], stack.shape[1:]):
        for index, mean, variance in moments.update(
            stack[start:stop], start, scale=detrend.frame_scale(model, start, stop)
        ):
            means.write(index, mean)
            variances.write(index, variance)
    return means, variances


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
    # the whole-stack threshold (NaN pixels of the intensity map) applies to every window
    kept = np.isfinite(np.load(snakemake.input.intensity))
    labels = stackio.read_image(snakemake.input.labels)
    segmented = stackio.read_seg_masks(snakemake.input.seg)
    cell_ids = np.unique(segmented[segmented > 0])
    means, variances = window_moments(snakemake, stack, model, bounds, ddof)
    # one multi-page TIFF per map the rule names (timeseries/<map name>.tif)
    # ImageJ's frame interval of the series: the time from one window to the next
    interval = stack.calibration.frame_interval * (frames_per_set - overlap) if stack.calibration.temporal else None
    writers = {
        Path(path).stem: stackio.MapSeriesWriter(path, len(bounds), stack.shape[1:], stack.calibration, interval)
        for path in snakemake.output.maps
    }
    tables = []
    try:
        # one window at a time: its maps are written as a page of each TIFF and give its table rows
        for index, window in enumerate(bounds):
            maps = timeseries.window_maps(
                means.read(index), variances.read(index), kept, snakemake.params.filter, detector
            )
            for name, writer in writers.items():
                writer.write(index, maps[name])
            tables.append(
                stats.window_cell_table(maps, index, window, labels, cell_ids, detector, snakemake.params.gamma)
            )
    finally:
        for writer in writers.values():
            writer.close()
        means.close()
        variances.close()
    table = pd.concat(tables, ignore_index=True)
    table.to_csv(snakemake.output.cells, index=False)
    title = (f"Per-cell brightness over time ({frames_per_set} frames per window, "
             f"{overlap} shared, {len(bounds)} windows)")
    figure = figures.cell_timeseries_figure(table, title=title, frame_interval=stack.calibration.frame_interval)
    stackio.save_figure(figure, snakemake.output.figure)


stackio.run(main, snakemake)  # noqa: F821
