"""Which cellpose model ``segmentation.model`` names, and which cellpose generation runs it.

brightflow runs two generations of cellpose side by side (docs/cellpose.md):

* cellpose 3 (3.1.1.2, in brightflow's environment): the residual U-net models ``cyto3``,
  ``nuclei``, ``cyto2``, ... and models trained with cellpose 3;
* cellpose 4 (4.2.1.1, in its own overlay folder, ``make venv``): Cellpose-SAM (``cpsam``,
  Pachitariu et al. 2025, bioRxiv 10.1101/2025.04.28.651001) and models fine-tuned from it.

The two cannot read each other's files, and each, given a name or a path it does not know,
silently loads or downloads another model (cellpose 4 falls back to ``cpsam_v2``). So the
model is resolved here, when the config is read, to one file that exists and to the generation
that reads it: from the name (:data:`CELLPOSE3_MODELS`, :data:`CELLPOSE4_MODELS`) and from the
file's own keys (:func:`generation_of_file`). Only that file's path is handed to cellpose.

Nothing here imports cellpose, nor torch (except to read a model file in torch's legacy,
pre-2020 format): the Snakefile calls :func:`resolve_model` at start-up.
"""

from __future__ import annotations

import math
import os
import pickle
import shlex
import zipfile
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CELLPOSE3_MODELS",
    "CELLPOSE4_MODELS",
    "CELLPOSE4_TILE",
    "ModelNotFoundError",
    "ModelSpec",
    "WrongModelError",
    "cellpose4_batch_size",
    "cellpose4_tiles",
    "fetch_command",
    "generation_of_file",
    "installed_version",
    "models_folder",
    "resolve_model",
    "state_dict_keys",
]

#: Model names that cellpose 3.1.1 knows (``cellpose.models.MODEL_NAMES``); cellpose 3 downloads
#: their weights on first use, which brightflow never does.
CELLPOSE3_MODELS = (
    "cyto3", "nuclei", "cyto2_cp3", "tissuenet_cp3", "livecell_cp3", "yeast_PhC_cp3",
    "yeast_BF_cp3", "bact_phase_cp3", "bact_fluor_cp3", "deepbacs_cp3", "cyto2", "cyto", "CPx",
    "transformer_cp3", "neurips_cellpose_default", "neurips_cellpose_transformer",
    "neurips_grayscale_cyto2", "CP", "TN1", "TN2", "TN3", "LC1", "LC2", "LC3", "LC4",
)  # fmt: skip

#: Cellpose-SAM models that cellpose 4.2.1 knows by name (``cellpose.models.MODEL_NAMES``, less
#: the Cellpose-DINO models, which need the ``dinov3`` package that brightflow does not install).
CELLPOSE4_MODELS = ("cpsam", "cpsam_v2")

#: cellpose 4's Cellpose-DINO models (refused, with the reason).
CELLPOSE4_DINO_MODELS = ("cpdino", "cpdino-vitb")

#: Built-in cellpose 3 models with a size model (``diameter: 0`` estimates the diameter with it).
SIZE_MODELS = {
    "cyto3": "size_cyto3.npy",
    "cyto2": "size_cyto2torch_0.npy",
    "cyto": "size_cytotorch_0.npy",
    "nuclei": "size_nucleitorch_0.npy",
}

#: The cellpose of each generation that brightflow pins (requirements.txt, requirements-cellpose4.txt,
#: envs/cellpose.yaml, envs/cellpose4.yaml).
PINNED_VERSIONS = {3: "3.1.1.2", 4: "4.2.1.1"}

#: Cellpose-SAM's tile, in pixels (cellpose 4 refuses any other ``bsize``).
CELLPOSE4_TILE = 256


class ModelNotFoundError(Exception):
    """The model file (or a built-in model's weights) is not on this machine."""


class WrongModelError(Exception):
    """The file is not a cellpose model, or not one that brightflow's cellpose can run."""


