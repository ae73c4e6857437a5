"""Cell segmentation of the mean projection, and what is done to a label mask.

Label images are integer arrays: 0 is background, each cell has its own
positive label. Functions here are pure (arrays in, arrays out); the cellpose
adapter lives in :mod:`brightflow.cellpose_adapter` so that importing this
module never imports torch.
"""

from __future__ import annotations

import numpy as np

# scipy and scikit-image are imported in the functions that use them: several rules use only
# the light functions here (checksums, _seg.npy dicts), and their start-up time counts per job

__all__ = [
    "PEAK_DISTANCE_DIAMETERS",
    "resolve_peak_distance",
    "truth_of_cells",
    "erode_labels",
    "masks_checksum",
    "masks_from_seg_dict",
    "match_scores",
    "median_diameter",
    "outline_polygons",
    "outlines",
    "outlines_text",
    "pixel_edge_polygons",
    "relabel_sequential",
    "seg_npy_dict",
    "threshold_segmentation",
]

#: The cellpose GUI's starting cell diameter in pixels (``MainW.diameter`` in cellpose 3.1.1): the
#: ``est_diam`` of a ``_seg.npy`` without cells. Not 0: the GUI divides by the diameter (its
#: "upsample" restore) and draws its scale disk from it.
GUI_DEFAULT_DIAMETER = 30.0

#: The automatic thresholds: scikit-image's ``skimage.filters.threshold_<name>``.
THRESHOLD_METHODS = {
    "otsu": "threshold_otsu",
    "li": "threshold_li",
    "triangle": "threshold_triangle",
    "yen": "threshold_yen",
    "mean": "threshold_mean",
}


def relabel_sequential(labels):
    """Labels renumbered 1..k in increasing order of the old labels, as uint16 (uint32 above 65535 cells,
    as cellpose stores such masks)."""
    from skimage import segmentation

    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"a label mask must be 2D (y, x), got shape {labels.shape}")
    if labels.size and labels.min() < 0:
        raise ValueError("a label mask cannot hold negative labels")
    relabelled, _, _ = segmentation.relabel_sequential(labels.astype(np.int64))
    top = int(relabelled.max()) if relabelled.size else 0
    return relabelled.astype(np.uint16 if top <= np.iinfo(np.uint16).max else np.uint32)


#: Seeds of the classical segmentation's watershed (two cell centres) at least this many expected cell
#: diameters apart (``segmentation.threshold.min_peak_distance: auto``).
PEAK_DISTANCE_DIAMETERS = 0.8


def resolve_peak_distance(setting, diameter):
    """``segmentation.threshold.min_peak_distance``: a number of pixels as it is, or ``auto``:
    :data:`PEAK_DISTANCE_DIAMETERS` x the expected cell diameter (``segmentation.diameter``).

    The rule: two touching cells of the expected size have their centres about one diameter apart,
    so seeds closer than 0.8 diameters belong to one cell (an irregular cell, or one cut by the image
    border, has several maxima of its distance transform, which would otherwise each seed a "cell"),
    while touching cells squeezed by up to a fifth are still told apart. ValueError when ``auto`` has
    no diameter to work from.
    """
    if setting != "auto":
        return int(setting)
    if not diameter or diameter <= 0:
        raise ValueError(
            "segmentation.threshold.min_peak_distance is auto, which is 0.8 x segmentation.diameter, but "
            f"segmentation.diameter is {diameter!r}: set segmentation.diameter to the typical cell diameter in "
            "pixels, or min_peak_distance to a number of pixels"
        )
    return max(1, int(round(PEAK_DISTANCE_DIAMETERS * float(diameter))))


