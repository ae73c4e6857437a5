# The sample table, the config after validation, and the input functions of every rule.

import functools
import math
import os
import sys
from pathlib import Path

import pandas as pd
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")

OUT = config["output_dir"].rstrip("/") or "."
DEMO_DIR = f"{OUT}/demo_input"
LOG_DIR = f"{OUT}/logs"
RESERVED_NAMES = {"logs", "demo_input"}
STACK_SUFFIXES = {".tif", ".tiff"}

#: The six per-pixel maps, each written as .npy, .tif and .png.
MAP_NAMES = (
    "intensity",
    "variance",
    "apparent_brightness",
    "apparent_number",
    "brightness",
    "number",
)

#: The N&B time series' quantities, each a multi-page TIFF under {experiment}/timeseries/.
TIMESERIES_MAP_NAMES = ("apparent_brightness", "apparent_number", "brightness", "number")

#: The cross-correlated N&B maps (brightflow.cross.CROSS_MAP_NAMES), each as .npy, .tif and .png.
CROSS_MAP_NAMES = ("cross_variance", "cross_brightness", "cross_number")

#: The demo's experiments (kept in step with brightflow.simulate.DEMO_EXPERIMENTS, see test_demo).
DEMO_EXPERIMENTS = ("demo_monomer", "demo_mixed", "demo_tetramer")


def _check_names(table, source):
    duplicated = table["experiment"][table["experiment"].duplicated(keep=False)]
    if len(duplicated):
        clashes = table[table["experiment"].isin(duplicated)]
        listing = ", ".join(f"{row.experiment} <- {row.path}" for row in clashes.itertuples())
        raise WorkflowError(
            f"{source}: two or more inputs have the same experiment name ({listing}). "
            "The experiment name is the file name without its suffix and must be unique: rename one."
        )
    reserved = set(table["experiment"]) & RESERVED_NAMES
    if reserved:
        raise WorkflowError(
            f"{source}: experiment name(s) {sorted(reserved)} are reserved for brightflow's own "
            f"folders under {OUT}/: rename the file(s)."
        )


def _table_from_folder(folder):
    folder = Path(folder)
    if not folder.is_dir():
        raise WorkflowError(
            f"input_dir {str(folder)!r} is not a folder. Set input_dir in config/config.yaml "
            "or with --config input_dir=/path/to/stacks (or input_dir=demo)."
        )
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in STACK_SUFFIXES)
    if not paths:
        raise WorkflowError(f"input_dir {str(folder)!r} holds no .tif or .tiff files.")
    return pd.DataFrame(
        {"experiment": [p.stem for p in paths], "path": [str(p) for p in paths], "mask": None, "reference": False}
    )


def _table_from_sheet(sheet):
    sheet = Path(sheet)
    if not sheet.is_file():
        raise WorkflowError(f"samples: sample sheet {str(sheet)!r} not found.")
    table = pd.read_csv(sheet, sep="\t", dtype=str, comment="#").dropna(how="all")
    table.columns = [c.strip() for c in table.columns]
    missing = {"experiment", "path"} - set(table.columns)
    if missing:
        raise WorkflowError(f"{sheet}: the sample sheet lacks column(s) {sorted(missing)}.")
    if "mask" not in table.columns:
        table["mask"] = None
    table = table.astype(object).where(table.notna(), None)
    for row in table.to_dict("records"):
        validate(row, schema="../schemas/samples.schema.yaml")

    def resolve(value):
        if value is None or str(value).strip() == "":
            return None
        value = Path(str(value).strip()).expanduser()
        return str(value if value.is_absolute() else sheet.parent / value)

    table["path"] = table["path"].map(resolve)
    table["mask"] = table["mask"].map(resolve)
    if "reference" in table.columns:
        table["reference"] = [_reference_flag(value, sheet, name) for value, name in zip(table["reference"], table["experiment"])]
    else:
        table["reference"] = False
    return table[["experiment", "path", "mask", "reference"]]


#: The sample sheet's `reference` column: these values mark the monomer reference (case-insensitive);
#: false, no, n, 0 or an empty cell do not.
REFERENCE_TRUE = {"true", "yes", "y", "1", "x"}
REFERENCE_FALSE = {"false", "no", "n", "0", ""}


