# Checks of the config that its schema cannot express (values that depend on each other or on the
# sample table), each resolved once here into the value the rules use.

from brightflow import segment as bsegment
from brightflow import threshold as bthreshold


def _timeseries_settings():
    """nb.timeseries when frames_per_set is set (the time series is on), else None."""
    settings = config["nb"]["timeseries"]
    if settings["frames_per_set"] is None:
        return None
    if settings["overlap"] >= settings["frames_per_set"]:
        raise WorkflowError(
            f"nb.timeseries.overlap is {settings['overlap']} but frames_per_set is {settings['frames_per_set']}: "
            "the overlap (frames shared by consecutive windows) must be smaller; use frames_per_set - 1 to "
            "slide by one frame."
        )
    return {"frames_per_set": settings["frames_per_set"], "overlap": settings["overlap"]}


def _cross_channels():
    """nb.cross_channels, checked against the channels every multi-channel experiment analyses."""
    pair = config["nb"]["cross_channels"]
    if not pair:
        return None
    if len(pair) != 2 or pair[0] == pair[1]:
        raise WorkflowError(f"nb.cross_channels is {pair}: give two different channels, e.g. [1, 2].")
    for experiment in SEGMENTATION_CHANNELS:
        selected = [c for unit, (e, c) in UNITS.items() if e == experiment]
        absent = [c for c in pair if c not in selected]
        if absent:
            raise WorkflowError(
                f"nb.cross_channels {pair}: experiment {experiment!r} analyses channels {selected}, not "
                f"{absent}; add them to input.channels."
            )
    return [int(c) for c in pair]


def _monomer_setting():
    """nb.monomer_brightness: None, a positive number, or the name of a reference unit, which the
    sample sheet's `reference` column can give instead (both must then agree)."""
    setting = config["nb"]["monomer_brightness"]
    marked = SAMPLES.loc[SAMPLES["reference"].astype(bool), "experiment"].tolist()
    if len(marked) > 1:
        raise WorkflowError(
            f"sample sheet {config['samples']}: the 'reference' column marks {len(marked)} experiments "
            f"({', '.join(marked)}); mark only the one monomer reference experiment."
        )
    if marked and marked[0] in SEGMENTATION_CHANNELS:
        raise WorkflowError(
            f"sample sheet {config['samples']}: the reference experiment {marked[0]!r} has several channels: "
            f"name the monomer's channel in nb.monomer_brightness instead (e.g. {marked[0]}/ch1) and clear the mark."
        )
    if marked:
        if setting is None:
            return marked[0]
        if setting != marked[0]:
            raise WorkflowError(
                f"nb.monomer_brightness is {setting!r} but the sample sheet {config['samples']} marks "
                f"{marked[0]!r} as the monomer reference: keep one of the two (or make them name the same experiment)."
            )
    if setting is None or isinstance(setting, (int, float)):
        return setting
    if setting not in UNITS:
        raise WorkflowError(
            f"nb.monomer_brightness is {setting!r}, which is neither a number nor one of the experiments "
            f"({', '.join(UNITS)}; a channel of a multi-channel stack is experiment/ch<c>). Give the monomer's "
            "brightness (photons per molecule per frame) or the name of the experiment whose cells express the "
            "monomeric fluorophore."
        )
    return str(setting)


def _nb_threshold():
    """nb.threshold, checked against nb.convention (brightflow.threshold.check_setting)."""
    try:
        bthreshold.check_setting(config["nb"]["threshold"], config["nb"]["convention"])
    except ValueError as error:
        raise WorkflowError(f"{error}.")
    return config["nb"]["threshold"]


def _settings_recorded():
    """The config an experiment's settings.json records. Left out: the sample sheet (each
    settings.json records its own row), where the results go (output_dir: where the file is) and
    where the jobs ran (slurm), which change no result, and a reference experiment as
    the monomer brightness, a folder-level choice recorded in the folder CSV, so that changing
    it reruns only the aggregate."""
    recorded = {key: value for key, value in config.items() if key not in ("samples", "output_dir", "slurm")}
    if isinstance(config["nb"]["monomer_brightness"], str):
        recorded["nb"] = {k: v for k, v in config["nb"].items() if k != "monomer_brightness"}
    return recorded