def threshold_segmentation(
    image,
    smoothing_sigma=1.0,
    threshold_method="otsu",
    min_cell_area=100,
    min_peak_distance=10,
):
    """Segment cells by an automatic threshold and a distance-transform watershed.

    Steps: Gaussian smoothing of the projection; a global automatic threshold
    (scikit-image's ``threshold_<method>``, e.g. Otsu 1979, IEEE Trans Syst
    Man Cybern 9:62); holes filled; touching cells split by a watershed
    (Beucher & Meyer 1993) on the Euclidean distance transform, seeded at its
    prominent maxima (h-maxima of 1 pixel) at least ``min_peak_distance``
    pixels apart; objects smaller than ``min_cell_area`` pixels removed.

    Parameters
    ----------
    image : ndarray, shape (y, x)
        The mean projection.
    smoothing_sigma : float
        Gaussian sigma in pixels (0 = no smoothing).
    threshold_method : {'otsu', 'li', 'triangle', 'yen', 'mean'}
    min_cell_area : int
        Smallest cell kept, in pixels.
    min_peak_distance : int
        Smallest distance between two cell centres, in pixels.

    Returns
    -------
    labels : ndarray of uint16, shape (y, x)
    """
    from scipy import ndimage as ndi
    from skimage import filters, measure, morphology, segmentation

    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"segmentation needs a 2D image, got shape {image.shape}")
    if threshold_method not in THRESHOLD_METHODS:
        raise ValueError(f"unknown threshold method {threshold_method!r}; use one of {sorted(THRESHOLD_METHODS)}")
    smoothed = filters.gaussian(image, sigma=smoothing_sigma) if smoothing_sigma > 0 else image
    finite = smoothed[np.isfinite(smoothed)]
    if finite.size == 0 or finite.min() == finite.max():
        return np.zeros(image.shape, dtype=np.uint16)
    foreground = smoothed > getattr(filters, THRESHOLD_METHODS[threshold_method])(finite)
    foreground = ndi.binary_fill_holes(foreground)
    foreground = morphology.remove_small_objects(foreground, max_size=max(int(min_cell_area) - 1, 0))
    if not foreground.any():
        return np.zeros(image.shape, dtype=np.uint16)
    distance = ndi.distance_transform_edt(foreground)
    components = measure.label(foreground)
    peaks = _distance_peaks(distance, components, min_peak_distance)
    markers = np.zeros(image.shape, dtype=np.int64)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = segmentation.watershed(-distance, markers, mask=foreground)
    labels = morphology.remove_small_objects(labels, max_size=max(int(min_cell_area) - 1, 0))
    return relabel_sequential(labels)


def _distance_peaks(distance, components, min_distance, prominence=1.0):
    """Watershed seeds: prominent maxima of the distance map, at least ``min_distance`` apart.

    Candidates are the h-maxima of the distance transform (regional maxima that
    rise at least ``prominence`` pixels above the saddle linking them to a
    higher maximum; Soille 2003, *Morphological Image Analysis*, 6.3.4): the
    centre of each of two touching cells rises well above the neck between
    them, while the jitter of the distance along an elongated cell's ridge does
    not. The candidates are then taken from the highest down, each kept only
    if it lies at least ``min_distance`` pixels (Euclidean) from every seed
    already kept in its connected component. Every component gets a seed.
    """
    from skimage import measure, morphology

    maxima = measure.label(morphology.h_maxima(distance, prominence) > 0)
    candidates = []
    for region in measure.regionprops(maxima, intensity_image=distance):
        row, col = (int(round(v)) for v in region.centroid)
        if maxima[row, col] != region.label:  # a plateau that does not hold its centroid
            row, col = region.coords[0]
        candidates.append((float(region.intensity_max), row, col))
    candidates.sort(key=lambda c: -c[0])
    kept = []
    for _, row, col in candidates:
        component = components[row, col]
        if component == 0:
            continue
        if all(components[r, c] != component or np.hypot(row - r, col - c) >= min_distance for r, c in kept):
            kept.append((row, col))
    seeded = {components[r, c] for r, c in kept}
    for region in measure.regionprops(components, intensity_image=distance):
        if region.label not in seeded:
            local = np.unravel_index(np.argmax(region.image_intensity), region.image.shape)
            kept.append((region.bbox[0] + local[0], region.bbox[1] + local[1]))
    return np.array(kept, dtype=np.int64).reshape(-1, 2)


