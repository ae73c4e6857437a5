# The sample table (brightflow.io.samples): one experiment per recording (a file, or a series of a
# file with several), from input_dir, a sample sheet or the demo, its names checked.

import sys

import jsonschema
import pandas as pd

from brightflow.simulate import DEMO_EXPERIMENTS

#: brightflow's own names in {OUT}/: the folder-level outputs (rule aggregate's, by key), which no
#: experiment may take, like the RESERVED_NAMES folders.
FOLDER_OUTPUTS = {"table": "Folder_average_values_in_roi.csv", "figure": "Folder_brightness_summary.png"}
OWN_NAMES = tuple(sorted(RESERVED_NAMES | set(FOLDER_OUTPUTS.values())))


def name_problem(name):
    """Why ``name`` cannot name an experiment (brightflow.io.samples.name_problem), or None."""
    return bio.samples.name_problem(name, OWN_NAMES)


def _check_names(table, source):
    """Names a folder of its own under output_dir, safe as a wildcard, and unique; a path Snakemake can
    take; the error names where each came from."""
    for row in table.itertuples():
        problem = name_problem(row.experiment)
        if problem:
            raise WorkflowError(
                f"{row.path} ({row.origin}): the experiment name {problem}. Rename the file (or, in a sample "
                "sheet, the experiment) so that the name is one folder name."
            )
        problem = bio.samples.path_problem(row.path)
        if problem:
            raise WorkflowError(f"{row.path} ({row.origin}): the path {problem}. Rename the file or its folder.")
    duplicated = table["experiment"][table["experiment"].duplicated(keep=False)]
    if len(duplicated):
        clashes = table[table["experiment"].isin(duplicated)]
        listing = ", ".join(f"{row.experiment} <- {row.path}" for row in clashes.itertuples())
        raise WorkflowError(
            f"{source}: two or more inputs have the same experiment name ({listing}). "
            "The experiment name is the file name without its suffix (and the series, for a file with several) "
            "and must be unique: rename one."
        )


SAMPLE_SCHEMA = jsonschema.Draft202012Validator(_schema("samples.schema.yaml"))
TABLE_COLUMNS = ["experiment", "path", "series", "mask", "reference", "origin"]


#: Whether this run analyses the simulated demo (input_dir: demo, no sample sheet).
DEMO = not config["samples"] and config["input_dir"] == "demo"


def _sample_table():
    try:
        if config["samples"]:
            records = bio.samples.table_from_sheet(config["samples"], SAMPLE_SCHEMA, OWN_NAMES)
            source = f"sample sheet {config['samples']}"
        elif DEMO:
            records = [
                {"experiment": name, "path": f"{DEMO_DIR}/{name}.tif", "origin": "the demo"}
                for name in DEMO_EXPERIMENTS
            ]
            source = "demo"
        else:
            records, notes = bio.samples.table_from_folder(config["input_dir"])
            source = f"input_dir {config['input_dir']}"
            if notes and workflow.is_main_process:
                print("brightflow: " + "\nbrightflow: ".join(notes), file=sys.stderr)
    except bio.InputError as error:
        raise WorkflowError(str(error)) from None
    table = pd.DataFrame(records, columns=TABLE_COLUMNS)
    table["series"] = table["series"].astype("Int64")
    table["reference"] = table["reference"].fillna(False).astype(bool)
    table["mask"] = table["mask"].astype(object).where(table["mask"].notna(), None)
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


def experiment_series(experiment):
    """The series (from 0) of the experiment's file, None for a file with one."""
    series = SAMPLES.loc[experiment, "series"]
    return None if pd.isna(series) else int(series)


def experiment_source(experiment):
    """The experiment's recording: its path and series (brightflow.io.StackSource)."""
    return bio.StackSource(SAMPLES.loc[experiment, "path"], experiment_series(experiment))


def made_by_the_workflow(experiment):
    """Whether the experiment's recording is made by the workflow (the demo's)."""
    return SAMPLES.loc[experiment, "origin"] == "the demo"
