# The units of analysis (an experiment, or a channel of a multi-channel stack), the input functions
# of the rules and the list of everything the workflow makes (from the rules' own outputs).

# the package's names that the rules use
from brightflow.cross import CROSS_MAP_NAMES
from brightflow.detrend import correction_named
from brightflow.nb import MAP_NAMES
from brightflow.timeseries import TIMESERIES_MAP_NAMES

# --- units: which (experiment, channel) the per-channel rules analyse ------------------------------
#
# A single-channel stack is one unit named like its experiment: every output in {OUT}/{experiment}/.
# A multi-channel stack (ImageJ hyperstack TCYX, OME-TIFF, channels as samples TYXS with input.axes)
# gives one unit per selected channel, {experiment}/ch{c} (c from 1, as ImageJ counts), whose
# per-channel outputs (bleach correction, maps, figures, tables, settings, time series) go in
# {OUT}/{experiment}/ch{c}/; its projection and segmentation (on segmentation.channel) stay in
# {OUT}/{experiment}/, so every channel is measured in the same cells. The per-channel rules'
# wildcard is {unit}, the experiment-level rules' {experiment}.


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


def channel_unit(experiment, channel):
    """The unit of one channel of a multi-channel experiment."""
    return f"{experiment}/ch{channel}"


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
            units[channel_unit(experiment, channel)] = (experiment, channel)
        segmentation_channels[experiment] = chosen or channels[0]
    return units, segmentation_channels


UNITS, SEGMENTATION_CHANNELS = _units()
MULTICHANNEL = bool(SEGMENTATION_CHANNELS)

# the settings that depend on the recordings (frames, image size), checked once their headers are read
try:
    bconfig.check_against_stacks(config, {name: (t, y, x) for name, (t, _, y, x) in STACK_SHAPES.items()})
except bconfig.ConfigError as error:
    raise WorkflowError(str(error)) from None


# an experiment name is one folder level (names are checked in samples.smk); a channel unit adds /ch{c}
wildcard_constraints:
    experiment="[^/]+",
    unit="[^/]+(/ch[0-9]+)?",


# --- input functions ------------------------------------------------------------------------------


def experiment_of(unit):
    return UNITS[unit][0] if unit in UNITS else unit


def job_experiment(wildcards):
    """The experiment a job reads: its {experiment}, or the experiment of its {unit} (a per-channel rule)."""
    return experiment_of(wildcards.unit) if hasattr(wildcards, "unit") else wildcards.experiment


def unit_channel(wildcards):
    """The channel a per-channel rule reads (None for a single-channel stack)."""
    return UNITS[wildcards.unit][1] if wildcards.unit in UNITS else None


def segmentation_channel(wildcards):
    """The channel the projection (and so the segmentation) of an experiment uses."""
    return SEGMENTATION_CHANNELS.get(wildcards.experiment)


def _input_file(experiment, column):
    """The experiment's stack or mask, for the rules that read it.

    Marked ancient: its modification time alone reruns nothing; its content does, through the
    digest the same rules take as a parameter (input_digest). A file that is not there (a typo in
    a sample sheet, a file moved away) becomes the output of rule missing_input instead, which
    fails with the path and where it was named, so that only this experiment fails (with
    --keep-going the others finish). The demo's stacks are made by the workflow: followed by time."""
    path = SAMPLES.loc[experiment, column]
    if made_by_the_workflow(experiment):
        return path
    if not os.path.exists(path):
        return rules.missing_input.output.report.format(experiment=experiment, kind=column)
    return ancient(path)


def stack_path(wildcards):
    """Input function: the experiment's stack as a Snakemake input only when the workflow makes it (the
    demo's), or rule missing_input's report when it is not there as the run starts. A user's recording
    reaches the steps through their ``source`` parameter (stack_source: path, series, content), not as an
    input: Snakemake stops the whole run, --keep-going or not, when a job's input file is missing as the
    job starts, while a step that finds its recording gone fails its own experiment only
    (brightflow.io.sources.check_unchanged). Reruns follow the content through the same parameter."""
    experiment = job_experiment(wildcards)
    path = SAMPLES.loc[experiment, "path"]
    if made_by_the_workflow(experiment) or not os.path.exists(path):
        return _input_file(experiment, "path")
    return []