def erode_labels(labels, pixels):
    """Shrink every cell by ``pixels`` with a disk-shaped, symmetric erosion; labels are kept.

    A pixel stays in its cell only if every pixel of the disk of radius
    ``pixels`` around it belongs to the same cell, so cells shrink away from
    the background and from their neighbours alike. The image border is not
    treated as background: a cell cut by the border keeps its border pixels
    (the border is not a cell edge).

    Parameters
    ----------
    labels : ndarray of int, shape (y, x)
    pixels : int
        Erosion radius (0 returns a copy).

    Returns
    -------
    eroded : ndarray, same dtype as ``labels``
        A cell smaller than the disk disappears (its label is absent).
    """
    labels = np.asarray(labels)
    pixels = int(pixels)
    if pixels < 0:
        raise ValueError(f"erode_pixels must be >= 0, got {pixels}")
    if pixels == 0:
        return labels.copy()
    # imported only when eroding: with erode_pixels 0 (the default) the rule skips their 0.2 s
    from scipy import ndimage as ndi
    from skimage import morphology

    footprint = morphology.disk(pixels)
    lowest = ndi.grey_erosion(labels, footprint=footprint, mode="nearest")
    highest = ndi.grey_dilation(labels, footprint=footprint, mode="nearest")
    keep = (labels > 0) & (lowest == labels) & (highest == labels)
    return np.where(keep, labels, 0).astype(labels.dtype)


def outlines(labels):
    """Outline image: the inner boundary pixels of each cell carry its label (cellpose convention)."""
    from skimage import segmentation

    labels = np.asarray(labels)
    boundary = segmentation.find_boundaries(labels, mode="inner")
    return np.where(boundary, labels, 0).astype(labels.dtype)


def median_diameter(labels, default=GUI_DEFAULT_DIAMETER):
    """Median cell diameter in pixels: the median over cells of the equivalent-circle diameter.

    A cell of ``a`` pixels has the diameter of the disk of the same area,
    ``2 sqrt(a / pi)``; the median is taken over the cells. This is cellpose's
    ``utils.diameters`` (cellpose 3.1.1: ``median(sqrt(a)) / (sqrt(pi) / 2)``),
    the diameter cellpose gives a set of masks (e.g. its ``diam_labels`` of a
    training set), computed here without importing cellpose.

    Parameters
    ----------
    labels : ndarray of int, shape (y, x)
    default : float
        Returned when there is no cell (cellpose returns 0).

    Returns
    -------
    float
    """
    labels = np.asarray(labels)
    if labels.size and labels.min() < 0:
        raise ValueError("a label mask cannot hold negative labels")
    areas = np.bincount(labels.ravel().astype(np.int64))[1:]
    areas = areas[areas > 0]  # labels absent from the mask are no cells
    if areas.size == 0:
        return float(default)
    return float(np.median(np.sqrt(areas)) / (np.sqrt(np.pi) / 2))


