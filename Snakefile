# brightflow: Number & Brightness (N&B) analysis of fluorescence time-lapse stacks.
#
#   snakemake --cores N                      analyse config/config.yaml's input_dir
#   snakemake --cores N --config input_dir=/path/to/stacks
#
# Per experiment: projection -> segmentation -> analysis mask (erosion) -> bleach correction
# -> N&B maps -> figures and tables; then one aggregation over all experiments.

import os
import sys

from snakemake.utils import min_version

min_version("9.0")

# The rule scripts import the brightflow package of this checkout, also where it is not installed
# (the per-rule conda environments of `--sdm conda`, a cluster node): every job inherits this
# PYTHONPATH, and this process (which reads the stacks' headers) finds the package too.
os.environ["PYTHONPATH"] = os.pathsep.join(
    path for path in (workflow.basedir, os.environ.get("PYTHONPATH")) if path
)
sys.path.insert(0, workflow.basedir)


# The default config lives beside this file, so `--directory` elsewhere still finds it; a user's
# own `--configfile` or `--config` is applied on top of it.
configfile: os.path.join(workflow.basedir, "config", "config.yaml")


include: "workflow/rules/common.smk"
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
    simulate_demo,


rule all:
    input:
        all_outputs(),
    default_target: True