@dataclass(frozen=True)
class ModelSpec:
    """A model resolved to a file on disk and the cellpose generation that reads it.

    Attributes
    ----------
    name : str
        The ``segmentation.model`` setting as given.
    weights : str
        The absolute path of the weights file that will be loaded.
    generation : int
        3 or 4: the cellpose major version that reads ``weights``.
    builtin : bool
        Whether ``name`` is one of cellpose 3's built-in models (loaded by cellpose 3 from the
        models folder under that name, after brightflow has checked that the file is there).
    size_model : str or None
        The cellpose 3 size model file (for ``diameter: 0``), when there is one.
    """

    name: str
    weights: str
    generation: int
    builtin: bool = False
    size_model: str | None = None

    def record(self):
        """The spec as plain values (the segmentation rule's params, JSON records)."""
        return {
            "model": self.name,
            "model_file": self.weights,
            "generation": self.generation,
            "builtin": self.builtin,
            "size_model": self.size_model,
        }

    @classmethod
    def from_record(cls, record):
        return cls(
            record["model"],
            record["model_file"],
            int(record["generation"]),
            bool(record["builtin"]),
            record.get("size_model"),
        )


# --- model files --------------------------------------------------------------------------------


def models_folder(environ=None):
    """The folder both cellpose generations keep model weights in.

    Cellpose reads it at import: ``CELLPOSE_LOCAL_MODELS_PATH`` when set, else
    ``~/.cellpose/models`` (``cellpose.models.MODEL_DIR``, the same in cellpose 3 and 4).
    """
    environ = os.environ if environ is None else environ
    value = environ.get("CELLPOSE_LOCAL_MODELS_PATH")
    return Path(value).expanduser() if value else Path.home() / ".cellpose" / "models"


def builtin_weights_name(name):
    """The weights file name cellpose 3 uses for a built-in model (``cellpose.models.model_path``)."""
    if name in ("cyto", "cyto2", "nuclei"):
        return f"{name}torch_0"
    return name


class _KeysOnly(pickle.Unpickler):
    """Unpickles a torch state dict's ``data.pkl`` without torch: tensors become ``None``.

    Only the containers a state dict is made of are built (dicts, ``OrderedDict``); every torch
    class or function the pickle names is replaced by a function returning ``None``, so nothing
    from the file is imported or run, and the tensors' data (``persistent_load``) is never read.
    """

    _ALLOWED = {("collections", "OrderedDict")}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            import collections

            return collections.OrderedDict
        if module == "torch" or module.startswith("torch."):
            return _placeholder
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a torch state dict")

    def persistent_load(self, pid):
        return None


def _placeholder(*_args, **_kwargs):
    return None


#: The number torch's legacy (pre-1.6) format starts with, after pickle's protocol opcode.
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def _is_legacy_torch_file(path):
    with open(path, "rb") as handle:
        head = handle.read(14)
    return head[:1] == b"\x80" and head[2:4] == b"\x8a\x0a" and int.from_bytes(head[4:14], "little") == _LEGACY_MAGIC


def state_dict_keys(path):
    """The parameter names of a torch state dict saved in ``path`` (``torch.save``).

    torch's zip format (every torch since 1.6) is read without torch and without reading a
    tensor: only the archive's ``data.pkl``, which holds the names. A file in torch's legacy
    format is loaded with ``torch.load(weights_only=True)``. A ``module.`` prefix (a model
    saved from ``DataParallel``) is dropped, as both cellpose generations drop it.

    Raises
    ------
    WrongModelError
        The file is not a torch state dict.
    """
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
                if not names:
                    raise WrongModelError(f"{path}: a zip archive without data.pkl, not a torch model file.")
                with archive.open(names[0]) as handle:
                    state = _KeysOnly(handle).load()
        elif _is_legacy_torch_file(path):
            import torch

            state = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise WrongModelError(
                f"{path}: not a cellpose model: not a file saved by torch (neither torch's zip format nor its "
                "legacy format)."
            )
    except WrongModelError:
        raise
    except Exception as error:  # pickle errors, torch's own, a truncated file
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise WrongModelError(
            f"{path}: not a cellpose model: it cannot be read as a torch state dict ({type(error).__name__}: {first})."
        ) from error
    if not isinstance(state, dict):
        raise WrongModelError(f"{path}: holds a {type(state).__name__}, not a model's state dict.")
    return [key[7:] if str(key).startswith("module.") else str(key) for key in state]