def seg_npy_dict(image, labels, filename, method):
    """A dictionary in cellpose's ``_seg.npy`` layout for a label mask, which the cellpose GUI loads.

    The keys are those cellpose 3.1.1's GUI reads when it loads a ``_seg.npy``
    (``cellpose.gui.io._load_seg``) and writes when it saves one
    (``io._save_sets``): ``filename``, ``img``, ``masks``, ``outlines``,
    ``colors``, ``chan_choose``, ``ismanual``, ``flows``, ``est_diam``,
    ``diameter``, ``zdraw``; so the GUI opens the image and its masks together
    and can save a corrected version over it.

    * ``est_diam`` and ``diameter``: :func:`median_diameter` of the masks,
      :data:`GUI_DEFAULT_DIAMETER` when there is no cell. Always finite: the
      GUI turns ``est_diam`` into an integer when it loads the file (a NaN
      stops the loading, and the GUI then fails on every later file).
    * ``flows``: masks made without cellpose have none; the entry is the GUI's
      own "no flows" value, so the GUI does not try to recompute the masks from
      flows when its flow or cell-probability threshold is changed.

    Parameters
    ----------
    image : ndarray, shape (y, x)
        The image that was segmented (the mean projection).
    labels : ndarray, shape (y, x)
    filename : str
        Path of the image file the GUI should open beside the masks.
    method : str
        How the masks were made (recorded under ``brightflow_method``).
    """
    labels = relabel_sequential(labels)
    image = np.asarray(image, dtype=np.float32)
    count = int(labels.max())
    colors = (np.random.default_rng(0).random((count, 3)) * 255).astype(np.uint8)
    diameter = median_diameter(labels)
    return {
        "filename": str(filename),
        "img": image,
        "masks": labels,
        "outlines": outlines(labels),
        "colors": colors,
        "chan_choose": [0, 0],
        "ismanual": np.zeros(count, dtype=bool),
        "flows": [[], [], [], [], [[]]],
        "est_diam": diameter,
        "diameter": diameter,
        "zdraw": [None] * count,
        "brightflow_method": method,
    }


def masks_from_seg_dict(seg):
    """The label mask of a cellpose ``_seg.npy`` dictionary, relabelled 1..k as uint16."""
    if not isinstance(seg, dict) or "masks" not in seg:
        raise ValueError("not a cellpose _seg.npy dictionary: it has no 'masks' entry")
    masks = np.asarray(seg["masks"])
    if masks.ndim == 3 and masks.shape[0] == 1:
        masks = masks[0]
    if masks.ndim != 2:
        raise ValueError(f"the 'masks' entry must be a 2D label image, got shape {masks.shape}")
    return relabel_sequential(masks)


def masks_checksum(labels):
    """SHA-256 of a label mask (after :func:`relabel_sequential`), to tell whether it was edited."""
    import hashlib

    labels = relabel_sequential(labels)
    digest = hashlib.sha256(str(labels.shape).encode())
    digest.update(np.ascontiguousarray(labels).tobytes())
    return digest.hexdigest()


def outline_polygons(labels):
    """The outline of every cell as pixel coordinates, the way cellpose traces it.

    Equivalent to cellpose's ``utils.outlines_list`` (cellpose 3.1.1) without
    importing cellpose or torch: OpenCV's border following (Suzuki & Abe 1985,
    CVGIP 30:32; ``cv2.findContours``, external contours, every border pixel
    kept) on each cell; the longest contour when a cell has several pieces.

    Parameters
    ----------
    labels : ndarray of int, shape (y, x)

    Returns
    -------
    dict of int -> ndarray of int, shape (k, 2)
        For each label present, in increasing order, its outline as ``(x, y)``
        pixel coordinates (empty, shape (0, 2), for a cell of 4 pixels or
        fewer on its border, as cellpose does).
    """
    import cv2  # opencv-python-headless, a dependency of cellpose
    from scipy import ndimage as ndi

    labels = np.asarray(labels)
    result = {}
    for label, region in enumerate(ndi.find_objects(labels.astype(np.int64)), start=1):
        if region is None:
            continue
        rows, cols = region
        # a one-pixel frame of background, so that contours at the image border close
        cell = np.pad((labels[region] == label).astype(np.uint8), 1)
        contours = cv2.findContours(cell, mode=cv2.RETR_EXTERNAL, method=cv2.CHAIN_APPROX_NONE)[-2]
        longest = contours[int(np.argmax([len(c) for c in contours]))].reshape(-1, 2).astype(np.int64)
        longest = longest + np.array([cols.start - 1, rows.start - 1])
        result[label] = longest if len(longest) > 4 else np.zeros((0, 2), dtype=np.int64)
    return result


