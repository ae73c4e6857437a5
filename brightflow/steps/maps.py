"""Rules nb_maps, nb_timeseries and nb_cross: the N&B maps, from the bleach-corrected stack.

Each streams the recording once through brightflow.detrend.corrected_blocks (chunks of frames
with per-frame factors, or tiles of pixel rows across every frame for the per-pixel
corrections) into moment sums; no corrected stack is written. The maps follow Digman et al. 2008
(Biophys J 94:2320), with Dalal et al. 2008 (Microsc Res Tech 71:69) for analog detectors; the
time series and filters nandb (Nolan et al. 2017, Bioinformatics 33:3508); the
cross-correlation Digman, Wiseman, Choi, Horwitz & Gratton 2009 (PNAS 106:2170).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .. import detrend, io, nb, threshold, timeseries
from ..nb import MAP_NAMES

# pandas (tables), matplotlib (figures) and the cross-correlation are imported by the steps that use
# them: rule nb_maps, the heaviest in data, needs none of them and starts faster without

log = logging.getLogger("brightflow")

__all__ = ["nb_cross", "nb_maps", "nb_timeseries"]

#: Bytes of one chunk of frames of a channel when two channels stream side by side (nb_cross).
CROSS_FRAME_BUDGET = 32 * 2**20
#: float64 copies of a tile the cross-correlation makes (two channels, their products).
CROSS_TILE_COPIES = 12


def _open_corrected(stack, model, labels, swaps, channel, axes):
    """The channel's stack, its correction model (checked to fit it) and what Robin Hood needs."""
    frames = io.open_channel(stack, channel, axes)
    fitted = io.read_correction_model(model, frames.shape[0], stack)
    cells = plan = None
    if fitted.correction.swap_plan:
        cells = io.read_image(labels) > 0
        plan = io.read_swap_plan(swaps, frames.shape)
    return frames, fitted, cells, plan


def _blocks(stack_path, *args, **kwargs):
    """detrend.corrected_blocks, with a correction that cannot be applied as the file's InputError."""
    try:
        yield from detrend.corrected_blocks(*args, **kwargs)
    except ValueError as error:
        raise io.InputError(f"{stack_path}: {error}") from error


def nb_maps(
    stack,
    model,
    swaps,
    labels,
    samples,
    npy,
    tif,
    threshold_record,
    corrected_trace,
    variance_ddof,
    detector,
    threshold_setting,
    filter_method,
    convention,
    channel=None,
    axes=None,
):
    """The six N&B maps of a (channel of a) stack, bleach-corrected while streamed, and the corrected trace.

    Parameters
    ----------
    stack, model, swaps, labels : str
        The recording, its correction model and swap plan, the analysis mask.
    npy, tif : sequence of str
        Where each map of brightflow.nb.MAP_NAMES goes, in that order (.npy float64, .tif float32).
    threshold_record : str
        ``nb_threshold.json``.
    samples : str
        ``sample_quality.npy`` (brightflow.quality.SampleCounts): pixels with NaN or Inf samples are NaN in
        every map, as if excluded by a threshold.
    corrected_trace : str
        ``bleach_corrected_trace.json``: the per-frame mean of the corrected cell pixels (pixels with
        NaN or Inf samples left out), summed from the blocks this pass reads (brightflow.detrend.
        CorrectedTrace), for ``Bleach_correction.png``.
    variance_ddof : int
    detector : dict
        ``nb.detector`` (offset, s_factor, readout_variance).
    threshold_setting, filter_method, convention
        ``nb.threshold``, ``nb.filter``, ``nb.convention`` (brightflow.threshold.threshold_and_filter: ImageJ's
        histogram of the intensity map, or nandb's numbers).
    channel : int, optional
    axes : str, optional
    """
    frames, fitted, cells, plan = _open_corrected(stack, model, labels, swaps, channel, axes)
    finite = io.read_npy(samples)[2] == 0
    analysed = io.read_image(labels) > 0
    trace = detrend.CorrectedTrace(fitted, (analysed if analysed.any() else finite) & finite)
    moments = nb.StreamingMoments(frames.shape[1:])
    for block in _blocks(stack, frames, fitted, cells, plan):
        # per-frame factors are applied inside the accumulation: no corrected float64 copy
        moments.update(block.values, rows=block.rows, scale=block.scale)
        trace.update(block)
    io.write_json(corrected_trace, {"corrected_trace": trace.mean().tolist(), "cell_pixels": int(trace.cells.sum())})
    # the variance the bleach correction's smoother took with it is divided out (brightflow.detrend.dof)
    variance = moments.variance(variance_ddof) * fitted.variance_scale()[0]
    detector = nb.DetectorModel(**(detector or {}))
    maps = nb.number_and_brightness(moments.mean(), variance, detector)
    if not finite.all():
        maps = threshold.apply_threshold(maps, finite)
    try:
        maps, record = threshold.threshold_and_filter(
            maps, threshold_setting, filter_method, convention=convention, frames=frames.shape[0], detector=detector
        )
    except ValueError as error:
        raise io.InputError(f"{stack}: nb.threshold {threshold_setting!r} cannot be applied: {error}.") from error
    if record["value"] is not None:
        log.info(
            "nb.threshold %s: %.6g, %d of %d pixels kept",
            threshold_setting,
            record["value"],
            record["pixels_kept"],
            record["pixels"],
        )
    io.write_json(threshold_record, record)
    for name, npy_path, tif_path in zip(MAP_NAMES, npy, tif, strict=True):
        io.write_map(npy_path, tif_path, maps[name], frames.calibration)


