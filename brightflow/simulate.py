"""Simulated N&B recordings with known ground truth.

The model is the one N&B rests on (Digman et al. 2008, Biophys J 94:2320):
in each frame the number of mobile molecules in a pixel is a fresh
Poisson draw with mean ``n`` (molecules move between frames), and the detected
photons are a Poisson draw with mean ``epsilon`` times that number. Then
``<k> = epsilon n`` and ``var(k) = epsilon n + epsilon^2 n``, so that
``B = 1 + epsilon`` and the N&B equations return ``epsilon`` and ``n``.

Immobile signal (background, autofluorescence) is Poisson with a fixed mean:
``B = 1``, ``epsilon = 0``.

Bleaching multiplies the number of fluorescent molecules by a decaying
per-frame factor (each molecule survives with that probability).

An analog detector (Dalal et al. 2008, Microsc Res Tech 71:69) reports
``S * photons + offset + readout noise``; :func:`analog_detector` applies it.
"""

from __future__ import annotations

import numpy as np
from skimage.draw import ellipse

__all__ = [
    "DEMO_EXPERIMENTS",
    "analog_detector",
    "cell_field",
    "cell_field_projection",
    "cell_field_stack",
    "cell_layout",
    "demo_experiment",
    "exponential_bleach",
    "immobile_stack",
    "mobile_stack",
]


def exponential_bleach(frames, total_loss):
    """Per-frame surviving fraction ``exp(-t / tau)`` that loses ``total_loss`` by the last frame.

    Parameters
    ----------
    frames : int
    total_loss : float
        Fraction in [0, 1) lost between the first and the last frame (0.4 = 40% bleach).
    """
    if not 0 <= total_loss < 1:
        raise ValueError(f"total_loss must be in [0, 1), got {total_loss}")
    if total_loss == 0 or frames < 2:
        return np.ones(frames)
    rate = -np.log(1 - total_loss) / (frames - 1)
    return np.exp(-rate * np.arange(frames))


def mobile_stack(number_map, brightness_map, frames, rng, survival=None):
    """Photon counts of mobile molecules, shape ``(frames, y, x)``, int64.

    Parameters
    ----------
    number_map : ndarray, shape (y, x)
        Mean number of molecules ``n`` in each pixel.
    brightness_map : ndarray or float
        Molecular brightness ``epsilon`` (photons per molecule per frame).
    frames : int
    rng : numpy.random.Generator
    survival : ndarray, shape (frames,), optional
        Fraction of molecules still fluorescent in each frame (bleaching).
    """
    number_map = np.asarray(number_map, dtype=np.float64)
    brightness_map = np.broadcast_to(np.asarray(brightness_map, dtype=np.float64), number_map.shape)
    survival = np.ones(frames) if survival is None else np.asarray(survival, dtype=np.float64)
    out = np.empty((frames,) + number_map.shape, dtype=np.int64)
    for t in range(frames):
        molecules = rng.poisson(number_map * survival[t])
        out[t] = rng.poisson(brightness_map * molecules)
    return out


def immobile_stack(mean_map, frames, rng, survival=None):
    """Photon counts of immobile signal: Poisson with the fixed mean ``mean_map * survival[t]``."""
    mean_map = np.asarray(mean_map, dtype=np.float64)
    survival = np.ones(frames) if survival is None else np.asarray(survival, dtype=np.float64)
    return rng.poisson(mean_map[None] * survival[:, None, None])


def analog_detector(photons, offset, s_factor, readout_variance, rng):
    """Analog detector signal ``S * photons + offset + N(0, readout_variance)`` (Dalal 2008)."""
    photons = np.asarray(photons, dtype=np.float64)
    noise = rng.normal(0.0, np.sqrt(readout_variance), size=photons.shape) if readout_variance else 0.0
    return s_factor * photons + offset + noise


def cell_layout(shape, centres, radii, rotations=None):
    """Label image of elliptical cells.

    Parameters
    ----------
    shape : tuple of int
    centres : sequence of (row, col)
    radii : sequence of (row_radius, col_radius)
    rotations : sequence of float, optional
        Rotation of each ellipse in radians.

    Returns
    -------
    labels : ndarray of uint16
        0 is background, cell ``i`` (from 0) has label ``i + 1``. A later cell
        overwrites an earlier one where they overlap.
    """
    labels = np.zeros(shape, dtype=np.uint16)
    rotations = [0.0] * len(centres) if rotations is None else rotations
    for index, ((row, col), (row_radius, col_radius), rotation) in enumerate(
        zip(centres, radii, rotations, strict=False)
    ):
        rr, cc = ellipse(row, col, row_radius, col_radius, shape=shape, rotation=rotation)
        labels[rr, cc] = index + 1
    return labels


#: The demo's experiments: per cell (epsilon, n). Epsilon 1, 2, 4 stand for a
#: monomer, dimer and tetramer of a fluorophore of brightness 1.
DEMO_EXPERIMENTS = {
    "demo_monomer": [(1.0, 6.0), (1.0, 8.0), (1.0, 10.0), (1.0, 7.0)],
    "demo_mixed": [(1.0, 8.0), (2.0, 4.0), (4.0, 2.0), (2.0, 5.0)],
    "demo_tetramer": [(4.0, 1.5), (4.0, 3.0), (4.0, 2.0), (4.0, 2.5)],
}


#: The demo's image size and frames: cells of about 1,300 pixels over 400 frames, so that each cell's
#: ratio-of-means brightness has a standard error of at most 0.4% (a monomer's: 2 sqrt(2 / (T P)))
#: and the truth can be checked to 1.5%.
DEMO_SHAPE = (128, 128)
DEMO_FRAMES = 400


