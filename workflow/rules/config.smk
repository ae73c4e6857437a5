# The config: its types, keys and values checked and the schema's defaults filled in, the folders
# under output_dir that the rules write to, and the refusal of an output folder that cannot be used.

import os
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from brightflow import config as bconfig
from brightflow import io as bio


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
