"""N&B over time: brightness and number in consecutive or sliding windows of frames.

As in nandb's ``brightness_timeseries`` and ``number_timeseries`` (Nolan et al.
2017, *Bioinformatics* 33(21), 3508-3510), the stack is cut into windows of
``frames_per_set`` frames and the N&B equations (Digman et al. 2008, Biophys J
94:2320; Dalal et al. 2008 for analog detectors) are applied to each window.
Bleach correction is done on the whole stack first (the caller corrects the
frames before they reach :class:`WindowedMoments`), so each window sees the
same corrected data a whole-stack analysis sees.

Windows start every ``frames_per_set - overlap`` frames; a last window that
would run past the end of the stack is dropped (nandb discards those frames
too). ``overlap = 0`` gives consecutive windows (nandb's ``overlap = FALSE``:
frames 1-5, 6-10, ...); ``overlap = frames_per_set - 1`` slides by one frame
(nandb's ``overlap = TRUE``: 1-5, 2-6, ...).
"""

from __future__ import annotations

import numpy as np

from .nb import DetectorModel, StreamingMoments, number_and_brightness

__all__ = [
    "TIMESERIES_MAP_NAMES",
    "WindowedMoments",
    "stack_timeseries",
    "timeseries_maps",
    "window_bounds",
    "window_maps",
]

#: The maps the time series writes, each a multi-page TIFF (one page per window).
TIMESERIES_MAP_NAMES = ("apparent_brightness", "apparent_number", "brightness", "number")


def window_bounds(frames, frames_per_set, overlap=0):
    """The ``(start, stop)`` frame ranges of the windows (stop exclusive).

    Parameters
    ----------
    frames : int
        Frames in the stack.
    frames_per_set : int
        Frames per window (at least 2, for a variance).
    overlap : int
        Frames shared by consecutive windows, ``0 <= overlap < frames_per_set``.

    Returns
    -------
    list of (int, int)
        ``floor((frames - frames_per_set) / (frames_per_set - overlap)) + 1``
        windows (none if the stack is shorter than one window).
    """
    frames, frames_per_set, overlap = int(frames), int(frames_per_set), int(overlap)
    if frames_per_set < 2:
        raise ValueError(f"frames_per_set must be at least 2 (a variance needs 2 frames), got {frames_per_set}")
    if not 0 <= overlap < frames_per_set:
        raise ValueError(f"overlap must be in [0, frames_per_set - 1] = [0, {frames_per_set - 1}], got {overlap}")
    step = frames_per_set - overlap
    return [(start, start + frames_per_set) for start in range(0, frames - frames_per_set + 1, step)]


class WindowedMoments:
    """Per-pixel mean and variance of every window, fed with chunks of frames in order.

    Only the windows that overlap the frames seen so far hold accumulators
    (at most ``ceil(frames_per_set / step)`` at a time). :meth:`update` returns the
    windows it completed; with ``keep=True`` every window's mean and variance are also
    kept in ``means`` and ``variances`` ``(windows, y, x)``.

    Parameters
    ----------
    frame_shape : tuple of int
        ``(y, x)``.
    bounds : list of (int, int)
        The windows, from :func:`window_bounds`.
    ddof : int
        Variance normalisation (``nb.variance_ddof``).
    keep : bool
        Keep every window's maps (memory grows with the number of windows); ``False`` when
        the caller stores each completed window itself.
    """

    def __init__(self, frame_shape, bounds, ddof=1, keep=True):
        self.frame_shape = tuple(frame_shape)
        self.bounds = list(bounds)
        self.ddof = ddof
        self._open = {}
        self._next_frame = 0
        count = len(self.bounds)
        self.keep = bool(keep)
        if self.keep:
            self.means = np.full((count,) + self.frame_shape, np.nan)
            self.variances = np.full((count,) + self.frame_shape, np.nan)
        self._done = np.zeros(count, dtype=bool)

    def update(self, frames, start, scale=None):
        """Add frames ``(t, y, x)`` that begin at frame ``start`` (chunks must come in order).

        ``scale``: optional per-frame factors ``(t,)`` multiplied in (a per-frame bleach
        correction, brightflow.detrend.CorrectionModel.frame_scale), as in brightflow.nb.StreamingMoments.update.

        Returns
        -------
        list of (int, ndarray, ndarray)
            ``(window index, mean, variance)`` of each window these frames completed, in
            order. With ``keep=False`` nothing else holds them: memory is then that of the
            windows still open (about ``frames_per_set / step`` of them), not of every window.
        """
        frames = np.asarray(frames)
        if start != self._next_frame:
            raise ValueError(f"chunks must come in order: expected frame {self._next_frame}, got {start}")
        stop = start + frames.shape[0]
        completed = []
        for index, (first, last) in enumerate(self.bounds):
            if self._done[index] or last <= start or first >= stop:
                continue
            moments = self._open.setdefault(index, StreamingMoments(self.frame_shape))
            window = slice(max(first, start) - start, min(last, stop) - start)
            moments.update(frames[window], scale=None if scale is None else scale[window])
            if last <= stop:
                mean, variance = moments.mean(), moments.variance(self.ddof)
                if self.keep:
                    self.means[index] = mean
                    self.variances[index] = variance
                completed.append((index, mean, variance))
                self._done[index] = True
                del self._open[index]
        self._next_frame = stop
        return completed

    @property
    def complete(self):
        return bool(self._done.all())


def timeseries_maps(means, variances, detector=DetectorModel()):
    """The six N&B maps of every window: ``{name: array (windows, y, x)}``."""
    return number_and_brightness(means, variances, detector)


def window_maps(mean, variance, kept, filter_method="none", detector=DetectorModel(), *, convention="brightflow"):
    """The six N&B maps of one window as the whole-stack maps are made: NaN outside ``kept``
    (the whole-stack ``nb.threshold``), then ``nb.filter`` on brightness and number
    (brightflow.threshold.exclude_and_filter, in ``convention``: ``"nandb"`` as nandb's
    brightness_timeseries, whose windows are filtered with excluded pixels filled and
    ``x / 0`` infinite)."""
    from .threshold import exclude_and_filter

    return exclude_and_filter(
        number_and_brightness(mean, variance, detector), kept, filter_method, convention=convention, detector=detector
    )


def stack_timeseries(stack, frames_per_set, overlap=0, ddof=1, detector=DetectorModel(), chunk=64):
    """N&B maps per window of a (corrected) stack ``(t, y, x)`` or an iterable of ``(start, frames)``.

    Returns
    -------
    maps : dict of name -> ndarray (windows, y, x)
    bounds : list of (int, int)
    """
    stack = np.asarray(stack)
    if stack.ndim != 3:
        raise ValueError(f"stack must be 3D (t, y, x), got shape {stack.shape}")
    bounds = window_bounds(stack.shape[0], frames_per_set, overlap)
    if not bounds:
        raise ValueError(f"the stack has {stack.shape[0]} frames, fewer than frames_per_set = {frames_per_set}")
    moments = WindowedMoments(stack.shape[1:], bounds, ddof)
    for start in range(0, stack.shape[0], chunk):
        moments.update(stack[start : start + chunk], start)
    return timeseries_maps(moments.means, moments.variances, detector), bounds
