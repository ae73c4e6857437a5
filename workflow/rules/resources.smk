# What each job asks of a scheduler (see profiles/): memory, wall-clock time, GPUs, and, on a SLURM
# cluster, the account and partition.
#
# A workstation run ignores mem_mb unless the user limits it (`--resources mem_mb=...`); the SLURM
# profile turns mem_mb into `sbatch --mem`, runtime into `--time` and gpu into `--gpus`. Requests
# grow with the stack, and with each retry (`retries:` in the profile), so a job killed for memory
# or time is resubmitted with more.

import functools

# --- GPU ------------------------------------------------------------------------------------------


def _segmentation_gpu_jobs():
    """1 when the segmentation jobs will run cellpose on CUDA, else 0 (their `gpu` resource).

    gpu true: 1; false: 0; auto: 1 when torch sees CUDA here (on a cluster, where the login
    node has no GPU, set gpu: true so the jobs request one).
    """
    if CELLPOSE_GENERATION is None:
        return 0
    setting = config["segmentation"]["gpu"]
    if setting is True or setting is False:
        return int(setting)
    try:
        from brightflow.cellpose_adapter import cuda_available

        return int(cuda_available())
    except ImportError:  # torch missing where snakemake runs: the job itself decides
        return 1


SEGMENTATION_GPU_JOBS = _segmentation_gpu_jobs()


# --- memory and time ------------------------------------------------------------------------------

#: Memory (MB) of a rule script reading an uncompressed stack. It holds Python with numpy, scipy,
#: scikit-image, tifffile and matplotlib imported (about 100-150 MB), one block of frames or one
#: tile of rows across all frames with its float64 working copies (brightflow.blocks.frame_chunks
#: and row_tiles, 256 MiB for all copies) and the frame-sized maps, with headroom. Measured peaks
#: are in docs/slurm.md, "Memory requests".
BASE_MEM_MB = 500

#: Extra memory of the cellpose 3 segmentation (torch, the model, the network's activations).
CELLPOSE_MEM_MB = 3000
#: Extra memory of the cellpose 4 segmentation: its worker process, whose peak is loading Cellpose-SAM
#: (304.6 M weights built in float32 while the 1.2 GB file's weights are read): 2.85 GB measured
#: (docs/cellpose.md, "Memory and time"), the same for one tile and for a batch of 4; with headroom.
CELLPOSE4_MEM_MB = 4000


@functools.lru_cache(maxsize=None)
def stack_megabytes(path, series=None):
    """Memory in MB that holding a stack's pixels adds to a job, from the TIFF header.

    brightflow.io.Stack reads most stacks block by block (chunks of frames, tiles of rows, each
    dropped after use; a compressed stack's tiles come from a decoded copy on disk): 0,
    :data:`BASE_MEM_MB` covers it however long the recording. The layouts it decodes whole
    (time not the first axis, e.g. ``CTYX``) add their decoded size:
    brightflow.io.whole_stack_megabytes, which decides as brightflow.io.Stack does. An unreadable file
    gives its file size (the job then fails with a clear message).

    ``series``: the series of a file with several. Cached per path and series: snakemake evaluates the memory request of every job of a stack (four
    rules per experiment) when it builds the DAG, and a dry run of hundreds of experiments
    would otherwise read each header four times.
    """
    if not os.path.exists(path):
        # snakemake evaluates the request again once the input exists (e.g. the demo's stacks)
        raise FileNotFoundError(2, "No such file", path)
    try:
        return bio.whole_stack_megabytes(bio.StackSource(path, series), config["input"]["axes"])
    except bio.InputError:  # the job fails with the file's own message; ask for its size
        return bio.recording_bytes(path) / 2**20


def _series(wildcards):
    return experiment_series(job_experiment(wildcards))


def _recording(wildcards):
    """The experiment's recording (not always a Snakemake input of its rules: common.smk, stack_path)."""
    return SAMPLES.loc[job_experiment(wildcards), "path"]


def stack_mem_mb(wildcards, attempt):
    """mem_mb of a rule that reads the experiment's stack (projection, bleach correction,
    N&B maps, settings): the decoded stack plus :data:`BASE_MEM_MB`, times the attempt (a retry asks more)."""
    return int((BASE_MEM_MB + stack_megabytes(_recording(wildcards), _series(wildcards))) * attempt)