def pixel_edge_polygons(labels):
    """The boundaries of every cell along pixel edges, holes and separate parts included.

    Pixel ``(row, col)`` is the unit square with corners ``(col, row)`` and
    ``(col + 1, row + 1)`` in ``(x, y)`` coordinates, ImageJ's convention for
    selections. A cell's boundary is the set of pixel edges between the cell
    and anything else; it is followed into closed loops whose vertices lie on
    pixel corners (integer coordinates), with collinear vertices merged: the
    outline of ImageJ's ``Wand.autoOutline`` (a traced ROI), not the pixel
    centres of :func:`outline_polygons`. Where two pixels of the cell touch
    only at a corner, the loop turns to keep them together, so a cell's parts
    are 8-connected and its holes 4-connected, as in ImageJ's particle
    analyzer.

    ImageJ counts a pixel as inside a selection when its centre is inside
    (``PolygonRoi`` masks; ``ShapeRoi`` fills its ``java.awt.Shape``). No pixel
    centre lies on these edges, so a polygon of one loop, or a ``ShapeRoi`` of
    all the loops of a cell with holes or several parts (even-odd or non-zero
    winding alike), covers exactly the cell's pixels.

    Parameters
    ----------
    labels : ndarray of int, shape (y, x)

    Returns
    -------
    dict of int -> list of ndarray of int64, shape (k, 2)
        For each label present, in increasing order, its loops as ``(x, y)``
        vertices (the first vertex not repeated at the end), each loop starting
        at its top-left vertex. An outer boundary (one per 8-connected part)
        runs clockwise on screen (y down), so its shoelace area
        ``sum(x[i] * y[i+1] - x[i+1] * y[i]) / 2`` is positive; a hole's runs
        the other way and is negative. The areas of a cell's loops add up to
        its pixel count.
    """
    from scipy import ndimage as ndi

    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"a label mask must be 2D (y, x), got shape {labels.shape}")
    result = {}
    for label, region in enumerate(ndi.find_objects(labels.astype(np.int64)), start=1):
        if region is None:
            continue
        rows, cols = region
        cell = np.pad(labels[region] == label, 1)  # a frame of background: edges at the image border too
        offset = np.array([cols.start - 1, rows.start - 1])
        result[label] = [loop + offset for loop in _edge_loops(cell)]
    return result


#: Unit steps (dx, dy) along pixel edges, y down: east, south, west, north. A left turn on screen
#: from direction d is (d + 3) % 4.
_STEPS = ((1, 0), (0, 1), (-1, 0), (0, -1))


def _edge_loops(cell):
    """Loops of the pixel edges around the True pixels of ``cell`` (False on its outer frame).

    Every edge is directed with the cell on its right on screen: a top edge runs east, a right
    edge south, a bottom edge west, a left edge north. Each vertex then has as many edges in as
    out, one each except where two cell pixels touch only at a corner; there the loop turns left,
    onto the edge of the diagonal pixel. Following each edge to the next gives closed loops.
    """
    outgoing = {}  # vertex (x, y) -> directions of the edges that start there
    # direction, (row, col) offset of the pixel across the edge, start vertex relative to the pixel
    for direction, (dr, dc), (sx, sy) in (
        (0, (-1, 0), (0, 0)),
        (1, (0, 1), (1, 0)),
        (2, (1, 0), (1, 1)),
        (3, (0, -1), (0, 1)),
    ):
        across = np.roll(cell, (-dr, -dc), axis=(0, 1))  # across[r, c] = cell[r + dr, c + dc]
        rows, cols = np.nonzero(cell & ~across)
        for x, y in zip((cols + sx).tolist(), (rows + sy).tolist(), strict=False):
            outgoing.setdefault((x, y), []).append(direction)

    loops = []
    seen = set()
    for start in sorted(outgoing, key=lambda v: (v[1], v[0])):  # each loop starts at its top-left
        for first in outgoing[start]:
            vertex, direction, corners = start, first, []
            while (vertex, direction) not in seen:
                seen.add((vertex, direction))
                dx, dy = _STEPS[direction]
                vertex = (vertex[0] + dx, vertex[1] + dy)
                choices = outgoing[vertex]
                turn = choices[0] if len(choices) == 1 else (direction + 3) % 4
                if turn != direction:
                    corners.append(vertex)
                direction = turn
            if corners:
                loops.append(np.roll(np.array(corners, dtype=np.int64), 1, axis=0))
    return loops


