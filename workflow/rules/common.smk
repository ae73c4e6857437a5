# The sample table, the units of analysis (an experiment, or a channel of a multi-channel stack),
# the input functions of the rules and the list of everything the workflow makes.

import json
import os
import sys
from pathlib import Path

import jsonschema
import pandas as pd
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from brightflow import config as bconfig
from brightflow import io as bio
from brightflow import segment as bsegment
from brightflow import threshold as bthreshold
from brightflow.detrend import correction_named
from brightflow.cross import CROSS_MAP_NAMES
from brightflow.nb import MAP_NAMES, brightness_unit
from brightflow.simulate import DEMO_EXPERIMENTS
from brightflow.timeseries import TIMESERIES_MAP_NAMES

# --- the config -----------------------------------------------------------------------------------


def _schema(name):
    with open(os.path.join(workflow.basedir, "workflow", "schemas", name)) as handle:
        return yaml.safe_load(handle)


CONFIG_SCHEMA = _schema("config.schema.yaml")


def _checked_config():
    """Apply the config's types and check every key and value (brightflow.config), fill in the schema's
    defaults, then check the ranges that depend on other keys."""
    try:
        checked = bconfig.check(config, CONFIG_SCHEMA)
        config.clear()
        config.update(checked)
        validate(config, schema="../schemas/config.schema.yaml")  # fills in the defaults
        bconfig.check_physics(config)
    except bconfig.ConfigError as error:
        raise WorkflowError(str(error)) from None


_checked_config()

OUT = os.path.normpath(config["output_dir"])
DEMO_DIR = f"{OUT}/demo_input"
LOG_DIR = f"{OUT}/logs"
#: Each job's wall time, CPU time and memory (snakemake's benchmark directive), one TSV per job.
BENCH_DIR = f"{OUT}/benchmarks"
#: Folders of brightflow's own under {OUT}/: no experiment may take their names.
RESERVED_NAMES = {"logs", "demo_input", "benchmarks", ".brightflow"}
#: The input files' SHA-256 digests, kept by fingerprint (brightflow.io.content_digest).
DIGEST_CACHE = f"{OUT}/.brightflow/input_digests.json"


def _check_output_folder_free():
    """Refuse at start, before snakemake looks at any file: an output_dir that is a file or cannot be
    written, or that another live brightflow run writes (brightflow.io.lock), from this working
    directory or another."""
    if not workflow.is_main_process:
        return
    problem = bio.samples.path_problem(OUT)
    if problem:
        raise WorkflowError(f"output_dir: {problem}. Choose an output folder whose path has no braces.")
    if os.path.exists(OUT) and not os.path.isdir(OUT):
        raise WorkflowError(f"output_dir {OUT!r} is a file, not a folder: give output_dir a folder's path.")
    existing = Path(OUT).absolute()
    while not existing.exists():
        existing = existing.parent
    if not os.access(existing, os.W_OK | os.X_OK):
        raise WorkflowError(
            f"output_dir {OUT!r}: {existing} cannot be written (permissions, or a read-only file system); give "
            "output_dir a folder you can write."
        )
    other = bio.lock.holder(OUT)
    if other is not None:
        raise WorkflowError(bio.lock.busy_message(OUT, other))


_check_output_folder_free()

# --- the sample table (brightflow.io.samples) ---------------------------------------------------------

#: brightflow's own names in {OUT}/: folders and folder-level outputs, which no experiment may take.
FOLDER_OUTPUTS = ("Folder_average_values_in_roi.csv", "Folder_brightness_summary.png")
OWN_NAMES = tuple(sorted(RESERVED_NAMES | set(FOLDER_OUTPUTS)))


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


# --- units: which (experiment, channel) the per-channel rules analyse ------------------------------
#
# A single-channel stack is one unit named like its experiment: every output in {OUT}/{experiment}/.
# A multi-channel stack (ImageJ hyperstack TCYX, OME-TIFF, channels as samples TYXS with input.axes)
# gives one unit per selected channel, {experiment}/ch{c} (c from 1, as ImageJ counts), whose
# per-channel outputs (bleach correction, maps, figures, tables, settings, time series) go in
# {OUT}/{experiment}/ch{c}/; its projection and segmentation (on segmentation.channel) stay in
# {OUT}/{experiment}/, so every channel is measured in the same cells.


