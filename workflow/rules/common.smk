# The sample table, the units of analysis (an experiment, or a channel of a multi-channel stack),
# the input functions of the rules and the list of everything the workflow makes.

import os
from pathlib import Path

import pandas as pd
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from brightflow import io as bio
from brightflow.cross import CROSS_MAP_NAMES
from brightflow.nb import MAP_NAMES
from brightflow.simulate import DEMO_EXPERIMENTS
from brightflow.timeseries import TIMESERIES_MAP_NAMES

validate(config, schema="../schemas/config.schema.yaml")

OUT = os.path.normpath(config["output_dir"])
DEMO_DIR = f"{OUT}/demo_input"
LOG_DIR = f"{OUT}/logs"
#: Each job's wall time, CPU time and memory (snakemake's benchmark directive), one TSV per job.
BENCH_DIR = f"{OUT}/benchmarks"
#: Folders of brightflow's own under {OUT}/: no experiment may take their names.
RESERVED_NAMES = {"logs", "demo_input", "benchmarks"}
STACK_SUFFIXES = {".tif", ".tiff"}

#: The sample sheet's `reference` column: these values mark the monomer reference (case-insensitive);
#: false, no, n, 0 or an empty cell do not.
REFERENCE_TRUE = {"true", "yes", "y", "1", "x"}
REFERENCE_FALSE = {"false", "no", "n", "0", ""}


# --- the sample table -----------------------------------------------------------------------------


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
        table["reference"] = [
            _reference_flag(value, sheet, name) for value, name in zip(table["reference"], table["experiment"])
        ]
    else:
        table["reference"] = False
    return table[["experiment", "path", "mask", "reference"]]


def _sample_table():
    if config["samples"]:
        table, source = _table_from_sheet(config["samples"]), f"sample sheet {config['samples']}"
    elif config["input_dir"] == "demo":
        names = list(DEMO_EXPERIMENTS)
        table = pd.DataFrame(
            {
                "experiment": names,
                "path": [f"{DEMO_DIR}/{name}.tif" for name in names],
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


SAMPLES = _sample_table()
EXPERIMENTS = list(SAMPLES["experiment"])


# --- units: which (experiment, channel) the per-channel rules analyse ------------------------------
#
# A single-channel stack is one unit named like its experiment: every output in {OUT}/{experiment}/.
# A multi-channel stack (ImageJ hyperstack TCYX, OME-TIFF, channels as samples TYXS with input.axes)
# gives one unit per selected channel, {experiment}/ch{c} (c from 1, as ImageJ counts), whose
# per-channel outputs (bleach correction, maps, figures, tables, settings, time series) go in
# {OUT}/{experiment}/ch{c}/; its projection and segmentation (on segmentation.channel) stay in
# {OUT}/{experiment}/, so every channel is measured in the same cells.


def _channel_count(path):
    """Channels of a stack, from its TIFF header (brightflow.io.channel_count); 1 when it cannot be
    read: its jobs then stop with the file's own clear message, and the other experiments go on."""
    try:
        return bio.channel_count(path, config["input"]["axes"])
    except bio.InputError:
        return 1


def _units():
    """{unit: (experiment, channel)} (channel None for a single-channel stack), and the
    segmentation channel of every multi-channel experiment."""
    units, segmentation_channels = {}, {}
    wanted = config["input"]["channels"]
    chosen = config["segmentation"]["channel"]
    for experiment, path in zip(SAMPLES["experiment"], SAMPLES["path"]):
        count = _channel_count(path) if os.path.isfile(path) else 1
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


def sample_record(wildcards):
    """The experiment's row of the sample table that settings.json records (not the sheet's
    reference column: the monomer reference is the aggregate's alone)."""
    return SAMPLES.loc[experiment_of(wildcards.experiment), ["experiment", "path", "mask"]].to_dict()


# --- what the workflow makes ----------------------------------------------------------------------

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
)

#: The folder-level outputs, in {OUT}/.
FOLDER_OUTPUTS = ("Folder_average_values_in_roi.csv", "Folder_brightness_summary.png")


def timeseries_outputs(unit):
    """The time-series outputs of a unit: none unless nb.timeseries.frames_per_set is set."""
    if TIMESERIES is None:
        return []
    folder = f"{OUT}/{unit}"
    return [f"{folder}/timeseries/{name}.tif" for name in TIMESERIES_MAP_NAMES] + [
        f"{folder}/timeseries_values_in_roi.csv",
        f"{folder}/Brightness_timeseries.png",
    ]


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


def all_outputs():
    outputs = [path for name in EXPERIMENTS for path in experiment_outputs(name)]
    return outputs + [f"{OUT}/{name}" for name in FOLDER_OUTPUTS]
