"""Which axis of a stack is time, which is the channel: from metadata or the user's ``input.axes``.

A recording reaches brightflow as an array whose axes are named by the file's
metadata when it has any (ImageJ hyperstacks: ``TCYX`` / ``TZCYX``, OME-TIFF:
``TCYX`` ...; tifffile reports them as ``series.axes``) and otherwise only by
position: tifffile then calls the page sequence ``I`` or ``Q`` and a trailing
samples axis ``S`` (channels stored as samples, as in nandb's ``two_ch.tif``,
``TYXS``). :func:`resolve_axes` decides the axes of time, channel, y and x, or
says clearly why it cannot; :func:`to_tcyx` brings the array to ``(t, c, y, x)``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["AxesError", "channel_axis_letters", "resolve_axes", "to_tcyx"]

#: Letters that denote a channel axis (ImageJ/OME ``C``; ``S`` samples per pixel).
channel_axis_letters = ("C", "S")

#: Letters tifffile uses for axes it cannot name (page sequence, unknown).
_UNNAMED = set("IQ")


class AxesError(ValueError):
    """The axes of a stack cannot be determined or are not a time series."""


def _check_axes_string(axes, shape, source):
    axes = str(axes).upper()
    if len(axes) != len(shape):
        raise AxesError(
            f"{source} axes {axes!r} have {len(axes)} letters but the stack has {len(shape)} dimensions {tuple(shape)}"
        )
    if len(set(axes)) != len(axes):
        raise AxesError(f"{source} axes {axes!r} repeat a letter")
    unknown = set(axes) - set("TCSYXZ")
    if unknown:
        raise AxesError(f"{source} axes {axes!r} use unknown letter(s) {sorted(unknown)}; use T, C (or S), Y, X")
    return axes


def resolve_axes(shape, metadata_axes=None, configured_axes=None, strict=False):
    """The axes string of a stack, one letter per dimension, from ``T``, ``C``/``S``, ``Y``, ``X``.

    Parameters
    ----------
    shape : tuple of int
        The array's shape.
    metadata_axes : str or None
        Axes named by the file (tifffile's ``series.axes``). Letters ``I``/``Q``
        (unnamed) mean the file does not say.
    configured_axes : str or None
        The user's ``input.axes`` (e.g. ``"TYXS"``), used when the metadata does
        not name a time axis. The metadata is trusted when it names every axis
        and one of them is ``T``; ``input.axes`` must then agree with it. A 3D
        stack without a trusted time axis is ``TYX`` (a plain multi-page TIFF,
        or Fiji's default "slices" for a time series).
    strict : bool
        The metadata is the file's word even when it names no time axis (OME): a ``ZYX``
        stack is then a z-stack, refused, not read as time. ImageJ's metadata is not strict in
        that one case, because Fiji calls the planes of every stack whose properties were never
        set "slices".

    Returns
    -------
    str
        E.g. ``"TYX"``, ``"TCYX"``, ``"TYXS"``. Singleton axes other than Y/X
        (``Z`` of size 1) are allowed and dropped by :func:`to_tcyx`.

    Raises
    ------
    AxesError
        The axes cannot be determined, or the stack is not a time series of 2D
        frames (no time axis, a Z axis longer than 1, more than one channel axis).
    """
    shape = tuple(int(s) for s in shape)
    named = None
    if metadata_axes:
        metadata_axes = str(metadata_axes).upper()
        # trusted only when the file names every axis and one of them is time: Fiji saves a plain
        # time series as "slices" (ZYX) or "images" (CYX/IYX) unless the user set its properties
        complete = len(metadata_axes) == len(shape) and not (set(metadata_axes) & _UNNAMED)
        if complete and ("T" in metadata_axes or strict):
            named = _check_axes_string(metadata_axes, shape, "the file's metadata")
    configured = _check_axes_string(configured_axes, shape, "input.axes") if configured_axes else None
    if named and configured and named != configured:
        raise AxesError(
            f"the file's metadata names its axes {named!r} but input.axes is {configured!r}: "
            "remove input.axes or make it agree"
        )
    axes = named or configured
    if axes is None:
        if len(shape) == 3:
            axes = "TYX"  # a plain multi-page TIFF: the page sequence is time
        else:
            raise AxesError(
                f"a stack of shape {shape} (axes {metadata_axes or 'unknown'!r} in the file) has no "
                "time axis brightflow can trust: set input.axes in the config, e.g. TYXS for channels "
                "stored as samples or TCYX for an ImageJ hyperstack whose frames are time"
            )
    planes = shape[axes.index("Z")] if "Z" in axes else 1
    if planes > 1 and ("T" not in axes or shape[axes.index("T")] == 1):
        raise AxesError(
            f"is a z-stack: its metadata names the axes {axes!r}, {planes} planes in Z and no time series. N&B "
            "analyses one plane over time: record (or export) a time series of one plane"
        )
    if "T" not in axes:
        raise AxesError(f"axes {axes!r} have no time axis T: N&B needs a time series")
    if "Y" not in axes or "X" not in axes:
        raise AxesError(f"axes {axes!r} lack Y or X")
    channels = [letter for letter in axes if letter in channel_axis_letters]
    if len(channels) > 1:
        big = [letter for letter in channels if shape[axes.index(letter)] > 1]
        if len(big) > 1:
            raise AxesError(f"axes {axes!r} have more than one channel axis: {channels}")
    if "Z" in axes and shape[axes.index("Z")] > 1:
        raise AxesError(
            f"axes {axes!r} have a Z axis of {shape[axes.index('Z')]} planes; brightflow analyses one "
            "plane over time: save each plane as its own stack"
        )
    return axes


def to_tcyx(array, axes):
    """A view of ``array`` as ``(t, c, y, x)`` (``c = 1`` without a channel axis)."""
    array = np.asarray(array) if not hasattr(array, "transpose") else array
    axes = str(axes).upper()
    if len(axes) != array.ndim:
        raise AxesError(f"axes {axes!r} do not fit an array of {array.ndim} dimensions")
    # drop singleton axes that are neither T, Y, X nor the channel axis
    channel_letters = [a for a in axes if a in channel_axis_letters and array.shape[axes.index(a)] > 1]
    channel = channel_letters[0] if channel_letters else None
    index = []
    kept = ""
    for position, letter in enumerate(axes):
        if letter in "TYX" or letter == channel:
            index.append(slice(None))
            kept += letter
        else:
            if array.shape[position] != 1:
                raise AxesError(f"axis {letter!r} of size {array.shape[position]} cannot be dropped")
            index.append(0)
    array = array[tuple(index)]
    if channel is None:
        array = array[..., None]
        kept += "C"
        channel = "C"
    order = [kept.index("T"), kept.index(channel), kept.index("Y"), kept.index("X")]
    return array.transpose(order)