#: The time series' windows ({frames_per_set, overlap}), or None when it is off.
TIMESERIES = _timeseries_settings()
#: The two channels of cross-correlated N&B, or None.
CROSS_CHANNELS = _cross_channels()
CROSS_FOLDER = f"cross_ch{CROSS_CHANNELS[0]}_ch{CROSS_CHANNELS[1]}" if CROSS_CHANNELS else None
#: nb.monomer_brightness resolved: None, a number, or the reference unit.
MONOMER_BRIGHTNESS = _monomer_setting()
#: A numeric monomer brightness, which the per-experiment tables use (a reference unit is the
#: aggregate's alone: changing it reruns only that rule).
NUMERIC_MONOMER_BRIGHTNESS = MONOMER_BRIGHTNESS if isinstance(MONOMER_BRIGHTNESS, (int, float)) else None
SETTINGS_RECORDED = _settings_recorded()
NB_THRESHOLD = _nb_threshold()


def _cellpose_deployment():
    """Cellpose 4's overlay folder (`make venv`), or None when the rules run in conda environments
    (`--sdm conda`: envs/cellpose4.yaml installs cellpose 4 itself)."""
    from snakemake.settings.types import DeploymentMethod

    if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
        return None
    return os.path.join(workflow.basedir, ".cellpose4")


def _cellpose_settings(segmentation):
    """The cellpose keys, with the model resolved to its file and generation (brightflow.cellpose_models):
    a wrong, unknown or missing model, or a cellpose generation that is not installed, stops the run here."""
    import sys

    from brightflow import cellpose_models

    overlay = _cellpose_deployment()
    try:
        spec = cellpose_models.resolve_model(segmentation["model"], python=sys.executable, overlay=overlay)
    except (cellpose_models.ModelNotFoundError, cellpose_models.WrongModelError) as error:
        raise WorkflowError(str(error))
    if spec.generation == 3 and segmentation["precision"] == "bfloat16":
        raise WorkflowError(
            f"segmentation.precision is bfloat16, but segmentation.model {segmentation['model']!r} is a cellpose 3 "
            "model, which runs in float32 only: set precision to auto or float32 (bfloat16 is for cellpose 4 models)."
        )
    try:
        version = cellpose_models.installed_version(spec.generation, overlay, conda=overlay is None)
    except cellpose_models.ModelNotFoundError as error:
        raise WorkflowError(str(error))
    return spec.record() | {
        "cellpose_version": version,
        "diameter": float(segmentation["diameter"]),
        "flow_threshold": float(segmentation["flow_threshold"]),
        "cellprob_threshold": float(segmentation["cellprob_threshold"]),
        "gpu": segmentation["gpu"],
        "precision": segmentation["precision"],
        # where the cellpose 4 worker imports cellpose 4 from (None: this environment, with --sdm conda)
        "overlay": overlay if spec.generation == 4 else None,
    }


def _segmentation_settings(method):
    """The settings of segmentation.method `method` when it is the chosen one, else {} (so that
    changing another method's keys reruns nothing)."""
    segmentation = config["segmentation"]
    if segmentation["method"] != method:
        return {}
    if method == "threshold":
        settings = dict(segmentation["threshold"])
        try:
            settings["min_peak_distance"] = bsegment.resolve_peak_distance(
                settings["min_peak_distance"], segmentation["diameter"]
            )
        except ValueError as error:
            raise WorkflowError(f"{error}.")
        return settings
    return _cellpose_settings(segmentation)


SEGMENTATION_THRESHOLD = _segmentation_settings("threshold")
SEGMENTATION_CELLPOSE = _segmentation_settings("cellpose")
#: The cellpose generation that segments (3 or 4), or None without cellpose.
CELLPOSE_GENERATION = SEGMENTATION_CELLPOSE.get("generation")
#: The segmentation rule's conda environment (--sdm conda): cellpose 4's for a cellpose 4 model.
SEGMENTATION_CONDA_ENV = "../../envs/cellpose4.yaml" if CELLPOSE_GENERATION == 4 else "../../envs/cellpose.yaml"