def _reference_flag(value, sheet, experiment):
    text = "" if value is None else str(value).strip().lower()
    if text in REFERENCE_TRUE:
        return True
    if text in REFERENCE_FALSE:
        return False
    raise WorkflowError(
        f"{sheet}: the 'reference' column of experiment {experiment!r} is {value!r}; write true (or yes, x, 1) "
        "for the monomer reference experiment and leave it empty (or false) for the others."
    )


def _sample_table():
    if config.get("samples"):
        table, source = _table_from_sheet(config["samples"]), f"sample sheet {config['samples']}"
    elif config["input_dir"] == "demo":
        table = pd.DataFrame(
            {
                "experiment": list(DEMO_EXPERIMENTS),
                "path": [f"{DEMO_DIR}/{name}.tif" for name in DEMO_EXPERIMENTS],
                "mask": None,
                "reference": False,
            }
        )
        source = "demo"
    else:
        table, source = _table_from_folder(config["input_dir"]), f"input_dir {config['input_dir']}"
    _check_names(table, source)
    if config["segmentation"]["method"] == "existing":
        no_mask = table.loc[table["mask"].isna(), "experiment"].tolist()
        if no_mask:
            raise WorkflowError(
                f"segmentation.method is 'existing' but experiment(s) {no_mask} have no mask: "
                "give each a label TIFF or cellpose _seg.npy in the sample sheet's 'mask' column."
            )
    return table.set_index("experiment", drop=False)


def _cellpose_settings():
    seg = config["segmentation"]
    return {
        "model": seg.get("model"),
        "diameter": float(seg.get("diameter", 75)),
        "flow_threshold": float(seg.get("flow_threshold", 0.4)),
        "cellprob_threshold": float(seg.get("cellprob_threshold", 0.0)),
        "gpu": seg.get("gpu", "auto"),
    }


def _segmentation_gpu_jobs():
    """1 when the segmentation jobs will run cellpose on CUDA, else 0 (their `gpu` resource).

    gpu true: 1; false: 0; auto: 1 when torch sees CUDA here (on a cluster, where the login
    node has no GPU, set gpu: true so the jobs request one).
    """
    if config["segmentation"]["method"] != "cellpose":
        return 0
    setting = CELLPOSE_SETTINGS["gpu"]
    if setting is True or setting is False:
        return int(setting)
    try:
        from brightflow.cellpose_adapter import cuda_available

        return int(cuda_available())
    except ImportError:  # torch missing where snakemake runs: the job itself decides
        return 1


def _timeseries_settings():
    """nb.timeseries when frames_per_set is set (the time series is on), else None."""
    settings = config["nb"].get("timeseries") or {}
    frames_per_set = settings.get("frames_per_set")
    if frames_per_set is None:
        return None
    overlap = int(settings.get("overlap", 0))
    if overlap >= frames_per_set:
        raise WorkflowError(
            f"nb.timeseries.overlap is {overlap} but frames_per_set is {frames_per_set}: the overlap (frames "
            "shared by consecutive windows) must be smaller; use frames_per_set - 1 to slide by one frame."
        )
    return {"frames_per_set": int(frames_per_set), "overlap": overlap}


CELLPOSE_SETTINGS = _cellpose_settings()
TIMESERIES = _timeseries_settings()
SEGMENTATION_GPU_JOBS = _segmentation_gpu_jobs()
SAMPLES = _sample_table()
EXPERIMENTS = list(SAMPLES["experiment"])


# --- channels: which (experiment, channel) units the per-channel rules analyse ---------------------
#
# A single-channel stack is one unit named like its experiment: every output in {OUT}/{experiment}/.
# A multi-channel stack (ImageJ hyperstack TCYX, OME-TIFF, channels as samples TYXS with input.axes)
# gives one unit per selected channel, {experiment}/ch{c} (c from 1, as ImageJ counts), whose
# per-channel outputs (bleach correction, maps, figures, tables, settings, time series) go in
# {OUT}/{experiment}/ch{c}/; its projection and segmentation (on segmentation.channel) stay in
# {OUT}/{experiment}/, so every channel is measured in the same cells.