def _window_moments(stack_path, frames, fitted, cells, plan, bounds, ddof):
    """Every window's per-pixel mean and variance of the corrected frames, in two io.FrameStore
    (temporary files): memory holds the windows still open, or one tile of rows, never every window."""
    means = io.FrameStore(len(bounds), frames.shape[1:], "mean", stack_path)
    variances = io.FrameStore(len(bounds), frames.shape[1:], "variance", stack_path)
    # each window's variance made unbiased after the bleach correction (brightflow.detrend.dof)
    scales = fitted.variance_scale(bounds)
    rows, moments = None, None
    for block in _blocks(stack_path, frames, fitted, cells, plan):
        if block.rows != rows:  # a new tile of rows (chunks of frames all cover every row)
            rows = block.rows
            moments = timeseries.WindowedMoments(block.values.shape[1:], bounds, ddof, keep=False)
        for index, mean, variance in moments.update(block.values, block.frames.start, scale=block.scale):
            means.write(index, mean, rows)
            variances.write(index, variance * scales[index], rows)
    return means, variances


def nb_timeseries(
    stack,
    model,
    swaps,
    labels,
    seg,
    intensity,
    maps,
    cells_table,
    figure,
    frames_per_set,
    overlap,
    variance_ddof,
    detector,
    gamma,
    filter_method,
    convention,
    channel=None,
    axes=None,
):
    """N&B in windows of frames (nandb's brightness_timeseries / number_timeseries), after bleach
    correction of the whole stack.

    Pixels excluded by nb.threshold (NaN in the whole-stack ``intensity`` map) are NaN in every
    window; nb.filter smooths each window's brightness and number maps as it smooths the
    whole-stack maps.

    Parameters
    ----------
    maps : sequence of str
        One multi-page TIFF per map (one page per window), named ``<map name>.tif``.
    cells_table, figure : str
        ``timeseries_values_in_roi.csv`` and ``Brightness_timeseries.png``.
    frames_per_set, overlap : int
        ``nb.timeseries``: frames per window, frames shared by consecutive windows.
    """
    import pandas as pd

    from .. import figures, stats

    frames, fitted, cells, plan = _open_corrected(stack, model, labels, swaps, channel, axes)
    bounds = timeseries.window_bounds(frames.shape[0], frames_per_set, overlap)
    if not bounds:
        raise io.InputError(
            f"{stack}: has {frames.shape[0]} frames, fewer than nb.timeseries.frames_per_set = {frames_per_set}: "
            "lower frames_per_set (or set it to null to switch the time series off)."
        )
    model_of_detector = nb.DetectorModel(**(detector or {}))
    # the whole-stack threshold (NaN pixels of the intensity map) applies to every window
    kept = np.isfinite(io.read_npy(intensity))
    analysed = io.read_image(labels)
    segmented = io.read_seg_masks(seg)
    cell_ids = np.unique(segmented[segmented > 0])
    means, variances = _window_moments(stack, frames, fitted, cells, plan, bounds, variance_ddof)
    # ImageJ's frame interval of the series: the time from one window to the next
    calibration = frames.calibration
    interval = calibration.frame_interval * (frames_per_set - overlap) if calibration.temporal else None
    writers = {
        Path(path).stem: io.MapSeriesWriter(path, len(bounds), frames.shape[1:], calibration, interval) for path in maps
    }
    tables = []
    try:
        # one window at a time: its maps are written as a page of each TIFF and give its table rows
        for index, window in enumerate(bounds):
            window_maps = timeseries.window_maps(
                means.read(index), variances.read(index), kept, filter_method, model_of_detector, convention=convention
            )
            for name, writer in writers.items():
                writer.write(index, window_maps[name])
            tables.append(
                stats.window_cell_table(window_maps, index, window, analysed, cell_ids, model_of_detector, gamma)
            )
    finally:
        for writer in writers.values():
            writer.close()
        means.close()
        variances.close()
    table = pd.concat(tables, ignore_index=True)
    table.to_csv(cells_table, index=False)
    title = (
        f"Per-cell brightness over time ({frames_per_set} frames per window, {overlap} shared, {len(bounds)} windows)"
    )
    ylabel = f"brightness ε, ratio of means\n({nb.brightness_unit(model_of_detector)})"
    io.save_figure(
        figures.cell_timeseries_figure(
            table, stats.BRIGHTNESS, ylabel=ylabel, title=title, frame_interval=calibration.frame_interval
        ),
        figure,
    )


