"""Rule figures: the map previews, the brightness-intensity plot and the bleach correction figure."""

from __future__ import annotations

from .. import io, nb
from ..nb import MAP_NAMES

# matplotlib is imported by the call that draws (brightflow.figures): the module loads fast

__all__ = ["map_figures"]


def map_figures(maps, labels, image, model, corrected_trace, previews, scatter, bleach, detector):
    """A preview PNG per map (brightflow.figures.map_preview), the brightness-intensity plot and the
    bleach-correction figure: every figure of a unit, in one process.

    Parameters
    ----------
    maps, previews : sequence of str
        The maps' .npy files and their PNGs, in the order of brightflow.nb.MAP_NAMES.
    labels : str
        The analysis mask: the cell pixels set each map's colour range and the plot's points.
    image : str
        The projection, which carries the recording's pixel size (axes and scale bars).
    model, corrected_trace : str
        The bleach-correction model (its trace, trend and parameter) and the corrected trace the N&B
        step summed (``bleach_corrected_trace.json``).
    scatter, bleach : str
        ``brightness_x_intensity.png`` and ``Bleach_correction.png``.
    detector : dict
        ``nb.detector``: the reference line of immobile molecules is at B = s_factor.
    """
    from .. import detrend, figures

    values = io.read_maps(maps, MAP_NAMES)
    analysed = io.read_image(labels)
    cells = analysed > 0
    calibration = io.read_calibration(image)
    for name, path in zip(MAP_NAMES, previews, strict=True):
        # each cell outlined and numbered on every preview, so a split is visible
        preview = figures.map_preview(
            values[name], figures.MAP_TITLES[name], figures.map_label(name, detector), analysed, calibration
        )
        io.save_figure(preview, path)
    reference = nb.DetectorModel(**detector).s_factor
    drawing = figures.brightness_intensity_figure(
        values["intensity"][cells], values["apparent_brightness"][cells], reference=reference
    )
    io.save_figure(drawing, scatter)
    fitted = detrend.CorrectionModel.from_json(io.read_json(model))
    drawing = figures.bleach_correction_figure(
        fitted.trace,
        io.read_json(corrected_trace)["corrected_trace"],
        fitted.trend,
        fitted.figure_labels(),
        calibration.frame_interval,
    )
    io.save_figure(drawing, bleach)
