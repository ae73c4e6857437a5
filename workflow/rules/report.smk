# What `snakemake --report report.html` shows (run it after the workflow): every figure, the key
# tables and the brightness explorer, each with its caption (workflow/report/*.rst), grouped by unit
# of analysis (category: the experiment, or experiment/ch<c> for a channel of a multi-channel stack;
# "Folder" for the folder-level outputs) and by kind of output (subcategory). The rules mark their
# outputs with reported(); the Snakefile's `report:` directive names the run's summary,
# workflow/report/workflow.rst.

import platform
import sys

from snakemake import __version__ as SNAKEMAKE_VERSION

from brightflow import __version__ as BRIGHTFLOW_VERSION
from brightflow.nb import brightness_unit

REPORT_DIR = os.path.join(workflow.basedir, "workflow", "report")

#: kind of output: (its caption file in workflow/report/, its subcategory in the report)
REPORT_KINDS = {
    "maps": ("maps.rst", "N&B maps"),
    "brightness_x_intensity": ("brightness_x_intensity.rst", "N&B maps"),
    "segmentation": ("segmentation.rst", "Segmentation"),
    "bleach_correction": ("bleach_correction.rst", "Bleach correction"),
    "cells": ("average_values_in_roi.rst", "Tables"),
    "explorer": ("brightness_explorer.rst", "Explorer"),
    "timeseries_figure": ("brightness_timeseries.rst", "Time series"),
    "timeseries_table": ("timeseries_values_in_roi.rst", "Time series"),
    "cross_maps": ("cross_maps.rst", "Cross-correlation"),
    "cross_table": ("cross_values_in_roi.rst", "Cross-correlation"),
    "folder_table": ("folder_average_values_in_roi.rst", "Tables"),
    "folder_summary": ("folder_brightness_summary.rst", "Summary"),
}

#: The category of the folder-level outputs: "Folder", unless an experiment has that name.
FOLDER_CATEGORY = "Folder" if "Folder" not in UNITS else "Folder (all experiments)"


def reported(path, kind, shows, folder=False):
    """``path`` marked for the report: the caption and subcategory of ``kind`` (REPORT_KINDS), the
    unit's category (the {unit} wildcard of a per-channel rule, the {experiment} wildcard of an
    experiment-level one) or, with ``folder``, FOLDER_CATEGORY, and the label "Shows" (the report lists
    each subcategory's results by it)."""
    caption, subcategory = REPORT_KINDS[kind]
    category = "{unit}" if "{unit}" in path else "{experiment}"
    return report(
        path,
        caption=os.path.join(REPORT_DIR, caption),
        category=FOLDER_CATEGORY if folder else category,
        subcategory=subcategory,
        labels={"Shows": shows},
    )


def map_label(name):
    """A map's label in the report: its name in words and its preview's file name."""
    return f"{name.replace('_', ' ')} map ({name}.png)"


def _run_source():
    """Where this run's stacks come from, in words (the report's start page, the run's record)."""
    if config["samples"]:
        return f"sample sheet {config['samples']}"
    if DEMO:
        return "the demo (simulated recordings with known ground truth)"
    return f"input_dir {config['input_dir']}"


RUN_SOURCE = _run_source()


def _report_summary():
    """What workflow/report/workflow.rst states beyond the config: where the stacks came from, the
    configuration files, the experiments and their units, the settings resolved at start-up and the
    software versions."""
    experiments = [
        {
            "name": name,
            "path": str(SAMPLES.loc[name, "path"]),
            "units": [unit for unit, (owner, _) in UNITS.items() if owner == name],
        }
        for name in EXPERIMENTS
    ]
    return {
        "source": RUN_SOURCE,
        "configfiles": [os.path.abspath(path) for path in workflow.configfiles],
        "experiments": experiments,
        "units": list(UNITS),
        "segmentation_channels": SEGMENTATION_CHANNELS,
        "timeseries": TIMESERIES,
        "cross_channels": CROSS_CHANNELS,
        "monomer_brightness": MONOMER_BRIGHTNESS,
        # the brightness's unit after nb.detector, as every figure states it
        "brightness_unit": brightness_unit(config["nb"]["detector"]),
        "folder_category": FOLDER_CATEGORY,
        "versions": {
            "brightflow": BRIGHTFLOW_VERSION,
            "snakemake": SNAKEMAKE_VERSION,
            "python": platform.python_version(),
        },
    }


# Snakemake renders workflow.rst with the config alone (`snakemake.config`), so the summary goes
# there, under a key no config file may set (the schema refuses unknown keys). It is added after
# every check and after SETTINGS_RECORDED was taken: no rule and no settings.json sees it.
config["_report"] = _report_summary()

#: Whether snakemake was started to write the report (--report): then the output folder's results must
#: be those of this configuration (brightflow.io.check_report_matches_run), so that no report mixes two
#: analyses (this configuration's experiments with another run's folder table).
REPORTING = any(argument == "--report" or argument.startswith("--report=") for argument in sys.argv[1:])
if REPORTING:
    try:
        bio.check_report_matches_run(OUT, list(UNITS), SETTINGS_RECORDED, RUN_SOURCE)
    except ValueError as error:
        raise WorkflowError(f"{error}.")
