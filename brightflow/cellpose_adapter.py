"""Cellpose segmentation: the only module of brightflow that imports cellpose (and torch).

Cellpose (Stringer et al. 2021, Nat Methods 18:100; Stringer & Pachitariu 2025,
Nat Methods 22:592 for cellpose 3) predicts, for every pixel, the probability
that it lies in a cell and the direction of a flow towards the cell's centre;
pixels whose flows converge to the same point form one cell. This module wraps
the few calls brightflow makes to cellpose 3.1.1 so that a later cellpose major
version is a local change here:

* :func:`resolve_model` turns ``segmentation.model`` (a path to a model file or
  a model name) into a file that exists, or raises :class:`ModelNotFoundError`
  saying what was looked for and how to provide weights. Cellpose itself would
  download ``cyto3`` silently when given a missing path; brightflow never
  starts a download (:func:`segment` also disables cellpose's downloader).
* :func:`select_device` decides between CUDA and the CPU (``gpu``: ``auto``,
  ``true``, ``false``); ``true`` without CUDA raises :class:`GpuUnavailableError`.
* :func:`segment` runs the model on one 2D image.
* :func:`write_seg_npy` writes the result with cellpose's own
  ``io.masks_flows_to_seg`` so that the cellpose GUI opens it.

cellpose and torch are imported inside the functions: importing this module
is cheap, and :func:`resolve_model` needs neither.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "BUILTIN_MODELS",
    "CellposeResult",
    "GpuUnavailableError",
    "ModelNotFoundError",
    "ModelSpec",
    "builtin_weights_name",
    "cuda_available",
    "models_folder",
    "resolve_model",
    "segment",
    "select_device",
    "will_use_gpu",
    "write_seg_npy",
]

#: Model names that cellpose 3.1.1 knows (``cellpose.models.MODEL_NAMES``); their
#: weights are downloaded by cellpose on first use, which brightflow never does.
BUILTIN_MODELS = (
    "cyto3", "nuclei", "cyto2_cp3", "tissuenet_cp3", "livecell_cp3", "yeast_PhC_cp3",
    "yeast_BF_cp3", "bact_phase_cp3", "bact_fluor_cp3", "deepbacs_cp3", "cyto2", "cyto", "CPx",
    "transformer_cp3", "neurips_cellpose_default", "neurips_cellpose_transformer",
    "neurips_grayscale_cyto2", "CP", "TN1", "TN2", "TN3", "LC1", "LC2", "LC3", "LC4",
)  # fmt: skip

#: Built-in models with a size model (``diameter: 0`` estimates the diameter with it).
SIZE_MODELS = {
    "cyto3": "size_cyto3.npy",
    "cyto2": "size_cyto2torch_0.npy",
    "cyto": "size_cytotorch_0.npy",
    "nuclei": "size_nucleitorch_0.npy",
}

GPU_SETTINGS = ("auto", True, False)


class ModelNotFoundError(Exception):
    """The model file (or a built-in model's cached weights) is not on this machine."""


class GpuUnavailableError(Exception):
    """``gpu: true`` was asked for, but torch sees no CUDA device."""


@dataclass(frozen=True)
class ModelSpec:
    """A model resolved to files on disk.

    Attributes
    ----------
    name : str
        The ``segmentation.model`` setting as given.
    weights : str
        The weights file that will be loaded.
    builtin : bool
        Whether ``name`` is one of cellpose's built-in models (loaded by name).
    size_model : str or None
        The size model file (for ``diameter: 0``), when there is one.
    """

    name: str
    weights: str
    builtin: bool
    size_model: str | None = None


@dataclass
class CellposeResult:
    """What :func:`segment` returns.

    Attributes
    ----------
    masks : ndarray of uint16, shape (y, x)
    flows : list
        Cellpose's flows for the image (as ``CellposeModel.eval`` returns them).
    diameter : float
        The cell diameter in pixels the image was segmented at (estimated when
        ``diameter`` was 0).
    diameter_source : str
        ``"setting"``, ``"size model"`` or ``"model training diameter"``.
    device : str
        The device that ran the network, e.g. ``"cpu"`` or ``"cuda:0 (NVIDIA H100)"``.
    model : ModelSpec
    """

    masks: np.ndarray
    flows: list
    diameter: float
    diameter_source: str
    device: str
    model: ModelSpec
    settings: dict = field(default_factory=dict)


# --- model files --------------------------------------------------------------------------------


def models_folder(environ=None):
    """The folder cellpose keeps model weights in.

    Cellpose reads it at import: ``CELLPOSE_LOCAL_MODELS_PATH`` when set, else
    ``~/.cellpose/models`` (``cellpose.models.MODEL_DIR``).
    """
    environ = os.environ if environ is None else environ
    value = environ.get("CELLPOSE_LOCAL_MODELS_PATH")
    return Path(value).expanduser() if value else Path.home() / ".cellpose" / "models"


def builtin_weights_name(name):
    """The weights file name cellpose uses for a built-in model (``cellpose.models.model_path``)."""
    if name in ("cyto", "cyto2", "nuclei"):
        return f"{name}torch_0"
    return name


def _looks_like_path(value):
    return (
        os.sep in value
        or (os.altsep is not None and os.altsep in value)
        or value.startswith(("~", "."))
    )


def resolve_model(model, environ=None):
    """Resolve ``segmentation.model`` to weights that exist on this machine.

    Parameters
    ----------
    model : str
        A path to a cellpose model file (trained with cellpose's training API or
        GUI), or a model name: one of :data:`BUILTIN_MODELS` or a model file
        already in the cellpose models folder (see :func:`models_folder`).
    environ : mapping, optional
        Environment to read ``CELLPOSE_LOCAL_MODELS_PATH`` from (default ``os.environ``).

    Returns
    -------
    ModelSpec

    Raises
    ------
    ModelNotFoundError
        Nothing usable was found; the message lists what was looked for and how
        to provide weights. No download is attempted.
    """
    if model is None or str(model).strip() == "":
        raise ModelNotFoundError(
            "segmentation.method is 'cellpose' but segmentation.model is empty: set it to the "
            "path of a cellpose model file, or to a built-in model name (e.g. cyto3) whose "
            "weights are in the cellpose models folder."
        )
    model = str(model).strip()
    path = Path(model).expanduser()
    if path.is_file():
        size = Path(f"{path}_size.npy")
        return ModelSpec(model, str(path.resolve()), False, str(size.resolve()) if size.is_file() else None)
    if path.exists():
        raise ModelNotFoundError(f"segmentation.model {model!r} is a folder, not a cellpose model file.")
    folder = models_folder(environ)
    how = (
        "Copy the weights there (from a machine with internet: run cellpose once with this "
        "model, then copy ~/.cellpose/models/), or point CELLPOSE_LOCAL_MODELS_PATH at a "
        "folder that holds them, or set segmentation.model to the path of a model file. "
        "brightflow never downloads weights. Without a model, use segmentation.method: threshold."
    )
    if _looks_like_path(model) or model.endswith((".pth", ".pt", ".npy")):
        raise ModelNotFoundError(
            f"segmentation.model: model file {str(path)!r} not found "
            f"(looked for {str(path.resolve())!r}). Give the path of an existing cellpose "
            f"model file, or a built-in model name (e.g. cyto3). {how}"
        )
    if model not in BUILTIN_MODELS:
        weights = folder / model  # a user model copied into the models folder (cellpose GUI)
        if not weights.is_file():
            raise ModelNotFoundError(
                f"segmentation.model {model!r} is neither an existing model file (looked for "
                f"{str(path.resolve())!r}) nor a model in the cellpose models folder (looked for "
                f"{str(weights)!r}). Built-in names: {', '.join(BUILTIN_MODELS[:12])}, ... {how}"
            )
        size = Path(f"{weights}_size.npy")
        return ModelSpec(model, str(weights), False, str(size) if size.is_file() else None)
    weights = folder / builtin_weights_name(model)
    if not weights.is_file():
        raise ModelNotFoundError(
            f"segmentation.model {model!r} is a built-in cellpose model, but its weights are not "
            f"on this machine: looked for {str(weights)!r} (the cellpose models folder is "
            f"{str(folder)!r}, set by CELLPOSE_LOCAL_MODELS_PATH or ~/.cellpose/models). {how}"
        )
    size = folder / SIZE_MODELS[model] if model in SIZE_MODELS else None
    return ModelSpec(model, str(weights), True, str(size) if size is not None and size.is_file() else None)


# --- device -------------------------------------------------------------------------------------


def _gpu_setting(gpu):
    if isinstance(gpu, str) and gpu.strip().lower() in ("true", "false", "auto"):
        gpu = {"true": True, "false": False, "auto": "auto"}[gpu.strip().lower()]
    if gpu not in GPU_SETTINGS or isinstance(gpu, (int, float)) and not isinstance(gpu, bool):
        raise ValueError(f"segmentation.gpu must be auto, true or false, got {gpu!r}")
    return gpu


def cuda_available():
    """Whether torch sees a CUDA device (imports torch)."""
    import torch

    return bool(torch.cuda.is_available())


def will_use_gpu(gpu):
    """Whether cellpose will run on CUDA for the ``segmentation.gpu`` setting.

    ``true``: yes (and :func:`select_device` fails if there is no CUDA);
    ``false``: no; ``auto``: when torch sees a CUDA device here.
    """
    gpu = _gpu_setting(gpu)
    if gpu == "auto":
        return cuda_available()
    return gpu


def select_device(gpu):
    """The torch device cellpose runs on, and its description.

    Parameters
    ----------
    gpu : {'auto', True, False}
        ``auto``: the first CUDA device when torch sees one, else the CPU.
        ``True``: the first CUDA device; :class:`GpuUnavailableError` when torch
        sees none (no silent CPU fallback: a GPU job that ran on the CPU would
        hide a broken CUDA install and take many times longer).
        ``False``: the CPU.

    Returns
    -------
    device : torch.device
    description : str
        ``"cpu"`` or ``"cuda:0 (<GPU name>)"``.
    """
    import torch

    gpu = _gpu_setting(gpu)
    if gpu is True and not torch.cuda.is_available():
        raise GpuUnavailableError(
            "segmentation.gpu is true but torch sees no CUDA device "
            f"(torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none: a CPU-only build'}). "
            "On a GPU machine install the CUDA build of torch of the same version and check "
            "nvidia-smi; on a cluster request a GPU for the segmentation job (resources gpu=1). "
            "Or set segmentation.gpu: auto (CUDA when present, else the CPU) or false (CPU)."
        )
    if gpu is not False and torch.cuda.is_available():
        device = torch.device("cuda:0")
        return device, f"cuda:0 ({torch.cuda.get_device_name(0)})"
    return torch.device("cpu"), "cpu"


# --- segmentation -------------------------------------------------------------------------------


@contextlib.contextmanager
def _no_download():
    """Make cellpose's downloader raise instead of fetching weights from the internet."""
    from cellpose import utils

    original = utils.download_url_to_file

    def refuse(url, dst, progress=True):
        raise ModelNotFoundError(
            f"cellpose tried to download {url} to {dst}; brightflow never downloads weights. "
            "Put the file there by hand, or set segmentation.model to the path of a model file."
        )

    utils.download_url_to_file = refuse
    try:
        yield
    finally:
        utils.download_url_to_file = original


def segment(
    image,
    model,
    diameter=75.0,
    flow_threshold=0.4,
    cellprob_threshold=0.0,
    gpu="auto",
    threads=None,
    environ=None,
):
    """Segment one 2D image with a cellpose model.

    Parameters
    ----------
    image : ndarray, shape (y, x)
        The mean projection (one grayscale channel: cellpose channels ``[0, 0]``).
    model : str or ModelSpec
        ``segmentation.model`` (see :func:`resolve_model`).
    diameter : float
        Typical cell diameter in pixels; the image is rescaled so that cells
        have the model's training size. 0: estimate it, with the model's size
        model when there is one (built-in ``cyto3``, ``cyto2``, ``cyto``,
        ``nuclei`` with their ``size_*.npy`` file, or ``<model file>_size.npy``),
        else use the mean diameter of the model's training cells.
    flow_threshold : float
        Maximum flow error of a kept mask (cellpose's ``flow_threshold``).
    cellprob_threshold : float
        Cell probability (logit) above which a pixel may belong to a cell.
    gpu : {'auto', True, False}
        See :func:`select_device`.
    threads : int, optional
        CPU threads torch may use.
    environ : mapping, optional
        Environment for :func:`models_folder`.

    Returns
    -------
    CellposeResult
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2:
        raise ValueError(f"cellpose segmentation needs a 2D image, got shape {image.shape}")
    if diameter is None or diameter < 0:
        raise ValueError(f"segmentation.diameter must be >= 0 (0 = estimate), got {diameter!r}")
    spec = model if isinstance(model, ModelSpec) else resolve_model(model, environ)
    if diameter == 0 and spec.builtin and spec.name in SIZE_MODELS and spec.size_model is None:
        raise ModelNotFoundError(
            f"segmentation.diameter is 0 (estimate), which needs cellpose's size model for "
            f"{spec.name!r}: looked for {str(models_folder(environ) / SIZE_MODELS[spec.name])!r}. "
            "Copy it there, or set segmentation.diameter to the typical cell diameter in pixels."
        )

    import torch
    from cellpose import models

    if threads:
        torch.set_num_threads(int(threads))
    device, description = select_device(gpu)
    # cellpose read CELLPOSE_LOCAL_MODELS_PATH when it was imported; use the folder checked above
    models.MODEL_DIR = models_folder(environ)
    with _no_download():
        if spec.builtin:
            net = models.CellposeModel(gpu=device.type == "cuda", device=device, model_type=spec.name)
        else:
            net = models.CellposeModel(gpu=device.type == "cuda", device=device, pretrained_model=spec.weights)
        if diameter == 0 and spec.size_model is not None:
            size_model = models.SizeModel(net, pretrained_size=spec.size_model)
            used_diameter, _ = size_model.eval(image, channels=[0, 0])
            source = "size model"
        elif diameter == 0:
            used_diameter, source = float(net.diam_labels), "model training diameter"
        else:
            used_diameter, source = float(diameter), "setting"
        masks, flows, _ = net.eval(
            image,
            channels=[0, 0],
            diameter=float(used_diameter),
            flow_threshold=float(flow_threshold),
            cellprob_threshold=float(cellprob_threshold),
        )
    return CellposeResult(
        masks=np.asarray(masks).astype(np.uint16),
        flows=flows,
        diameter=float(used_diameter),
        diameter_source=source,
        device=description,
        model=spec,
        settings={"flow_threshold": float(flow_threshold), "cellprob_threshold": float(cellprob_threshold)},
    )


def write_seg_npy(image, result, image_path):
    """Write ``<image stem>_seg.npy`` beside ``image_path`` with cellpose's ``io.masks_flows_to_seg``.

    This is the one file this package writes: the file must be cellpose's own,
    so the cellpose GUI opens the image (``filename`` is ``image_path``) with
    its masks and flows, and saves a corrected version over it.

    Returns
    -------
    str
        The path written.
    """
    from cellpose import io

    image_path = os.path.abspath(image_path)
    io.masks_flows_to_seg(
        np.asarray(image, dtype=np.float32),
        result.masks,
        result.flows,
        image_path,
        diams=result.diameter,
        channels=[0, 0],
    )
    return os.path.splitext(image_path)[0] + "_seg.npy"
