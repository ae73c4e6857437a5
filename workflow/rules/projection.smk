# The mean projection of all frames: the image that is segmented (and opened in the cellpose GUI).


rule projection:
    input:
        stack=stack_path,
    output:
        f"{OUT}/{{experiment}}/segmentation_image.tif",
    params:
        # a multi-channel stack is segmented on segmentation.channel
        channel=segmentation_channel,
        axes=config["input"]["axes"],
    resources:
        mem_mb=stack_mem_mb,
        runtime=stack_runtime,
        **slurm_placement(),
    log:
        f"{LOG_DIR}/{{experiment}}/projection.log",
    conda:
        "../../envs/core.yaml"
    script:
        "../../scripts/projection.py"
