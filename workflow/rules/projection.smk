# The mean projection of all frames: the image that is segmented (and opened in the cellpose GUI).


rule projection:
    input:
        stack=stack_path,
    output:
        image=f"{OUT}/{{experiment}}/segmentation_image.tif",
    log:
        f"{LOG_DIR}/{{experiment}}/projection.log",
    benchmark:
        f"{BENCH_DIR}/{{experiment}}/projection.tsv"
    conda:
        "../../envs/core.yaml"
    resources:
        **slurm_placement(),
        mem_mb=stack_mem_mb,
        runtime=stack_runtime,
    params:
        # the series read and the stack's content: a new content reruns this step, a new modification
        # time alone does not, and a content that changes during the run fails the step
        source=stack_source,
        # a multi-channel stack is segmented on segmentation.channel
        channel=segmentation_channel,
        axes=config["input"]["axes"],
    script:
        "../../scripts/projection.py"