def _stack_channel_count(path):
    """Channels of a stack, from its TIFF header; 1 when it has none or cannot be read (its jobs
    then stop with the file's own clear message, and the other experiments go on)."""
    import tifffile

    from brightflow import axes

    configured = config["input"].get("axes")
    try:
        with tifffile.TiffFile(path) as tif:
            shape, metadata_axes = tuple(tif.series[0].shape), tif.series[0].axes
        if len(shape) < 4:
            return 1
        found = axes.resolve_axes(shape, metadata_axes, configured if configured and len(configured) == len(shape) else None)
    except Exception:
        return 1
    sizes = [shape[i] for i, letter in enumerate(found) if letter in axes.channel_axis_letters]
    return max(sizes, default=1)


def _units():
    """{unit: (experiment, channel)} (channel None for a single-channel stack), and the
    segmentation channel of every multi-channel experiment."""
    units, segmentation_channels = {}, {}
    wanted = config["input"].get("channels")
    chosen = config["segmentation"].get("channel")
    for experiment, path in zip(SAMPLES["experiment"], SAMPLES["path"]):
        count = _stack_channel_count(path) if os.path.isfile(path) else 1
        if count == 1:
            units[experiment] = (experiment, None)
            continue
        channels = list(wanted) if wanted else list(range(1, count + 1))
        missing = [c for c in channels + ([chosen] if chosen else []) if not 1 <= c <= count]
        if missing:
            raise WorkflowError(
                f"{path}: has {count} channels (1 to {count}) but input.channels / segmentation.channel "
                f"ask for channel(s) {missing}: change them."
            )
        for channel in channels:
            units[f"{experiment}/ch{channel}"] = (experiment, channel)
        segmentation_channels[experiment] = chosen or channels[0]
    return units, segmentation_channels


UNITS, SEGMENTATION_CHANNELS = _units()
MULTICHANNEL = bool(SEGMENTATION_CHANNELS)


def _cross_channels():
    pair = config["nb"].get("cross_channels")
    if not pair:
        return None
    if len(pair) != 2 or pair[0] == pair[1]:
        raise WorkflowError(f"nb.cross_channels is {pair}: give two different channels, e.g. [1, 2].")
    for experiment in SEGMENTATION_CHANNELS:
        selected = [c for unit, (e, c) in UNITS.items() if e == experiment]
        absent = [c for c in pair if c not in selected]
        if absent:
            raise WorkflowError(
                f"nb.cross_channels {pair}: experiment {experiment!r} analyses channels {selected}, not {absent}; "
                "add them to input.channels."
            )
    return [int(c) for c in pair]


CROSS_CHANNELS = _cross_channels()
CROSS_FOLDER = f"cross_ch{CROSS_CHANNELS[0]}_ch{CROSS_CHANNELS[1]}" if CROSS_CHANNELS else None


# an experiment name is one folder level (names are checked above); a channel unit adds /ch{c}
wildcard_constraints:
    experiment="[^/]+(/ch[0-9]+)?",


# --- input functions ------------------------------------------------------------------------------


def experiment_of(unit):
    return UNITS[unit][0] if unit in UNITS else unit


def unit_channel(wildcards):
    """The channel a per-channel rule reads (None for a single-channel stack)."""
    return UNITS[wildcards.experiment][1] if wildcards.experiment in UNITS else None


def segmentation_channel(wildcards):
    """The channel the projection (and so the segmentation) of an experiment uses."""
    return SEGMENTATION_CHANNELS.get(wildcards.experiment)


def stack_path(wildcards):
    return SAMPLES.loc[experiment_of(wildcards.experiment), "path"]


def segmentation_file(name):
    """Input function: an experiment-level segmentation output for a (per-channel) unit."""
    return lambda wildcards: f"{OUT}/{experiment_of(wildcards.experiment)}/{name}"


def existing_mask(wildcards):
    if config["segmentation"]["method"] != "existing":
        return []
    return SAMPLES.loc[experiment_of(wildcards.experiment), "mask"]


#: Outputs of the projection and segmentation: once per experiment, in {OUT}/{experiment}/.
SEGMENTATION_OUTPUTS = (
    "segmentation_image.tif",
    "segmentation_image_seg.npy",
    "segmentation.json",
    "segmentation_labels.tif",
    "segmentation_image_cp_outlines.txt",
    "cell_rois.zip",
    "cellmask.png",
    "eroded_mask.png",
)

#: Outputs of the per-channel rules, in {OUT}/{unit}/ (the six maps besides).
UNIT_OUTPUTS = (
    "Bleach_correction.png",
    "brightness_x_intensity.png",
    "brightness_intensity_values.csv",
    "average_values_in_roi.csv",
    "settings.json",
    "nb_threshold.json",
    "brightness_explorer.html",
)


