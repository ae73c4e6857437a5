"""Run the replaced app (numbers_and_brightness 0.1.14) on stacks with a supplied mask.

Run with the interpreter of ``benchmarks/.venv-replaced`` (``run_benchmark.py
--with-replaced-app`` does it): ``python replaced_app_runner.py STACK.tif [STACK.tif ...]``,
the stacks one after the other in this process. For each, the mask must already be at ``<stem>_n_and_b_output/segmentation_image_seg.npy``
(``{'masks': uint16 array}``), beside ``segmentation_image.tif``.

With ``use_existing_mask=True`` and a loadable mask the app never calls
``_load_model`` (it imports ``cellpose.utils`` only, to draw outlines). As a
guard, ``_load_model`` is replaced here by a function that raises, so a mask the
app cannot read ends the run instead of loading (or trying to download) a
cellpose model.
"""

import sys
import time

from numbers_and_brightness import analysis


def _no_model(*args, **kwargs):
    raise RuntimeError("benchmark guard: the replaced app tried to load a cellpose model")


analysis._load_model = _no_model

for stack in sys.argv[1:]:
    started = time.perf_counter()
    table, _ = analysis.numbers_and_brightness_analysis(
        stack, use_existing_mask=True, segment=True, analysis=True, bleach_corr=True
    )
    print(f"{stack}: numbers_and_brightness_analysis: {time.perf_counter() - started:.2f} s in the call")
    print(table.to_string())
