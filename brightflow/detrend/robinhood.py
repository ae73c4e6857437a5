"""Robin Hood detrending: counts moved between frames, each count staying in its pixel.

Counts are moved from frames brighter than the mean to frames dimmer than it (Nolan et al.
2018; detrendr's ``img_detrend_robinhood``). Pixel sums and integer counts are preserved
exactly. It works on the cell pixels only.

Robin Hood needs whole-frame random choices (which frames give, which take,
which pixels). To keep the result independent of the tiling and the memory
bounded, the choices are split in two levels with the same probability law as
one global draw:

1. The bleach-correction rule, which knows the per-frame, per-row sums of the
   cell pixels, makes the *swap plan* (:func:`robinhood_plan`): how many counts
   each pixel row gives up in each frame and how many it receives in each frame
   (an int32 array ``(rows, 2, frames)``, stored beside the JSON model as
   ``bleach_correction_swaps.npy``). Drawing the rows of the lost counts with a
   multivariate hypergeometric law on the row sums, then the pixels within a
   row the same way on the pixel counts, is exactly the law of drawing pixels
   in proportion to their counts over the whole frame; splitting the taking
   frames between rows the same way is exactly a uniformly random matching of
   lost counts to taking frames.
2. The N&B rule applies the plan row by row (:func:`robinhood_apply`), with a
   random generator seeded by ``(seed, row)``, so any tile size gives
   bit-identical results.
"""

from __future__ import annotations

import numpy as np

from .simulation import mean_brightness, simulate_immobile

__all__ = ["robinhood_apply", "robinhood_corrected_sums", "robinhood_frame_budget", "robinhood_plan"]

# Separate random streams, so that each random step has its own reproducible generator (the
# automatic parameter's are in brightflow.detrend.auto).
_STREAM_PLAN, _STREAM_ROW = 11, 12
_HYPERGEOMETRIC_LIMIT = 10**9


def _draw_without_replacement(colours, count, rng):
    """Multivariate hypergeometric draw of ``count`` units from boxes holding ``colours`` units.

    Exact; above numpy's limit (10^9 units in a box or in the rest) a box's
    share falls back to a binomial draw clipped to what is feasible, which
    differs from the hypergeometric law by less than count / total.
    """
    colours = np.asarray(colours, dtype=np.int64)
    count = int(count)
    if count == 0:
        return np.zeros(colours.shape, dtype=np.int64)
    total = int(colours.sum())
    if count > total:
        raise ValueError(f"cannot draw {count} units from {total}")
    if total < _HYPERGEOMETRIC_LIMIT:
        return rng.multivariate_hypergeometric(colours, count).astype(np.int64)
    out = np.zeros(colours.shape, dtype=np.int64)
    remaining_total, remaining = total, count
    for index in np.flatnonzero(colours):
        if remaining == 0:
            break
        good = int(colours[index])
        bad = remaining_total - good
        if good < _HYPERGEOMETRIC_LIMIT and bad < _HYPERGEOMETRIC_LIMIT:
            taken = int(rng.hypergeometric(good, bad, remaining)) if bad else remaining
        else:
            taken = int(rng.binomial(remaining, good / remaining_total))
            taken = min(max(taken, remaining - bad), good, remaining)
        out[index] = taken
        remaining -= taken
        remaining_total -= good
    return out


def _round_with_leftovers(values, rng):
    """Integer parts plus ``floor(sum of fractions)`` extra units, given to entries in
    proportion to their fraction (at most one each), as detrendr does."""
    base = np.floor(values)
    fraction = values - base
    extra = int(np.floor(fraction.sum() + 1e-9))
    base = base.astype(np.int64)
    if extra > 0:
        chosen = rng.choice(values.size, size=extra, replace=False, p=fraction / fraction.sum())
        base[chosen] += 1
    return base


def robinhood_frame_budget(frame_sums, rng):
    """Counts each frame can give and take: ``w_t = S_t - mean(S)``.

    Returns ``(give, take)`` integer arrays: ``give`` the positive part of
    ``w`` and ``take`` the positive part of ``-w``, each rounded with
    :func:`_round_with_leftovers` (Nolan et al. 2018; detrendr).
    """
    frame_sums = np.asarray(frame_sums, dtype=np.float64)
    weights = frame_sums - frame_sums.mean()
    return (
        _round_with_leftovers(np.maximum(weights, 0.0), rng),
        _round_with_leftovers(np.maximum(-weights, 0.0), rng),
    )