def experiment_series(experiment):
    """The series (from 0) of the experiment's file, None for a file with one."""
    series = SAMPLES.loc[experiment, "series"]
    return None if pd.isna(series) else int(series)


def experiment_source(experiment):
    """The experiment's recording: its path and series (brightflow.io.StackSource)."""
    return bio.StackSource(SAMPLES.loc[experiment, "path"], experiment_series(experiment))


def _stack_shapes():
    """{experiment: (t, c, y, x)} of every recording whose header can be read (brightflow.io.stack_shape). A
    recording that cannot be read (or the demo's, not simulated yet) is left out: its jobs stop with the
    file's own clear message, and the other experiments go on."""
    shapes = {}
    for experiment, path in zip(SAMPLES["experiment"], SAMPLES["path"]):
        if os.path.exists(path):
            try:
                shapes[experiment] = bio.stack_shape(experiment_source(experiment), config["input"]["axes"])
            except bio.InputError:
                pass
    return shapes


STACK_SHAPES = _stack_shapes()


def _units():
    """{unit: (experiment, channel)} (channel None for a single-channel stack), and the
    segmentation channel of every multi-channel experiment."""
    units, segmentation_channels = {}, {}
    wanted = config["input"]["channels"]
    chosen = config["segmentation"]["channel"]
    for experiment, path in zip(SAMPLES["experiment"], SAMPLES["path"]):
        count = STACK_SHAPES[experiment][1] if experiment in STACK_SHAPES else 1
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

# the settings that depend on the recordings (frames, image size), checked once their headers are read
try:
    bconfig.check_against_stacks(config, {name: (t, y, x) for name, (t, _, y, x) in STACK_SHAPES.items()})
except bconfig.ConfigError as error:
    raise WorkflowError(str(error)) from None


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


def _made_by_the_workflow(experiment):
    return SAMPLES.loc[experiment, "origin"] == "the demo"


def _input_file(experiment, column):
    """The experiment's stack or mask, for the rules that read it.

    Marked ancient: its modification time alone reruns nothing; its content does, through the
    digest the same rules take as a parameter (input_digest). A file that is not there (a typo in
    a sample sheet, a file moved away) becomes the output of rule missing_input instead, which
    fails with the path and where it was named, so that only this experiment fails (with
    --keep-going the others finish). The demo's stacks are made by the workflow: followed by time."""
    path = SAMPLES.loc[experiment, column]
    if _made_by_the_workflow(experiment):
        return path
    if not os.path.exists(path):
        return f"{LOG_DIR}/{experiment}/missing_{column}"
    return ancient(path)


def _recording_digest(experiment):
    """The SHA-256 of the experiment's recording now (brightflow.io.content_digest); None for a file made by the
    workflow, missing, or a folder that is not an OME-Zarr (its first job says what is wrong)."""
    path = SAMPLES.loc[experiment, "path"]
    if _made_by_the_workflow(experiment) or not os.path.exists(path):
        return None
    if os.path.isdir(path) and bio.file_kind(path) != "zarr":
        return None
    return bio.content_digest(path, DIGEST_CACHE)


#: The file of RUN_DIGESTS, for the jobs of this run that snakemake starts in processes of their own (a
#: cluster job parses the workflow again, later: it must check against the digests of the run's start).
RUN_DIGESTS_VARIABLE = "BRIGHTFLOW_RUN_DIGESTS"