def _cross_moments(stack_path, channels, variance_ddof):
    """Per-pixel means of both channels and their covariance, from the corrected frames.

    ``channels``: two (stack, model, cells, plan). Both stream the same blocks: tiles of rows when
    either correction needs them.
    """
    from .. import cross

    (first, model1, cells1, plan1), (second, model2, cells2, plan2) = channels
    tiles = model1.correction.tiles or model2.correction.tiles
    options = dict(tiles=tiles, copies=CROSS_TILE_COPIES, frame_budget=CROSS_FRAME_BUDGET)
    shape = first.shape[1:]
    mean1, mean2, covariance = (np.full(shape, np.nan) for _ in range(3))
    rows, moments = None, None

    # the covariance made unbiased after the two channels' bleach corrections (brightflow.detrend.dof)
    scale = detrend.cross_variance_scale(model1, model2)[0]

    def finish():
        mean1[rows], mean2[rows], covariance[rows] = (
            moments.first.mean(),
            moments.second.mean(),
            moments.covariance(variance_ddof) * scale,
        )

    for block1, block2 in zip(
        _blocks(stack_path, first, model1, cells1, plan1, **options),
        _blocks(stack_path, second, model2, cells2, plan2, **options),
        strict=True,
    ):
        if block1.rows != rows:  # a new tile of rows (chunks of frames all cover every row)
            if moments is not None:
                finish()
            rows = block1.rows
            moments = cross.StreamingCrossMoments(block1.values.shape[1:])
        moments.update(block1.corrected(), block2.corrected())
    finish()
    return mean1, mean2, covariance


def nb_cross(
    stack,
    models,
    swaps,
    intensities,
    labels,
    seg,
    npy,
    tif,
    png,
    table,
    channels,
    variance_ddof,
    detector,
    filter_method,
    convention,
    axes=None,
):
    """Cross-correlated N&B of two channels (nb.cross_channels) of a multi-channel stack.

    Both channels are corrected for bleaching with their own models and streamed together; the
    covariance is normalised by 1/(T - nb.variance_ddof) like the variance. Pixels excluded by
    nb.threshold in either channel (NaN in its intensity map) are NaN; nb.filter smooths the
    cross brightness and number maps as it smooths the single-channel ones.

    Parameters
    ----------
    models, swaps, intensities : sequence of two str
        Each channel's correction model, swap plan and intensity map.
    npy, tif, png : sequence of str
        Where each map of brightflow.cross.CROSS_MAP_NAMES goes, in that order.
    table : str
        ``cross_values_in_roi.csv``.
    channels : sequence of two int
        The channels (from 1).
    """
    from .. import cross, figures, stats

    streams = [
        _open_corrected(stack, model, labels, plan, channel, axes)
        for model, plan, channel in zip(models, swaps, channels, strict=True)
    ]
    mean1, mean2, covariance = _cross_moments(stack, streams, variance_ddof)
    detector = nb.DetectorModel(**(detector or {}))
    maps = cross.cross_maps(mean1, mean2, covariance, detector, detector)
    kept = np.isfinite(io.read_npy(intensities[0])) & np.isfinite(io.read_npy(intensities[1]))
    maps = threshold.exclude_and_filter(
        maps, kept, filter_method, ("cross_brightness", "cross_number"), convention=convention
    )
    analysed = io.read_image(labels)
    calibration = streams[0][0].calibration
    first, second = channels
    for name, npy_path, tif_path, png_path in zip(cross.CROSS_MAP_NAMES, npy, tif, png, strict=True):
        io.write_map(npy_path, tif_path, maps[name], calibration)
        title = f"{figures.MAP_TITLES[name]}, channels {first} and {second}"
        io.save_figure(
            figures.map_preview(maps[name], title, figures.map_label(name, detector), analysed, calibration), png_path
        )
    segmented = io.read_seg_masks(seg)
    cell_ids = np.unique(segmented[segmented > 0])
    stats.cross_cell_table(
        maps, np.where(kept, mean1, np.nan), np.where(kept, mean2, np.nan), analysed, cell_ids, detector, detector
    ).to_csv(table, index=False)
