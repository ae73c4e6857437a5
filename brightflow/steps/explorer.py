"""Rule brightness_explorer: the interactive brightness-intensity page of a unit (brightflow.explorer)."""

from __future__ import annotations

from .. import io, nb
from ..nb import MAP_NAMES

# Bokeh (brightflow.explorer) and pandas are imported by the call that uses them

__all__ = ["explorer_page"]


def explorer_page(maps, labels, image, cells, output, unit, detector):
    """``brightness_explorer.html``: the interactive brightness-intensity page (brightflow.explorer).

    Parameters
    ----------
    maps : sequence of str
        The maps' .npy files, in the order of brightflow.nb.MAP_NAMES.
    labels, image : str
        The analysis mask and the projection (whose calibration gives the image's axes).
    cells : str
        ``average_values_in_roi.csv``: each cell's ratio-of-means brightness and number for the page's
        list of cells (cells without a value are left out of the list).
    unit : str
        The experiment (or ``experiment/ch<c>``): the page's title and the download's file name.
    """
    import pandas as pd

    from .. import explorer, stats

    columns = (stats.BRIGHTNESS, "Number (ratio of means)")  # what the page's list of cells shows
    table = pd.read_csv(cells).dropna(subset=list(columns))
    cell_values = {int(row["Cell ID"]): tuple(float(row[column]) for column in columns) for _, row in table.iterrows()}
    page = explorer.explorer_html(
        io.read_maps(maps, MAP_NAMES),
        io.read_image(labels),
        calibration=io.read_calibration(image),
        detector=nb.DetectorModel(**detector),
        title=unit,
        file_name=f"brightness_selection_{unit.replace('/', '_')}.csv",
        cell_values=cell_values,
    )
    io.write_text(output, page)
