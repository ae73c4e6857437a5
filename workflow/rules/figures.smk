# Previews of the maps and the brightness-intensity scatter.


rule figures:
    input:
        maps=expand(f"{OUT}/{{{{experiment}}}}/{{name}}.npy", name=MAP_NAMES),
        labels=segmentation_file("analysis_labels.tif"),
        # the projection carries the recording's pixel size (axes and scale bars)
        image=segmentation_file("segmentation_image.tif"),
    output:
        previews=expand(f"{OUT}/{{{{experiment}}}}/{{name}}.png", name=MAP_NAMES),
        scatter=f"{OUT}/{{experiment}}/brightness_x_intensity.png",
    params:
        # the apparent brightness of immobile molecules (the B x I plot's reference line) is S
        detector=config["nb"]["detector"],
    resources:
        mem_mb=light_mem_mb,
        runtime=light_runtime,
        **slurm_placement(),
    log:
        f"{LOG_DIR}/{{experiment}}/figures.log",
    conda:
        "../../envs/core.yaml"
    script:
        "../../scripts/figures.py"