def _run_digests():
    """{experiment: SHA-256} of every recording as the run starts: what every step of the run must read.

    Snakemake evaluates a job's params when it starts the job, so a digest taken then would follow a
    file that changes during the run. These are taken once, when the main process reads the workflow,
    and written to {OUT}/.brightflow/run_digests.json, which the run's cluster jobs (started with
    the main process's environment) read instead of hashing the files again."""
    saved = os.environ.get(RUN_DIGESTS_VARIABLE)
    if not workflow.is_main_process and saved and os.path.isfile(saved):
        with open(saved) as handle:
            return json.load(handle)
    digests = {experiment: _recording_digest(experiment) for experiment in SAMPLES["experiment"]}
    if workflow.is_main_process:
        record = Path(DIGEST_CACHE).with_name("run_digests.json")
        try:
            record.parent.mkdir(parents=True, exist_ok=True)
            temporary = record.with_name(f".run_digests-{os.getpid()}.json")
            temporary.write_text(json.dumps(digests, sort_keys=True))
            os.replace(temporary, record)
            os.environ[RUN_DIGESTS_VARIABLE] = str(record.absolute())
        except OSError:  # a read-only output folder: refused at start anyway
            pass
    return digests


RUN_DIGESTS = _run_digests()


def input_digest(column):
    """Params function: the SHA-256 of the experiment's stack ('path': as the run started, RUN_DIGESTS) or
    mask ('mask'), computed once per content (brightflow.io.content_digest); None for a file made by the
    workflow, missing or not named."""

    def digest(wildcards):
        experiment = experiment_of(wildcards.experiment)
        if column == "path":
            return RUN_DIGESTS.get(experiment)
        path = SAMPLES.loc[experiment, column]
        if not path or _made_by_the_workflow(experiment):
            return None
        return bio.content_digest(path, DIGEST_CACHE)

    return digest


def stack_source(wildcards):
    """Params function: which series of the file the step reads, and the content the run started from
    (its SHA-256, brightflow.io.content_digest, and the cache that makes checking it cheap). A new
    content reruns the step; a file that changes during the run fails the experiment's next step
    (brightflow.io.sources.check_unchanged) instead of mixing two versions."""
    experiment = experiment_of(wildcards.experiment)
    return {
        "path": SAMPLES.loc[experiment, "path"],
        "series": experiment_series(experiment),
        "sha256": input_digest("path")(wildcards),
        "digest_cache": DIGEST_CACHE,
    }


def stack_path(wildcards):
    """Input function: the experiment's stack as a Snakemake input only when the workflow makes it (the
    demo's), or rule missing_input's report when it is not there as the run starts. A user's recording
    reaches the steps through their ``source`` parameter (stack_source: path, series, content), not as an
    input: Snakemake stops the whole run, --keep-going or not, when a job's input file is missing as the
    job starts, while a step that finds its recording gone fails its own experiment only
    (brightflow.io.sources.check_unchanged). Reruns follow the content through the same parameter."""
    experiment = experiment_of(wildcards.experiment)
    path = SAMPLES.loc[experiment, "path"]
    if _made_by_the_workflow(experiment) or not os.path.exists(path):
        return _input_file(experiment, "path")
    return []


def segmentation_file(name):
    """Input function: an experiment-level segmentation output for a (per-channel) unit."""
    return lambda wildcards: f"{OUT}/{experiment_of(wildcards.experiment)}/{name}"


def existing_mask(wildcards):
    if config["segmentation"]["method"] != "existing":
        return []
    return _input_file(experiment_of(wildcards.experiment), "mask")


def missing_input(wildcards):
    """The file that rule missing_input reports (named for the experiment) and where it was named."""
    column = "path" if wildcards.kind == "path" else "mask"
    return {"path": SAMPLES.loc[wildcards.experiment, column], "origin": SAMPLES.loc[wildcards.experiment, "origin"]}


def sample_record(wildcards):
    """The experiment's row of the sample table that settings.json records (not the sheet's
    reference column: the monomer reference is the aggregate's alone)."""
    experiment = experiment_of(wildcards.experiment)
    record = SAMPLES.loc[experiment, ["experiment", "path", "mask"]].to_dict()
    return record | {"series": experiment_series(experiment)}


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
    "sample_quality.npy",
    "bleach_corrected_trace.json",
    "brightness_explorer.html",
)


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
    truth = [f"{DEMO_DIR}/ground_truth.csv"] if DEMO else []
    return outputs + [f"{OUT}/{name}" for name in FOLDER_OUTPUTS] + truth
