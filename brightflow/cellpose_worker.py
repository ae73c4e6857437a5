"""Running cellpose in the environment of the model's generation: the segmentation step's worker.

Only one ``cellpose`` fits in one Python environment. brightflow's environment holds cellpose 3;
cellpose 4 lives in an overlay folder (``make venv``: ``pip install --no-deps --target`` of
cellpose 4, segment_anything and torchvision, pinned in ``requirements-cellpose4.txt``) that
shares torch, numpy and the rest with brightflow's environment. :func:`run` starts this
checkout's Python on ``python -m brightflow.cellpose_adapter segment`` (the worker) with

* cellpose 4: the overlay first on ``PYTHONPATH``, so that ``import cellpose`` finds 4.2.1
  there and never brightflow's 3.1.1;
* cellpose 3: the overlay removed from ``PYTHONPATH``;
* either: ``-s`` (no user site-packages, where another cellpose could hide).

The worker checks, before and after importing, that each package came from where it must
(brightflow.cellpose_adapter.import_cellpose); its answer names every package's file, which
:func:`run` checks again and the step logs. With ``--sdm conda`` the cellpose 4 rule runs in
``envs/cellpose4.yaml``, which installs cellpose 4 itself: no overlay (``overlay=None``).

Nothing here imports cellpose or torch.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from .cellpose_models import ModelNotFoundError, ModelSpec, WrongModelError

__all__ = ["WorkerError", "WorkerFailed", "run", "worker_environment"]

log = logging.getLogger("brightflow")

#: The answer's error kinds that are the user's to fix (a clear message, no traceback).
USER_ERRORS = ("ModelNotFoundError", "WrongModelError", "GpuUnavailableError", "WrongEnvironmentError", "ValueError")


class WorkerError(Exception):
    """The worker stopped on something the user fixes (a model, a GPU, the environment)."""


class WorkerFailed(RuntimeError):
    """The worker crashed (a bug, or killed): its output is in the message."""


def worker_environment(generation, overlay=None, environ=None):
    """The environment variables the worker runs with (see the module's docstring)."""
    env = dict(os.environ if environ is None else environ)
    overlay = str(Path(overlay).resolve()) if overlay else None
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if overlay:
        paths = [p for p in paths if Path(p).resolve() != Path(overlay)]
        if generation == 4:
            paths.insert(0, overlay)
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    else:
        env.pop("PYTHONPATH", None)
    env["PYTHONNOUSERSITE"] = "1"
    return env


def run(
    image,
    image_path,
    spec,
    diameter,
    flow_threshold,
    cellprob_threshold,
    gpu,
    precision="auto",
    threads=1,
    overlay=None,
    python=None,
    timeout=None,
):
    """Segment ``image`` with cellpose in the model's environment; its ``_seg.npy`` lands beside ``image_path``.

    Parameters
    ----------
    image : ndarray, shape (y, x)
        The projection.
    image_path : str
        The projection's file: cellpose names the ``_seg.npy`` after it (``<stem>_seg.npy``).
    spec : ModelSpec
        The resolved model (brightflow.cellpose_models.resolve_model), which says the generation.
    diameter, flow_threshold, cellprob_threshold, gpu, precision :
        The settings (brightflow.cellpose_adapter.segment).
    threads : int
        CPU threads of the job.
    overlay : str, optional
        Cellpose 4's overlay folder (None: cellpose 4 is installed in this environment itself,
        as with ``--sdm conda``). Not used for cellpose 3.
    python : str, optional
        The Python to run (default: this one).

    Returns
    -------
    dict
        The worker's answer: ``seg``, ``cells``, ``diameter``, ``diameter_source``, ``device``,
        ``precision``, ``tiles``, ``batch_size``, ``cellpose`` (generation, version, file),
        ``modules`` (each imported package's file), ``seconds``.

    Raises
    ------
    WorkerError
        A model, GPU or environment problem, with the worker's message.
    WorkerFailed
        The worker crashed; the message ends with its output.
    """
    if not isinstance(spec, ModelSpec):
        raise TypeError("spec must be a ModelSpec")
    threads = max(1, int(threads or 1))
    overlay = str(Path(overlay).resolve()) if overlay and spec.generation == 4 else None
    env = worker_environment(spec.generation, overlay)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)
    with tempfile.TemporaryDirectory(prefix="brightflow-cellpose-") as folder:
        folder = Path(folder)
        np.save(folder / "image.npy", np.asarray(image, dtype=np.float32))
        request = {
            "image": str(folder / "image.npy"),
            "image_path": os.path.abspath(image_path),
            "model": spec.record(),
            "diameter": float(diameter),
            "flow_threshold": float(flow_threshold),
            "cellprob_threshold": float(cellprob_threshold),
            "gpu": gpu,
            "precision": precision,
            "threads": threads,
            "overlay": overlay,
        }
        (folder / "request.json").write_text(json.dumps(request, indent=1))
        command = [
            python or sys.executable,
            "-s",
            "-m",
            "brightflow.cellpose_adapter",
            "segment",
            str(folder / "request.json"),
            str(folder / "answer.json"),
        ]
        log.info("cellpose %d worker: %s", spec.generation, " ".join(command))
        process = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
        for line in (process.stderr or "").splitlines():
            log.info("cellpose %d worker | %s", spec.generation, line)
        answer_file = folder / "answer.json"
        answer = json.loads(answer_file.read_text()) if answer_file.is_file() else None
    if answer is None or (not answer.get("ok") and answer.get("error") not in USER_ERRORS):
        tail = "\n".join((process.stdout + process.stderr).splitlines()[-40:])
        raise WorkerFailed(f"the cellpose {spec.generation} worker failed (exit status {process.returncode}):\n{tail}")
    if not answer["ok"]:
        kinds = {"ModelNotFoundError": ModelNotFoundError, "WrongModelError": WrongModelError}
        raise kinds.get(answer["error"], WorkerError)(answer["message"])
    _check(answer, spec.generation, overlay)
    return answer


def _check(answer, generation, overlay):
    """The worker imported the model's generation, cellpose 4's packages from the overlay."""
    imported = answer["cellpose"]
    if imported["generation"] != generation:
        raise WorkerError(f"the worker ran cellpose {imported['version']} for a cellpose {generation} model")
    if overlay:
        root = Path(overlay)
        for name in ("cellpose", "torchvision", "segment_anything"):
            if root not in Path(answer["modules"][name]).resolve().parents:
                raise WorkerError(f"the cellpose 4 worker took {name} from {answer['modules'][name]}, not from {root}")
