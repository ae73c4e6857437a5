# Bleach correction: fit the correction model on the cell pixels, in the same pass as the counts of
# doubtful samples. The model (JSON) and, for Robin Hood, the swap plan (.npy; empty for the other
# methods) are applied by the N&B rules while they stream the stack; no corrected copy of the stack
# is written. The corrected trace comes from that stream (rule nb_maps) and Bleach_correction.png
# from rule figures.


rule bleach_correction:
    input:
        stack=stack_path,
        labels=segmentation_file(rules.analysis_mask.output.labels),
    output:
        model=f"{OUT}/{{unit}}/bleach_correction.json",
        swaps=f"{OUT}/{{unit}}/bleach_correction_swaps.npy",
        # per pixel: samples at the saturation level, below 0, and NaN or Inf (brightflow.quality)
        samples=f"{OUT}/{{unit}}/sample_quality.npy",
    log:
        f"{LOG_DIR}/{{unit}}/bleach_correction.log",
    benchmark:
        f"{BENCH_DIR}/{{unit}}/bleach_correction.tsv"
    conda:
        "../../envs/core.yaml"
    # up to two threads sum and correct independent blocks of pixels (brightflow.parallel)
    threads: 2
    resources:
        **slurm_placement(),
        mem_mb=stack_mem_mb,
        runtime=stack_runtime,
    params:
        # the series read and the stack's content: a new content reruns this step, a new modification
        # time alone does not, and a content that changes during the run fails the step
        source=stack_source,
        method=config["bleach_correction"]["method"],
        parameter=config["bleach_correction"]["parameter"],
        seed=config["bleach_correction"]["seed"],
        dof_correction=config["bleach_correction"]["dof_correction"],
        saturation_level=config["quality"]["saturation_level"],
        channel=unit_channel,
        axes=config["input"]["axes"],
    script:
        "../../scripts/bleach_correction.py"