def timeseries_mem_mb(wildcards, attempt):
    """mem_mb of rule nb_timeseries, the stack as for the other stack rules plus the windows that are
    open at once while the frames stream past (ceil(frames_per_set / step) of them, four frame-sized
    arrays of sums each). Finished windows go to temporary files (brightflow.io.FrameStore) and the
    maps are written a window at a time, so the number of windows does not count."""
    frames_per_set, overlap = TIMESERIES["frames_per_set"], TIMESERIES["overlap"]
    try:
        frame_values = bio.frame_size(
            bio.StackSource(_recording(wildcards), _series(wildcards)), config["input"]["axes"]
        )
    except bio.InputError:  # the job fails with the file's own message
        frame_values = 0
    open_windows = -(-frames_per_set // (frames_per_set - overlap))
    windows_mb = open_windows * frame_values * 8 * 4 / 2**20
    return int((BASE_MEM_MB + stack_megabytes(_recording(wildcards), _series(wildcards)) + windows_mb) * attempt)


def segmentation_mem_mb(wildcards, attempt):
    """mem_mb of the segmentation rule: its script, plus cellpose's worker for the generation in use."""
    extra = {None: 0, 3: CELLPOSE_MEM_MB, 4: CELLPOSE4_MEM_MB}[CELLPOSE_GENERATION]
    return (BASE_MEM_MB + extra) * attempt


#: Memory (MB) of the rules that read no stack (segmentation exports, masks, figures, tables,
#: aggregate): Python with matplotlib or pandas (about 80-150 MB measured) and a few frame-sized
#: maps (six float64 maps of 2048 x 2048 are 200 MB), with headroom.
LIGHT_MEM_MB = 1000


def light_mem_mb(wildcards, attempt):
    return LIGHT_MEM_MB * attempt


#: Wall-clock limits (minutes, sbatch --time), times the attempt. Measured on 2 cores: a 500 MB
#: stack takes 0.2-3 s per stack rule and 1-2 s per light rule; the limits leave room for slow,
#: shared nodes and cold file systems.
LIGHT_RUNTIME_MIN = 15
STACK_RUNTIME_MIN = 15
STACK_RUNTIME_MIN_PER_GB = 15
#: cellpose on a CPU node: about 10 s per 1024 x 1024 projection (README), far less on a GPU
CELLPOSE_RUNTIME_MIN = 60
#: cellpose 4 on a CPU node, float32, per 256-pixel tile of the (rescaled) projection, in CPU seconds:
#: measured 28-32 (docs/cellpose.md), asked as if on one core. A 1024 x 1024 projection without
#: rescaling is 25 tiles, 2048 x 2048 100.
CELLPOSE4_TILE_SECONDS = 40


def light_runtime(wildcards, attempt):
    return LIGHT_RUNTIME_MIN * attempt


def stack_runtime(wildcards, attempt):
    """runtime of a rule that reads the stack (a base plus a share per GB of the file, times the attempt)."""
    path = _recording(wildcards)
    size_gb = bio.recording_bytes(path) / 2**30 if os.path.exists(path) else 0
    return int((STACK_RUNTIME_MIN + STACK_RUNTIME_MIN_PER_GB * size_gb) * attempt)


def _projection_shape(path):
    """(y, x) of the projection, from its TIFF header; FileNotFoundError before it exists (snakemake
    then asks again when the projection is made)."""
    if not os.path.exists(path):
        raise FileNotFoundError(2, "No such file", path)
    import tifffile

    with tifffile.TiffFile(path) as tiff:
        return tiff.pages[0].shape[-2:]


def segmentation_runtime(wildcards, input, attempt):
    """runtime of the segmentation rule. With cellpose 4 it grows with the tiles of the projection
    (brightflow.cellpose_models.cellpose4_tiles), at the CPU's pace (on a GPU it takes far less)."""
    if CELLPOSE_GENERATION == 4:
        from brightflow.cellpose_models import cellpose4_tiles

        tiles = cellpose4_tiles(_projection_shape(input.image), SEGMENTATION_CELLPOSE["diameter"])
        return int((CELLPOSE_RUNTIME_MIN + tiles * CELLPOSE4_TILE_SECONDS / 60) * attempt)
    if CELLPOSE_GENERATION == 3:
        return CELLPOSE_RUNTIME_MIN * attempt
    return LIGHT_RUNTIME_MIN * attempt


# --- SLURM placement: account and partitions (config key slurm, or BRIGHTFLOW_SLURM_* variables) ---


def _slurm_setting(key):
    """slurm.<key> from the config, else $BRIGHTFLOW_SLURM_<KEY>; None when neither is set."""
    value = config["slurm"].get(key) or os.environ.get(f"BRIGHTFLOW_SLURM_{key.upper()}", "").strip()
    return str(value) if value else None


SLURM_ACCOUNT = _slurm_setting("account")
SLURM_PARTITION = _slurm_setting("partition")
SLURM_GPU_PARTITION = _slurm_setting("gpu_partition") or SLURM_PARTITION


def slurm_placement(gpu=False):
    """The slurm_account / slurm_partition resources of a rule (only those that are set).

    The SLURM executor turns them into sbatch --account / --partition; without them it uses the
    cluster's default partition and guesses the account. A job that asks for a GPU goes to
    slurm.gpu_partition. Other executors ignore them.
    """
    placement = {}
    if SLURM_ACCOUNT:
        placement["slurm_account"] = SLURM_ACCOUNT
    partition = SLURM_GPU_PARTITION if gpu else SLURM_PARTITION
    if partition:
        placement["slurm_partition"] = partition
    return placement
