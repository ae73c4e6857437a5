# The content of the inputs (brightflow.io.content_digest): the SHA-256 of every recording as the run
# starts, and the parameters through which a new content reruns a step and a content that changes
# during the run fails it.

import json


def _recording_digest(experiment):
    """The SHA-256 of the experiment's recording now (brightflow.io.content_digest); None for a file made by the
    workflow, missing, or a folder that is not an OME-Zarr (its first job says what is wrong)."""
    path = SAMPLES.loc[experiment, "path"]
    if made_by_the_workflow(experiment) or not os.path.exists(path):
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
        experiment = job_experiment(wildcards)
        if column == "path":
            return RUN_DIGESTS.get(experiment)
        path = SAMPLES.loc[experiment, column]
        if not path or made_by_the_workflow(experiment):
            return None
        return bio.content_digest(path, DIGEST_CACHE)

    return digest


def stack_source(wildcards):
    """Params function: which series of the file the step reads, and the content the run started from
    (its SHA-256, brightflow.io.content_digest, and the cache that makes checking it cheap). A new
    content reruns the step; a file that changes during the run fails the experiment's next step
    (brightflow.io.sources.check_unchanged) instead of mixing two versions."""
    experiment = job_experiment(wildcards)
    return {
        "path": SAMPLES.loc[experiment, "path"],
        "series": experiment_series(experiment),
        "sha256": input_digest("path")(wildcards),
        "digest_cache": DIGEST_CACHE,
    }
