# brightflow: Number & Brightness (N&B) analysis of fluorescence time-lapse stacks.
#
#   snakemake --cores N                      analyse config/config.yaml's input_dir
#   snakemake --cores N --config input_dir=/path/to/stacks
#
# Per experiment: projection -> segmentation -> analysis mask (erosion) -> bleach correction
# -> N&B maps -> figures and tables; then one aggregation over all experiments.
#
# The rules (workflow/rules/) run thin scripts (scripts/), each handing its rule's inputs,
# outputs and parameters to one function of the installed brightflow package (brightflow.steps).

import os

from snakemake.utils import min_version

min_version("9.0")


# The per-rule conda environments (envs/, `--sdm conda`) install this checkout's brightflow package
# from here: their pip section names ${BRIGHTFLOW_ROOT}, which pip expands when conda creates them.
# Set here for that, never read from the user's environment.
os.environ.update(BRIGHTFLOW_ROOT=workflow.basedir)


# The default config lives beside this file, so `--directory` elsewhere still finds it; a user's
# own `--configfile` or `--config` is applied on top of it.
configfile: os.path.join(workflow.basedir, "config", "config.yaml")


# `snakemake --report report.html`, after the run: this summary, then every figure, table and
# explorer page marked with reported() (workflow/rules/report.smk) with its caption.
report: "workflow/report/workflow.rst"


include: "workflow/rules/config.smk"
include: "workflow/rules/samples.smk"
include: "workflow/rules/common.smk"
include: "workflow/rules/config_checks.smk"
# after the config checks: the digests are the first thing written in the output folder, and a run
# refused at start writes nothing
include: "workflow/rules/digests.smk"
include: "workflow/rules/resources.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/hooks.smk"
include: "workflow/rules/inputs.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/projection.smk"
include: "workflow/rules/segmentation.smk"
include: "workflow/rules/bleach_correction.smk"
include: "workflow/rules/nb.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/explorer.smk"
include: "workflow/rules/aggregate.smk"


# Light steps run in the snakemake process itself, also on a cluster (no SLURM job for them).
localrules:
    all,
    aggregate,
    missing_input,
    simulate_demo,
    demo_ground_truth,


rule all:
    default_target: True
    input:
        all_outputs(),


onstart:
    start_run()


onsuccess:
    finish_run(log)


onerror:
    fail_run(log)
