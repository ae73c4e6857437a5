"""File input and output of brightflow: the only part of the package that reads or writes files.

- :mod:`~brightflow.io.stacks`: recordings read block by block (:class:`Stack`), their axes,
  channels, calibration and checksum;
- :mod:`~brightflow.io.sources`: the formats read, the series of a file, and the source of an
  experiment (:class:`StackSource`: path, series, the content the run started from);
- :mod:`~brightflow.io.vendor`: Zeiss CZI (pylibCZIrw) and OME-Zarr (zarr) read plane by plane;
- :mod:`~brightflow.io.samples`: the sample table from a folder or a sample sheet, and the name checks;
- :mod:`~brightflow.io.stores`: temporary frame stores and page-by-page TIFF writers;
- :mod:`~brightflow.io.files`: maps, images and label masks as TIFF, ``_seg.npy``, ImageJ ROI
  sets, ``.npy``, JSON and figures;
- :mod:`~brightflow.io.job`: running a step as a workflow job (log, threads, clear errors);
- :mod:`~brightflow.io.digests`: input files' SHA-256, computed once per content (content-aware reruns);
- :mod:`~brightflow.io.lock`: one run at a time per output folder;
- :mod:`~brightflow.io.summary`: what a run did, said at its end (the closing summary; which experiments
  failed, and why, from the logs);
- :class:`InputError`: a file or setting a user can fix; its message names the file, the
  problem and what to do.

The science modules never read or write files; the steps (brightflow.steps) use these.
"""

from . import lock, samples, sources
from .digests import content_digest
from .errors import InputError
from .files import (
    PNG_COMPRESS_LEVEL,
    imagej_options,
    read_correction_model,
    read_image,
    read_json,
    read_label_file,
    read_maps,
    read_npy,
    read_seg_masks,
    read_seg_npy,
    read_swap_plan,
    save_figure,
    write_image,
    write_imagej_rois,
    write_json,
    write_labels,
    write_map,
    write_npy,
    write_seg_npy,
    write_stack,
    write_text,
)
from .job import run
from .sources import StackSource, file_kind, list_series, source
from .stacks import (
    Stack,
    channel_count,
    check_stack_shape,
    frame_size,
    open_channel,
    open_stack,
    read_calibration,
    sha256,
    stack_axes,
    stack_shape,
    whole_stack_megabytes,
)
from .stores import FrameStore, MapSeriesWriter, temporary_file_error
from .summary import (
    check_report_matches_run,
    failure_summary,
    run_summary,
    write_run_record,
    write_run_summary,
)
from .vendor import folder_bytes as recording_bytes

__all__ = [
    "PNG_COMPRESS_LEVEL",
    "StackSource",
    "file_kind",
    "list_series",
    "recording_bytes",
    "samples",
    "source",
    "sources",
    "FrameStore",
    "InputError",
    "MapSeriesWriter",
    "Stack",
    "channel_count",
    "check_stack_shape",
    "frame_size",
    "imagej_options",
    "open_channel",
    "open_stack",
    "read_calibration",
    "read_correction_model",
    "read_image",
    "read_json",
    "read_label_file",
    "read_maps",
    "read_npy",
    "read_seg_masks",
    "read_seg_npy",
    "read_swap_plan",
    "run",
    "save_figure",
    "sha256",
    "stack_axes",
    "stack_shape",
    "temporary_file_error",
    "whole_stack_megabytes",
    "write_image",
    "write_imagej_rois",
    "write_json",
    "write_labels",
    "write_map",
    "write_npy",
    "write_seg_npy",
    "write_stack",
    "content_digest",
    "failure_summary",
    "run_summary",
    "check_report_matches_run",
    "write_run_record",
    "write_run_summary",
    "lock",
    "write_text",
]
