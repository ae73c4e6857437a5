"""Cellpose segmentation: the only module of brightflow that imports cellpose (and torch).

Cellpose (Stringer et al. 2021, Nat Methods 18:100; Stringer & Pachitariu 2025, Nat Methods
22:592 for cellpose 3; Pachitariu, Rariden & Stringer 2025, bioRxiv 10.1101/2025.04.28.651001
for Cellpose-SAM, cellpose 4) predicts, for every pixel, the probability that it lies in a
cell and the direction of a flow towards the cell's centre; pixels whose flows converge to the
same point form one cell. This module wraps the few calls brightflow makes to cellpose 3.1.1
and 4.2.1, one function per call and generation:

* :func:`segment` runs a model (resolved by :func:`brightflow.cellpose_models.resolve_model`,
  which says which generation reads it) on one 2D image, with the cellpose that is imported in
  this process; :func:`import_cellpose` imports it and checks that it is the model's generation.
* :func:`write_seg_npy` writes the result with that cellpose's own ``io.masks_flows_to_seg``
  so that the cellpose GUI opens it.
* :func:`select_device` decides between CUDA and the CPU (``gpu``: ``auto``, ``true``,
  ``false``); :func:`select_precision` between bfloat16 and float32 for cellpose 4.

Only one cellpose fits in one Python environment, so the segmentation step runs this module
as a program, ``python -m brightflow.cellpose_adapter segment REQUEST ANSWER``, in the
generation's environment (:mod:`brightflow.cellpose_worker` starts it). The program's other
commands: ``fetch NAME`` (download a built-in model with cellpose's own downloader, on a
machine with internet: the one download brightflow offers, run by hand) and ``gui`` (the
cellpose GUI of the imported generation).

brightflow never lets cellpose download or substitute a model: only a file that exists is
handed to cellpose (cellpose 4 is always given a path; cellpose 3 a built-in name only once
its file is found), and cellpose's downloader raises while brightflow calls it (:func:`_no_download`).

cellpose and torch are imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cellpose_models import (
    CELLPOSE3_MODELS,
    CELLPOSE4_MODELS,
    SIZE_MODELS,
    ModelNotFoundError,
    ModelSpec,
    WrongModelError,
    cellpose4_batch_size,
    cellpose4_tiles,
    generation_of_file,
    models_folder,
    resolve_model,
)

__all__ = [
    "BUILTIN_MODELS",
    "PRECISIONS",
    "CellposeResult",
    "GpuUnavailableError",
    "ModelNotFoundError",
    "ModelSpec",
    "WrongEnvironmentError",
    "WrongModelError",
    "cellpose_origin",
    "cuda_available",
    "import_cellpose",
    "main",
    "models_folder",
    "resolve_model",
    "segment",
    "select_device",
    "select_precision",
    "will_use_gpu",
    "write_seg_npy",
]

log = logging.getLogger("brightflow")

#: cellpose 3's built-in model names (brightflow.cellpose_models.CELLPOSE3_MODELS).
BUILTIN_MODELS = CELLPOSE3_MODELS

GPU_SETTINGS = ("auto", True, False)

#: segmentation.precision: ``auto`` (bfloat16 on CUDA, and on a CPU with native bfloat16; else
#: float32), or one of the two forced.
PRECISIONS = ("auto", "bfloat16", "float32")


class GpuUnavailableError(Exception):
    """``gpu: true`` was asked for, but torch sees no CUDA device."""


class WrongEnvironmentError(Exception):
    """The cellpose this process imports is not the generation (or the copy) the job needs."""


@dataclass
class CellposeResult:
    """What :func:`segment` returns.

    Attributes
    ----------
    masks : ndarray of uint16, shape (y, x)
    flows : list
        Cellpose's flows for the image (as ``CellposeModel.eval`` returns them).
    diameter : float
        The cell diameter in pixels the image was segmented at: the image was rescaled by the
        model's training diameter over it (30 for cellpose 4). Estimated (cellpose 3) or 30
        (cellpose 4: no rescaling) when ``diameter`` was 0.
    diameter_source : str
        ``"setting"``, ``"size model"``, ``"model training diameter"`` or ``"no rescaling"``.
    device : str
        The device that ran the network, e.g. ``"cpu"`` or ``"cuda:0 (NVIDIA H100)"``.
    model : ModelSpec
    precision : str
        ``"float32"`` or ``"bfloat16"``: the network's weights and activations.
    cellpose : dict
        The cellpose that ran: ``generation``, ``version``, ``file`` (its package folder).
    tiles, batch_size : int or None
        Cellpose 4: the 256-pixel tiles of the image and the tiles per network call.
    seconds : dict
        Wall-clock seconds of ``load`` (building the network and loading the weights) and
        ``eval`` (the network and the masks); ``load_cpu``, ``eval_cpu``: their CPU seconds
        (all threads of this process).
    """

    masks: np.ndarray
    flows: list
    diameter: float
    diameter_source: str
    device: str
    model: ModelSpec
    precision: str = "float32"
    cellpose: dict = field(default_factory=dict)
    tiles: int | None = None
    batch_size: int | None = None
    settings: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)


# --- which cellpose -----------------------------------------------------------------------------


def cellpose_origin():
    """Where ``import cellpose`` would take cellpose from here, without importing it.

    Returns
    -------
    dict
        ``file`` (the package's folder), ``version`` (from the distribution installed beside
        it, so an overlay's cellpose is not mistaken for the environment's) and ``generation``
        (the major version), or None when no cellpose can be imported.
    """
    spec = importlib.util.find_spec("cellpose")
    if spec is None or not spec.submodule_search_locations:
        return None
    package = Path(list(spec.submodule_search_locations)[0]).resolve()
    version = None
    for dist in importlib.metadata.distributions(path=[str(package.parent)]):
        if (dist.metadata["Name"] or "").lower() == "cellpose":
            version = dist.version
            break
    generation = int(version.split(".")[0]) if version and version.split(".")[0].isdigit() else None
    return {"file": str(package), "version": version, "generation": generation}


#: The operators declared for torchvision (kept alive: a torch.library.Library that is garbage
#: collected takes its definitions with it).
_TORCHVISION_OPS = []


def _declare_torchvision_ops():
    """Make a CUDA build of torchvision importable next to a CPU-only torch. Returns whether it did.

    Cellpose 4 imports torchvision (through segment_anything). PyPI's torchvision wheel for Linux
    is the CUDA build: its compiled operators (``_C.so``) need ``libtorch_cuda.so``, which the
    CPU build of torch brightflow pins lacks, so torchvision loads without them; its
    ``_meta_registrations.py`` then registers fake kernels for ``torchvision::nms`` and
    ``torchvision::qnms`` without checking that they exist, and ``import torchvision`` fails with
    "operator torchvision::nms does not exist". Declaring the two operators' schemas first (no
    kernel: calling them would fail) lets the import through; neither cellpose nor
    segment_anything calls them. Done only here, in the cellpose 4 worker's process, and only
    for that combination: with CUDA torch, or a CPU build of torchvision, torchvision's library
    loads and defines the operators itself.
    """
    import torch

    if _TORCHVISION_OPS:
        return True
    if torch.version.cuda is not None:
        return False
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    version_file = Path(list(spec.submodule_search_locations)[0]) / "version.py"
    text = version_file.read_text() if version_file.is_file() else ""
    if "+cu" not in text:  # a CPU (or ROCm) build of torchvision registers its operators itself
        return False
    library = torch.library.Library("torchvision", "DEF")
    for name in ("nms", "qnms"):
        library.define(f"{name}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _TORCHVISION_OPS.append(library)
    return True


def import_cellpose(generation=None, overlay=None):
    """Import cellpose, checking that it is ``generation`` and, for an overlay, the overlay's copy.

    Parameters
    ----------
    generation : {3, 4, None}
        The generation the job needs (None: whichever is importable).
    overlay : str, optional
        Cellpose 4's overlay folder: cellpose, torchvision and segment_anything must be
        imported from it (not taken, silently, from brightflow's environment).

    Returns
    -------
    dict
        ``generation``, ``version``, ``file``, ``torchvision_ops_declared`` and the file of each
        package imported (``modules``: cellpose, torch, numpy, and for cellpose 4 torchvision
        and segment_anything).

    Raises
    ------
    WrongEnvironmentError
        No cellpose, another generation, or a package from outside the overlay. Checked before
        anything of cellpose is imported where possible, and again after.
    """
    origin = cellpose_origin()
    if origin is None or (generation is not None and origin["generation"] != generation):
        found = "no cellpose" if origin is None else f"cellpose {origin['version']} in {origin['file']}"
        needs = f"this model needs cellpose {generation}, but " if generation else ""
        raise WrongEnvironmentError(
            f"{needs}this Python ({sys.executable}) imports {found}. "
            + (
                f"Cellpose 4 is expected in the overlay {overlay}: run `make venv` to install it there."
                if generation == 4
                else "Cellpose 3 is expected in brightflow's environment: run `make venv`."
            )  # fmt: skip
        )
    declared = _declare_torchvision_ops() if origin["generation"] == 4 else False
    import cellpose.models  # noqa: F401  (the generation's network classes; torchvision for cellpose 4)
    import torch

    modules = {"cellpose": cellpose.models.__file__, "torch": torch.__file__, "numpy": np.__file__}
    if origin["generation"] == 4:
        import segment_anything
        import torchvision

        modules |= {"torchvision": torchvision.__file__, "segment_anything": segment_anything.__file__}
    if overlay:
        root = Path(overlay).resolve()
        outside = {
            name: path for name, path in modules.items()
            if name in ("cellpose", "torchvision", "segment_anything") and root not in Path(path).resolve().parents
        }  # fmt: skip
        if outside:
            raise WrongEnvironmentError(
                f"cellpose 4's packages must come from the overlay {root}, but "
                + ", ".join(f"{name} came from {path}" for name, path in outside.items())
                + ". Run `make venv` to reinstall the overlay."
            )
    if Path(cellpose.models.__file__).resolve().parent != Path(origin["file"]):
        raise WrongEnvironmentError(f"cellpose was imported from {cellpose.models.__file__}, not {origin['file']}.")
    return origin | {"modules": modules, "torchvision_ops_declared": declared}


# --- device and precision -----------------------------------------------------------------------


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


def cpu_has_bfloat16():
    """Whether this CPU computes bfloat16 natively (oneDNN's check: AVX512-BF16 or AMX).

    Without it torch emulates bfloat16, and Cellpose-SAM takes about 6 times longer in bfloat16
    than in float32 (docs/cellpose.md).
    """
    import torch

    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def select_precision(setting, device, generation):
    """The network's precision: ``"bfloat16"`` or ``"float32"``.

    Cellpose 3 runs in float32 (its only precision). Cellpose 4 runs in bfloat16 on CUDA (its
    default) and on a CPU that computes bfloat16 natively, else in float32 (``auto``); or as
    ``segmentation.precision`` forces. bfloat16 on a CPU without native support is allowed
    (the results are those of bfloat16) but slow, and logged as such.
    """
    if setting not in PRECISIONS:
        raise ValueError(f"segmentation.precision must be one of {', '.join(PRECISIONS)}, got {setting!r}")
    if generation == 3:
        if setting == "bfloat16":
            raise ValueError("segmentation.precision bfloat16 needs a cellpose 4 model; cellpose 3 runs in float32.")
        return "float32"
    if setting != "auto":
        if setting == "bfloat16" and device.type == "cpu" and not cpu_has_bfloat16():
            log.warning("bfloat16 on a CPU without native bfloat16: about 6 times slower than float32")
        return setting
    if device.type == "cuda" or (device.type == "cpu" and cpu_has_bfloat16()):
        return "bfloat16"
    return "float32"


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
    precision="auto",
    overlay=None,
):
    """Segment one 2D image with a cellpose model, with the cellpose of this process.

    Parameters
    ----------
    image : ndarray, shape (y, x)
        The mean projection: one grayscale channel (cellpose 3: channels ``[0, 0]``; cellpose
        4: ``channel_axis`` 2 of a (y, x, 1) image, its first input channel).
    model : str or ModelSpec
        ``segmentation.model`` (see :func:`brightflow.cellpose_models.resolve_model`).
    diameter : float
        Typical cell diameter in pixels; the image is rescaled by the model's training diameter
        over it (cellpose 3: the model's ``diam_mean``, 30 for the built-in cyto models, 17 for
        nuclei; cellpose 4: always 30). 0: cellpose 3 estimates it, with the model's size model
        when there is one (built-in ``cyto3``, ``cyto2``, ``cyto``, ``nuclei`` with their
        ``size_*.npy`` file, or ``<model file>_size.npy``), else uses the mean diameter of the
        model's training cells; cellpose 4 has no size model and does not rescale the image
        (Cellpose-SAM was trained on cells of many sizes).
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
    precision : {'auto', 'bfloat16', 'float32'}
        See :func:`select_precision`.
    overlay : str, optional
        Cellpose 4's overlay folder, which its packages must come from (:func:`import_cellpose`).

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
    if not Path(spec.weights).is_file():
        raise ModelNotFoundError(f"segmentation.model {spec.name!r}: the file {spec.weights} is gone.")
    if spec.generation == 3 and diameter == 0 and spec.builtin and spec.name in SIZE_MODELS and spec.size_model is None:
        raise ModelNotFoundError(
            f"segmentation.diameter is 0 (estimate), which needs cellpose's size model for "
            f"{spec.name!r}: looked for {str(models_folder(environ) / SIZE_MODELS[spec.name])!r}. "
            "Copy it there, or set segmentation.diameter to the typical cell diameter in pixels."
        )
    imported = import_cellpose(spec.generation, overlay)
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    device, description = select_device(gpu)
    chosen = select_precision(precision, device, spec.generation)
    from cellpose import models

    # cellpose read CELLPOSE_LOCAL_MODELS_PATH when it was imported; use the folder checked above
    models.MODEL_DIR = models_folder(environ)
    with _no_download():
        run = _segment4 if spec.generation == 4 else _segment3
        result = run(image, spec, models, device, diameter, float(flow_threshold), float(cellprob_threshold), chosen)
    result.device, result.precision = description, chosen
    result.cellpose = {key: imported[key] for key in ("generation", "version", "file")}
    result.settings = {"flow_threshold": float(flow_threshold), "cellprob_threshold": float(cellprob_threshold)}
    return result


def _seconds(start, start_cpu, loaded, loaded_cpu):
    """Wall-clock and CPU seconds of loading the model (``start`` to ``loaded``) and of evaluating it (to now)."""
    return {
        "load": loaded - start,
        "eval": time.perf_counter() - loaded,
        "load_cpu": loaded_cpu - start_cpu,
        "eval_cpu": time.process_time() - loaded_cpu,
    }


def _segment3(image, spec, models, device, diameter, flow_threshold, cellprob_threshold, precision):
    """Cellpose 3.1.1: a built-in model by name (its file was found), another by path; channels [0, 0]."""
    start, start_cpu = time.perf_counter(), time.process_time()
    if spec.builtin:
        net = models.CellposeModel(gpu=device.type == "cuda", device=device, model_type=spec.name)
    else:
        net = models.CellposeModel(gpu=device.type == "cuda", device=device, pretrained_model=spec.weights)
    if Path(net.pretrained_model).resolve() != Path(spec.weights).resolve():
        raise WrongModelError(f"cellpose 3 loaded {net.pretrained_model}, not {spec.weights}")
    loaded, loaded_cpu = time.perf_counter(), time.process_time()
    if diameter == 0 and spec.size_model is not None:
        size_model = models.SizeModel(net, pretrained_size=spec.size_model)
        used, _ = size_model.eval(image, channels=[0, 0])
        source = "size model"
    elif diameter == 0:
        used, source = float(net.diam_labels), "model training diameter"
    else:
        used, source = float(diameter), "setting"
    masks, flows, _ = net.eval(
        image,
        channels=[0, 0],
        diameter=float(used),
        flow_threshold=flow_threshold,
        cellprob_threshold=cellprob_threshold,
    )
    result = CellposeResult(np.asarray(masks).astype(np.uint16), flows, float(used), source, "", spec)
    result.seconds = _seconds(start, start_cpu, loaded, loaded_cpu)
    return result


#: Cellpose 4's fixed training diameter: it rescales every image by 30 / diameter.
CELLPOSE4_DIAMETER = 30.0


def _segment4(image, spec, models, device, diameter, flow_threshold, cellprob_threshold, precision):
    """Cellpose 4.2.1: always a path (a name it does not find makes it load cpsam_v2 instead);
    ``channel_axis`` instead of channels; 256-pixel tiles, a batch of them per call."""
    import torch

    # the weights a file lacks keep their initial values (cellpose 4 loads files non-strictly):
    # seeded, so that a run is repeatable; a complete model file overwrites every one
    torch.manual_seed(0)
    start, start_cpu = time.perf_counter(), time.process_time()
    net = models.CellposeModel(
        gpu=device.type == "cuda", device=device, pretrained_model=spec.weights, use_bfloat16=precision == "bfloat16"
    )
    if Path(net.pretrained_model).resolve() != Path(spec.weights).resolve():
        raise WrongModelError(f"cellpose 4 loaded {net.pretrained_model}, not {spec.weights}")
    loaded, loaded_cpu = time.perf_counter(), time.process_time()
    tiles = cellpose4_tiles(image.shape, diameter)
    batch = cellpose4_batch_size(tiles, device.type)
    masks, flows, _ = net.eval(
        image[:, :, np.newaxis],
        channel_axis=2,
        diameter=float(diameter) if diameter else None,
        flow_threshold=flow_threshold,
        cellprob_threshold=cellprob_threshold,
        batch_size=batch,
        bsize=256,
    )
    used = float(diameter) if diameter else CELLPOSE4_DIAMETER
    source = "setting" if diameter else "no rescaling"
    result = CellposeResult(np.asarray(masks).astype(np.uint16), flows, used, source, "", spec)
    result.tiles, result.batch_size = tiles, batch
    result.seconds = _seconds(start, start_cpu, loaded, loaded_cpu)
    return result


def write_seg_npy(image, result, image_path):
    """Write ``<image stem>_seg.npy`` beside ``image_path`` with cellpose's ``io.masks_flows_to_seg``.

    The file must be cellpose's own, so the cellpose GUI opens the image (``filename`` is
    ``image_path``) with its masks and flows, and saves a corrected version over it. Cellpose 4's
    writer takes no diameter (it writes NaN): the caller records it (brightflow.steps.segmentation).

    Returns
    -------
    str
        The path written.
    """
    from cellpose import io

    image_path = os.path.abspath(image_path)
    image = np.asarray(image, dtype=np.float32)
    if result.model.generation == 4:
        io.masks_flows_to_seg(image, result.masks, result.flows, image_path)
    else:
        io.masks_flows_to_seg(image, result.masks, result.flows, image_path, diams=result.diameter, channels=[0, 0])
    return os.path.splitext(image_path)[0] + "_seg.npy"


# --- the program: the worker, the fetch command, the GUI ----------------------------------------


def _worker(request_path, answer_path):
    """``segment REQUEST ANSWER``: segment the projection the request names and write its ``_seg.npy``.

    The request (JSON, written by brightflow.cellpose_worker) names the projection (``image``,
    a ``.npy``; ``image_path``, the TIFF the ``_seg.npy`` is named after), the model (a
    ModelSpec record) and the settings. The answer (JSON) says what ran, or the error.
    """
    request = json.loads(Path(request_path).read_text())
    answer = {"ok": False}
    try:
        start = time.perf_counter()
        spec = ModelSpec.from_record(request["model"])
        image = np.load(request["image"])
        result = segment(
            image, spec, diameter=request["diameter"], flow_threshold=request["flow_threshold"],
            cellprob_threshold=request["cellprob_threshold"], gpu=request["gpu"], threads=request.get("threads"),
            precision=request.get("precision", "auto"), overlay=request.get("overlay"),
        )  # fmt: skip
        written = write_seg_npy(image, result, request["image_path"])
        imported = import_cellpose(spec.generation, request.get("overlay"))  # already imported: the record
        answer = {
            "ok": True,
            "seg": written,
            "cells": int(result.masks.max()),
            "diameter": result.diameter,
            "diameter_source": result.diameter_source,
            "device": result.device,
            "precision": result.precision,
            "tiles": result.tiles,
            "batch_size": result.batch_size,
            "cellpose": result.cellpose,
            "modules": imported["modules"],
            "torchvision_ops_declared": imported["torchvision_ops_declared"],
            "seconds": {key: round(value, 3) for key, value in result.seconds.items()}
            | {"total": round(time.perf_counter() - start, 3)},
        }
    except (ModelNotFoundError, WrongModelError, GpuUnavailableError, WrongEnvironmentError, ValueError) as error:
        answer = {"ok": False, "error": type(error).__name__, "message": str(error)}
    finally:
        Path(answer_path).write_text(json.dumps(answer, indent=1))
    return 0 if answer["ok"] else 2


def _fetch(name):
    """``fetch NAME``: download built-in model NAME with the imported cellpose's own downloader."""
    generation = 4 if name in CELLPOSE4_MODELS else 3 if name in CELLPOSE3_MODELS else None
    if generation is None:
        print(f"{name!r} is not a built-in model of cellpose 3 or 4", file=sys.stderr)
        return 2
    try:
        import_cellpose(generation)
    except WrongEnvironmentError as error:
        print(error, file=sys.stderr)
        return 2
    from cellpose import models

    paths = [models.cache_model_path(name)] if generation == 4 else [models.model_path(name)]
    if generation == 3 and name in SIZE_MODELS:
        paths.append(models.size_model_path(name))
    found = generation_of_file(paths[0])
    if found != generation:
        print(f"{paths[0]} holds a cellpose {found} network, not {generation}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


def _gui():
    """``gui``: the cellpose GUI of the cellpose this Python imports (cellpose 4: after the torchvision fix)."""
    import_cellpose()
    from cellpose.gui import gui

    gui.run()
    return 0


def main(argv=None):
    """``python -m brightflow.cellpose_adapter segment REQUEST ANSWER | fetch NAME | gui``."""
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    if len(argv) == 3 and argv[0] == "segment":
        return _worker(argv[1], argv[2])
    if len(argv) == 2 and argv[0] == "fetch":
        return _fetch(argv[1])
    if argv == ["gui"]:
        return _gui()
    print(main.__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