def generation_of_file(path):
    """The cellpose generation (3 or 4) whose network a model file holds, from its keys.

    A cellpose 4 (Cellpose-SAM) state dict has ``W2`` (the output's unfolding, which cellpose 4
    requires) and about 350 keys, ``encoder.*`` for the ViT; a cellpose 3 state dict has no
    ``W2`` and about 313 keys, ``downsample.*``, ``upsample.*``, ``output.*`` for the residual
    U-net (``encoder.*`` for cellpose 3's transformer models).

    Raises
    ------
    WrongModelError
        Not a cellpose model, or a Cellpose-DINO model (cellpose 4 needs the ``dinov3``
        package for it, which brightflow does not install).
    """
    keys = set(state_dict_keys(path))
    if "W2" in keys:
        if "encoder.cls_token" in keys:
            raise WrongModelError(
                f"{path}: a Cellpose-DINO model (cellpose 4's cpdino). brightflow runs cellpose 4's Cellpose-SAM "
                "models only (cpsam and models trained from it): Cellpose-DINO needs the dinov3 package, which "
                "brightflow does not install."
            )
        return 4
    if any(key.startswith(("downsample.", "upsample.", "output.", "encoder.")) for key in keys):
        return 3
    shown = ", ".join(sorted(keys)[:5]) or "none"
    raise WrongModelError(
        f"{path}: not a cellpose model: its state dict has neither cellpose 4's W2 nor cellpose 3's "
        f"downsample.* keys (keys: {shown}{', ...' if len(keys) > 5 else ''})."
    )


def fetch_command(name, generation, python, overlay=None):
    """The one command that fetches built-in model ``name`` with cellpose's own downloader.

    It runs ``python -m brightflow.cellpose_adapter fetch NAME`` (with cellpose 4's overlay
    first on ``PYTHONPATH`` for a cellpose 4 model) and needs internet.
    """
    command = f"{shlex.quote(str(python))} -m brightflow.cellpose_adapter fetch {shlex.quote(name)}"
    if generation == 4 and overlay:
        command = f"PYTHONPATH={shlex.quote(str(overlay))} {command}"
    return command


def _how_to_fetch(name, generation, folder, python, overlay):
    files = "files it prints" if name in SIZE_MODELS else "file it prints"
    return (
        f"brightflow never downloads weights. On a machine with internet (this one, or in another brightflow "
        f"checkout), run\n    {fetch_command(name, generation, python, overlay)}\n"
        f"which saves the weights in that machine's cellpose models folder (~/.cellpose/models, or "
        f"$CELLPOSE_LOCAL_MODELS_PATH where that is set); copy the {files} into {folder} here. "
        "Or set segmentation.model to the path of a model file, or use segmentation.method: threshold."
    )


def _looks_like_path(value):
    return (
        os.sep in value
        or (os.altsep is not None and os.altsep in value)
        or value.startswith(("~", "."))
        or value.endswith((".pth", ".pt", ".npy"))
    )


def _checked(path, name, generation=None):
    """The generation of model file ``path``, which must be ``generation`` when that is given."""
    found = generation_of_file(path)
    if generation is not None and found != generation:
        raise WrongModelError(
            f"segmentation.model {name!r} is a cellpose {generation} model name, but {path} holds a cellpose "
            f"{found} network. Put the cellpose {generation} weights there, or give the file's path instead "
            "of the name."
        )
    return found