def robinhood_plan(sums, swaps, seed):
    """The Robin Hood swap plan from the per-frame, per-row sums of the cell pixels.

    A swap removes one count from a pixel of a giving frame (a frame whose sum
    of cell pixels is above the mean), the pixel chosen in proportion to its
    count, and adds it to the same pixel in a taking frame (below the mean).
    This function draws, for ``swaps`` swaps, which frames give and take
    (without replacement from their budgets, :func:`robinhood_frame_budget`)
    and how many of the counts given and taken in each frame fall in each
    pixel row; :func:`robinhood_apply` then chooses the pixels within a row.
    The two levels together have the law of choosing pixels over whole frames
    (see the module docstring).

    Parameters
    ----------
    sums : ndarray of int, shape (t, y)
        :func:`row_sums` of the stack on the cell pixels.
    swaps : int
        Number of swaps wanted; at most the smaller of the total give and take
        budgets is done.
    seed : int

    Returns
    -------
    plan : ndarray of int32, shape (y, 2, t)
        ``plan[r, 0, t]`` counts row ``r`` gives up in frame ``t``,
        ``plan[r, 1, t]`` counts it receives in frame ``t``. Each row gives as
        many as it receives.
    info : dict
        ``swaps_done`` and ``max_swaps``.
    """
    sums = np.asarray(sums)
    if not np.issubdtype(sums.dtype, np.integer) or (sums < 0).any():
        raise ValueError("Robin Hood detrending moves whole counts: it needs non-negative integer pixel values")
    sums = sums.astype(np.int64)
    frames, rows = sums.shape
    rng = np.random.default_rng([int(seed), _STREAM_PLAN])
    give, take = robinhood_frame_budget(sums.sum(axis=1), rng)
    max_swaps = int(min(give.sum(), take.sum()))
    done = int(min(max(int(swaps), 0), max_swaps))
    giving = _draw_without_replacement(give, done, rng)
    taking = _draw_without_replacement(take, done, rng)
    plan = np.zeros((rows, 2, frames), dtype=np.int64)
    for frame in np.flatnonzero(giving):
        plan[:, 0, frame] = _draw_without_replacement(sums[frame], giving[frame], rng)
    remaining = taking.copy()
    for row in np.flatnonzero(plan[:, 0].sum(axis=1)):
        received = _draw_without_replacement(remaining, plan[row, 0].sum(), rng)
        plan[row, 1] = received
        remaining -= received
    if plan.max(initial=0) > np.iinfo(np.int32).max:
        raise ValueError("a row gives or takes more than 2^31 counts in one frame")
    return plan.astype(np.int32), {"swaps_done": done, "max_swaps": max_swaps}


def robinhood_apply(tile, plan_rows, cells_rows, first_row, seed):
    """Apply the swap plan to a tile of pixel rows across all frames.

    Parameters
    ----------
    tile : ndarray of int, shape (t, r, x)
        Rows ``first_row .. first_row + r - 1`` of the stack, every frame.
    plan_rows : ndarray, shape (r, 2, t)
        Those rows of :func:`robinhood_plan`'s plan.
    cells_rows : ndarray of bool, shape (r, x)
        Those rows of the cell mask (the pixels the swaps are drawn among).
    first_row : int
    seed : int
        The seed of the plan. Each row draws from its own generator seeded by
        ``(seed, row)``, so the result does not depend on the tiling.

    Returns
    -------
    ndarray of int64, shape (t, r, x)
        Each pixel keeps its sum over frames exactly; values stay non-negative
        integers. In a giving frame the row's counts to give are taken from its
        cell pixels in proportion to their counts (sequential hypergeometric
        draws); the counts a row gave are then matched to its taking frames in
        a uniformly random order and each is added back to the pixel it came
        from.
    """
    tile = np.asarray(tile)
    if not np.issubdtype(tile.dtype, np.integer):
        raise ValueError(f"Robin Hood needs integer counts, got {tile.dtype}")
    out = tile.astype(np.int64, copy=True)
    frames = out.shape[0]
    plan_rows = np.asarray(plan_rows, dtype=np.int64)
    cells_rows = np.asarray(cells_rows, dtype=bool)
    if plan_rows.shape != (out.shape[1], 2, frames) or cells_rows.shape != out.shape[1:]:
        raise ValueError(
            f"the swap plan {plan_rows.shape} and cell rows {cells_rows.shape} do not fit the tile {out.shape}"
        )
    for index in range(out.shape[1]):
        loss, gain = plan_rows[index]
        total = int(loss.sum())
        if total == 0:
            continue
        if int(gain.sum()) != total:
            raise ValueError(f"row {first_row + index}: the swap plan gives {total} counts but takes {gain.sum()}")
        rng = np.random.default_rng([int(seed), _STREAM_ROW, first_row + index])
        columns = np.flatnonzero(cells_rows[index])
        giving_frames = np.flatnonzero(loss)
        counts = out[giving_frames, index][:, columns]  # (giving frames, cell pixels)
        remaining_total = counts.sum(axis=1)
        remaining = loss[giving_frames].copy()
        if (remaining > remaining_total).any():
            raise ValueError(
                f"row {first_row + index}: the swap plan takes more counts than the row holds; "
                "the stack or the mask changed since the plan was made"
            )
        taken = np.zeros_like(counts)
        for column in range(columns.size):
            good = counts[:, column]
            bad = remaining_total - good
            draw = rng.hypergeometric(np.maximum(good, 0), bad, remaining) if remaining.any() else 0
            taken[:, column] = draw
            remaining -= draw
            remaining_total = bad
            if not remaining.any():
                break
        lost_pixels = np.repeat(np.arange(columns.size), taken.sum(axis=0))
        rng.shuffle(lost_pixels)
        receiving_frames = np.repeat(np.arange(frames), gain)
        returned = np.bincount(receiving_frames * columns.size + lost_pixels, minlength=frames * columns.size).reshape(
            frames, columns.size
        )
        row = out[:, index, :]
        row_cells = row[:, columns]
        row_cells[giving_frames] -= taken
        row_cells += returned
        row[:, columns] = row_cells
    return out


