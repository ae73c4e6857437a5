# The sample table, the config after validation, and the input functions of every rule.

import os
import re
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
        {"experiment": [p.stem for p in paths], "path": [str(p) for p in paths], "mask": None}
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
    return table[["experiment", "path", "mask"]]


def _sample_table():
    if config.get("samples"):
        table, source = _table_from_sheet(config["samples"]), f"sample sheet {config['samples']}"
    elif config["input_dir"] == "demo":
        table = pd.DataFrame(
            {
                "experiment": list(DEMO_EXPERIMENTS),
                "path": [f"{DEMO_DIR}/{name}.tif" for name in DEMO_EXPERIMENTS],
                "mask": None,
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


wildcard_constraints:
    experiment="|".join(re.escape(name) for name in EXPERIMENTS) if EXPERIMENTS else "[^/]+",


# --- input functions ------------------------------------------------------------------------------


def stack_path(wildcards):
    return SAMPLES.loc[wildcards.experiment, "path"]


def existing_mask(wildcards):
    if config["segmentation"]["method"] != "existing":
        return []
    return SAMPLES.loc[wildcards.experiment, "mask"]


def experiment_outputs(experiment):
    folder = f"{OUT}/{experiment}"
    maps = [f"{folder}/{name}.{ext}" for name in MAP_NAMES for ext in ("npy", "tif", "png")]
    return maps + [
        f"{folder}/{name}"
        for name in (
            "segmentation_image.tif",
            "segmentation_image_seg.npy",
            "cellmask.png",
            "eroded_mask.png",
            "Bleach_correction.png",
            "brightness_x_intensity.png",
            "brightness_intensity_values.csv",
            "average_values_in_roi.csv",
            "settings.json",
        )
    ]


def all_outputs():
    outputs = [path for name in EXPERIMENTS for path in experiment_outputs(name)]
    return outputs + [f"{OUT}/Folder_average_values_in_roi.csv", f"{OUT}/Folder_brightness_summary.png"]