def resolve_model(model, environ=None, python="python", overlay=None):
    """Resolve ``segmentation.model`` to a weights file that exists, and its cellpose generation.

    Parameters
    ----------
    model : str
        A path to a cellpose model file of either generation (trained or fine-tuned with
        cellpose's training API or GUI), or a name: a built-in model of cellpose 3
        (:data:`CELLPOSE3_MODELS`) or 4 (:data:`CELLPOSE4_MODELS`), or a model file in the
        cellpose models folder (:func:`models_folder`).
    environ : mapping, optional
        Environment to read ``CELLPOSE_LOCAL_MODELS_PATH`` from (default ``os.environ``).
    python, overlay : str, optional
        The Python and cellpose 4's overlay folder, named in the command that a message about
        a missing built-in model gives (:func:`fetch_command`).

    Returns
    -------
    ModelSpec

    Raises
    ------
    ModelNotFoundError
        Nothing usable was found; the message says what was looked for and gives the command
        that fetches a built-in model on a machine with internet. No download is attempted.
    WrongModelError
        The file is not a model brightflow's cellpose generations can run, or a built-in name's
        file holds the other generation's network.
    """
    if model is None or str(model).strip() == "":
        raise ModelNotFoundError(
            "segmentation.method is 'cellpose' but segmentation.model is empty: set it to the path of a "
            "cellpose model file (cellpose 3 or 4), or to a built-in model name (cyto3, cpsam, ...) whose "
            "weights are in the cellpose models folder."
        )
    model = str(model).strip()
    path = Path(model).expanduser()
    folder = models_folder(environ)
    if path.is_file():
        size = Path(f"{path}_size.npy")
        generation = _checked(path, model)
        return ModelSpec(
            model,
            str(path.resolve()),
            generation,
            False,
            str(size.resolve()) if generation == 3 and size.is_file() else None,
        )
    if path.exists():
        raise ModelNotFoundError(f"segmentation.model {model!r} is a folder, not a cellpose model file.")
    if _looks_like_path(model):
        raise ModelNotFoundError(
            f"segmentation.model: model file {str(path)!r} not found (looked for {str(path.resolve())!r}). Give "
            f"the path of an existing cellpose model file, or a built-in model name (cyto3, cpsam, ...) whose "
            f"weights are in the cellpose models folder ({folder}, set by CELLPOSE_LOCAL_MODELS_PATH). "
            "brightflow never downloads weights."
        )
    if model in CELLPOSE4_DINO_MODELS:
        raise WrongModelError(
            f"segmentation.model {model!r} is a Cellpose-DINO model of cellpose 4, which needs the dinov3 package "
            f"that brightflow does not install. Use a Cellpose-SAM model ({', '.join(CELLPOSE4_MODELS)}) or a "
            "cellpose 3 model."
        )
    generation = 3 if model in CELLPOSE3_MODELS else 4 if model in CELLPOSE4_MODELS else None
    if generation is not None:
        weights = folder / (builtin_weights_name(model) if generation == 3 else model)
        if not weights.is_file():
            kind = "cellpose 3" if generation == 3 else "cellpose 4 (Cellpose-SAM)"
            raise ModelNotFoundError(
                f"segmentation.model {model!r} is a built-in {kind} model, but its weights are not on this "
                f"machine: looked for {str(weights)!r} (the cellpose models folder). "
                + _how_to_fetch(model, generation, folder, python, overlay)
            )
        _checked(weights, model, generation)
        size = folder / SIZE_MODELS[model] if model in SIZE_MODELS else None
        size_model = str(size) if size is not None and size.is_file() else None
        return ModelSpec(model, str(weights), generation, generation == 3, size_model)
    weights = folder / model  # a user's model in the models folder (the cellpose GUI puts them there)
    if not weights.is_file():
        raise ModelNotFoundError(
            f"segmentation.model {model!r} is neither an existing model file (looked for {str(path.resolve())!r}) "
            f"nor a model in the cellpose models folder (looked for {str(weights)!r}). Built-in names: cellpose 4 "
            f"{', '.join(CELLPOSE4_MODELS)}; cellpose 3 {', '.join(CELLPOSE3_MODELS[:6])}, ... brightflow never "
            "downloads weights."
        )
    generation = _checked(weights, model)
    size = Path(f"{weights}_size.npy")
    return ModelSpec(model, str(weights), generation, False, str(size) if generation == 3 and size.is_file() else None)


