"""brightflow: Number & Brightness (N&B) analysis of fluorescence time-lapse stacks.

The package holds the science as pure functions on arrays (no file I/O, no
Snakemake): :mod:`brightflow.nb` (the N&B equations), :mod:`brightflow.detrend`
(bleach correction), :mod:`brightflow.segment` (cell masks),
:mod:`brightflow.stats` (tables), :mod:`brightflow.figures` and
:mod:`brightflow.simulate` (ground-truth data).
"""

__version__ = "0.1.0"