def outlines_text(outlines):
    """Cellpose's ImageJ outline text (``_cp_outlines.txt``): one cell a line, ``x1,y1,x2,y2,...``.

    Same format as cellpose's ``io.outlines_to_text``; cellpose's
    ``imagej_roi_converter.py`` macro reads it into Fiji's ROI Manager.
    """
    lines = [",".join(str(int(v)) for v in np.asarray(o).ravel()) for o in outlines]
    return "".join(line + "\n" for line in lines)


def truth_of_cells(labels, truth):
    """For each cell of a segmentation, the ground-truth cell it overlaps most, and by how much.

    Parameters
    ----------
    labels : ndarray of int, shape (y, x)
        The segmentation (0 = background), e.g. ``segmentation_labels.tif``: its labels are the
        tables' ``Cell ID``.
    truth : ndarray of int, shape (y, x)
        The true cells (0 = background).

    Returns
    -------
    dict of int -> (int, float)
        ``{cell: (truth cell, share)}``: the truth cell holding most of the cell's pixels (0 when most
        are background) and the share of the cell's pixels inside it.
    """
    labels = np.asarray(labels).astype(np.int64)
    truth = np.asarray(truth).astype(np.int64)
    if labels.shape != truth.shape:
        raise ValueError(f"shapes differ: segmentation {labels.shape}, truth {truth.shape}")
    matches = {}
    for cell in np.unique(labels[labels > 0]):
        inside = truth[labels == cell]
        counts = np.bincount(inside, minlength=int(truth.max()) + 1)
        best = int(counts.argmax())
        matches[int(cell)] = (best, float(counts[best] / inside.size))
    return matches


def match_scores(truth, predicted, iou_threshold=0.5):
    """Compare a segmentation with ground truth: recall, precision and mean matched IoU.

    A true cell and a predicted cell match when their intersection over union
    (IoU, the Jaccard index) exceeds ``iou_threshold``; with a threshold of at
    least 0.5 each cell has at most one match (the usual instance-segmentation
    criterion, e.g. Caicedo et al. 2019, Nat Methods 16:1247).

    Parameters
    ----------
    truth, predicted : ndarray of int, shape (y, x)
    iou_threshold : float

    Returns
    -------
    dict
        ``true_cells``, ``predicted_cells``, ``matched``, ``recall`` (matched
        over true cells), ``precision`` (matched over predicted cells) and
        ``mean_iou`` (mean IoU of the matched pairs; NaN when none matched).
    """
    truth = relabel_sequential(truth).astype(np.int64)
    predicted = relabel_sequential(predicted).astype(np.int64)
    if truth.shape != predicted.shape:
        raise ValueError(f"shapes differ: truth {truth.shape}, predicted {predicted.shape}")
    n_true, n_pred = int(truth.max()), int(predicted.max())
    overlap = np.bincount(
        truth.ravel() * (n_pred + 1) + predicted.ravel(), minlength=(n_true + 1) * (n_pred + 1)
    ).reshape(n_true + 1, n_pred + 1)
    area_true = overlap.sum(axis=1, keepdims=True)
    area_pred = overlap.sum(axis=0, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = overlap / (area_true + area_pred - overlap)
    iou = iou[1:, 1:]
    matched = iou > iou_threshold
    ious = iou[matched]
    return {
        "true_cells": n_true,
        "predicted_cells": n_pred,
        "matched": int(matched.sum()),
        "recall": float(matched.sum() / n_true) if n_true else float("nan"),
        "precision": float(matched.sum() / n_pred) if n_pred else float("nan"),
        "mean_iou": float(ious.mean()) if ious.size else float("nan"),
    }
