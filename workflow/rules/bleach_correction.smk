# Bleach correction: fit the correction model on the cell pixels. The model (JSON) and, for Robin
# Hood, the swap plan (.npy; empty for the other methods) are applied by the N&B rule while it
# streams the stack; no corrected copy of the stack is written.


rule bleach_correction:
    input:
        stack=stack_path,
        labels=segmentation_file("analysis_labels.tif"),
    output:
        model=f"{OUT}/{{experiment}}/bleach_correction.json",
        swaps=f"{OUT}/{{experiment}}/bleach_correction_swaps.npy",
        figure=f"{OUT}/{{experiment}}/Bleach_correction.png",
    params:
        bleach_correction=config["bleach_correction"],
        channel=unit_channel,
        axes=config["input"]["axes"],
    # up to two threads sum and correct independent blocks of pixels (brightflow.parallel)
    threads: 2
    resources:
        mem_mb=stack_mem_mb,
        runtime=stack_runtime,
        **slurm_placement(),
    log:
        f"{LOG_DIR}/{{experiment}}/bleach_correction.log",
    conda:
        "../../envs/core.yaml"
    script:
        "../../scripts/bleach_correction.py"
