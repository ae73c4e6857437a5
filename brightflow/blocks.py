"""How a stack is cut into blocks that fit a memory budget: chunks of frames, or tiles of pixel rows.

Every step that reads a recording reads it block by block, so its memory holds one block (and
the float64 working copies made from it), never the recording, however long it is. Chunks of
frames serve the per-frame work (the projection, the moment sums of per-frame corrections);
tiles of pixel rows across every frame serve the per-pixel bleach corrections, which need each
pixel's whole time series.
"""

from __future__ import annotations

import numpy as np

__all__ = ["frame_chunks", "row_tiles"]


def frame_chunks(frame_count, frame_shape, budget_bytes=64 * 2**20):
    """Frame ranges ``(start, stop)`` whose float64 copy fits ``budget_bytes``."""
    per_frame = int(np.prod(frame_shape)) * 8
    step = max(1, budget_bytes // max(per_frame, 1))
    return [(start, min(start + step, frame_count)) for start in range(0, frame_count, step)]


def row_tiles(frame_count, frame_shape, budget_bytes=256 * 2**20, copies=6):
    """Row ranges ``slice(start, stop)`` for reading tiles ``stack[:, rows, :]`` across all frames.

    A tile holds ``rows x width x frames`` values; ``copies`` float64 working
    copies of it (the correction's temporaries) fit ``budget_bytes``. At least
    one row per tile, so a very long recording of wide frames can exceed the
    budget by one row's worth.
    """
    height, width = int(frame_shape[0]), int(frame_shape[1])
    per_row = max(int(frame_count) * width * 8 * copies, 1)
    step = max(1, min(height, budget_bytes // per_row))
    return [slice(start, min(start + step, height)) for start in range(0, height, step)]