def robinhood_corrected_sums(sums, plan):
    """Per-frame sums of the cell pixels after the swaps, from :func:`row_sums` and the plan."""
    plan = np.asarray(plan, dtype=np.int64)
    return np.asarray(sums).sum(axis=1) - plan[:, 0].sum(axis=0) + plan[:, 1].sum(axis=0)


class _SwapSequence:
    """Nested Robin Hood swaps on a simulation ``(t, pixels)``: the first ``n`` swaps of one
    random sequence, so ``n`` swaps always include the first ``n - 1`` (for the search).

    The first ``n`` swaps have the law of :func:`robinhood_plan` + :func:`robinhood_apply`
    with ``n`` swaps: giving and taking frames are prefixes of uniform random orders of
    the frames' budgets (multivariate hypergeometric), pixels of a giving frame are taken
    in a uniform random order of its counts.
    """

    def __init__(self, simulation, rng):
        self.simulation = np.asarray(simulation, dtype=np.int64)
        frames, pixels = self.simulation.shape
        give, take = robinhood_frame_budget(self.simulation.sum(axis=1), rng)
        self.max_swaps = int(min(give.sum(), take.sum()))
        giving = rng.permutation(np.repeat(np.arange(frames), give))[: self.max_swaps]
        taking = rng.permutation(np.repeat(np.arange(frames), take))[: self.max_swaps]
        pixel = np.empty(self.max_swaps, dtype=np.int64)
        order = np.argsort(giving, kind="stable")
        starts = np.searchsorted(giving[order], np.arange(frames + 1))
        for frame in range(frames):
            positions = order[starts[frame] : starts[frame + 1]]
            if positions.size:
                per_pixel = _draw_without_replacement(self.simulation[frame], positions.size, rng)
                pixel[positions] = rng.permutation(np.repeat(np.arange(pixels), per_pixel))
        self.lose = giving * pixels + pixel
        self.gain = taking * pixels + pixel
        self.pixel_means = self.simulation.mean(axis=0)

    def mean_brightness(self, swaps):
        size = self.simulation.size
        delta = np.bincount(self.gain[:swaps], minlength=size) - np.bincount(self.lose[:swaps], minlength=size)
        swapped = self.simulation + delta.reshape(self.simulation.shape)
        return mean_brightness(swapped, self.pixel_means)


def _best_swaps_naive(trace, pixels, rng):
    """Swaps at which a simulation with this trace reaches mean B = 1 (detrendr's best_swaps_naive)."""
    simulation = simulate_immobile(trace, pixels, rng)
    start = mean_brightness(simulation)
    if not start > 1:
        return 0
    sequence = _SwapSequence(simulation, rng)
    if sequence.max_swaps == 0:
        return 0
    fewer, fewer_b = 0, start
    more = min(1, sequence.max_swaps)
    more_b = sequence.mean_brightness(more)
    while more_b > 1 and more < sequence.max_swaps:
        fewer, fewer_b = more, more_b
        more = min(2 * more, sequence.max_swaps)
        more_b = sequence.mean_brightness(more)
    if more_b > 1:
        return sequence.max_swaps
    while more - fewer > max(1, more // 1000):
        middle = (fewer + more) // 2
        middle_b = sequence.mean_brightness(middle)
        if middle_b > 1:
            fewer, fewer_b = middle, middle_b
        else:
            more, more_b = middle, middle_b
    return more if abs(more_b - 1) < abs(fewer_b - 1) else fewer