def installed_version(generation, overlay=None, conda=False):
    """The version of the cellpose that will run a generation's models, found without importing it.

    Cellpose 3: the one installed in this environment. Cellpose 4: the one in the ``overlay``
    folder. With ``conda`` the rules' environments are made later, from envs/: the pinned version.

    Raises
    ------
    ModelNotFoundError
        That generation's cellpose is not installed (the message says how to install it).
    """
    from importlib import metadata

    if conda:
        return PINNED_VERSIONS[generation]
    if generation == 4:
        found = (
            [
                d.version
                for d in metadata.distributions(path=[str(overlay)])
                if (d.metadata["Name"] or "").lower() == "cellpose"
            ]
            if overlay and Path(overlay).is_dir()
            else []
        )
        where = f"in the overlay folder {overlay}"
    else:
        try:
            found = [metadata.version("cellpose")]
        except metadata.PackageNotFoundError:
            found = []
        where = "in brightflow's environment"
    if not found or not found[0].startswith(f"{generation}."):
        have = f"cellpose {found[0]}" if found else "no cellpose"
        raise ModelNotFoundError(
            f"segmentation.model is a cellpose {generation} model, but there is {have} {where}. Run `make venv` "
            f"in the brightflow checkout (it installs cellpose {PINNED_VERSIONS[generation]}"
            + (" into .cellpose4/, beside brightflow's environment)." if generation == 4 else ").")
        )
    return found[0]


# --- cellpose 4's tiles -------------------------------------------------------------------------


def _padded(length):
    """The length cellpose 4 pads an image side to before tiling (``transforms.get_pad_yx``)."""
    tile, div = CELLPOSE4_TILE, 16
    if length >= tile:
        return div * math.ceil(length / div) + div
    return max(length + div, tile)


def cellpose4_tiles(shape, diameter=0.0, tile_overlap=0.1):
    """The number of 256-pixel tiles cellpose 4 runs its network on for one 2D image.

    Cellpose 4 rescales the image by 30 / ``diameter`` (none for 0), pads each side to a
    multiple of 16 plus 16 (to at least 256), and cuts ``ceil(1.2 L / 256)`` overlapping tiles
    along a padded side ``L`` longer than 256 (``core.run_net``, ``transforms.make_tiles``).
    An image of up to 240 pixels is one tile; one of 256 is padded to 272, which makes 4.
    """
    scale = 30.0 / diameter if diameter else 1.0
    count = 1
    for length in shape[-2:]:
        padded = _padded(int(length * scale))
        count *= 1 if padded <= CELLPOSE4_TILE else math.ceil((1 + 2 * tile_overlap) * padded / CELLPOSE4_TILE)
    return count


#: Largest batch of tiles per network call: on the CPU 4 (a batch of 4 tiles in float32 stays under the
#: peak of loading the weights, 2.85 GB, and more tiles per call are not faster on a few cores); on
#: CUDA cellpose's default, 8 (not measured here: no GPU).
CELLPOSE4_MAX_BATCH = {"cpu": 4, "cuda": 8}


def cellpose4_batch_size(tiles, device_type):
    """Tiles per network call: all of an image's tiles, up to :data:`CELLPOSE4_MAX_BATCH`."""
    return max(1, min(int(tiles), CELLPOSE4_MAX_BATCH.get(device_type, CELLPOSE4_MAX_BATCH["cpu"])))