def unit_outputs(unit):
    folder = f"{OUT}/{unit}"
    maps = [f"{folder}/{name}.{ext}" for name in MAP_NAMES for ext in ("npy", "tif", "png")]
    return maps + [f"{folder}/{name}" for name in UNIT_OUTPUTS] + timeseries_outputs(unit)


def cross_outputs(experiment):
    """The cross-correlated N&B outputs of a multi-channel experiment (nb.cross_channels)."""
    if CROSS_CHANNELS is None or experiment not in SEGMENTATION_CHANNELS:
        return []
    folder = f"{OUT}/{experiment}/{CROSS_FOLDER}"
    return [f"{folder}/{name}.{ext}" for name in CROSS_MAP_NAMES for ext in ("npy", "tif", "png")] + [
        f"{folder}/cross_values_in_roi.csv"
    ]


def experiment_outputs(experiment):
    outputs = [f"{OUT}/{experiment}/{name}" for name in SEGMENTATION_OUTPUTS]
    for unit, (owner, _) in UNITS.items():
        if owner == experiment:
            outputs += unit_outputs(unit)
    return outputs + cross_outputs(experiment)


def timeseries_outputs(experiment):
    """The time-series outputs of an experiment: none unless nb.timeseries.frames_per_set is set."""
    if TIMESERIES is None:
        return []
    folder = f"{OUT}/{experiment}"
    return [f"{folder}/timeseries/{name}.tif" for name in TIMESERIES_MAP_NAMES] + [
        f"{folder}/timeseries_values_in_roi.csv",
        f"{folder}/Brightness_timeseries.png",
    ]


def all_outputs():
    outputs = [path for name in EXPERIMENTS for path in experiment_outputs(name)]
    return outputs + [f"{OUT}/Folder_average_values_in_roi.csv", f"{OUT}/Folder_brightness_summary.png"]


# --- resources: what each job asks of a cluster scheduler (see profiles/) -------------------------
#
# A workstation run ignores mem_mb unless the user limits it (`--resources mem_mb=...`); the SLURM
# profile turns mem_mb into `sbatch --mem` and gpu into `sbatch --gpus`. Requests grow with the
# stack, and double on each retry (`retries:` in the profile), so a job killed for memory is
# resubmitted with more.

#: Memory (MB) of a rule script reading an uncompressed stack: Python with numpy, scipy,
#: scikit-image, tifffile and matplotlib imported (about 100-150 MB), one block of frames or one
#: tile of rows across all frames with its float64 working copies (stackio.frame_chunks,
#: stackio.row_tiles: 256 MiB for all copies) and the frame-sized maps, with headroom. Measured
#: peaks are in README.md, "Running on a SLURM cluster" > "Memory requests".
BASE_MEM_MB = 500

#: Extra memory of the cellpose segmentation (torch, the model, the network's activations).
CELLPOSE_MEM_MB = 3000


# stackio (scripts/) reads TIFF headers as the rule scripts read the stacks
sys.path.insert(0, os.path.join(workflow.basedir, "scripts"))


@functools.lru_cache(maxsize=None)
def stack_megabytes(path):
    """Memory in MB that holding a stack's pixels adds to a job, from the TIFF header.

    stackio.Stack reads most stacks block by block (chunks of frames, tiles of rows, each
    dropped after use; a compressed stack's tiles come from a decoded copy on disk): 0,
    :data:`BASE_MEM_MB` covers it however long the recording. The layouts it decodes whole
    (time not the first axis, e.g. ``CTYX``) add their decoded size:
    stackio.whole_stack_megabytes, which decides as stackio.Stack does. An unreadable file
    gives its file size (the job then fails with a clear message).

    Cached per path: snakemake evaluates the memory request of every job of a stack (four
    rules per experiment) when it builds the DAG, and a dry run of hundreds of experiments
    would otherwise read each header four times.
    """
    import stackio

    if not os.path.exists(path):
        # snakemake evaluates the request again once the input exists (e.g. the demo's stacks)
        raise FileNotFoundError(2, "No such file", path)
    try:
        return stackio.whole_stack_megabytes(path, config["input"].get("axes"))
    except Exception:
        return os.path.getsize(path) / 2**20