def demo_experiment(cells, seed, shape=DEMO_SHAPE, frames=DEMO_FRAMES, background=0.5):
    """One demo recording: four elliptical cells of known brightness and number.

    Parameters
    ----------
    cells : sequence of (epsilon, n)
        One entry per cell, at most four (one per quadrant).
    seed : int
    shape : tuple of int
    frames : int
    background : float
        Mean photons per frame of an immobile background outside the cells
        (inside, it would lower the apparent brightness: the cells' ground
        truth is then exactly their ``epsilon`` and ``n``).

    Returns
    -------
    stack : ndarray, shape (frames, y, x), uint16
    labels : ndarray, shape (y, x), uint16
        Ground-truth cells, label ``i + 1`` for ``cells[i]``.
    """
    if len(cells) > 4:
        raise ValueError("the demo layout holds at most four cells")
    rng = np.random.default_rng(seed)
    height, width = shape
    centres, radii, rotations = [], [], []
    for quadrant in range(len(cells)):
        row0 = (quadrant // 2) * height / 2
        col0 = (quadrant % 2) * width / 2
        centres.append((row0 + height / 4 + rng.uniform(-2, 2), col0 + width / 4 + rng.uniform(-2, 2)))
        radii.append((rng.uniform(0.28, 0.38) * height / 2, rng.uniform(0.28, 0.38) * width / 2))
        rotations.append(rng.uniform(0, np.pi))
    labels = cell_layout(shape, centres, radii, rotations)
    number_map = np.zeros(shape)
    brightness_map = np.zeros(shape)
    for index, (epsilon, n) in enumerate(cells):
        number_map[labels == index + 1] = n
        brightness_map[labels == index + 1] = epsilon
    stack = mobile_stack(number_map, brightness_map, frames, rng)
    stack += immobile_stack(np.where(labels == 0, background, 0.0), frames, rng)
    if stack.max() > np.iinfo(np.uint16).max:
        raise ValueError("simulated counts overflow uint16")
    return stack.astype(np.uint16), labels


def cell_field(shape, cell_count, rng, radius_range=(8.0, 11.0), touching_pairs=2, margin=2.0, max_tries=2000):
    """Label image of elliptical cells scattered over a field, some of them touching.

    Ground truth for segmentation tests: ``touching_pairs`` pairs of cells
    overlap slightly (the later one is drawn over the earlier one), so they meet
    along a short straight border that a segmentation must split; every other
    cell is separated from its neighbours by at least ``margin`` pixels.

    Parameters
    ----------
    shape : tuple of int
    cell_count : int
        Cells to place (fewer when the field is too crowded after ``max_tries``).
    rng : numpy.random.Generator
    radius_range : (float, float)
        Range of the ellipses' half-axes, pixels (each axis drawn uniformly).
    touching_pairs : int
        How many of the cells are placed touching the previous one.
    margin : float
        Smallest gap between cells that do not touch, pixels.

    Returns
    -------
    labels : ndarray of uint16, shape ``shape``
        Cells ``1..k`` in placement order.
    """
    low, high = radius_range
    centres, radii, rotations = [], [], []
    touching_left = int(touching_pairs)
    tries = 0
    while len(centres) < cell_count and tries < max_tries:
        tries += 1
        radius = (rng.uniform(low, high), rng.uniform(low, high))
        size = max(radius)
        if touching_left and centres and len(centres) % 2 == 1:
            # beside the previous cell, overlapping it by a fifth of the smaller radius
            (row0, col0), r0 = centres[-1], min(radii[-1])
            angle = rng.uniform(0, 2 * np.pi)
            distance = r0 + min(radius) - 0.2 * min(r0, min(radius))
            centre = (row0 + distance * np.sin(angle), col0 + distance * np.cos(angle))
            others = centres[:-1]
            others_radii = radii[:-1]
        else:
            centre = (rng.uniform(size + 1, shape[0] - size - 1), rng.uniform(size + 1, shape[1] - size - 1))
            others, others_radii = centres, radii
        inside = size + 1 <= centre[0] <= shape[0] - size - 1 and size + 1 <= centre[1] <= shape[1] - size - 1
        clear = all(
            np.hypot(centre[0] - r, centre[1] - c) >= size + max(rr) + margin
            for (r, c), rr in zip(others, others_radii, strict=False)
        )
        if not (inside and clear):
            continue
        if touching_left and centres and len(centres) % 2 == 1:
            touching_left -= 1
        centres.append(centre)
        radii.append(radius)
        rotations.append(rng.uniform(0, np.pi))
    return cell_layout(shape, centres, radii, rotations)


def cell_field_stack(labels, frames, rng, number=4.0, brightness=2.0, background=0.5):
    """A recording of the cells of ``labels``: mobile molecules in the cells, immobile background.

    Parameters
    ----------
    labels : ndarray, shape (y, x)
    frames : int
    rng : numpy.random.Generator
    number, brightness : float
        Molecules per pixel ``n`` and brightness ``epsilon`` in every cell.
    background : float
        Mean photons per frame outside the cells.

    Returns
    -------
    stack : ndarray of uint16, shape (frames, y, x)
    """
    inside = np.asarray(labels) > 0
    stack = mobile_stack(np.where(inside, number, 0.0), brightness, frames, rng)
    stack += immobile_stack(np.where(inside, 0.0, background), frames, rng)
    return stack.astype(np.uint16)


def cell_field_projection(labels, rng, frames=50, number=4.0, brightness=2.0, background=0.5):
    """The mean projection of :func:`cell_field_stack` (what brightflow segments), float32."""
    return cell_field_stack(labels, frames, rng, number, brightness, background).mean(axis=0).astype(np.float32)