def segmentation_file(pattern):
    """Input function: an experiment-level output (its rule's output pattern) for a per-channel unit."""
    return lambda wildcards: pattern.format(experiment=experiment_of(wildcards.unit))


def cross_channel_files(pattern):
    """Input function: a per-channel output (its rule's output pattern) of each of the experiment's two
    nb.cross_channels, for rule nb_cross."""
    return lambda wildcards: [pattern.format(unit=channel_unit(wildcards.experiment, c)) for c in CROSS_CHANNELS]


def existing_mask(wildcards):
    if config["segmentation"]["method"] != "existing":
        return []
    return _input_file(wildcards.experiment, "mask")


def missing_input(wildcards):
    """The file that rule missing_input reports (named for the experiment) and where it was named."""
    column = "path" if wildcards.kind == "path" else "mask"
    return {"path": SAMPLES.loc[wildcards.experiment, column], "origin": SAMPLES.loc[wildcards.experiment, "origin"]}


def sample_record(wildcards):
    """The unit's experiment's row of the sample table that settings.json records (not the sheet's
    reference column: the monomer reference is the aggregate's alone)."""
    experiment = experiment_of(wildcards.unit)
    record = SAMPLES.loc[experiment, ["experiment", "path", "mask"]].to_dict()
    return record | {"series": experiment_series(experiment)}


# --- what the workflow makes: the rules' outputs (rule all is defined after every rule) ----------


def _paths(patterns, **wildcards):
    """The rules' output patterns, in order, with their wildcards filled in."""
    return [pattern.format(**wildcards) for pattern in patterns]


def segmentation_outputs(experiment):
    """Outputs of the projection and segmentation: once per experiment, in {OUT}/{experiment}/."""
    patterns = [
        rules.projection.output.image,
        rules.segmentation.output.seg,
        rules.segmentation.output.record,
        rules.segmentation_exports.output.labels,
        rules.segmentation_exports.output.outlines,
        rules.segmentation_exports.output.rois,
        rules.analysis_mask.output.cellmask,
        rules.analysis_mask.output.eroded,
    ]
    return _paths(patterns, experiment=experiment)


def timeseries_outputs(unit):
    """The time-series outputs of a unit: none unless nb.timeseries.frames_per_set is set."""
    if TIMESERIES is None:
        return []
    return _paths(rules.nb_timeseries.output, unit=unit)


def unit_outputs(unit):
    """Outputs of the per-channel rules, in {OUT}/{unit}/: the maps (.npy, .tif, .png) and the rest."""
    maps = zip(rules.nb_maps.output.npy, rules.nb_maps.output.tif, rules.figures.output.previews, strict=True)
    patterns = [pattern for trio in maps for pattern in trio] + [
        rules.figures.output.bleach,
        rules.figures.output.scatter,
        rules.tables.output.pixels,
        rules.tables.output.cells,
        rules.settings.output.settings,
        rules.nb_maps.output.threshold,
        rules.bleach_correction.output.samples,
        rules.nb_maps.output.corrected_trace,
        rules.brightness_explorer.output.page,
    ]
    return _paths(patterns, unit=unit) + timeseries_outputs(unit)


def cross_outputs(experiment):
    """The cross-correlated N&B outputs of a multi-channel experiment (nb.cross_channels)."""
    if CROSS_CHANNELS is None or experiment not in SEGMENTATION_CHANNELS:
        return []
    output = rules.nb_cross.output
    maps = [pattern for trio in zip(output.npy, output.tif, output.png, strict=True) for pattern in trio]
    return _paths(maps + [output.table], experiment=experiment)


def experiment_outputs(experiment):
    outputs = segmentation_outputs(experiment)
    for unit, (owner, _) in UNITS.items():
        if owner == experiment:
            outputs += unit_outputs(unit)
    return outputs + cross_outputs(experiment)


def all_outputs():
    """Every target (the input of rule all), in order; each experiment's outputs, the folder's, the demo's truth."""
    outputs = [path for name in EXPERIMENTS for path in experiment_outputs(name)]
    truth = [rules.demo_ground_truth.output.truth] if DEMO else []
    return outputs + _paths(rules.aggregate.output) + _paths(truth)