def stack_mem_mb(wildcards, input, attempt):
    """mem_mb of a rule that reads the experiment's stack (projection, bleach correction,
    N&B maps, settings): the decoded stack plus :data:`BASE_MEM_MB`, times the attempt (a retry asks more)."""
    return int((BASE_MEM_MB + stack_megabytes(input.stack)) * attempt)


def timeseries_mem_mb(wildcards, input, attempt):
    """mem_mb of rule nb_timeseries: the stack as for the other stack rules, plus the windows that are
    open at once while the frames stream past (ceil(frames_per_set / step) of them, four frame-sized
    arrays of sums each). Finished windows go to temporary files (stackio.FrameStore) and the maps
    are written a window at a time, so the number of windows does not count."""
    import tifffile

    frames_per_set, overlap = TIMESERIES["frames_per_set"], TIMESERIES["overlap"]
    try:
        with tifffile.TiffFile(input.stack) as tif:
            shape = tif.series[0].shape
        open_windows = -(-frames_per_set // (frames_per_set - overlap))
        windows_mb = open_windows * math.prod(shape[1:]) * 8 * 4 / 2**20  # shape[1:]: frame (x channels)
    except Exception:
        windows_mb = 0
    return int((BASE_MEM_MB + stack_megabytes(input.stack) + windows_mb) * attempt)


def segmentation_mem_mb(wildcards, attempt):
    extra = CELLPOSE_MEM_MB if config["segmentation"]["method"] == "cellpose" else 0
    return (BASE_MEM_MB + extra) * attempt


#: Memory (MB) of the rules that read no stack (segmentation exports, masks, figures, tables,
#: aggregate): Python with matplotlib or pandas (about 80-150 MB measured) and a few frame-sized
#: maps (six float64 maps of 2048 x 2048 are 200 MB), with headroom.
LIGHT_MEM_MB = 1000


def light_mem_mb(wildcards, attempt):
    return LIGHT_MEM_MB * attempt


#: Wall-clock limits (minutes, sbatch --time), times the attempt. Measured on 2 cores: a 500 MB
#: stack takes 0.2-3 s per stack rule and 1-2 s per light rule; the limits leave room for slow,
#: shared nodes and cold file systems.
LIGHT_RUNTIME_MIN = 15
STACK_RUNTIME_MIN = 15
STACK_RUNTIME_MIN_PER_GB = 15
#: cellpose on a CPU node: about 10 s per 1024 x 1024 projection (README), far less on a GPU
CELLPOSE_RUNTIME_MIN = 60


def light_runtime(wildcards, attempt):
    return LIGHT_RUNTIME_MIN * attempt


def stack_runtime(wildcards, input, attempt):
    """runtime of a rule that reads the stack: a base plus a share per GB of the file, times the attempt."""
    size_gb = os.path.getsize(input.stack) / 2**30 if os.path.exists(input.stack) else 0
    return int((STACK_RUNTIME_MIN + STACK_RUNTIME_MIN_PER_GB * size_gb) * attempt)


def segmentation_runtime(wildcards, attempt):
    if config["segmentation"]["method"] == "cellpose":
        return CELLPOSE_RUNTIME_MIN * attempt
    return LIGHT_RUNTIME_MIN * attempt


# --- SLURM placement: account and partitions (config key slurm, or BRIGHTFLOW_SLURM_* variables) ---


def _slurm_setting(key):
    """slurm.<key> from the config, else $BRIGHTFLOW_SLURM_<KEY>; None when neither is set."""
    value = config["slurm"].get(key) or os.environ.get(f"BRIGHTFLOW_SLURM_{key.upper()}", "").strip()
    return str(value) if value else None


SLURM_ACCOUNT = _slurm_setting("account")
SLURM_PARTITION = _slurm_setting("partition")
SLURM_GPU_PARTITION = _slurm_setting("gpu_partition") or SLURM_PARTITION


def slurm_placement(gpu=False):
    """The slurm_account / slurm_partition resources of a rule (only those that are set).

    The SLURM executor turns them into sbatch --account / --partition; without them it uses the
    cluster's default partition and guesses the account. A job that asks for a GPU goes to
    slurm.gpu_partition. Other executors ignore them.
    """
    placement = {}
    if SLURM_ACCOUNT:
        placement["slurm_account"] = SLURM_ACCOUNT
    partition = SLURM_GPU_PARTITION if gpu else SLURM_PARTITION
    if partition:
        placement["slurm_partition"] = partition
    return placement
